"""``trainer footprints`` and the size prior on a rig: footprints from the LDraw files into the
manifest, ``edge calibrate scale`` from views of a reference part, and the pipeline weighing its
answer by the measured size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.calibration_file import read_calibration
from edge.cli import main as edge_main
from edge.errors import DataFileError
from edge.manifest import load_manifest, sha256_file
from tests.edge.test_settings import write_sim_setup
from tests.helpers.onnx_models import write_model_set
from tests.helpers.pipeline import decided_probs
from trainer import cli
from trainer.footprints import write_footprints

MAGENTA = (200, 40, 190)  # the sim rig's disc, keyed by the sim config's HSV range


def test_trainer_footprints_writes_each_parts_resting_outlines(
    demo_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "set"
    write_model_set(folder, parts=["demo-3001", "demo-3023", "9999"])
    model_hash = sha256_file(folder / "classifier.onnx")
    assert cli.main(["footprints", "--model-set", str(folder), "--ldraw", str(demo_library)]) == 0
    out = capsys.readouterr().out
    assert "2 part(s) with footprints" in out and "no footprint for 9999" in out
    manifest = load_manifest(folder)
    assert set(manifest.footprints) == {"demo-3001", "demo-3023"}
    assert sha256_file(folder / "classifier.onnx") == model_hash
    for part, (long_mm, short_mm) in (("demo-3001", (32.0, 16.0)), ("demo-3023", (16.0, 8.0))):
        poses = manifest.footprints[part]
        assert sum(p for _, _, p in poses) == pytest.approx(1.0, abs=1e-3)
        flat = max(poses, key=lambda row: row[2])  # lying on its base is the likeliest landing
        assert flat[:2] == pytest.approx((long_mm, short_mm), abs=0.2)
        assert all(a >= b > 0 for a, b, _ in poses)
    with pytest.raises(DataFileError, match="not an LDraw library"):
        write_footprints(folder, tmp_path)


def part_frame(long_px: int, short_px: int, angle: float) -> np.ndarray:
    frame = np.full((120, 160, 3), MAGENTA, np.uint8)
    corners = cv2.boxPoints(((80.0, 60.0), (float(long_px), float(short_px)), angle))
    cv2.fillPoly(frame, [np.round(corners).astype(np.int32)], (200, 30, 30))
    return frame


def save(path: Path, frame: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return path


def test_calibrated_scale_turns_on_the_size_prior_in_the_pipeline(
    demo_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    config = write_sim_setup(tmp_path, demo_library, calibration="calibration.json")
    cal = tmp_path / "calibration.json"
    views = [save(tmp_path / f"v{i}.png", part_frame(64, 32, a)) for i, a in enumerate((0, 35, 70))]
    # Without footprints in the model set the command says how to get them.
    args = ["calibrate", "scale", "--config", str(config), "--part", "demo-3001", *map(str, views)]
    assert edge_main(args) == 2
    assert "trainer footprints" in caplog.text
    write_footprints(tmp_path / "models", demo_library, progress=False)
    assert edge_main([*args[:-3], "--part", "demo-3005", *map(str, views)]) == 2  # not in the model
    assert "no footprint in the model set" in caplog.text

    edge_main(["check", "--config", str(config)])
    assert "size prior off (no scale calibrated" in capsys.readouterr().out
    assert edge_main(args) == 0  # 64 x 32 px views of a 32 x 16 mm brick: 2 px/mm
    assert "scale: 2.0" in capsys.readouterr().out
    edge_main(["check", "--config", str(config)])
    assert "size prior on (2" in capsys.readouterr().out
    scale = read_calibration(cal).scale
    assert scale is not None and scale.part == "demo-3001" and scale.views == 3
    assert scale.px_per_mm == pytest.approx(2.0, rel=0.05)

    # The pipeline weighs its answer by the part's size: a 1x1 round part's 8 x 8 mm footprint
    # (16 x 16 px) raises demo-3062b against the larger parts, whatever the random model says.
    frame = part_frame(16, 16, 0)
    probs = {}
    for prior in (False, True):
        probs[prior], recognizer = decided_probs(config, frame, size_prior=prior)
        assert (recognizer.size is not None) is prior
    assert probs[True]["demo-3062b"] > probs[False]["demo-3062b"]
    assert probs[True]["demo-3001"] < probs[False]["demo-3001"]
