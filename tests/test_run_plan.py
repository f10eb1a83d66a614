"""The compiled run plan (bench/run/plan.py), the typed run record (bench/run/record.py), the flags built from
the config schema (bench/cli/run_flags.py) and ``bench plan`` / ``bench run --dry-run`` (bench/run/dry_run.py)."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import pickle
from pathlib import Path

import pytest

from bench.cli.main import build_parser
from bench.cli.run_flags import flag_name
from bench.core.cache import Cache
from bench.core.errors import BenchError
from bench.data.imageset import ImageSet
from bench.run.config import RunConfig, config_fields
from bench.run.dry_run import plan_run, plan_text
from bench.run.plan import CLEAN, Execution, compile_cell, compile_execution, compile_grid
from bench.run.record import RECORD_VERSION, RunRecord
from bench.run.runner import Runner
from perturbations import get_perturbation, param_label, param_value

ROOT = Path(__file__).resolve().parents[1]


# -- the plan ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["default", "imagenet-c", "univfd"])
def test_a_compiled_cell_carries_what_the_perturbation_says(preset):
    for cell in compile_grid("jpeg,blur,noise:1-2,albu:MotionBlur{blur_limit=5}", preset)[1:]:
        p = get_perturbation(cell.perturbation)
        assert cell.table == p.table_preset(preset) and cell.param == p.param(cell.level, preset)
        assert cell.label == param_label(p, cell.level, preset)
        images = cell.images(ImageSet([]), seed=0)  # what the cache keys of the cell's scores read
        assert images.fingerprint == p.fingerprint(preset, cell.level) and images.table == cell.table
        value = param_value(p, cell.level, preset)
        assert cell.param_value == value or (math.isnan(cell.param_value) and math.isnan(value))
        assert cell.key == f"{cell.perturbation}:{cell.level}"


def test_the_grid_starts_clean_and_cells_are_picklable_values():
    grid = compile_grid("jpeg:2,noise:1", "default")
    assert grid[0] == CLEAN and CLEAN.clean and CLEAN.label == "clean" and math.isnan(CLEAN.param_value)
    assert [c.key for c in grid] == ["none:0", "jpeg:2", "noise:1"]
    assert pickle.loads(pickle.dumps(grid)) == grid and len(set(grid)) == 3  # dict keys, Ray arguments
    assert compile_cell("jpeg", 2, "default") == grid[1]


def test_execution_settings_come_from_the_config():
    cfg = RunConfig(device="cpu", workers=3, batch_size=7, seed=5, val_tnr=0.9, max_pixels=100, min_side=2)
    settings = compile_execution(cfg)
    assert settings == Execution("cpu", 3, 7, 5, 0.9, settings.limits)
    assert (settings.limits.max_pixels, settings.limits.min_side) == (100, 2)


WORK_MODULES = ["bench/run/work.py", "bench/run/stream.py", "bench/run/clip_stream.py", "bench/run/attacks.py",
                "bench/run/executors/local.py", "bench/run/executors/ray_cluster.py", "bench/run/rows.py"]


@pytest.mark.parametrize("path", WORK_MODULES)
def test_executors_and_work_units_never_take_the_run_config(path):
    """They take the compiled plan (Cell, Execution); the config stays with the runner and the planner."""
    tree = ast.parse((ROOT / path).read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "bench.run.config"]
    assert not imports, f"{path} imports bench.run.config"
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names = [a.arg for a in node.args.args + node.args.kwonlyargs]
            assert "cfg" not in names, f"{path}: {node.name} takes cfg"


# -- the record -------------------------------------------------------------------------------------


def test_every_stored_reference_reads_as_a_record():
    for path in sorted((ROOT / "results" / "reference").glob("*/run.json")):
        record = RunRecord.from_dict(json.loads(path.read_text()), str(path))
        assert record.record_version == 1 and record.detectors  # written before the version field


def test_a_record_round_trips_and_refuses_what_it_cannot_read():
    record = RunRecord.from_dict(json.loads((ROOT / "results/reference/ci/run.json").read_text()))
    record.record_version = RECORD_VERSION
    data = record.to_dict()
    assert RunRecord.from_dict(json.loads(json.dumps(data))) == record
    assert list(data)[0] == "record_version" and "seed_runs" not in data
    with pytest.raises(BenchError, match="field seed holds str"):
        RunRecord.from_dict({**data, "seed": "0"})
    with pytest.raises(BenchError, match=r"detectors.npr.status holds int"):
        RunRecord.from_dict({**data, "detectors": {"npr": {"status": 3}}})
    with pytest.raises(BenchError, match="newer than this bench reads"):
        RunRecord.from_dict({**data, "record_version": RECORD_VERSION + 1})
    with pytest.raises(BenchError, match="not a bench run record"):
        RunRecord.from_dict([1, 2])


# -- the flags --------------------------------------------------------------------------------------


def _run_args(*flags: str):
    return build_parser().parse_args(["run", *flags])


@pytest.mark.parametrize("field", [f for f in config_fields()], ids=lambda f: f.name)
def test_every_config_field_is_a_flag_that_sets_it(field, tmp_path, monkeypatch):
    """One schema: every field of RunConfig has its flag, and the flag reaches the field."""
    from bench.cli.main import run_config_from_args
    from bench.core.plugins import PLUGINS_ENV

    monkeypatch.setenv(PLUGINS_ENV, "")  # a --plugin given here is forgotten after the test

    if field.type.startswith("bool"):
        flag = flag_name(field.name) if field.default is False else "--no-" + field.name.replace("_", "-")
        cfg = run_config_from_args(_run_args(flag))
        assert getattr(cfg, field.name) is (not field.default)
        return
    examples = {"detectors": "spectral,npr", "dataset": "elsewhere", "train_on": "other", "generators": "a,b",
                "train_generators": "a", "test_generators": "b", "perturb": "jpeg:2", "preset": "univfd",
                "profile": "fast", "seeds": "0,1", "device": "cuda:1", "normalize": "png",
                "detector_params": "npr.epochs=3", "weights": f"resnet50={tmp_path}",
                "external": "mine=cmd:python score.py {list} {out}", "plugins": "json"}
    text = examples.get(field.name) or ("3" if field.type.startswith("int") else "0.9")
    cfg = run_config_from_args(_run_args(flag_name(field.name), text))
    expected = {"detectors": ["spectral", "npr"], "generators": ["a", "b"], "train_generators": ["a"],
                "test_generators": ["b"], "seeds": [0, 1], "detector_params": {"npr": {"epochs": 3}},
                "external": {"mine": "cmd:python score.py {list} {out}"}, "plugins": ["json"],
                "int": 3, "float": 0.9}
    value = getattr(cfg, field.name)
    if field.name == "weights":
        assert value == {"resnet50": str(tmp_path)}
    else:
        kind = "int" if field.type.startswith("int") else "float" if field.type.startswith("float") else None
        assert value == expected.get(field.name, expected.get(kind, text)), field.name


def test_flags_lay_over_the_suite_and_detector_params_merge(tmp_path):
    from bench.cli.main import run_config_from_args

    cfg = run_config_from_args(_run_args("--suite", "ci", "--bootstrap", "7"))
    assert cfg.bootstrap == 7 and cfg.detectors == ["spectral", "npr"] and cfg.profile == "fast"
    config = tmp_path / "c.yaml"
    config.write_text("detector_params: {cnndet.p01: {epochs: 2, lr: 0.001}}\n")
    cfg = run_config_from_args(_run_args("--config", str(config), "--detector-param", "cnndet.p01.epochs=4"))
    assert cfg.detector_params == {"cnndet.p01": {"epochs": 4, "lr": 0.001}}
    with pytest.raises(BenchError, match="expected DETECTOR.KEY=VALUE"):
        run_config_from_args(_run_args("--detector-param", "epochs=4"))


# -- bench plan -------------------------------------------------------------------------------------


def test_the_plan_shows_what_is_cached_and_estimates_from_earlier_runs(tiny_dataset, tmp_path):
    cache = Cache(tmp_path / "cache")
    cfg = RunConfig(detectors=["spectral", "test_cnn"], dataset=str(tiny_dataset), perturb="jpeg:1,noise:5",
                    bootstrap=0, device="cpu", workers=0)
    quiet = dict(progress=False, log=lambda *_: None)
    before = plan_run(Runner(cfg, tmp_path / "never", cache, **quiet))
    assert not (tmp_path / "never").exists()  # planning writes no output
    assert [(d.name, d.fit_cached, d.cells_missing, d.estimate_s) for d in before.detectors] == \
        [("spectral", False, 3, None), ("test_cnn", False, 3, None)]
    assert "never timed here (spectral, test_cnn)" in plan_text(before)
    Runner(cfg, tmp_path / "out", cache, **quiet).run()
    after = plan_run(Runner(cfg, tmp_path / "never", cache, **quiet))
    assert [(d.fit_cached, d.cells_cached, d.cells_missing, d.estimate_s) for d in after.detectors] == \
        [(True, 3, 0, 0.0)] * 2
    wider = plan_run(Runner(dataclasses.replace(cfg, perturb="jpeg:1-3,noise:5"), tmp_path / "never", cache, **quiet))
    for d in wider.detectors:  # two more JPEG cells, estimated from the scoring time the run recorded
        assert (d.cells_cached, d.cells_missing) == (3, 2) and d.fit_s == 0.0 and d.score_s > 0
    assert "never timed" not in plan_text(wider)


def test_a_white_box_attack_on_a_non_differentiable_detector_is_planned_as_skipped(tiny_dataset, tmp_path):
    cfg = RunConfig(detectors=["spectral"], dataset=str(tiny_dataset), perturb="pgd:2", bootstrap=0, device="cpu")
    plan = plan_run(Runner(cfg, tmp_path / "o", Cache(tmp_path / "c"), progress=False, log=lambda *_: None))
    assert (plan.detectors[0].cells_missing, plan.detectors[0].cells_skipped) == (1, 1)


def test_bench_run_dry_run_prints_the_plan_and_writes_nothing(tiny_dataset, tmp_path, capsys):
    from bench.cli.main import main

    rc = main(["run", "--dry-run", "--detectors", "spectral", "--dataset", str(tiny_dataset), "--perturb", "jpeg:1",
               "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "plan: dataset" in out and "spectral" in out and "0 cached, 2 to score" in out
    assert not (tmp_path / "out").exists()


# -- one source per fact ------------------------------------------------------------------------------


def test_the_readme_detector_table_is_the_registry_listing():
    """README's detector table is `bench list detectors --markdown` output: a detector added, renamed or
    re-described in its registration changes it, and this test says to regenerate it."""
    from bench.cli.main import detector_table
    from bench.core.registries import load_plugins

    load_plugins()
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- generated by `bench list detectors --markdown`")
    block = readme[readme.index("\n", start) + 1:readme.index("\n<!-- end of generated table -->", start)]
    assert block == detector_table(markdown=True), "stale: paste `bench list detectors --markdown` into README.md"


def _project_detectors() -> list[str]:
    """The detectors `all` selects (listing imports no model code)."""
    from bench.core.registries import DETECTORS, load_plugins

    load_plugins()
    return [n for n in DETECTORS.names() if not DETECTORS.entry(n).meta.get("test")]


@pytest.mark.parametrize("name", _project_detectors())
def test_a_detectors_registration_and_its_class_agree(name):
    """The registry's listing (read without importing the model) and the class's DetectorInfo say the same; a
    variant (registry kwargs) may need other weights and less compute than its class's default (AEROBLADE
    with a tiny autoencoder)."""
    from bench.core.registries import DETECTORS, load_plugins

    load_plugins()
    entry = DETECTORS.entry(name)
    info = entry.load().info
    variant = bool(entry.meta.get("kwargs"))
    for key in ("family", "trains", "tasks") + (() if variant else ("gpu", "weights")):
        assert entry.meta.get(key) == getattr(info, key), (name, key)
