"""Leaderboards (golden strings), figures and report.html from a small fixture store."""

from __future__ import annotations

import argparse

import matplotlib.text
import pandas as pd
import pytest

from bench.cli.report import add_report_commands
from bench.core.errors import BenchError
from bench.report.figures import (
    PALETTE,
    PANEL_WIDTH_IN,
    attribution_detectors,
    detector_colors,
    plot_confusion_matrix,
    plot_generator_heatmap,
    plot_robustness_curves,
)
from bench.report.leaderboard import leaderboard_frame, leaderboard_html, leaderboard_latex, leaderboard_markdown
from bench.report.runs import load_runs
from bench.report.write import write_leaderboards, write_report
from fixtures.report_store import ATTRIBUTION_DETECTOR, PERTURBATIONS, results_frame, run_record, scores_frame, write_run

GOLDEN_MARKDOWN = """\
roc_auc (higher is better) on dataset `toy`; dataset hash: `3f2a9c1b0d4e5f60`; weights: pretrained, trained; seed: 0; run: `fixture-run`

| Detector             | Weights    |       Clean ↑ |   blur ↑ |   jpeg ↑ |   Mean perturbed ↑ |   nAUC ↑ |   Relative ↑ |   Worst ↑ |
|:---------------------|:-----------|--------------:|---------:|---------:|-------------------:|---------:|-------------:|----------:|
| clip_svm.vit_b16     | trained    | 0.950 ± 0.020 |    0.910 |    0.850 |              0.880 |    0.897 |        0.926 |     0.800 |
| cnndet.blur_jpeg_0.5 | pretrained | 0.900 ± 0.030 |    0.820 |    0.700 |              0.760 |    0.795 |        0.844 |     0.600 |
| univfd.vit_l14       | pretrained | 0.850 ± 0.010 |    0.834 |    0.810 |              0.822 |    0.829 |        0.967 |     0.790 |

Clean: value ± half-width of the 95% bootstrap CI. Perturbation columns: mean over severities ≥ 1. \
Mean perturbed: mean over every perturbed cell. nAUC: area under the metric-vs-severity curve normalised by the \
highest level, mean over perturbations. Relative: mean perturbed / clean. Worst: the worst perturbed cell.
"""

GOLDEN_LATEX = r"""% roc_auc (higher is better) on dataset toy; dataset hash: 3f2a9c1b0d4e5f60; weights: pretrained, trained; seed: 0; run: fixture-run
% Clean: value ± half-width of the 95% bootstrap CI. Perturbation columns: mean over severities ≥ 1. Mean perturbed: mean over every perturbed cell. nAUC: area under the metric-vs-severity curve normalised by the highest level, mean over perturbations. Relative: mean perturbed / clean. Worst: the worst perturbed cell.
\begin{tabular}{llrrrrrrr}
\toprule
Detector & Weights & Clean $\uparrow$ & blur $\uparrow$ & jpeg $\uparrow$ & Mean perturbed $\uparrow$ & nAUC $\uparrow$ & Relative $\uparrow$ & Worst $\uparrow$ \\
\midrule
clip\_svm.vit\_b16 & trained & 0.950 $\pm$ 0.020 & 0.910 & 0.850 & 0.880 & 0.897 & 0.926 & 0.800 \\
cnndet.blur\_jpeg\_0.5 & pretrained & 0.900 $\pm$ 0.030 & 0.820 & 0.700 & 0.760 & 0.795 & 0.844 & 0.600 \\
univfd.vit\_l14 & pretrained & 0.850 $\pm$ 0.010 & 0.834 & 0.810 & 0.822 & 0.829 & 0.967 & 0.790 \\
\bottomrule
\end{tabular}
"""


@pytest.fixture
def store(tmp_path):
    results, scores, records = load_runs([write_run(tmp_path / "run")])
    return results, scores, records


def _clean_only(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["perturbation"] == "none"]


# ---------------------------------------------------------------- leaderboard


def test_leaderboard_frame_rows_columns_and_order(store):
    results, _, _ = store
    frame = leaderboard_frame(results)
    assert list(frame["detector"]) == ["clip_svm.vit_b16", "cnndet.blur_jpeg_0.5", "univfd.vit_l14"]
    assert list(frame.columns) == [
        "detector", "weights", "clean", "clean_ci_low", "clean_ci_high", "blur", "jpeg", "mean_perturbed", "nauc",
        "relative", "worst",
    ]
    assert frame.attrs == {"metric": "roc_auc", "dataset": "toy", "higher_is_better": True, "reference": None}
    assert frame.loc[1, "jpeg"] == pytest.approx(0.70)  # 0.90 - 2 * 0.05 * mean(1, 2, 3)
    assert frame.loc[1, "mean_perturbed"] == pytest.approx(0.76)


def test_leaderboard_random_weights_only_on_request(store):
    results, _, _ = store
    assert "dummy.random" not in set(leaderboard_frame(results)["detector"])
    with_random = leaderboard_frame(results, include_random=True)
    assert with_random["detector"].iloc[-1] == "dummy.random"


