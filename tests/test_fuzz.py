"""Property-based fuzzing of what a user can point bench at: manifests, configs and image bytes.

Asserted for every generated case: a result, a recorded skip, or a one-line BenchError (exit 2):
never another exception (a traceback), never a hang (each case runs under an alarm), never a number
from a skipped image. The default profile keeps the whole file within about a minute in CI;
``BENCH_FUZZ=long`` runs many more cases.
"""

from __future__ import annotations

import io
import os
import re
import signal
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bench.core.cache import Cache
from bench.core.errors import BenchError, ImageSkip
from bench.data.dataset import load_dataset
from bench.data.images import decode_bytes
from bench.data.manifest import read_manifest
from bench.run.config import RunConfig, config_fields, load_config_file

pytestmark = pytest.mark.slow  # hypothesis cases: the fast loop is pytest -m "not slow"

settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("long", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PROFILE = "long" if os.environ.get("BENCH_FUZZ") == "long" else "ci"
CASE_SECONDS = 10


@contextmanager
def time_limit(seconds: int = CASE_SECONDS):
    """Fail the case instead of hanging (SIGALRM: the main thread, POSIX)."""
    def timeout(*_):
        raise TimeoutError(f"a fuzz case ran over {seconds} s")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _encoded(fmt: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (24 + seed % 9, 20 + seed % 7, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


VALID = {fmt: [_encoded(fmt, seed) for seed in range(3)] for fmt in ("PNG", "JPEG", "WEBP")}


@st.composite
def damaged_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from([b for blobs in VALID.values() for b in blobs])))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    for _ in range(draw(st.integers(0, 8))):
        if data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@settings(settings.get_profile(PROFILE))
@given(damaged_images())
def test_fuzz_damaged_image_bytes_decode_or_skip(data):
    with time_limit():
        try:
            arr = decode_bytes(data)
        except ImageSkip as exc:
            assert str(exc) and "\n" not in str(exc)
            return
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3 and min(arr.shape[:2]) >= 16


LABELS = ["real", "fake", "0", "1", "REAL", " fake ", "ai", "maybe", "", "true", "natural", "all", "mean"]
COLUMNS = ["path", "label", "generator", "split", "caption", "group", "PATH", "Label", "", "extra"]
CELL = st.one_of(st.sampled_from(LABELS + ["img0.png", "img1.png", "../img0.png", "/etc/passwd", "sub/x.png",
                                           "train", "val", "test", "sdxl"]),
                 st.text(max_size=12))


@st.composite
def manifests(draw) -> tuple[bytes, str]:
    columns = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=6))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    rows = draw(st.lists(st.lists(CELL, min_size=0, max_size=len(columns) + 2), max_size=8))
    text = "\n".join(delimiter.join(row) for row in [columns, *rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace"), encoding


@settings(settings.get_profile(PROFILE))
@given(manifests())
def test_fuzz_manifests_give_rows_skips_or_one_line_errors(tmp_path_factory, manifest):
    data, _ = manifest
    root = tmp_path_factory.mktemp("fuzz-manifest")
    for name, blob in (("img0.png", VALID["PNG"][0]), ("img1.png", VALID["JPEG"][1])):
        (root / name).write_bytes(blob)
    (root / "manifest.csv").write_bytes(data)
    with time_limit():
        try:
            rows, skips = read_manifest(root / "manifest.csv")
        except BenchError as exc:
            assert "\n" not in str(exc).strip()
            return
    for row in rows:
        assert row.label in (0, 1) and row.generator.lower() not in ("all", "mean")
        assert os.path.realpath(row.path).startswith(os.path.realpath(root))
    assert all(s.reason and "\n" not in s.reason for s in skips)


CONFIG_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                          st.text(max_size=10), st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
                          st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), st.integers(),
                                                                         st.dictionaries(st.text(max_size=3),
                                                                                         st.integers())),
                                          max_size=3))
FIELDS = list(RunConfig.__dataclass_fields__) + ["unknown_key"]


