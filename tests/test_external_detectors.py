"""External detectors without a server: ``cmd:`` (a program) and ``scores:`` (bench export-grid, then
bench import-scores), their declaration (``--external``, the config's ``external``), their errors, and their
caching through the normal runner. The program is tests/external_scorer.py, the formula helpers.ResidualDetector
computes in process; the HTTP route is in test_http_detector.py, the four routes side by side in
test_external_routes.py."""

from __future__ import annotations

import csv
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bench.cli.main import main
from bench.core.detector import FitContext
from bench.core.errors import BenchError
from bench.core.registries import DETECTORS, create_detector
from bench.data.imageset import PerturbedImageSet
from bench.external.cmd import CommandDetector
from bench.external.scores import ScoresDetector
from bench.external.spec import parse_spec, register_external
from helpers import ResidualDetector
from perturbations import get_perturbation

SCORER = Path(__file__).resolve().parent / "external_scorer.py"
RUN = ["--dataset", "demo", "--limit", "3", "--perturb", "jpeg:2,blur:1", "--no-report", "--quiet", "--no-audit"]


def command(*flags: str, out: bool = True) -> str:
    """The scorer as a command line: ``python external_scorer.py {list} {out} FLAGS``."""
    return " ".join([shlex.quote(sys.executable), shlex.quote(str(SCORER)), "{list}", *(["{out}"] if out else []),
                     *map(shlex.quote, flags)])


# The detectors this module declares leave the registry with it (conftest.py).
pytestmark = [pytest.mark.usefixtures("declared_detectors_stay_here"), pytest.mark.slow]  # slow: whole runs


@pytest.fixture(scope="module")
def cell(tiny_splits):
    """Six test images under JPEG severity 2: what a detector gets for one grid cell."""
    return PerturbedImageSet(tiny_splits["test"].subset(range(6)), get_perturbation("jpeg"), 2, seed=0)


@pytest.fixture(scope="module")
def run_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("external-cache")


def reference(images) -> np.ndarray:
    return ResidualDetector().predict(images, FitContext()).score


# -- declaring ----------------------------------------------------------------------------------------------

def test_a_spec_is_a_flag_string_or_a_mapping_with_typed_options():
    assert parse_spec("a", "cmd:python s.py {list}") == ("cmd", {"target": "python s.py {list}"})
    kind, options = parse_spec("b", "http[concurrency=8,rate=2.5,retries=0,classes=real|sd]:http://h/score")
    assert kind == "http" and options == {"target": "http://h/score", "concurrency": 8, "rate": 2.5, "retries": 0,
                                          "classes": ["real", "sd"]}
    assert parse_spec("c", {"http": "http://h/s", "concurrency": 8, "probability": True}) == \
        ("http", {"target": "http://h/s", "concurrency": 8, "probability": True})
    with pytest.raises(BenchError, match="unknown http option 'concurency'; did you mean 'concurrency'"):
        parse_spec("b", "http[concurency=8]:http://h/score")
    with pytest.raises(BenchError, match="concurrency: expected an integer, got 'many'"):
        parse_spec("b", "http[concurrency=many]:http://h/score")
    with pytest.raises(BenchError, match="KIND one of cmd, http, scores"):
        parse_spec("d", "grpc:host:1")
    with pytest.raises(BenchError, match="exactly one of cmd, http, scores"):
        parse_spec("e", {"cmd": "x", "http": "y"})


def test_declaring_checks_the_program_and_refuses_a_built_in_name(tmp_path):
    with pytest.raises(BenchError, match="external detector 'ext_missing': program 'no-such-scorer' not found"):
        register_external({"ext_missing": "cmd:no-such-scorer {list}"})
    with pytest.raises(BenchError, match="a detector of the code has that name"):
        register_external({"spectral": f"cmd:{command()}"})
    with pytest.raises(BenchError, match="credentials"):
        register_external({"ext_creds": "http:http://user:secret@127.0.0.1:1/score"})
    register_external({"ext_declared": f"cmd[timeout=5]:{command()}"})
    entry = DETECTORS.entry("ext_declared")
    assert entry.meta["family"] == "external" and entry.meta["source"] == "cmd" and not entry.meta["trains"]
    register_external({"ext_declared": f"cmd[timeout=9]:{command()}"})  # declared again: replaced
    assert create_detector("ext_declared").timeout == 9