def test_leaderboard_markdown_golden(store):
    results, _, records = store
    assert leaderboard_markdown(leaderboard_frame(results), results, records) == GOLDEN_MARKDOWN


def test_leaderboard_latex_golden(store):
    results, _, records = store
    assert leaderboard_latex(leaderboard_frame(results), results, records) == GOLDEN_LATEX


def test_lower_is_better_metric_sorts_ascending_with_down_arrow(store):
    results, _, records = store
    frame = leaderboard_frame(results, metric="ece")
    assert list(frame["clean"]) == sorted(frame["clean"])
    markdown = leaderboard_markdown(frame, results, records)
    assert "Clean ↓" in markdown and "↑" not in markdown
    assert "(lower is better)" in markdown


def test_leaderboard_html_escapes_and_carries_provenance(store):
    results, _, records = store
    fragment = leaderboard_html(leaderboard_frame(results), results, records)
    assert fragment.startswith('<p class="provenance">roc_auc (higher is better) on dataset <code>toy</code>')
    assert "<table>" in fragment and "0.950 ± 0.020" in fragment


def test_random_only_run_gives_an_empty_table_that_says_why(tmp_path):
    results = results_frame()
    run_dir = write_run(tmp_path / "run", results[results["weights"] == "random"])
    write_report([run_dir])
    leaderboard = (run_dir / "leaderboard.md").read_text(encoding="utf-8")
    assert "run: `fixture-run`" in leaderboard and "pass --include-random" in leaderboard
    assert "dummy.random" not in leaderboard


def test_clean_only_leaderboard_has_no_perturbation_columns(store):
    results, _, _ = store
    frame = leaderboard_frame(_clean_only(results))
    assert list(frame.columns) == ["detector", "weights", "clean", "clean_ci_low", "clean_ci_high"]


def test_unknown_metric_names_the_available_ones(store):
    results, _, _ = store
    with pytest.raises(BenchError, match="available metrics: acc_at_val_threshold, ece, roc_auc"):
        leaderboard_frame(results, metric="auc")


def test_several_datasets_need_a_choice(store):
    results, _, _ = store
    both = pd.concat([results, results.assign(dataset="other")], ignore_index=True)
    with pytest.raises(BenchError, match="choose a dataset"):
        leaderboard_frame(both)
    assert leaderboard_frame(both, dataset="other").attrs["dataset"] == "other"


def test_load_runs_merges_runs_and_provenance_names_both(tmp_path):
    results = results_frame()
    first = results["detector"] == "clip_svm.vit_b16"
    run_a = write_run(tmp_path / "a", results[first].assign(run_id="run-a"), scores_frame("run-a"), run_record("run-a"))
    run_b = write_run(tmp_path / "b", results[~first].assign(run_id="run-b"), pd.DataFrame(), run_record("run-b"))
    merged, scores, records = load_runs([run_a, run_b])
    assert len(merged) == len(results) and len(records) == 2
    assert len(scores) == len(scores_frame())
    markdown = leaderboard_markdown(leaderboard_frame(merged), merged, records)
    assert "runs: `run-a`, `run-b`" in markdown


def test_load_runs_later_run_wins_on_overlap(tmp_path):
    improved = results_frame("run-b").assign(value=lambda df: df["value"] + 0.001)
    later = write_run(tmp_path / "b", improved, record=run_record("run-b"))
    merged, _, _ = load_runs([write_run(tmp_path / "a"), later])
    assert len(merged) == len(improved) and set(merged["run_id"]) == {"run-b"}


# ---------------------------------------------------------------- figures


def test_detector_colors_are_stable():
    names = ["clip_svm.vit_b16", "cnndet.blur_jpeg_0.5", "univfd.vit_l14", "npr.resnet"]
    colors = detector_colors(names)
    assert colors == detector_colors(list(reversed(names)) + names[:1])  # order and repeats do not matter
    assert len(set(colors.values())) == len(names)
    alone = {name: detector_colors([name])[name] for name in names}
    for name in names:  # a name keeps its own colour unless it clashes with a name sorted before it
        clashes = [other for other in sorted(names) if other < name and alone[other] == alone[name]]
        if not clashes:
            assert colors[name] == alone[name]
    assert detector_colors(["clip_svm.vit_b16"]) == {"clip_svm.vit_b16": alone["clip_svm.vit_b16"]}
    assert alone["clip_svm.vit_b16"] == PALETTE[1]  # a hash change would repaint every published figure


def test_detector_colors_distinct_up_to_palette_size():
    names = [f"detector_{i}" for i in range(len(PALETTE))]
    assert len(set(detector_colors(names).values())) == len(PALETTE)
    assert len(detector_colors(names + ["one_more"])) == len(PALETTE) + 1


def _texts(fig) -> list[matplotlib.text.Text]:
    return [text for text in fig.findobj(matplotlib.text.Text) if text.get_text().strip()]