@settings(settings.get_profile(PROFILE))
@given(st.dictionaries(st.sampled_from(FIELDS), CONFIG_VALUES, max_size=5))
def test_fuzz_configs_are_valid_or_one_line_errors(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz-config") / "config.yaml"
    try:
        path.write_text(yaml.safe_dump(data))
    except (yaml.YAMLError, UnicodeEncodeError):
        return
    with time_limit():
        try:
            cfg = RunConfig.from_dict(load_config_file(path))
        except BenchError as exc:
            assert "\n" not in str(exc).strip()
            return
    for f in config_fields():  # every integer field within its declared range
        value, low, high = getattr(cfg, f.name), f.metadata["minimum"], f.metadata["maximum"]
        if f.type.startswith("int") and value is not None:
            assert type(value) is int and value >= low and (high is None or value <= high)
    assert cfg.detectors and all(isinstance(d, str) for d in cfg.detectors)


@pytest.fixture(scope="module")
def fuzz_cache(tmp_path_factory) -> Cache:
    return Cache(tmp_path_factory.mktemp("fuzz-cache"))


@settings(settings.get_profile(PROFILE), max_examples=8 if PROFILE == "ci" else 200)
@given(st.lists(damaged_images(), min_size=4, max_size=4))
def test_fuzz_datasets_never_use_a_skipped_image(tmp_path_factory, fuzz_cache, damaged):
    """A folder of good and damaged images: every damaged file that does not decode is a skip, not an item."""
    root = tmp_path_factory.mktemp("fuzz-data")
    rng = np.random.default_rng(0)
    for i in range(10):
        for label in ("real", "fake"):
            (root / label).mkdir(exist_ok=True)
            arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / label / f"{label}{i}.png")
    for i, blob in enumerate(damaged):
        (root / ("real" if i % 2 else "fake") / f"damaged{i}.png").write_bytes(blob)
    with time_limit(30):
        try:
            ds = load_dataset(str(root), fuzz_cache, progress=False)
        except BenchError:
            return
    used = {it.id for it in ds.items}
    for i, blob in enumerate(damaged):
        name = f"{'real' if i % 2 else 'fake'}/damaged{i}.png"
        try:
            decode_bytes(blob)
            decodable = True
        except ImageSkip:
            decodable = False
        if not decodable:
            assert name not in used and any(s.id == name for s in ds.skips)


@pytest.mark.parametrize("preset", [[], {}, 3, "nosuch"])
def test_a_preset_that_is_no_preset_name_is_a_one_line_error(preset):
    with pytest.raises(BenchError, match="config field preset: expected default or imagenet-c or aeroblade or univfd"):
        RunConfig.from_dict({"preset": preset})


# -- perturbation specs, detector_params and names that reach the reports ------------------------------------------

PERTURB_NAMES = ["jpeg", "blur", "noise", "webp", "resize", "share:instagram", "share:nosuch", "albu:MotionBlur",
                 "albu:GaussNoise", "albu:CLAHE", "albu:NoSuch", "albu:", "transfer:nosuch", "all", "none",
                 "imagenet-c", "jp*", "*", ""]
ALBU_VALUES = st.one_of(st.integers(-5, 9), st.floats(allow_nan=True, allow_infinity=True, width=16),
                        st.text(alphabet="abc(),=-.{} ", max_size=4),
                        st.tuples(st.integers(-3, 9), st.integers(-3, 9)).map(lambda t: f"({t[0]},{t[1]})"))


