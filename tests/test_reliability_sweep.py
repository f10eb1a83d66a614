"""Issue #26, the reliability sweep: crashes after the work is done, hangs, and strings that reach other formats.

Each case ends in correct handling, a recorded skip with a reason, or a one-line error with exit 2.
"""

from __future__ import annotations

import csv
import io
import math
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from bench.cli.main import main
from bench.core.cache import Cache
from bench.core.errors import BenchError, ImageSkip
from bench.data.dataset import load_dataset
from bench.data.images import read_image_file
from bench.data.manifest import read_manifest
from bench.run.config import RunConfig
from bench.run.runner import Runner
from perturbations import Perturbation, get_perturbation, param_label, param_value
from perturbations.codec_limits import JPEG_MAX_SIDE, WEBP_MAX_SIDE
from perturbations.spec import parse_perturb_spec
from bench.report.reference import save_baseline
from bench.report.write import write_leaderboards
from bench.run.record import RunRecord
from bench.run.store import write_store
from fixtures.report_store import results_frame, run_record, write_run
from helpers import textured, write_png

pytestmark = pytest.mark.slow  # whole runs on hostile input: the fast loop is pytest -m "not slow"


# -- a perturbation's label is not its number ------------------------------------------------------------


@pytest.mark.parametrize("name", ["albu:MotionBlur{blur_limit=5}", "albu:MotionBlur{blur_limit=(3,5)}",
                                  "albu:GaussNoise{std_range=(0.1,0.1)}", "albu:CLAHE"])
def test_param_value_of_a_text_setting_is_nan_and_its_label_is_the_setting(name):
    perturbation = get_perturbation(name)
    assert math.isnan(param_value(perturbation, 1))
    assert param_label(perturbation, 1) == perturbation.param(1)


def test_albu_setting_that_albumentations_would_adjust_is_a_one_line_error():
    with pytest.raises(BenchError, match="invalid settings.*adjusted") as error:
        get_perturbation("albu:MotionBlur{blur_limit=-3}")
    assert "\n" not in str(error.value)


def test_albu_transform_that_needs_more_than_an_image_is_a_one_line_error():
    with pytest.raises(BenchError, match="cannot run on an image alone") as error:
        get_perturbation("albu:MaskDropout")
    assert "\n" not in str(error.value)


def test_run_with_text_labelled_perturbations_writes_every_cell(tiny_dataset, tmp_path, cache):
    spec = "albu:GaussNoise{std_range=(0.1,0.1)},share:instagram:1,albu:CLAHE"
    cfg = RunConfig(detectors=["spectral"], dataset=str(tiny_dataset), perturb=spec, bootstrap=0, device="cpu",
                    workers=0, limit=4)
    Runner(cfg, tmp_path / "out", cache, progress=False, log=lambda *_: None).run()
    res = pd.read_parquet(tmp_path / "out" / "results.parquet")
    cells = res.drop_duplicates(["perturbation", "severity"]).set_index("perturbation")
    assert set(cells.index) == {"none", "albu:GaussNoise{std_range=(0.1, 0.1)}", "share:instagram", "albu:CLAHE"}
    assert cells.loc["share:instagram", "param"] == 1.0
    assert math.isnan(cells.loc["albu:CLAHE", "param"]) and cells.loc["albu:CLAHE", "param_label"] == "defaults"


# -- images a codec cannot encode, and cells that fail ------------------------------------------------------


@pytest.mark.parametrize("name,side", [("jpeg", JPEG_MAX_SIDE + 100), ("webp", WEBP_MAX_SIDE + 1),
                                       ("social", 2 * JPEG_MAX_SIDE), ("recapture", JPEG_MAX_SIDE + 100)])
