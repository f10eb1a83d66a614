import pytest

from bench.core.errors import BenchError
from bench.core.registry import Registry, UnknownNameError


def make():
    reg = Registry("thing")
    reg.add("clip_svm.vit_b16", "math:sqrt", family="clip")
    reg.add("clip_finetune", "math:floor")
    reg.add("npr", len)
    return reg


def test_lazy_entry_imports_on_get():
    import math

    reg = make()
    assert reg.entry("clip_svm.vit_b16").meta == {"family": "clip"}
    assert reg.get("clip_svm.vit_b16") is math.sqrt


def test_duplicate_raises():
    reg = make()
    with pytest.raises(BenchError, match="registered twice: by aigi-bench and by aigi-bench"):
        reg.add("npr", len)


def test_unknown_name_suggests_close_matches():
    reg = make()
    with pytest.raises(UnknownNameError) as err:
        reg.get("clip_fintune")
    assert "did you mean 'clip_finetune'" in str(err.value)


def test_wildcards_and_resolve_keep_order_without_repeats():
    reg = make()
    assert reg.names("clip_*") == ["clip_finetune", "clip_svm.vit_b16"]
    assert reg.resolve(["npr", "clip_*", "npr"]) == ["npr", "clip_finetune", "clip_svm.vit_b16"]
    with pytest.raises(UnknownNameError):
        reg.resolve(["zzz*"])


def test_decorator_registers():
    reg = Registry("thing")

    @reg.register("f", tag=1)
    def f():
        return 3

    assert reg.get("f") is f and reg.entry("f").meta["tag"] == 1


def test_bad_lazy_target():
    reg = Registry("thing")
    reg.add("x", "no_colon_here")
    with pytest.raises(BenchError, match="module:attr"):
        reg.get("x")


def test_project_registries_list_without_heavy_imports():
    import subprocess
    import sys

    code = ("import sys; from bench.core.registries import DETECTORS, load_plugins; load_plugins(); "
            "print(DETECTORS.names()); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert "spectral" in out[0]
    assert out[1] == "False", "listing detectors must not import torch"
