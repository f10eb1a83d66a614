"""``bench audit``: how well a dataset can be solved without seeing any generation artefact.

Two baselines, each scored by group-aware cross-validation (scikit-learn's ``StratifiedGroupKFold``,
groups = the manifest's groups joined with near-duplicates, as for the split):

- **metadata only**: features of the file bytes and container headers (:mod:`bench.data.file_meta`),
  never decoded pixels, fed to a ``HistGradientBoostingClassifier``; permutation importance on the
  held-out folds says which features carry it;
- **content only**: an 8x8 colour thumbnail plus a 16-bin colour histogram per channel, fed to a
  logistic regression; it catches content and colour-grading differences (photos vs art).

Each is scored on all images and per generator (that generator against every real image), as an
out-of-fold ROC-AUC with a seeded, group-aware bootstrap 95% interval. Everything is seeded.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy.stats import rankdata
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from bench.core.errors import BenchError, ImageSkip
from bench.data.dataset import Dataset, Item
from bench.data.file_meta import FEATURE_NAMES, file_features, metadata_matrix
from bench.data.images import decode_image, read_image_file
from bench.data.split import near_duplicate_groups

AUDIT_VERSION = 1  # bump when a change alters the numbers, so that cached audits (bench.run.run_audit) are redone
N_FOLDS = 5
THUMB = 8
HIST_BINS = 16
BASELINES = ("metadata", "content")


@dataclass
class Score:
    generator: str  # 'all' or a generator name
    n_real: int
    n_fake: int
    auc: float
    lo: float
    hi: float

    def label(self) -> str:
        """The AUC with its 95% interval, as every audit table prints it."""
        return f"{self.auc:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


@dataclass
class AuditResult:
    dataset: str
    dataset_hash: str
    seed: int
    scores: dict[str, list[Score]] = field(default_factory=dict)  # baseline -> per generator ('all' first)
    importance: list[tuple[str, float]] = field(default_factory=list)  # metadata features, most important first
    vocab: dict[str, list[str]] = field(default_factory=dict)

    def auc(self, baseline: str) -> float:
        return self.scores[baseline][0].auc

    def to_dict(self) -> dict:
        """JSON-ready, with each baseline's verdict line; :meth:`from_dict` reads it back."""
        return {"dataset": self.dataset, "dataset_hash": self.dataset_hash, "seed": self.seed,
                "scores": {b: [dict(s.__dict__) for s in ss] for b, ss in self.scores.items()},
                "importance": [list(t) for t in self.importance], "vocab": self.vocab,
                "verdicts": {b: verdict(self, b) for b in self.scores}}

    @classmethod
    def from_dict(cls, data: dict) -> "AuditResult":
        """Back from :meth:`to_dict` (or a cache entry, stored with sorted keys), in the original order."""
        return cls(data["dataset"], data["dataset_hash"], data["seed"],
                   {b: [Score(**s) for s in data["scores"][b]] for b in BASELINES if b in data["scores"]},
                   [(name, float(value)) for name, value in data.get("importance", [])],
                   {k: data["vocab"][k] for k in FEATURE_NAMES if k in data.get("vocab", {})})


def metadata_features(items: list[Item]) -> tuple[np.ndarray, list[int], dict[str, list[str]]]:
    """The metadata matrix of ``items``: their file bytes are read, their pixels never decoded."""
    rows = []
    for it in items:
        try:
            rows.append(file_features(read_image_file(it.path)))
        except ImageSkip as exc:
            raise BenchError(f"{it.id}: {exc} (the file changed since the dataset was loaded)") from None
    return metadata_matrix(rows)


def _content_vector(path: str) -> np.ndarray:
    arr = decode_image(path)
    thumb = np.asarray(Image.fromarray(arr).resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.float64)
    hist = [np.histogram(arr[..., c], bins=HIST_BINS, range=(0, 256))[0] / arr[..., c].size for c in range(3)]
    return np.concatenate([thumb.ravel() / 255.0, *hist])


def content_features(items: list[Item], workers: int = 2) -> np.ndarray:
    """Thumbnail and colour-histogram features (these do decode the pixels)."""
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return np.stack(list(pool.map(lambda it: _content_vector(it.path), items)))
    except ImageSkip as exc:
        raise BenchError(f"an image could not be decoded for the content baseline: {exc}") from None


def _metadata_model(categorical: list[int], seed: int):
    return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=5,
                                          categorical_features=categorical or None, early_stopping=False,
                                          random_state=seed)