def test_image_over_the_codec_limit_is_fitted_to_it_and_resized_back(name, side):
    image = np.random.default_rng(0).integers(0, 256, (16, side, 3), dtype=np.uint8)
    out = get_perturbation(name).apply(image, 1, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.uint8


@pytest.mark.parametrize("name", ["jpeg", "webp", "social", "recapture"])
def test_image_within_the_codec_limit_is_perturbed_as_before(name):
    perturbation = get_perturbation(name)
    image = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    expected = perturbation.fn(image, perturbation.param(2), np.random.default_rng(3))
    assert np.array_equal(perturbation.apply(image, 2, np.random.default_rng(3)), expected)


def test_detector_that_fails_on_a_cell_keeps_the_rows_of_the_cells_it_finished(tiny_dataset, tmp_path, cache,
                                                                               monkeypatch):
    apply = Perturbation.apply

    def breaks_at_two(self, image, severity, rng, preset="default"):
        if self.name == "jpeg" and severity == 2:
            raise RuntimeError("cannot perturb this image")
        return apply(self, image, severity, rng, preset)

    monkeypatch.setattr(Perturbation, "apply", breaks_at_two)
    cfg = RunConfig(detectors=["spectral"], dataset=str(tiny_dataset), perturb="jpeg:1-2", bootstrap=0,
                    device="cpu", workers=0, limit=4)
    record = Runner(cfg, tmp_path / "out", cache, progress=False, log=lambda *_: None).run()
    assert record.detectors["spectral"].status == "failed"
    assert "scoring jpeg:2" in record.detectors["spectral"].reason
    res = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert set(zip(res["perturbation"], res["severity"])) == {("none", 0), ("jpeg", 1)}


# -- inputs that ended in tracebacks: symlink loops, foreign Parquet, unsafe weights ------------------------


def test_symlink_loop_in_a_manifest_is_a_recorded_skip(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        write_png(tmp_path / f"r{i}.png", textured(rng))
    (tmp_path / "a.png").symlink_to("b.png")
    (tmp_path / "b.png").symlink_to("a.png")
    for rel in ("a.png", str(tmp_path / "a.png")):
        (tmp_path / "m.csv").write_text(f"path,label,generator\nr0.png,real,\nr1.png,fake,sd\n{rel},real,\n")
        rows, skips = read_manifest(tmp_path / "m.csv")
        assert [r.id for r in rows] == ["r0.png", "r1.png"]
        assert [(s.id, s.reason) for s in skips] == [(rel, "a symlink loop")]


def test_file_of_random_bytes_named_parquet_is_a_recorded_skip(tmp_path):
    rng = np.random.default_rng(0)
    pngs = []
    for i in range(12):
        buffer = io.BytesIO()
        Image.fromarray(textured(rng, 32, smooth=bool(i % 2))).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    (tmp_path / "repo" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"image": pngs, "label": [i % 2 for i in range(12)]}),
                   tmp_path / "repo" / "data" / "train-00000-of-00002.parquet")
    (tmp_path / "repo" / "data" / "train-00001-of-00002.parquet").write_bytes(bytes(range(256)) * 20)
    ds = load_dataset("hf:org/toy=" + str(tmp_path / "repo"), Cache(tmp_path / "cache"), progress=False)
    assert len(ds.items) == 12
    [skip] = ds.skips
    assert skip.id == "data/train-00001-of-00002.parquet" and "cannot read the Parquet file" in skip.reason


@pytest.fixture
def weights_store(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "store"))
    return tmp_path / "store"


def _pickle_of_other_objects(path):
    path.write_bytes(pickle.dumps({"weights": range(3)}))
    return path


def _a_tensor(path):
    torch.save(torch.zeros(3), path)
    return path


def _random_bytes(path):
    path.write_bytes(bytes(range(256)) * 8)
    return path


@pytest.mark.parametrize("make,name,message", [
    (_pickle_of_other_objects, "w.pth", "not a weights file that loads safely"),
    (_random_bytes, "w.pth", "not a weights file that loads safely"),
    (_random_bytes, "w.safetensors", "not a weights file that loads safely"),
    (_a_tensor, "w.pt", "holds a Tensor, not a state dict"),
])
def test_weights_import_refuses_a_file_the_loaders_cannot_use(make, name, message, weights_store, tmp_path, capsys):
    assert main(["weights", "import", "npr_released", str(make(tmp_path / name))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert not (weights_store / "npr_released").exists()


def test_weights_import_of_a_state_dict_is_accepted(weights_store, tmp_path):
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "w.pth")
    assert main(["weights", "import", "npr_released", str(tmp_path / "w.pth")]) == 0


def test_weights_import_of_a_file_for_a_folder_component_names_the_files_it_needs(weights_store, tmp_path, capsys):
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "w.pth")
    assert main(["weights", "import", "taesd", str(tmp_path / "w.pth")]) == 2
    assert "taesd is a folder holding taesd_encoder.pth, taesd_decoder.pth" in capsys.readouterr().err


