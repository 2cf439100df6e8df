"""The daemon's config: the shipped files, path resolution, readable errors.

Also home of :func:`write_sim_setup`, the tiny simulated rig the daemon, CLI and bench tests share
(imported from here: a tiny model set and a live sim camera on the demo library, mock pins).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edge.config import validate_config
from edge.errors import ConfigError
from edge.settings import EdgeConfig, EngineSettings, load_edge_config
from tests.helpers.onnx_models import write_model_set

REPO = Path(__file__).resolve().parents[2]
SIM_PARTS = ["demo-3001", "demo-3039", "demo-3062b"]
SIM_COLORS = [4, 1, 14]  # red, blue, yellow: saturated, so HSV keying of the grey disc finds them
BINS = {"reject": -60, "red": -30, "blue": 0, "other": 60}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        # A mapping with its own "type" switches the backend: it replaces the section.
        nested = isinstance(value, dict) and isinstance(out.get(key), dict) and "type" not in value
        out[key] = _merge(out[key], value) if nested else value
    return out


def sim_settings(library: Path, **overrides: Any) -> dict[str, Any]:
    """The raw config of the tiny simulated rig (paths relative to the config's folder)."""
    cfg = {
        "camera": {
            "type": "sim",
            "ldraw": str(library),
            "parts": SIM_PARTS,
            "colors": ",".join(map(str, SIM_COLORS)),
            "rig": {"width": 160, "height": 120, "camera_height_mm": 130},
        },
        "segmenter": {
            "type": "hsv",
            "background_lower": [142, 90, 60],  # the sim rig's magenta disc
            "background_upper": [170, 255, 255],
            "min_area_px": 20,
        },
        "engine": {"runtime": "onnxruntime", "precision": "fp32", "threads": 1, "model_set": "models"},
        "capture": {"views": 4},
        "sorting": {
            "rules": [{"color": ["Red"], "bin": "red"}, {"color": [1], "bin": "blue"}],
            "default_bin": "other",
            "reject_bin": "reject",
        },
        "rig": {
            "pins": "mock",
            "turntable": {"driver": "uln2003", "steps_per_turn": 64, "step_delay": 0.0},
            "chute": {"bins": BINS, "settle_s": 0.0},
            "panel": {"blink_s": 0.02},
        },
        "presence": {"min_area_px": 60, "stable_frames": 2, "poll_s": 0.0},
        "data": {"db": "out/record.db", "crops_dir": "out/crops", "keep_crops": "all"},
        "timeouts": {"clear_s": 2.0, "camera_retry_s": 0.01, "camera_retry_max_s": 0.05},
        # The test process holds pytest and every library imported by earlier tests.
        "memory_budget_mb": 8192,
    }
    return _merge(cfg, overrides)


def write_sim_setup(folder: Path, library: Path, **overrides: Any) -> Path:
    """Write a tiny model set (``folder/models``) and the sim config (``folder/edge.yaml``).

    Returns the config's path. ``overrides`` are merged into :func:`sim_settings` section by section.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "models" / "manifest.json").exists():
        write_model_set(folder / "models", parts=SIM_PARTS, colors=SIM_COLORS, size=(16, 16))
    path = folder / "edge.yaml"
    path.write_text(yaml.safe_dump(sim_settings(library, **overrides), sort_keys=False), encoding="utf-8")
    return path


# --- the shipped configs ----------------------------------------------------------------------


def test_shipped_sim_config_is_the_simulated_rig() -> None:
    cfg = load_edge_config(REPO / "config" / "sim.yaml")
    assert cfg.camera.type == "sim" and cfg.rig.pins == "mock" and cfg.segmenter.type == "hsv"
    assert (cfg.engine.runtime, cfg.engine.precision) == ("onnxruntime", "int8")
    assert cfg.engine.model_set == REPO / "models" / "default"  # resolved against config/
    assert cfg.data.db == REPO / "out" / "sim" / "record.db"
    assert cfg.autostart is True and cfg.memory_budget_mb == 512


def test_make_run_calibrates_the_sim_rig_on_views_the_replay_holds() -> None:
    """`make run` fits the sim rig's scale on the replay's views of a reference part at the rig's
    tilt: the views, the model set's footprints for that part and tilt, and the config's
    calibration file must all be there (a repacked replay or a rebuilt set could drop them)."""
    from edge.manifest import load_manifest
    from edge.size import reference_footprints

    recipe = (REPO / "Makefile").read_text(encoding="utf-8")
    found = re.search(r"edge calibrate scale --sim --part (\S+) --tilt (\S+) (\S+)", recipe)
    assert found is not None, "make run no longer calibrates the scale; update this test"
    part, tilt, pattern = found.group(1), float(found.group(2)), found.group(3)
    views = sorted(REPO.glob(pattern))
    assert len(views) >= 4 and all(v.parent.parent.name == part for v in views)
    assert len(reference_footprints(load_manifest(REPO / "models" / "default"), part, tilt)) > 1
    cfg = load_edge_config(REPO / "config" / "sim.yaml")
    assert cfg.calibration == REPO / "out" / "sim" / "calibration.json"


def test_shipped_pi_config_matches_the_unit() -> None:
    cfg = load_edge_config(REPO / "config" / "edge.yaml")
    assert cfg.camera.type == "picamera2" and cfg.rig.pins == "auto"
    assert cfg.memory_budget_mb == 512  # the systemd unit's MemoryHigh
    assert str(cfg.data.db).startswith("/var/lib/lego-edge/")  # the unit's StateDirectory
    assert cfg.autostart is False


# --- paths --------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    raw = sim_settings(Path("lib"), calibration="cal.json")
    raw["camera"]["parts_file"] = "parts.txt"
    raw["sorting"]["categories_file"] = "/abs/cats.csv"
    (folder / "edge.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # somewhere else: resolution must not depend on the cwd
    cfg = load_edge_config(Path("conf") / "edge.yaml")
    base = folder.resolve()
    assert cfg.engine.model_set == base / "models"
    assert cfg.data.db == base / "out" / "record.db" and cfg.data.crops_dir == base / "out" / "crops"
    assert cfg.calibration == base / "cal.json"
    assert cfg.camera.ldraw == str(base / "lib") and cfg.camera.parts_file == str(base / "parts.txt")
    assert cfg.sorting.categories_file == Path("/abs/cats.csv")  # absolute paths stay


def test_step_between_views_defaults_to_an_even_split() -> None:
    raw = sim_settings(Path("lib"))
    assert validate_config(EdgeConfig, _merge(raw, {"capture": {"views": 3}})).capture.step_deg == 120.0
    cfg = validate_config(EdgeConfig, _merge(raw, {"capture": {"views": 3, "angle_deg": 45}}))
    assert cfg.capture.step_deg == 45.0


def test_rule_colours_accept_names_and_ids() -> None:
    cfg = validate_config(EdgeConfig, sim_settings(Path("lib")))
    assert [r.color for r in cfg.sorting.rules] == [[4], [1]]
    raw = _merge(sim_settings(Path("lib")), {"sorting": {"rules": [{"part": "3001", "bin": "red"}]}})
    rule = validate_config(EdgeConfig, raw).sorting.rules[0]
    assert rule.part == ["3001"] and rule.color is None


# --- errors -------------------------------------------------------------------------------------


def _error(tmp_path: Path, raw: dict[str, Any]) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_edge_config(path)
    text = str(info.value)
    assert str(path) in text  # every message names the file
    return text


def test_errors_name_key_value_and_fix(tmp_path: Path) -> None:
    raw = sim_settings(Path("lib"))
    raw["engine"]["threads"] = 9
    raw["capture"]["views"] = 0
    raw["presence"]["bogus"] = 1
    text = _error(tmp_path, raw)
    assert "engine.threads: 9" in text and "1..4" in text
    assert "capture.views: 0" in text and "1..16" in text
    assert "presence.bogus: unknown key" in text and "stable_frames" in text  # lists the known keys


def test_unknown_colour_and_empty_rule(tmp_path: Path) -> None:
    raw = sim_settings(Path("lib"))
    raw["sorting"]["rules"] = [{"color": ["Redd"], "bin": "red"}, {"bin": "red"}]
    text = _error(tmp_path, raw)
    assert "sorting.rules[0].color" in text and "'Redd'" in text and "did you mean 'Red'" in text
    assert "sorting.rules[1]" in text and "at least one of part, color or category" in text


def test_sorting_bins_must_be_chute_bins(tmp_path: Path) -> None:
    raw = sim_settings(Path("lib"))
    raw["sorting"]["rules"].append({"part": "3001", "bin": "bricks"})
    raw["sorting"]["reject_bin"] = "trash"
    text = _error(tmp_path, raw)
    assert "sorting.rules[2].bin 'bricks'" in text and "sorting.reject_bin 'trash'" in text
    assert "reject, red, blue, other" in text and "rig.chute.bins" in text


def test_camera_backend_settings_are_checked(tmp_path: Path) -> None:
    raw = sim_settings(Path("lib"))
    raw["camera"]["supersample"] = 9
    text = _error(tmp_path, raw)
    assert "camera.supersample: 9" in text  # the key as written (no union tag)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_edge_config(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("camera: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_edge_config(tmp_path / "broken.yaml")
    (tmp_path / "partial.yaml").write_text("engine: {threads: 2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="camera: required but missing"):
        load_edge_config(tmp_path / "partial.yaml")


def add_index(models: Path, count: int = 12, seed: int = 0) -> None:
    """Give the model set in ``models`` an embedding index of ``count`` random unit vectors (SIM_PARTS)."""
    from edge.index import EmbeddingIndex
    from edge.manifest import load_manifest, sha256_file, write_manifest
    from edge.manifest_entries import IndexEntry

    manifest = load_manifest(models)
    dim = manifest.embedding_dim or 8
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = [SIM_PARTS[i % len(SIM_PARTS)] for i in range(count)]
    index = EmbeddingIndex(dim, threads=1)
    index.add(vectors, labels)
    index.save(models / "index.npz")
    (models / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    entry = IndexEntry(
        path="index.npz", sha256=sha256_file(models / "index.npz"), dim=dim, count=count, labels="labels.json"
    )
    write_manifest(models, manifest.model_copy(update={"index": entry}))


def test_engine_threads_default_to_the_core_count(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert EngineSettings().threads == 2
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert EngineSettings().threads == 4  # a Pi 5 has 4 cores; more threads never paid off
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert EngineSettings().threads == 1
    assert EngineSettings(threads=3).threads == 3
