"""--generators / ``generators:``: a dataset restricted to some generators and the reals they are tested
against, for the published-dataset adapters (on their synthetic mirrors) and the held-out protocols."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.cli.main import build_parser, run_config_from_args
from bench.core.cache import Cache
from bench.core.errors import BenchError
from bench.data.dataset import load_dataset
from bench.data.generators import keep_generators
from bench.data.sources import resolve_source
from bench.run.config import RunConfig
from bench.run.splits import build_splits
from test_published_datasets import forensynths_test_mirror, genimage_mirror, put, synthbuster_mirror


def loaded(spec: str, generators, tmp_path):
    return load_dataset(spec, Cache(tmp_path / "cache"), progress=False, generators=generators)


def test_per_generator_reals_keep_only_the_kept_generators_reals(tmp_path):
    genimage_mirror(tmp_path / "g", ("sdv14", "midjourney", "adm"), n=5)
    ds = loaded(f"genimage={tmp_path / 'g'}", ["sdv14", "midjourney"], tmp_path)
    assert ds.generators == ["midjourney", "sdv14"]
    assert Counter(it.subset for it in ds.items if not it.label) == {"sdv14": 7, "midjourney": 7}
    assert {it.split for it in ds.items} == {"train", "val", "test"}  # official splits survive the subset


def test_forensynths_test_one_generator_is_its_own_reals_and_fakes(tmp_path):
    forensynths_test_mirror(tmp_path / "f")
    rows, _ = resolve_source(f"forensynths-test={tmp_path / 'f'}", tmp_path).read(False)
    kept = keep_generators(rows, ["cyclegan"])
    assert Counter((r.label, r.generator) for r in kept) == {(0, "real"): 2, (1, "cyclegan"): 2}
    assert all("cyclegan/" in r.id for r in kept)


def test_shared_reals_stay_with_every_generator(tmp_path):
    synthbuster_mirror(tmp_path / "s", ids=[f"r{i:09d}" for i in range(5)])
    ds = loaded(f"synthbuster={tmp_path / 's'}", ["dalle3"], tmp_path)
    assert Counter((it.label, it.generator) for it in ds.items) == {(0, "real"): 5, (1, "dalle3"): 5}


def test_a_generic_folder_is_restricted_too(tmp_path):
    for gen in ("real", "sd15", "dalle2"):
        for i in range(5):
            put(tmp_path / "d", f"{gen}/{i}.png")
    ds = loaded(str(tmp_path / "d"), ["sd15"], tmp_path)
    assert Counter(it.generator for it in ds.items) == {"real": 5, "sd15": 5}


def test_unknown_generator_is_one_line_with_did_you_mean(tmp_path):
    genimage_mirror(tmp_path / "g", ("sdv14", "midjourney"), n=1)
    with pytest.raises(BenchError) as err:
        loaded(f"genimage={tmp_path / 'g'}", ["midjurney"], tmp_path)
    message = str(err.value)
    assert "\n" not in message and "--generators" in message and "'midjurney'" in message
    assert "did you mean 'midjourney'" in message and "known: midjourney, sdv14" in message


def test_config_key_and_flag_restrict_the_test_dataset_only(tmp_path):
    genimage_mirror(tmp_path / "g", ("sdv14", "midjourney", "adm"), n=10)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(f"dataset: genimage={tmp_path / 'g'}\ngenerators: sdv14,adm\n")
    cfg = run_config_from_args(build_parser().parse_args(["run", "--config", str(cfg_file)]))
    assert cfg.generators == ["sdv14", "adm"]
    splits = build_splits(cfg, Cache(tmp_path / "cache"), progress=False)
    assert {it.generator for it in splits.train + splits.test} == {"sdv14", "adm", "real"}
    flag = run_config_from_args(build_parser().parse_args(["run", "--config", str(cfg_file), "--generators", "adm"]))
    assert flag.generators == ["adm"]
    with pytest.raises(BenchError, match="config field generators"):
        RunConfig.from_dict({"generators": [3]})


def test_held_out_protocols_share_the_did_you_mean(tmp_path):
    genimage_mirror(tmp_path / "g", ("sdv14", "midjourney"), n=10)
    cfg = RunConfig(dataset=f"genimage={tmp_path / 'g'}", test_generators=["sdv41"])
    with pytest.raises(BenchError, match="--test-generators .*did you mean 'sdv14'"):
        build_splits(cfg, Cache(tmp_path / "cache"), progress=False)


def test_leaderboard_names_the_generator_subset():
    from bench.report.leaderboard import _protocol

    assert _protocol({"generators": ["sdv14", "adm"], "dataset": "genimage"}) == "generators sdv14,adm only"
    assert _protocol({"dataset": "genimage"}) == ""  # runs stored before the key existed
