"""The README's Fidelity table names registered detectors and existing profiles, and the choices it
records are the code's (clip_text_mlp's caption cut and gamma, univfd.released's fp32 features)."""

import re
from pathlib import Path

from bench.core.detector import PROFILES
from bench.core.registries import DETECTORS, create_detector, load_plugins

README = Path(__file__).resolve().parents[1] / "README.md"
COLLECTIVE = "all trained detectors"  # the one row about every detector that trains


def fidelity_rows() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("**Fidelity: what still departs from the original"):].split("\n\n")[1]
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert lines[0].startswith("| detector | profile |"), lines[0]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_every_fidelity_row_names_registered_detectors_and_existing_profiles():
    load_plugins()
    rows = fidelity_rows()
    assert len(rows) >= 20
    for detector_cell, profile_cell, *_ in rows:
        profiles = [p.strip() for p in profile_cell.split(",")]
        assert profiles and set(profiles) <= set(PROFILES), profile_cell
        if detector_cell == COLLECTIVE:
            continue
        names = re.findall(r"`([^`]+)`", detector_cell)
        assert names, f"row names no detector: {detector_cell!r}"
        for name in names:
            matched = DETECTORS.names(name) if "*" in name else [name] if name in DETECTORS else []
            assert [m for m in matched if not DETECTORS.entry(m).meta.get("test")], f"{name}: not registered"


def test_clip_text_mlp_cuts_captions_at_77_characters_with_gamma_0_1():
    detector = create_detector("clip_text_mlp")
    assert detector.gamma == 0.1 and detector.params["gamma"] == 0.1
    assert detector._caption("x" * 200) == "x" * 77 and detector._caption("a cat") == "a cat"
    assert detector._caption("   ") is None


def test_univfd_released_computes_fp32_features_where_univfd_uses_fp16(monkeypatch):
    from bench.nn.clip_features import ClipFeatures, get_backbone

    monkeypatch.setattr("bench.nn.training.resolve_device", lambda device: device)  # no GPU needed to name it
    spec = get_backbone("test_tiny_clip")
    assert ClipFeatures(spec, None, "random", 0, "cuda").identity.split("-")[2] == "fp16"
    assert ClipFeatures(spec, None, "random", 0, "cuda", precision="fp32").identity.split("-")[2] == "fp32"
    assert create_detector("univfd.released").feature_precision == "fp32"
    assert create_detector("univfd").feature_precision == "auto"
