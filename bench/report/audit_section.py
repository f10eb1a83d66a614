"""The shortcut audit in reports: report.html's "Audit" section and the leaderboard header's warning.

Both read run.json's "audit" block (bench.run.run_audit), so they can be regenerated from any stored
run; runs recorded before the audit existed (or with ``--no-audit``) simply have none.
"""

from __future__ import annotations

import html
from typing import Any, Iterable

from tabulate import tabulate

from bench.data.audit import AuditResult
from bench.run.run_audit import evaluated_audit

WARN_ABOVE = 0.7  # metadata AUC above which the leaderboard warns
TOP_FEATURES = 5


def shortcut_warning(run_records: Iterable[dict[str, Any]], dataset: str) -> str:
    """One line when the metadata-only baseline separates the evaluated images of ``dataset`` with AUC above
    WARN_ABOVE in any of the runs, else ""."""
    worst: dict | None = None
    for record in run_records:
        audit = evaluated_audit(record)
        if not audit or audit.get("dataset") != dataset or "metadata" not in audit.get("scores", {}):
            continue
        score = audit["scores"]["metadata"][0]
        if score["auc"] > WARN_ABOVE and (worst is None or score["auc"] > worst["score"]["auc"]):
            worst = {"score": score, "audit": audit, "normalize": (record.get("audit") or {}).get("normalize")}
    if worst is None:
        return ""
    s, audit = worst["score"], worst["audit"]
    top = audit["importance"][0][0] if audit.get("importance") else "?"
    images = f"after --normalize {worst['normalize']}" if worst["normalize"] else "as stored"
    return (f"Shortcut warning: metadata alone (no pixels) separates real from generated images of {dataset} "
            f"({images}) with ROC-AUC {s['auc']:.2f} [{s['lo']:.2f}, {s['hi']:.2f}] > {WARN_ABOVE} "
            f"(top feature: {top}); these scores may not measure generation artefacts (see the Audit section).")


def _result_table(result: AuditResult) -> str:
    first = next(iter(result.scores.values()))
    rows = [[s.generator, s.n_real, s.n_fake] + [result.scores[b][i].label() for b in result.scores]
            for i, s in enumerate(first)]
    headers = ["generator", "n real", "n generated"] + [f"{b} AUC [95% CI]" for b in result.scores]
    return tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True)


def _result_html(title: str, data: dict) -> str:
    result = AuditResult.from_dict(data)
    features = ", ".join(f"{html.escape(name)} ({imp:+.3f})" for name, imp in result.importance[:TOP_FEATURES]
                         if imp > 0)
    verdicts = "".join(f"<li>{html.escape(line)}</li>" for line in data.get("verdicts", {}).values())
    return (f"<h3>{html.escape(title)}</h3>\n{_result_table(result)}\n"
            + (f'<p class="note">Top metadata features (permutation importance, held-out AUC drop): {features}</p>\n'
               if features else "")
            + f"<ul>{verdicts}</ul>")


def audit_html(run_records: Iterable[dict[str, Any]]) -> str:
    """The "Audit" section: per run (one per distinct dataset and normalisation), both baselines' AUC per
    generator, the top metadata features, the verdicts, and the normalisation used."""
    parts, seen = [], set()
    for record in run_records:
        block = record.get("audit") or {}
        key = (block.get("dataset"), (block.get("original") or {}).get("dataset_hash"), block.get("normalize"))
        if not block or key in seen:
            continue
        seen.add(key)
        normalize = block.get("normalize")
        head = (f"<p>Run <code>{html.escape(str(record.get('run_id')))}</code>, dataset "
                f"<code>{html.escape(str(block.get('dataset', 'unknown')))}</code>; normalisation: "
                f"<code>{html.escape(normalize or 'none')}</code>. Out-of-fold ROC-AUC of a metadata-only "
                "(file headers, never pixels) and a content-only (8x8 thumbnail + colour histogram) classifier; "
                "0.5 = no shortcut.</p>")
        if "error" in block or "skipped" in block:
            parts.append(head + f'<p class="note">audit not available: '
                                f'{html.escape(str(block.get("error") or block.get("skipped")))}</p>')
            continue
        body = _result_html("Images as stored" if normalize else "Images", block["original"])
        if block.get("normalized"):
            body += "\n" + _result_html(f"After --normalize {normalize}", block["normalized"])
        parts.append(head + "\n" + body)
    return "\n".join(parts)
