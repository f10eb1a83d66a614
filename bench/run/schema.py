"""The result store's file names and columns: the contract between runner, reports and comparisons.

``results.parquet`` / ``results.csv``: long format, one row per
(run, detector, dataset, generator, perturbation, severity, metric, training seed).
``scores.parquet``: one row per (detector, image, perturbation, severity, training seed).
``run.json``: the run record (see README, "Result schema").
A stored reference (bench baseline save) may add ``band.parquet`` / ``band.csv``
(per cell: the spread of its value over training seeds) and ``band.json`` (those seeds).
"""

RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"
SCORES_PARQUET = "scores.parquet"
RUN_JSON = "run.json"
BAND_PARQUET = "band.parquet"
BAND_CSV = "band.csv"
BAND_JSON = "band.json"
LEADERBOARD_MD = "leaderboard.md"
# What `bench report` (bench.report.write) adds to a run folder: named here, beside the store's files, so that a
# run into a reused --out removes every file a previous run left there (bench.run.store.clear_previous_run).
LEADERBOARD_TEX = "leaderboard.tex"
LEADERBOARD_HTML = "leaderboard.html"
PAIRWISE_MD = "pairwise.md"
REPORT_HTML = "report.html"
FIGURES_DIR = "figures"  # figures/<dataset>/<prefix><name>.<suffix>
CURVES, GENERATORS, CONFUSION = "curves_", "generators_", "confusion_"  # the figures' name prefixes
FIGURE_PREFIXES = (CURVES, GENERATORS, CONFUSION)
FIGURE_SUFFIXES = (".png", ".pdf")
RUN_FILES = (RUN_JSON, RESULTS_PARQUET, RESULTS_CSV, SCORES_PARQUET, LEADERBOARD_MD, LEADERBOARD_TEX,
             LEADERBOARD_HTML, PAIRWISE_MD, REPORT_HTML)  # run.json first: the folder is incomplete without it

RESULT_COLUMNS = [
    "run_id",  # str
    "detector",  # str, registry name
    "weights",  # str: "pretrained", "trained" (fitted from scratch on the run's data), "none", or "random"
    "profile",  # str: the detector's settings, "paper", "fast" or "custom" (bench.core.detector.PROFILES)
    "dataset",  # str, dataset name
    "generator",  # str: "all", "mean" (mean over generators) or a generator name (vs the shared real set)
    "perturbation",  # str: "none" for the clean cell
    "severity",  # int, 0 = clean
    "param",  # float, the physical parameter (e.g. JPEG quality); NaN at severity 0 or when not a single number
    "param_label",  # str, e.g. "clean", "q=90", "sigma=2 px"
    "metric",  # str, e.g. "roc_auc"
    "value",  # float
    "ci_low",  # float, bootstrap 95% interval (NaN when not computable)
    "ci_high",  # float
    "n",  # int, images that entered the number
    "higher_is_better",  # bool
    "seed",  # int, the training seed of the fit (bench run --seeds); a store without it: run.json's train_seed
]

# Columns added after the first stores were written, with the value a store without them reads as.
LATER_RESULT_COLUMNS = {"profile": "unrecorded"}

SCORE_COLUMNS = [
    "run_id",
    "detector",
    "dataset",
    "image_id",
    "sha256",
    "label",  # int, 1 = generated
    "generator",
    "perturbation",
    "severity",
    "score",  # float, higher = more likely generated
    "pred_source",  # str or None: predicted generator (attribution detectors)
    "group",  # int: bootstrap group of the image (near-duplicates, same source, caption siblings)
    "seed",  # int, the training seed of the fit, as in RESULT_COLUMNS
]