@st.composite
def perturb_specs(draw) -> str:
    """A --perturb value: registered names, family one-offs with (albu:NAME{key=value,...}) settings, levels,
    and stray characters, joined as a user might type them."""
    tokens = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.one_of(st.sampled_from(PERTURB_NAMES), st.text(max_size=6)))
        if name.startswith("albu:") and draw(st.booleans()):
            settings_ = draw(st.dictionaries(st.sampled_from(["blur_limit", "std_range", "p", "nosuch", ""]),
                                             ALBU_VALUES, max_size=2))
            name += "{" + ",".join(f"{k}={v}" for k, v in settings_.items()) + "}"
        levels = draw(st.one_of(st.just(""), st.sampled_from([":1", ":1-3", ":0", ":9", ":3-1", ":x", ":-1", ":1-"]),
                                st.text(max_size=3).map(lambda t: ":" + t)))
        tokens.append(name + levels)
    return draw(st.sampled_from([",", ", ", ",,"])).join(tokens)


@settings(settings.get_profile(PROFILE))
@given(perturb_specs())
def test_fuzz_perturbation_specs_parse_or_are_one_line_errors(spec):
    from perturbations.spec import parse_perturb_spec

    with time_limit():
        try:
            parsed = parse_perturb_spec(spec)
        except BenchError as exc:
            assert "\n" not in str(exc).strip()
            return
    assert all(isinstance(name, str) and all(isinstance(level, int) for level in levels) for name, levels in parsed)


PARAM_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                         st.text(max_size=5), st.lists(st.floats(allow_nan=True), max_size=3))


@settings(settings.get_profile(PROFILE))
@given(st.dictionaries(st.one_of(st.sampled_from(["spectral", "test_cnn", "nosuch"]), st.text(max_size=6)),
                       st.dictionaries(st.one_of(st.sampled_from(["bins", "c_grid", "size", "width", "epochs", "lr",
                                                                  "nosuch"]), st.text(max_size=5)),
                                       PARAM_VALUES, max_size=3), max_size=2))
def test_fuzz_detector_params_are_valid_or_one_line_errors(params):
    from bench.core.detector_params import check_detector_params

    with time_limit():
        try:
            check_detector_params(params)
        except BenchError as exc:
            assert "\n" not in str(exc).strip()
            return
    for name, overrides in params.items():  # accepted: counts stay positive integers, numbers stay numbers
        for key in ("size", "width", "epochs", "bins"):
            if key in overrides:
                assert type(overrides[key]) is int and overrides[key] > 0, (name, key, overrides[key])


_UNESCAPED_PIPE = re.compile(r"(?<!\\)(?:\\\\)*\|")


@settings(settings.get_profile(PROFILE))
@given(st.text(min_size=1, max_size=12).filter(lambda s: s.strip()),
       st.text(min_size=1, max_size=12).filter(lambda s: s.strip()))
def test_fuzz_names_with_special_characters_keep_the_leaderboards_shape(tmp_path_factory, dataset, detector):
    """A dataset or detector name with any characters (line breaks, |, `, %, \\, <, unicode) changes neither the
    Markdown and LaTeX leaderboards' line count nor the Markdown table's shape nor the HTML markup (a line break
    in HTML text is only white space)."""
    from fixtures.report_store import results_frame, run_record, write_run

    from bench.report.write import write_leaderboards

    def store(folder, dataset_name: str, detector_name: str):
        results = results_frame()
        results["dataset"] = dataset_name
        results["detector"] = results["detector"].replace("dummy.random", detector_name)
        record = run_record()
        record["datasets"] = {dataset_name: record["datasets"]["toy"]}
        write_leaderboards([write_run(folder, results=results, scores=pd.DataFrame(), record=record)])
        return {p.suffix: p.read_text(encoding="utf-8") for p in folder.glob("leaderboard*")}

    root = tmp_path_factory.mktemp("fuzz-names")
    with time_limit():
        plain = store(root / "plain", "toy", "dummy.random")
        hostile = store(root / "hostile", dataset, detector)
    for suffix in (".md", ".tex"):
        assert len(hostile[suffix].splitlines()) == len(plain[suffix].splitlines()), suffix
    rows = [line for line in hostile[".md"].splitlines() if line.startswith("|")]
    assert len({len(_UNESCAPED_PIPE.findall(line)) for line in rows}) == 1
    assert hostile[".html"].count("<") == plain[".html"].count("<")