# -- a full disk while figures are written -------------------------------------------------------------------

_FIGURE_ON_A_FILLING_DISK = """
import resource, signal, sys, tempfile
from pathlib import Path
import numpy as np
from bench.report.figures import _new_figure, save_figure
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
fig = _new_figure(3, 2)
fig.add_subplot().plot(np.random.default_rng(0).random(20000))  # a PDF larger than its PNG
for limit in range(16000, 64000, 4000):
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        save_figure(fig, Path(tempfile.mkdtemp()) / "fig")
        print("ok")
    except Exception as exc:
        print(type(exc).__name__)
"""


def test_disk_filling_while_a_figure_is_written_is_an_os_error(tmp_path):
    script = tmp_path / "fill.py"
    script.write_text(_FIGURE_ON_A_FILLING_DISK)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    outcomes = out.stdout.split()
    assert len(outcomes) == 12 and "OSError" in outcomes and "ok" in outcomes, out.stdout + out.stderr
    assert set(outcomes) == {"OSError", "ok"}, outcomes  # the CLI turns an OSError into one line


# -- hangs and exits ---------------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ray_address_where_nothing_listens_exits_2_in_one_line(tmp_path):
    address = f"127.0.0.1:{_closed_port()}"
    argv = ["run", "--detectors", "spectral", "--perturb", "none", "--limit", "6", "--executor", "ray",
            "--ray-address", address, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code = f"import sys; from bench.cli.main import main; sys.exit(main({argv!r}))"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env, start_new_session=True)
    try:
        _, err = child.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # Ray's own processes too, which would keep the pipes open
        child.communicate()
        pytest.fail(f"bench run --ray-address {address} still running after 90 s")
    err = err.strip()
    assert child.returncode == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: cannot join the Ray cluster {address}: nothing answers there within")


@pytest.mark.parametrize("spec,expected", [("share:2", [("share", [2])]), ("share:1-2", [("share", [1, 2])]),
                                           ("share:instagram:2", [("share:instagram", [2])])])
def test_share_levels_follow_the_name_levels_grammar(spec, expected):
    assert parse_perturb_spec(spec) == expected


