"""The command line: help, listings, one-line errors (exit 2, no traceback)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.cli.main import main

pytestmark = pytest.mark.slow  # the bench command in subprocesses: the fast loop is pytest -m "not slow"


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli.main", *args], capture_output=True, text=True)


def test_help_lists_commands_and_run_examples():
    out = bench("--help")
    assert out.returncode == 0
    for command in ["run", "list", "data", "report", "compare", "baseline", "weights"]:
        assert command in out.stdout
    run_help = bench("run", "--help").stdout
    assert "--perturb" in run_help and "examples:" in run_help and "--train-generators" in run_help


@pytest.mark.parametrize("args,message", [
    (["run", "--dataset", "/no/such/folder"], "neither a registered dataset"),
    (["run", "--detectors", "spectrl", "--dataset", "demo"], "did you mean 'spectral'"),
    (["run", "--perturb", "jpg"], "did you mean"),
    (["run", "--perturb", "jpeg:9"], "jpeg"),
    (["run", "--config", "/no/such.yaml"], "cannot read config"),
])
def test_bad_input_is_one_line_exit_2(args, message, tmp_path):
    out = bench(*args, "--cache-dir", str(tmp_path), "--out", str(tmp_path / "o"))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_unknown_config_key(tmp_path):
    (tmp_path / "c.yaml").write_text("detectors: [spectral]\nsede: 3\n")
    out = bench("run", "--config", str(tmp_path / "c.yaml"))
    assert out.returncode == 2 and "unknown config key(s): sede" in out.stderr


def test_list_perturbations_prints_tables(capsys):
    assert main(["list", "perturbations"]) == 0
    out = capsys.readouterr().out
    assert "jpeg" in out and "100" in out and "sigma" in out
    assert main(["list", "perturbations", "--preset", "imagenet-c"]) == 0
    assert "0.38" in capsys.readouterr().out


def test_list_detectors_and_datasets(capsys):
    assert main(["list", "detectors", "clip_*"]) == 0
    out = capsys.readouterr().out
    assert "clip_svm" in out and "clip_vit_b16" in out and "npr" not in out.split("\n\n")[0]
    assert main(["list", "datasets"]) == 0
    assert "demo" in capsys.readouterr().out


def test_data_inspect(tiny_dataset, tmp_path, capsys):
    assert main(["data", "inspect", str(tiny_dataset), "--cache-dir", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "blocky" in out and "train/val/test" in out and "no format, size or metadata shortcut" in out


def test_a_reader_that_stops_early_gets_no_error(tmp_path):
    """`bench list perturbations | head -1`: the closed pipe is not an error to report."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli.main", "list", "perturbations"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    proc.stdout.read(10)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "error" not in stderr.lower(), stderr


def test_device_preset_and_profile_flags_accept_what_the_config_accepts():
    """One rule for a flag and a YAML field: --device cuda:1 is a valid config, so the flag takes it too; the
    preset and profile choices are the registered ones."""
    from bench.cli.main import build_parser, run_config_from_args
    from bench.core.detector import PROFILES
    from bench.core.errors import BenchError
    from bench.core.presets import PRESETS

    for preset in PRESETS:
        for profile in PROFILES:
            args = build_parser().parse_args(["run", "--device", "cuda:1", "--preset", preset, "--profile", profile])
            cfg = run_config_from_args(args)
            assert (cfg.device, cfg.preset, cfg.profile) == ("cuda:1", preset, profile)
    with pytest.raises(BenchError, match="device must be auto, cpu, cuda or cuda:N, got 'gpu'"):
        run_config_from_args(build_parser().parse_args(["run", "--device", "gpu"]))
