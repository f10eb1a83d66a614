"""Detectors from outside the repository (README, "Your own detector"): an installed package's entry point and
a ``--plugin`` file are listed with their source, run under ``bench run``, carry their source into the fit key
and run.json, and load again in a fresh process; a broken plugin is one line and a duplicate name an error
naming both sources.

Everything that registers a plugin runs in a subprocess, so the registries of this test session (and its
``--detectors all``) never see them; the package is pip-installed into a temporary folder, never the venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.core.errors import BenchError
from bench.core.hashing import sha256_file
from bench.core.registry import DuplicateNameError, Registry
from bench.run.config import RunConfig

pytestmark = pytest.mark.slow  # installs packages and runs bench: the fast loop is pytest -m "not slow"

ROOT = Path(__file__).resolve().parents[1]

FILE_PLUGIN = '''
import numpy as np

from bench.core.detector import Detector, DetectorInfo, Prediction
from bench.core.registries import DETECTORS


@DETECTORS.register("file_brightness")
class FileBrightness(Detector):
    """mean brightness, from a plugin file"""
    info = DetectorInfo(family="toy", paper="none", trains=False, gpu="no")

    def predict(self, images, ctx):
        return Prediction([float(np.mean(image)) / 255 for image in images])
'''

PACKAGE_INIT = '''
def register(detectors):
    detectors.add("ep_brightness", "ep_brightness_pkg.model:EpBrightness", family="toy", trains=False, gpu="no",
                  tasks=("binary",), summary="mean brightness, from an installed package")


def register_datasets(datasets):
    datasets.add("ep_tiny_set", "ep_brightness_pkg.data:folder", description="a dataset from an installed package")
'''

PACKAGE_MODEL = '''
import numpy as np

from bench.core.detector import Detector, DetectorInfo, Prediction


class EpBrightness(Detector):
    info = DetectorInfo(family="toy", paper="none", trains=False, gpu="no")

    def predict(self, images, ctx):
        return Prediction([float(np.mean(image)) / 255 for image in images])
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "aigi-bench-ep-demo"
version = "1.2.0"

[project.entry-points."aigi_bench.detectors"]
ep_brightness = "ep_brightness_pkg:register"

[project.entry-points."aigi_bench.datasets"]
ep_tiny_set = "ep_brightness_pkg:register_datasets"

[tool.setuptools]
packages = ["ep_brightness_pkg"]
'''


def hermetic_env(tmp_path: Path, *paths: Path) -> dict:
    """The CLI's environment: this checkout (plus ``paths``) importable, no plugins inherited, and no weights
    found anywhere (so ``--detectors all`` skips every detector that needs them, on any machine)."""
    env = {k: v for k, v in os.environ.items() if k != "AIGI_BENCH_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(ROOT)])
    for var in ("BENCH_WEIGHTS_DIR", "HF_HOME", "TORCH_HOME", "XDG_CACHE_HOME"):
        env[var] = str(tmp_path / "no-weights" / var)
    env["BENCH_OFFLINE"] = "1"
    return env


def bench(env: dict, *args: str, timeout: int = 420) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli.main", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def smoke_run(env: dict, tmp_path: Path, name: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / name
    proc = bench(env, "run", "--dataset", "demo", "--limit", "2", "--perturb", "jpeg:1", "--profile", "fast",
                 "--no-report", "--quiet", "--no-audit", "--bootstrap", "0", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache"), *args)
    record = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    return proc, record


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# -- the registry's sources ------------------------------------------------------------------------


def test_entries_record_their_source_and_a_duplicate_names_both():
    reg = Registry("detector")
    reg.add("a", "math:sqrt")
    with reg.loading_from("plugin: /x/p.py sha256:0123"):
        reg.add("b", "math:floor")
        with pytest.raises(DuplicateNameError, match=r"'a' is registered twice: by aigi-bench and by plugin: "
                                                     r"/x/p.py sha256:0123"):
            reg.add("a", "math:ceil")
    assert (reg.entry("a").source, reg.entry("b").source) == ("aigi-bench", "plugin: /x/p.py sha256:0123")
    assert reg.entry("a").builtin and not reg.entry("b").builtin


def test_run_config_plugins_are_a_list_of_names():
    assert RunConfig.from_dict({"plugins": "a.py, pkg.mod"}).plugins == ["a.py", "pkg.mod"]
    with pytest.raises(BenchError, match="config field plugins"):
        RunConfig.from_dict({"plugins": [1]})


# -- --plugin files ----------------------------------------------------------------------------------


def test_plugin_files_and_modules_are_listed_with_their_hash_and_a_broken_one_is_one_line(tmp_path):
    plugin = write(tmp_path / "mine" / "brightness_plugin.py", FILE_PLUGIN)
    broken = write(tmp_path / "mine" / "broken_plugin.py", "import not_a_module_anywhere\n")
    module = write(tmp_path / "modules" / "module_plugin.py", FILE_PLUGIN.replace("file_brightness", "mod_brightness"))
    env = hermetic_env(tmp_path, tmp_path / "modules")
    proc = bench(env, "list", "detectors", "--plugin", str(plugin), "--plugin", str(broken), "--plugin", "module_plugin")
    assert proc.returncode == 0, proc.stderr
    line = next(l for l in proc.stdout.splitlines() if l.startswith("mod_brightness"))
    assert line.rstrip().endswith(f"plugin: module module_plugin sha256:{sha256_file(str(module))[:16]}")
    line = next(l for l in proc.stdout.splitlines() if l.startswith("file_brightness"))
    assert "toy" in line and f"plugin: {plugin} sha256:{sha256_file(str(plugin))[:16]}" in line
    assert "mean brightness, from a plugin file" in line  # the summary: the class docstring's first line
    assert any(l.startswith("spectral") and l.rstrip().endswith("aigi-bench") for l in proc.stdout.splitlines())
    assert proc.stderr.strip().splitlines() == [
        f"error: plugin {broken} failed to import: ModuleNotFoundError: No module named 'not_a_module_anywhere'"]


def test_a_name_registered_twice_is_an_error_naming_both_sources(tmp_path):
    dup = write(tmp_path / "dup_plugin.py", FILE_PLUGIN.replace('"file_brightness"', '"spectral"'))
    proc = bench(hermetic_env(tmp_path), "list", "detectors", "--plugin", str(dup))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: detector 'spectral' is registered twice: by aigi-bench and by plugin: "
                                   f"{dup} sha256:{sha256_file(str(dup))[:16]}; rename one of them (or uninstall "
                                   "one package)")


def test_a_pickled_plugin_detector_loads_in_a_fresh_process(tmp_path):
    """What a Ray task, a spawned worker or the next run's fit cache does: unpickle a plugin class in a process
    that has only ``$AIGI_BENCH_PLUGINS``."""
    plugin = write(tmp_path / "mine" / "brightness_plugin.py", FILE_PLUGIN)
    env = hermetic_env(tmp_path)
    dump = ("import pickle, sys; from bench.core.plugins import use_plugins; use_plugins([sys.argv[1]]); "
            "from bench.core.registries import create_detector; "
            "open(sys.argv[2], 'wb').write(pickle.dumps(create_detector('file_brightness')))")
    subprocess.run([sys.executable, "-c", dump, str(plugin), str(tmp_path / "det.pkl")], env=env, check=True)
    load = ("import pickle, sys, numpy as np; det = pickle.loads(open(sys.argv[1], 'rb').read()); "
            "print(type(det).__module__, det.source.split(' sha256:')[0], det.predict([np.full((2, 2, 3), 51)], None).score)")
    out = subprocess.run([sys.executable, "-c", load, str(tmp_path / "det.pkl")], capture_output=True, text=True,
                         env={**env, "AIGI_BENCH_PLUGINS": str(plugin)}, check=True).stdout.split()
    assert out == ["bench.core.plugin_files.brightness_plugin", "plugin:", str(plugin), "[0.2]"]


# -- entry points ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed_package(tmp_path_factory) -> Path:
    """A detector package with an ``aigi_bench.detectors`` entry point, pip-installed into its own folder."""
    tmp = tmp_path_factory.mktemp("ep")
    write(tmp / "pkg" / "pyproject.toml", PYPROJECT)
    write(tmp / "pkg" / "ep_brightness_pkg" / "__init__.py", PACKAGE_INIT)
    write(tmp / "pkg" / "ep_brightness_pkg" / "model.py", PACKAGE_MODEL)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
                    "--no-index", "--target", str(tmp / "site"), str(tmp / "pkg")], check=True, capture_output=True)
    return tmp / "site"


def test_an_installed_package_is_listed_lazily_with_its_source_and_its_dataset(installed_package, tmp_path):
    env = hermetic_env(tmp_path, installed_package)
    proc = bench(env, "list", "detectors", "ep_*")
    assert proc.returncode == 0, proc.stderr
    line = next(l for l in proc.stdout.splitlines() if l.startswith("ep_brightness"))
    assert "mean brightness, from an installed package" in line and "entry point: aigi-bench-ep-demo 1.2.0" in line
    code = ("import sys; from bench.core.registries import DETECTORS, load_plugins; load_plugins(); "
            "print('ep_brightness' in DETECTORS, 'ep_brightness_pkg.model' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["True", "False", "False"], "listing must not import the detector's module (or torch)"
    datasets = bench(env, "list", "datasets", "ep_*")
    assert "ep_tiny_set" in datasets.stdout and "a dataset from an installed package" in datasets.stdout


@pytest.mark.slow
def test_plugins_run_under_detectors_all_and_their_source_reaches_the_fit_key(installed_package, tmp_path):
    """The installed package and a --plugin file run beside the project's detectors (a broken plugin is one
    line, the others still run); editing the plugin file makes it a new fit, the package's fit stays."""
    plugin = write(tmp_path / "mine" / "brightness_plugin.py", FILE_PLUGIN)
    broken = write(tmp_path / "mine" / "broken_plugin.py", "raise RuntimeError('half-written plugin')\n")
    env = hermetic_env(tmp_path, installed_package)
    plugins = ("--plugin", str(plugin), "--plugin", str(broken), "--workers", "1")
    proc, record = smoke_run(env, tmp_path, "all", "--detectors", "all", *plugins)
    assert proc.returncode == 0, proc.stderr
    assert f"error: plugin {broken} failed to import: RuntimeError: half-written plugin" in proc.stderr
    detectors = record["detectors"]
    assert {"ep_brightness", "file_brightness", "spectral"} <= {n for n, d in detectors.items() if d["status"] == "ok"}
    assert not any(name.startswith("test_") for name in detectors)
    assert detectors["ep_brightness"]["config"]["source"] == "entry point: aigi-bench-ep-demo 1.2.0"
    file_det = detectors["file_brightness"]
    assert file_det["config"]["source"] == f"plugin: {plugin} sha256:{sha256_file(str(plugin))[:16]}"
    assert file_det["config"]["class"] == "bench.core.plugin_files.brightness_plugin.FileBrightness"
    assert record["config"]["plugins"] == [str(plugin), str(broken)]
    plugin.write_text(plugin.read_text() + "# edited\n")
    proc, again = smoke_run(env, tmp_path, "again", "--detectors", "file_brightness,ep_brightness", *plugins)
    assert proc.returncode == 0, proc.stderr
    assert again["detectors"]["file_brightness"]["fit_key"] != file_det["fit_key"], "an edited plugin is a new fit"
    assert again["detectors"]["ep_brightness"]["fit_key"] == detectors["ep_brightness"]["fit_key"]