def test_robustness_curves_one_panel_per_perturbation(store):
    results, _, _ = store
    shown = results[results["weights"] != "random"]
    colors = detector_colors(shown["detector"])
    fig = plot_robustness_curves(shown, "roc_auc", colors)
    assert len(fig.axes) == len(PERTURBATIONS)
    assert sorted(ax.get_title() for ax in fig.axes) == sorted(PERTURBATIONS)
    jpeg = next(ax for ax in fig.axes if ax.get_title() == "jpeg")
    assert [t.get_text() for t in jpeg.get_xticklabels()] == ["clean", "q=90", "q=70", "q=50"]
    for ax in fig.axes:
        assert len(ax.collections) == len(colors)  # one CI band per detector
        for line in ax.get_lines():
            assert line.get_color() == colors[line.get_label()]
            assert len(line.get_xdata()) == 4  # the shared clean cell + 3 severities
    assert fig.get_figwidth() == pytest.approx(PANEL_WIDTH_IN * len(PERTURBATIONS))
    assert min(text.get_fontsize() for text in _texts(fig)) >= 7


def test_robustness_curves_skipped_without_perturbed_cells(store):
    results, _, _ = store
    assert plot_robustness_curves(_clean_only(results)) is None


def test_generator_heatmap_clean_and_worst_panels(store):
    results, _, _ = store
    fig = plot_generator_heatmap(results)
    heatmaps = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in heatmaps] == ["roc_auc ↑, clean", "roc_auc ↑, worst perturbed cell"]
    assert [t.get_text() for t in heatmaps[0].get_xticklabels()] == ["dalle3", "sdxl", "mean"]
    assert min(text.get_fontsize() for text in _texts(fig)) >= 7
    clean_only = plot_generator_heatmap(_clean_only(results))
    assert len([ax for ax in clean_only.axes if ax.get_title()]) == 1


def test_confusion_matrix_of_the_attribution_detector(store):
    _, scores, _ = store
    assert attribution_detectors(scores) == [ATTRIBUTION_DETECTOR]
    fig = plot_confusion_matrix(scores, ATTRIBUTION_DETECTOR)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["real", "dalle3", "sdxl"]
    annotations = [t.get_text() for t in ax.texts]
    assert annotations == ["3", "0", "1", "1", "3", "0", "0", "1", "3"]


# ---------------------------------------------------------------- write_report


def test_write_report_writes_every_part(tmp_path):
    run_dir = write_run(tmp_path / "run")
    paths = write_report([run_dir])
    names = {path.relative_to(run_dir).as_posix() for path in paths}
    assert names == {
        "leaderboard.md", "leaderboard.tex", "leaderboard.html", "report.html",
        *(f"figures/toy/{stem}.{ext}" for stem in (
            "curves_roc_auc", "curves_acc_at_val_threshold", "generators_roc_auc", f"confusion_{ATTRIBUTION_DETECTOR}",
        ) for ext in ("png", "pdf")),
    }
    assert all(path.stat().st_size > 0 for path in paths)
    assert (run_dir / "leaderboard.md").read_text(encoding="utf-8").endswith(GOLDEN_MARKDOWN)
    report = (run_dir / "report.html").read_text(encoding="utf-8")
    assert report.count("data:image/png;base64,") == 4
    assert 'src="figures' not in report  # self-contained
    assert "fixture-run" in report and "3f2a9c1b0d4e5f60" in report


def test_write_report_with_only_the_clean_cell_and_no_scores(tmp_path):
    run_dir = write_run(tmp_path / "run", _clean_only(results_frame()), pd.DataFrame())
    out = tmp_path / "out"
    paths = write_report([run_dir], out_dir=out)
    names = {path.relative_to(out).as_posix() for path in paths}
    assert names == {
        "leaderboard.md", "leaderboard.tex", "leaderboard.html", "report.html",
        "figures/toy/generators_roc_auc.png", "figures/toy/generators_roc_auc.pdf",
    }
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "toy: no perturbed cells for roc_auc: curves skipped" in report
    assert "toy: no attribution detector with scores: no confusion matrices" in report


def test_write_leaderboards_writes_tables_only(tmp_path):
    run_dir = write_run(tmp_path / "run")
    paths = write_leaderboards([run_dir])
    assert [path.name for path in paths] == ["leaderboard.md", "leaderboard.tex", "leaderboard.html"]
    assert not (run_dir / "figures").exists() and not (run_dir / "report.html").exists()
    assert (run_dir / "leaderboard.tex").read_text(encoding="utf-8").endswith(GOLDEN_LATEX)


def test_unfinished_run_is_refused(tmp_path):
    run_dir = write_run(tmp_path / "run")
    (run_dir / "run.json").unlink()
    with pytest.raises(BenchError, match="no run.json"):
        load_runs([run_dir])


def test_cli_report(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="bench")
    add_report_commands(parser.add_subparsers(dest="command", required=True))
    run_dir = write_run(tmp_path / "run")
    out = tmp_path / "out"
    args = parser.parse_args(["report", str(run_dir), "--out", str(out), "--metric", "ece", "--include-random"])
    assert args.func(args) == 0
    assert "report.html" in capsys.readouterr().out
    leaderboard = (out / "leaderboard.md").read_text(encoding="utf-8")
    assert "ece (lower is better)" in leaderboard and "dummy.random" in leaderboard