def _content_model(seed: int):
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=seed))


def rank_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney statistic with mid-ranks for ties: the value of sklearn's ``roc_auc_score``
    without its input validation, which dominated the audit's time (bootstrap and permutation importance)."""
    n_pos = int(np.sum(y == 1))
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC-AUC needs both classes")
    return float((rankdata(s)[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _auc_scorer(model, X: np.ndarray, y: np.ndarray) -> float:
    return rank_auc(y, model.predict_proba(X)[:, 1])


def _folds(y: np.ndarray, strata: np.ndarray, groups: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    per_class = min(len(set(groups[y == c])) for c in (0, 1))
    n = min(N_FOLDS, per_class)
    if n < 2:
        raise BenchError("too few distinct images (groups of near-duplicates) per class to cross-validate "
                         f"(smallest class: {per_class} group(s), at least 2 needed)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small strata: sklearn warns that a class has fewer members than folds
        splitter = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)
        folds = list(splitter.split(np.zeros(len(y)), strata, groups))
    return [(tr, te) for tr, te in folds if len(set(y[tr])) == 2]


def out_of_fold(make_model, X: np.ndarray, y: np.ndarray, strata: np.ndarray, groups: np.ndarray, seed: int,
                importance: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Out-of-fold probabilities of class 1 (NaN where a fold could not be fitted) and, when asked,
    the permutation importance (ROC-AUC drop) of each column on the held-out folds, averaged over folds."""
    scores = np.full(len(y), np.nan)
    drops, weights = np.zeros(X.shape[1]), 0
    for k, (tr, te) in enumerate(_folds(y, strata, groups, seed)):
        model = make_model(seed).fit(X[tr], y[tr])
        scores[te] = model.predict_proba(X[te])[:, 1]
        if importance and len(set(y[te])) == 2:
            imp = permutation_importance(model, X[te], y[te], scoring=_auc_scorer, n_repeats=5,
                                         random_state=seed + k, n_jobs=1)
            drops += imp.importances_mean * len(te)
            weights += len(te)
    return scores, (drops / weights if importance and weights else None)


def bootstrap_auc(y: np.ndarray, s: np.ndarray, groups: np.ndarray, seed: int, n_boot: int = 200) -> tuple[float,
                                                                                                            float]:
    """95% percentile interval of the ROC-AUC; groups are drawn with replacement within each class."""
    rng = np.random.default_rng(seed)
    members = [[np.flatnonzero((groups == g) & (y == c)) for g in np.unique(groups[y == c])] for c in (0, 1)]
    aucs = []
    for _ in range(n_boot):
        idx = np.concatenate([np.concatenate([m[i] for i in rng.integers(0, len(m), len(m))]) for m in members])
        aucs.append(rank_auc(y[idx], s[idx]))
    if not aucs:
        return float("nan"), float("nan")
    lo, hi = np.percentile(aucs, [2.5, 97.5])
    return float(lo), float(hi)


def _score(make_model, X, y, gens, groups, seed, n_boot, label, importance=False):
    strata = np.where(y == 0, "real", gens)
    s, imp = out_of_fold(make_model, X, y, strata, groups, seed, importance)
    ok = ~np.isnan(s)
    auc = rank_auc(y[ok], s[ok]) if len(set(y[ok])) == 2 else float("nan")
    lo, hi = bootstrap_auc(y[ok], s[ok], groups[ok], seed, n_boot)
    return Score(label, int((y == 0).sum()), int((y == 1).sum()), auc, lo, hi), imp


def audit_dataset(dataset: Dataset, seed: int = 0, workers: int = 2, n_boot: int = 200,
                  baselines: tuple[str, ...] = BASELINES) -> AuditResult:
    """Both baselines on all images and per generator (against every real image)."""
    with threadpool_limits(1):  # small models: OpenMP threads on shared cores cost more than they give (5x)
        return _audit(dataset, seed, workers, n_boot, baselines)


def _audit(dataset: Dataset, seed: int, workers: int, n_boot: int, baselines: tuple[str, ...]) -> AuditResult:
    items = dataset.items
    y = np.array([it.label for it in items])
    gens = np.array([it.generator for it in items], dtype=object)
    groups = near_duplicate_groups([it.dhash for it in items], [it.group for it in items])
    result = AuditResult(dataset.name, dataset.hash, seed)
    subsets = [("all", np.ones(len(items), dtype=bool))] + [(g, (y == 0) | (gens == g)) for g in dataset.generators]
    if "metadata" in baselines:
        X, categorical, result.vocab = metadata_features(items)
        scores = []
        for label, mask in subsets:
            score, imp = _score(lambda sd: _metadata_model(categorical, sd), X[mask], y[mask], gens[mask],
                                groups[mask], seed, n_boot, label, importance=label == "all")
            scores.append(score)
            if imp is not None:
                order = np.argsort(-imp, kind="stable")
                result.importance = [(FEATURE_NAMES[j], float(imp[j])) for j in order]
        result.scores["metadata"] = scores
    if "content" in baselines:
        C = content_features(items, workers)
        result.scores["content"] = [_score(_content_model, C[mask], y[mask], gens[mask], groups[mask], seed, n_boot,
                                           label)[0] for label, mask in subsets]
    return result


def _feature_story(result: AuditResult, name: str) -> str:
    values = result.vocab.get(name)
    return f"{name}: {' / '.join(values)}" if values and len(values) > 1 else name


def verdict(result: AuditResult, baseline: str) -> str:
    s = result.scores[baseline][0]
    what = "metadata alone" if baseline == "metadata" else "image content alone (8x8 thumbnail + colour histogram)"
    line = f"{what} separates real from generated with AUC {s.auc:.2f} [{s.lo:.2f}, {s.hi:.2f}]"
    if baseline == "metadata" and result.importance and result.importance[0][1] > 0.01:
        line += f" (top feature: {_feature_story(result, result.importance[0][0])})"
    if s.auc >= 0.7:
        line += ": a shortcut; a detector's score on this data is not evidence it sees generation artefacts"
    elif s.auc <= 0.6:
        line += ": near chance"
    return line


def audit_report(result: AuditResult, top: int = 5) -> str:
    from tabulate import tabulate

    rows = []
    gens = [s.generator for s in next(iter(result.scores.values()))]
    for i, gen in enumerate(gens):
        first = next(iter(result.scores.values()))[i]
        row = [gen, first.n_real, first.n_fake]
        for b in result.scores:
            s = result.scores[b][i]
            row.append(s.label())
        rows.append(row)
    headers = ["generator", "n real", "n generated"] + [f"{b} AUC [95% CI]" for b in result.scores]
    lines = [f"audit of {result.dataset} (hash {result.dataset_hash}, seed {result.seed}; out-of-fold ROC-AUC, "
             f"{N_FOLDS}-fold group-aware CV, group bootstrap CI)", "",
             tabulate(rows, headers=headers, disable_numparse=True)]
    if result.importance:
        lines += ["", "metadata features (permutation importance: held-out AUC drop when shuffled):"]
        lines += [f"  {name:<20} {imp:+.3f}" for name, imp in result.importance[:top]]
    lines += [""] + [f"verdict: {verdict(result, b)}" for b in result.scores]
    return "\n".join(lines)


def audit_comparison(before: AuditResult, after: AuditResult, normalize: str, top: int = 5) -> str:
    """What ``--normalize`` took away: each baseline's AUC before and after, per generator, and the verdicts."""
    from tabulate import tabulate

    baselines = [b for b in before.scores if b in after.scores]
    after_by_gen = {b: {s.generator: s for s in after.scores[b]} for b in baselines}
    rows = []
    for i, first in enumerate(before.scores[baselines[0]]):
        row = [first.generator]
        for b in baselines:
            s, t = before.scores[b][i], after_by_gen[b].get(first.generator)
            row += [s.label(), "-" if t is None else t.label()]
        rows.append(row)
    headers = ["generator"] + [f"{b} {when}" for b in baselines for when in ("before", "after")]
    lines = [f"effect of --normalize {normalize} on {before.dataset} (hash {before.dataset_hash} -> "
             f"{after.dataset_hash}; out-of-fold ROC-AUC [95% CI], seed {before.seed})", "",
             tabulate(rows, headers=headers, disable_numparse=True)]
    if after.importance:
        lines += ["", "metadata features after normalising (permutation importance):"]
        lines += [f"  {name:<20} {imp:+.3f}" for name, imp in after.importance[:top]]
    lines += [""] + [f"verdict {when}: {verdict(r, b)}" for b in baselines
                     for when, r in (("before", before), ("after", after))]
    return "\n".join(lines)
