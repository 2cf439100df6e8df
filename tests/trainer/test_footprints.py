"""``trainer footprints`` and the size prior on a rig: footprints from the LDraw files into the
manifest, ``edge calibrate scale`` from views of a reference part, and the pipeline weighing its
answer by the measured size."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge.calibration_file import read_calibration
from edge.cli import main as edge_main
from edge.errors import DataFileError
from edge.manifest import Manifest, load_manifest, sha256_file
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


def test_tilted_footprints_show_the_parts_height_beside_the_top_down_table(
    demo_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "set"
    write_model_set(folder, parts=["demo-3001", "demo-3023"])
    assert cli.main(["footprints", "--model-set", str(folder), "--ldraw", str(demo_library)]) == 0
    top = load_manifest(folder).footprints
    args = ["footprints", "--model-set", str(folder), "--ldraw", str(demo_library), "--tilt", "30"]
    assert cli.main(args) == 0
    assert "by a camera tilted 30 degrees" in capsys.readouterr().out
    assert cli.main([*args[:-1], "22.5"]) == 0
    manifest = load_manifest(folder)
    assert manifest.footprints == top  # the top-down table stays as it was
    assert set(manifest.footprints_tilted) == {"30", "22.5"}
    plate = manifest.footprints_tilted["30"]["demo-3023"]
    assert sum(p for _, _, p in plate) == pytest.approx(1.0, abs=1e-3)
    # Lying flat and facing the camera, the 16 x 8 x 3.2 mm plate shows its depth foreshortened
    # and its height: 8 cos 30 + 3.2 sin 30 = 8.53 mm.
    assert any(a == pytest.approx(16.0, abs=0.1) and b == pytest.approx(8.53, abs=0.1) for a, b, _ in plate)
    # A turned part's rectangle depends on which way it faces: more rows than poses.
    assert len(plate) > len(top["demo-3023"])
    assert all(a >= b > 0 for a, b, _ in plate)

    with pytest.raises(SystemExit):
        cli.main([*args[:-1], "80"])
    assert "outside 0..70 degrees" in capsys.readouterr().err
    bad = manifest.model_dump(mode="json")
    bad["footprints_tilted"] = {"30.0": bad["footprints_tilted"]["30"]}
    with pytest.raises(ValidationError, match="keys are tilts in degrees"):
        Manifest.model_validate(bad)


def test_a_tilted_camera_fits_its_scale_and_weighs_answers_by_the_tilted_table(
    demo_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    config = write_sim_setup(tmp_path, demo_library, calibration="calibration.json")
    cal = tmp_path / "calibration.json"
    write_footprints(tmp_path / "models", demo_library, progress=False)  # top-down only
    # A 2x4 brick lying flat, seen 30 degrees from vertical at 2 px/mm: 32 x (16 cos 30 + 9.6 sin 30) mm.
    views = [save(tmp_path / f"v{i}.png", part_frame(64, 37, a)) for i, a in enumerate((0, 35, 70))]
    args = ["calibrate", "scale", "--config", str(config), "--part", "demo-3001", *map(str, views)]
    assert edge_main([*args, "--tilt", "30"]) == 2  # the model set has no table for the tilt
    assert "trainer footprints --model-set ... --ldraw ... --tilt 30" in caplog.text
    assert edge_main([*args, "--tilt", "75"]) == 2
    assert "0..70 degrees" in caplog.text

    assert edge_main(args) == 0  # the top-down table reads the height as width: a larger scale
    top = read_calibration(cal).scale
    assert top is not None and top.tilt_deg == 0 and top.px_per_mm > 2.1
    write_footprints(tmp_path / "models", demo_library, progress=False, tilt_deg=30)
    assert edge_main([*args, "--tilt", "30"]) == 0
    tilted = read_calibration(cal).scale
    assert tilted is not None and tilted.tilt_deg == 30
    assert tilted.px_per_mm == pytest.approx(2.0, rel=0.04)
    capsys.readouterr()
    edge_main(["check", "--config", str(config)])
    shown = re.search(r"size prior on \(([\d.]+) px/mm, camera tilted 30 degrees", capsys.readouterr().out)
    assert shown is not None and float(shown.group(1)) == pytest.approx(tilted.px_per_mm)

    # The daemon's prior holds the tilted rows: the tilted brick's footprint is demo-3001's best.
    _, recognizer = decided_probs(config, part_frame(16, 16, 0), size_prior=True)
    assert recognizer.size is not None
    ll = recognizer.size.log_likelihood([(64.0, 37.0)])
    assert ll is not None and recognizer.size.parts[int(np.argmax(ll))] == "demo-3001"
