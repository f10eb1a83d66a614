"""What a result came from: code version, packages, machine."""

from __future__ import annotations

import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("aigi-bench", "torch", "torchvision", "open_clip_torch", "timm", "diffusers", "albumentations",
            "scikit-learn", "scipy", "numpy", "pandas", "pillow", "opencv-python-headless", "seaborn")


def git_state(cwd: str | Path | None = None) -> dict:
    """Commit and dirty flag of the project checkout (None when not in a git checkout)."""
    here = Path(cwd) if cwd else Path(__file__).resolve().parent.parent

    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_description(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device}: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def machine_record() -> dict[str, Any]:
    """The facts that decide floating-point results on the CPU: processor, instruction set, threads, BLAS.

    ``isa`` is the vector instruction set torch's kernels dispatch to (it follows
    ATEN_CPU_CAPABILITY); ``blas`` lists torch's BLAS and every BLAS/OpenMP library loaded
    in the process (threadpoolctl), with the kernel family OpenBLAS chose.
    """
    import torch
    from threadpoolctl import threadpool_info

    libraries = [
        {"library": lib.get("internal_api"), "version": lib.get("version"), "architecture": lib.get("architecture"),
         "threads": lib.get("num_threads")}
        for lib in threadpool_info()
    ]
    return {
        "cpu": _cpu_model(),
        "arch": platform.machine(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch_blas": _torch_blas(),
        "blas": sorted(libraries, key=_blas_label),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch_blas() -> str | None:
    import torch

    match = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return match.group(1) if match else None


MACHINE_FIELDS = ("cpu", "arch", "isa", "torch_threads", "torch_blas", "blas")
VERSION_FIELDS = ("python", "torch", "numpy", "scipy", "scikit-learn", "pillow")


def _blas_label(lib: dict[str, Any]) -> str:
    """``openblas 0.3.31 SkylakeX x2``: one loaded BLAS/OpenMP library, as compared and printed."""
    return " ".join(str(part) for part in (lib.get("library"), lib.get("version"), lib.get("architecture"))
                    if part is not None) + f" x{lib.get('threads')}"


def _machine_fact(machine: dict[str, Any], key: str) -> Any:
    """A machine fact in comparable form: the BLAS list as a sorted list of labels (load order is no fact)."""
    value = machine.get(key)
    return sorted(_blas_label(lib) for lib in value) if key == "blas" and isinstance(value, list) else value


def machine_differences(reference: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """One line per machine fact or package version that differs between a reference's run.json and a run's."""
    ref_machine, run_machine = reference.get("machine") or {}, run.get("machine") or {}
    lines = [f"machine {key}: reference {_machine_fact(ref_machine, key)!r}, run {_machine_fact(run_machine, key)!r}"
             for key in MACHINE_FIELDS if _machine_fact(ref_machine, key) != _machine_fact(run_machine, key)]
    ref_versions, run_versions = reference.get("versions") or {}, run.get("versions") or {}
    lines += [f"version of {key}: reference {ref_versions.get(key)}, run {run_versions.get(key)}"
              for key in VERSION_FIELDS if ref_versions.get(key) != run_versions.get(key)]
    return lines