@pytest.mark.parametrize("option", ["--metrics", "--band-metrics"])
@pytest.mark.parametrize("value", ["", ","])
def test_compare_with_an_empty_metric_list_names_the_flag(option, value, tmp_path, capsys):
    run, ref = write_run(tmp_path / "run"), write_run(tmp_path / "ref")
    assert main(["compare", str(run), "--baseline", str(ref), option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {option} names no metric; leave it out for the default"


# -- strings that reach LaTeX, Markdown and HTML ---------------------------------------------------------------

_HOSTILE = "toy\n\\immediate\\write18{calc}% `x`|y <b>z</b>"


def _hostile_store(run_dir):
    results = results_frame()
    results["dataset"] = _HOSTILE
    results["detector"] = results["detector"].str.replace("univfd.vit_l14", "uni|fd`\n{x}")
    record = run_record()
    record["datasets"] = {_HOSTILE: record["datasets"]["toy"]}
    generators = ["a\n\\input{/etc/passwd}<img src=x onerror=alert(1)>"]
    record["config"] = {**record.get("config", {}), "generators": generators}
    return write_run(run_dir, results=results, scores=pd.DataFrame(), record=record)


def test_names_in_leaderboard_tex_stay_inside_comments_and_cells(tmp_path):
    write_leaderboards([_hostile_store(tmp_path / "run")])
    tex = next((tmp_path / "run").glob("leaderboard*.tex")).read_text()
    for line in tex.splitlines():
        if line.startswith("%"):
            continue
        assert "\\immediate" not in line and "\\write18" not in line and "\\input{" not in line, line
    assert r"uni|fd` \{x\}" in tex  # a cell: specials escaped, the newline a space


def test_names_in_leaderboard_md_cannot_break_its_lines_table_or_code(tmp_path):
    write_leaderboards([_hostile_store(tmp_path / "run")])
    md = next((tmp_path / "run").glob("leaderboard*.md")).read_text()
    provenance = next(line for line in md.splitlines() if "is better) on dataset" in line)
    assert "``toy \\immediate\\write18{calc}% `x`|y <b>z</b>``;" in provenance  # one code span, one line
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len({line.count("|") - line.count("\\|") for line in rows}) == 1  # every row has the same cells
    assert "uni\\|fd\\` {x}" in md and "<b>" not in md.replace(provenance, "")


def test_names_in_leaderboard_html_are_escaped(tmp_path):
    write_leaderboards([_hostile_store(tmp_path / "run")])
    page = next((tmp_path / "run").glob("leaderboard*.html")).read_text()
    assert "<b>z</b>" not in page and "&lt;b&gt;z&lt;/b&gt;" in page  # the dataset: code
    assert "<img" not in page and "&lt;img src=x" in page  # the protocol: text


# -- formulas in CSV files ------------------------------------------------------------------------------------------

_FORMULA = "=cmd|' /C calc'!A0"


def _csv_cells(path) -> set[str]:
    with open(path, newline="") as handle:
        return {cell for row in csv.reader(handle) for cell in row}


def test_results_csv_neutralises_formula_prefixes(tmp_path):
    results = results_frame()
    results["generator"] = results["generator"].replace("sdxl", _FORMULA)
    rows = results.drop(columns="run_id").assign(seed=0).to_dict("records")
    write_store(tmp_path, RunRecord("r"), rows, [])
    cells = _csv_cells(tmp_path / "results.csv")
    assert "'" + _FORMULA in cells and _FORMULA not in cells
    assert "0.95" in cells or any(c.startswith("0.9") for c in cells)  # numbers as numbers
    assert set(pd.read_parquet(tmp_path / "results.parquet")["generator"]) >= {_FORMULA}  # Parquet keeps names


def _formula_store(run_dir, seed: int = 0):
    results = results_frame(f"seed-{seed}")
    results["detector"] = results["detector"].replace("dummy.random", "-2+3")
    results["generator"] = results["generator"].replace("sdxl", _FORMULA)
    results["value"] = (results["value"] - 0.01 * seed).clip(lower=0.0)  # a seed's spread, metrics stay in [0, 1]
    return write_run(run_dir, results=results, scores=pd.DataFrame(),
                     record={**run_record(f"seed-{seed}"), "config": {"suite": "fixture", "train_seed": seed}})


def test_reference_and_band_csv_neutralise_formula_prefixes(tmp_path):
    runs = [_formula_store(tmp_path / f"run{seed}", seed) for seed in range(3)]
    target = save_baseline(runs[0], "ref", tmp_path / "refs", band_runs=runs[1:])
    for name in ("results.csv", "band.csv"):
        cells = _csv_cells(target / name)
        assert _FORMULA not in cells and "-2+3" not in cells, name
    assert "'" + _FORMULA in _csv_cells(target / "results.csv")


# -- file:// URLs get the checks of local paths ---------------------------------------------------------------------


def _url_skip_reason(url: str) -> str:
    result: list = []

    def read():
        try:
            read_image_file(url, max_bytes=1 << 20)
            result.append("read")
        except ImageSkip as exc:
            result.append(str(exc))

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), f"reading {url} blocked"
    return result[0]


def test_fifo_named_by_a_file_url_is_never_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    assert "not a regular file" in _url_skip_reason(f"file://{tmp_path / 'pipe.png'}")


def test_device_named_by_a_file_url_is_never_read():
    assert "not a regular file" in _url_skip_reason("file:///dev/zero")


def test_file_url_in_a_manifest_is_read_like_a_local_path(tmp_path, cache):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(10):
        write_png(tmp_path / f"r{i}.png", textured(rng))
        write_png(tmp_path / f"f{i}.png", textured(rng, smooth=True))
        lines += [f"file://{tmp_path / f'r{i}.png'},real,", f"file://{tmp_path / f'f{i}.png'},fake,sd"]
    lines.append("file:///dev/zero,real,")  # (a FIFO here would hang the old code's probe threads for good)
    (tmp_path / "m.csv").write_text("path,label,generator\n" + "\n".join(lines) + "\n")
    ds = load_dataset(str(tmp_path / "m.csv"), cache, progress=False, allow_outside_paths=True)
    assert len(ds.items) == 20
    assert [s.reason for s in ds.skips] == ["not a regular file (FIFO, socket or device): not read"]