@pytest.mark.parametrize("flag, message", [
    ("ext_x=cmd:no-such-scorer {list}", "external detector 'ext_x': program 'no-such-scorer' not found"),
    ("ext_x", "--external 'ext_x': expected NAME=SPEC"),
    ("ext_x=http[rate=-1]:http://127.0.0.1:1/s", "external detector 'ext_x': rate must be a number >= 0, got -1.0"),
    ("ext_x=scores:/no/such.csv", "external detector 'ext_x': scores file /no/such.csv not found"),
])
def test_a_bad_declaration_is_one_line_exit_2_before_any_work(flag, message, tmp_path, capsys):
    assert main(["run", "--external", flag, "--detectors", "ext_x", "--out", str(tmp_path / "o"),
                 "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}\n" or (err.startswith(f"error: {message}") and err.count("\n") == 1)
    assert not (tmp_path / "c").exists()


def test_the_fit_key_holds_the_command_and_the_program_file_not_the_timeout(tmp_path):
    script = tmp_path / "scorer.py"
    script.write_text(SCORER.read_text())
    detector = CommandDetector(f"{sys.executable} {script} {{list}} {{out}}")
    assert detector.config()["external"]["files"][str(script)]
    assert CommandDetector(f"{sys.executable} {script} {{list}} {{out}}", timeout=5).config() == detector.config()
    script.write_text(SCORER.read_text() + "\n# edited\n")
    assert CommandDetector(f"{sys.executable} {script} {{list}} {{out}}").config() != detector.config()
    assert CommandDetector(f"{sys.executable} {script} {{list}} {{out}} --hex").config() != detector.config()
    model = tmp_path / "model.bin"
    model.write_bytes(b"1")
    with_model = CommandDetector(f"{sys.executable} {script} {{list}} {{out}}", files=[str(model)]).config()
    model.write_bytes(b"2")
    assert CommandDetector(f"{sys.executable} {script} {{list}} {{out}}", files=[str(model)]).config() != with_model


# -- cmd: ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, out", [((), True), (("--hex",), True), ((), False)])
def test_a_program_scores_exactly_what_the_detector_computes_in_process(cell, flags, out):
    """Through lossless PNG and a CSV written with repr (or float.hex, or on stdout), not one bit moves."""
    scores = CommandDetector(command(*flags, out=out)).predict(cell, FitContext()).score
    assert scores.dtype == np.float64 and np.array_equal(scores, reference(cell))


@pytest.mark.parametrize("flags, timeout, message", [
    (("--fail", "3"), 60, r"exited with status 3; stderr: loading model \| CUDA error: out of memory$"),
    (("--sleep", "30"), 1, r"did not finish within 1 s \(timeout\); it wrote nothing on stderr"),
    (("--drop",), 60, r"its \{out\} CSV: 1 of 6 images have no row \(000005.png\)"),
    (("--extra",), 60, r"1 rows name no image it was given \(/elsewhere/other.png\)"),
    (("--word",), 60, r"its \{out\} CSV, line 2: score 'not-a-number' is not a number"),
    (("--no-out",), 60, r"exited 0 but wrote no \{out\} file"),
])
def test_a_failing_program_is_a_one_line_error(cell, flags, timeout, message):
    with pytest.raises(BenchError, match=message) as failure:
        CommandDetector(command(*flags), timeout=timeout).predict(cell, FitContext())
    assert "\n" not in str(failure.value)


def test_sources_come_back_for_every_image_or_the_gap_is_named(cell):
    with pytest.raises(BenchError, match=r"a source is given for some images but not for 1 \(positions 0\)"):
        CommandDetector(command("--source", "sd")).predict(cell, FitContext())
    script = f"sh -c {shlex.quote(command('--source', 'sd', out=False) + ' | sed s/,$/,real/')}"
    detector = CommandDetector(script, classes=["real", "sd"], probability=True)
    prediction = detector.predict(cell, FitContext())
    assert list(prediction.source) == ["real"] + ["sd"] * 5 and np.array_equal(prediction.score, reference(cell))
    assert detector.classes == ["real", "sd"] and detector.info.tasks == ("binary", "attribution")
    assert detector.info.outputs_probability


def test_cmd_cells_are_cached_and_resumed_like_any_detector(tmp_path, run_cache):
    """A second identical run asks the program nothing; run.json records the command and the program's hash."""
    counter = tmp_path / "count.txt"
    spec = f"cmd:{command('--count', str(counter))}"
    args = ["run", "--detectors", "ext_counted", "--external", f"ext_counted={spec}", *RUN,
            "--cache-dir", str(run_cache)]
    assert main([*args, "--out", str(tmp_path / "first")]) == 0
    calls = len(counter.read_text().splitlines())
    assert calls == 4  # the validation images, then the clean, jpeg:2 and blur:1 cells
    assert main([*args, "--out", str(tmp_path / "second")]) == 0
    assert len(counter.read_text().splitlines()) == calls
    first, second = (pd.read_parquet(tmp_path / name / "scores.parquet") for name in ("first", "second"))
    pd.testing.assert_frame_equal(first.drop(columns="run_id"), second.drop(columns="run_id"))
    record = json.loads((tmp_path / "second" / "run.json").read_text())
    config = record["detectors"]["ext_counted"]["config"]
    assert config["params"]["target"] == spec[4:] and config["external"]["files"][str(SCORER)]
    assert record["config"]["external"] == {"ext_counted": spec}


def test_a_run_cut_short_resumes_with_only_the_cells_it_lacks(tmp_path, run_cache):
    """The program dies on its 4th run (the blur cell); rerun, it is asked for that cell alone."""
    counter, crash = tmp_path / "count.txt", tmp_path / "crash.txt"
    crash.write_text("4")
    spec = f"cmd:{command('--count', str(counter), '--crash', str(crash))}"
    args = ["run", "--detectors", "ext_resumed", "--external", f"ext_resumed={spec}", *RUN,
            "--cache-dir", str(run_cache), "--out", str(tmp_path / "run")]
    assert main(args) == 1
    crash.unlink()
    assert main(args) == 0
    assert len(counter.read_text().splitlines()) == 5
    scores = pd.read_parquet(tmp_path / "run" / "scores.parquet")
    assert scores.groupby(["perturbation", "severity"]).size().to_dict() == {("blur", 1): 12, ("jpeg", 2): 12,
                                                                              ("none", 0): 12}


def test_a_failing_program_fails_its_detector_with_the_reason(tmp_path, run_cache, capsys):
    """Declared in a YAML run config (the mapping form); the other detectors of the run are unaffected."""
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({
        "detectors": ["ext_failing", "spectral"], "external": {"ext_failing": {"cmd": command("--fail", "2"),
                                                                              "timeout": 60}}}))
    assert main(["run", "--config", str(tmp_path / "run.yaml"), *RUN, "--cache-dir", str(run_cache),
                 "--out", str(tmp_path / "run")]) == 1
    assert json.loads((tmp_path / "run" / "run.json").read_text())["detectors"]["spectral"]["status"] == "ok"
    reason = json.loads((tmp_path / "run" / "run.json").read_text())["detectors"]["ext_failing"]["reason"]
    assert "exited with status 2; stderr: loading model | CUDA error: out of memory" in reason
    assert "failed: ext_failing:" in capsys.readouterr().err


# -- export-grid, import-scores -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory, run_cache) -> Path:
    folder = tmp_path_factory.mktemp("grid")
    assert main(["export-grid", *RUN, "--cache-dir", str(run_cache), "--out", str(folder)]) == 0
    return folder


def score_export(folder: Path, keep=lambda row: True) -> Path:
    """Score the exported PNGs with the formula, as someone elsewhere would: ``scores.csv`` next to the manifest."""
    from PIL import Image

    from external_scorer import residual_score

    rows = [row for row in csv.DictReader(open(folder / "manifest.csv")) if keep(row)]
    scores = [repr(residual_score(np.asarray(Image.open(folder / row["file"]).convert("RGB")))) for row in rows]
    path = folder / "scores.csv"
    pd.DataFrame({"file": [row["file"] for row in rows], "score": scores}).to_csv(path, index=False)
    return path


def test_export_writes_every_image_a_run_scores_with_a_manifest_and_no_labels(exported):
    manifest = pd.read_csv(exported / "manifest.csv")
    assert set(manifest.columns) == {"file", "split", "sha256", "perturbation", "severity", "param_label",
                                     "cell_key", "png_sha256"}  # no label, generator or dataset id
    cells = manifest.groupby(["split", "perturbation", "severity"]).size().to_dict()
    assert cells == {("val", "none", 0): 12, ("test", "none", 0): 12, ("test", "jpeg", 2): 12, ("test", "blur", 1): 12}
    assert all((exported / f).is_file() for f in manifest["file"])
    assert json.loads((exported / "grid.json").read_text())["config"]["perturb"] == "jpeg:2,blur:1"


def test_imported_scores_become_the_detectors_cells_image_for_image(exported, tmp_path, run_cache):
    scores = score_export(exported)
    assert main(["import-scores", str(scores), "--as", "ext_imported", *RUN, "--cache-dir", str(run_cache),
                 "--out", str(tmp_path / "run")]) == 0
    got = pd.read_parquet(tmp_path / "run" / "scores.parquet")
    given = pd.read_csv(exported / "manifest.csv").merge(pd.read_csv(scores, dtype={"score": str}), on="file")
    given = given[given["split"] == "test"].assign(score=lambda f: f["score"].map(float))
    joined = got.merge(given, on=["sha256", "perturbation", "severity"], suffixes=("", "_given"))
    assert len(got) == len(joined) == 36 and (joined["score"] == joined["score_given"]).all()


def test_scores_for_part_of_the_grid_name_the_cells_that_lack_them(exported, tmp_path, run_cache):
    scores = score_export(exported, keep=lambda row: row["perturbation"] != "blur")
    with pytest.raises(BenchError, match=r"no score for 12 images this run evaluates \(blur:1: 12\)"):
        main_raising(["import-scores", str(scores), "--as", "ext_partial", *RUN, "--cache-dir", str(run_cache),
                      "--out", str(tmp_path / "run")])
    # through bench run, the detector fails on that cell with the same diagnosis
    assert main(["run", "--detectors", "ext_partial", "--external", f"ext_partial=scores:{scores}", *RUN,
                 "--cache-dir", str(run_cache), "--out", str(tmp_path / "run2")]) == 1
    reason = json.loads((tmp_path / "run2" / "run.json").read_text())["detectors"]["ext_partial"]["reason"]
    assert "has no score for 12 of 12 images of cell blur:1" in reason


def test_scores_for_other_images_say_which_setting_differs(exported, tmp_path, run_cache):
    scores = score_export(exported)
    other = [*RUN[:RUN.index("--perturb")], "--perturb", "jpeg:3,blur:1", *RUN[RUN.index("--perturb") + 2:]]
    with pytest.raises(BenchError, match=r"no score for 12 images this run evaluates \(jpeg:3: 12\); scores for 12 "
                                         r"images this run does not evaluate \(jpeg:2: 12\); the export's grid.json "
                                         r"differs in perturb \(export 'jpeg:2,blur:1', this run 'jpeg:3,blur:1'\)"):
        main_raising(["import-scores", str(scores), "--as", "ext_other", *other, "--cache-dir", str(run_cache)])
    stranger = exported / "stranger.csv"
    stranger.write_text("file,score\nimages/none-0/unknown.png,0.5\n")
    with pytest.raises(BenchError, match=r"1 rows name files that are not in .*manifest.csv .*scores for other images"):
        ScoresDetector(str(stranger)).table()


def main_raising(argv: list[str]) -> None:
    """``bench ARGV`` with its BenchError raised instead of printed (to match its message)."""
    from bench.cli.main import build_parser

    args = build_parser().parse_args(argv)
    args.func(args)
