"""Colour correction at run time: the transform, the calibration section, and the pipeline applying it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.calibration_file import update_calibration
from edge.color_correction import (
    IDENTITY,
    ColorCorrection,
    DriftCorrection,
    linear_to_srgb,
    ring_median,
    srgb_to_linear,
)
from edge.errors import ConfigError
from edge.pipeline import Pipeline
from edge.settings import load_edge_config
from tests.edge.test_settings import write_sim_setup

SWAP_RB = [[0, 0, 1], [0, 1, 0], [1, 0, 0]]


def test_transfer_functions_round_trip() -> None:
    v = np.linspace(0, 1, 101)
    assert np.allclose(linear_to_srgb(srgb_to_linear(v)), v, atol=1e-9)


def test_identity_keeps_the_frame_and_gains_act_in_linear_light() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    same = ColorCorrection([1, 1, 1], np.eye(3)).apply(frame)
    assert np.abs(same.astype(int) - frame).max() <= 1
    grey = np.full((2, 2, 3), 128, np.uint8)
    doubled = ColorCorrection([2, 2, 2], np.eye(3)).apply(grey)[0, 0]
    expected = round(float(linear_to_srgb(2 * srgb_to_linear(128 / 255))) * 255)
    assert np.all(np.abs(doubled.astype(int) - expected) <= 1)
    assert tuple(
        ColorCorrection([1, 1, 1], SWAP_RB).apply(np.full((1, 1, 3), (200, 10, 60), np.uint8))[0, 0]
    ) == (
        60,
        10,
        200,
    )


def test_bad_sections_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="3 positive gains"):
        ColorCorrection([1, 0, 1], np.eye(3))
    path = tmp_path / "cal.json"
    update_calibration(path, turntable={"steps_per_turn": 4096})
    with pytest.raises(ConfigError, match=r"cal\.json.*no 'color' section; run `edge calibrate color`"):
        ColorCorrection.from_calibration(path)


def test_pipeline_corrects_frames_before_recognition(tmp_path: Path, demo_library: Path) -> None:
    update_calibration(tmp_path / "cal.json", color={"white_balance": [1, 1, 1], "matrix": SWAP_RB})
    plain = load_edge_config(write_sim_setup(tmp_path / "plain", demo_library))
    config = write_sim_setup(tmp_path, demo_library, color_correction=True, calibration="cal.json")
    results = []
    for cfg in (plain, load_edge_config(config)):
        pipe = Pipeline.from_config(cfg)
        try:
            with pipe.camera:
                camera = pipe.camera
                camera.next_part()  # type: ignore[union-attr]
                results.append(pipe.process([camera.capture()]))  # type: ignore[union-attr]
        finally:
            pipe.close()
    assert results[1].objects == results[0].objects  # the segmenter saw the same, uncorrected frame
    before, after = results[0].crops[0].astype(int), results[1].crops[0].astype(int)
    assert before.shape == after.shape
    assert np.abs(after[..., ::-1] - before).max() <= 1  # red and blue swapped in what is recognised
    no_file = write_sim_setup(tmp_path / "nofile", demo_library, color_correction=True)
    with pytest.raises(ConfigError, match="color_correction is true but the config names no calibration"):
        Pipeline.from_config(load_edge_config(no_file))


def test_identity_correction_feeds_the_network_the_same_batch(tmp_path: Path, demo_library: Path) -> None:
    """Correcting only the crops is exact: re-cropping a crop around its own mask is the same square."""
    pipe = Pipeline.from_config(load_edge_config(write_sim_setup(tmp_path, demo_library)))
    try:
        with pipe.camera:
            camera: Any = pipe.camera
            camera.next_part()
            frames = [camera.capture() for _ in range(2)]
            plain = pipe.process(frames).decision
            pipe.color_correction = ColorCorrection([1, 1, 1], np.eye(3))
            same = pipe.process(frames).decision
    finally:
        pipe.close()
    assert (same.part_num, same.color_id) == (plain.part_num, plain.color_id)
    assert abs(same.confidence - plain.confidence) < 0.02


# --- drift correction -----------------------------------------------------------------------------

STAGE = (200, 60, 185)  # the sim rig's magenta disc
PART = (150, 120, 40)  # a yellowish part: its own colour must not move the gains
DRIFT = np.array([1.3, 0.9, 0.75])  # exposure and white balance since calibration, linear light


def drifted(image: np.ndarray, gains: Any = DRIFT) -> np.ndarray:
    """``image`` through a camera whose exposure/white balance changed by ``gains`` (linear light)."""
    return ColorCorrection(gains, np.eye(3)).apply(image)


def part_frame(noise: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 200x240 frame of the stage with a part and its contact shadow, and the part's mask."""
    rng = np.random.default_rng(seed)
    frame = np.empty((200, 240, 3), np.float64)
    frame[:] = STAGE
    frame[70:130, 90:160] = PART
    frame[130:134, 92:160] *= 0.5  # the shadow below the part: not part of the mask
    frame += rng.normal(0, noise, frame.shape)
    mask = np.zeros(frame.shape[:2], np.uint8)
    mask[70:130, 90:160] = 255
    return np.clip(np.round(frame), 0, 255).astype(np.uint8), mask


def test_drift_is_measured_on_the_stage_and_undone() -> None:
    from edge.preprocess import crop_to_mask

    frame, mask = part_frame()
    clean = crop_to_mask(frame, mask, 0.1)
    drift = DriftCorrection(ring_median(clean.image, clean.mask))
    assert drift.gains(clean.image, clean.mask) == pytest.approx([1, 1, 1], abs=0.02)
    seen = crop_to_mask(drifted(frame), mask, 0.1)
    gains = drift.gains(seen.image, seen.mask)
    assert gains == pytest.approx(1 / DRIFT, rel=0.03)
    fixed = IDENTITY.apply(seen.image, gains)
    part = clean.mask.astype(bool)
    # Part and stage are back to within a few levels of the un-drifted crop (noise is 3 levels).
    err = np.abs(np.median(fixed[part], axis=0) - np.median(clean.image[part], axis=0))
    assert err.max() <= 2.0
    before = np.abs(np.median(seen.image[part], axis=0) - np.median(clean.image[part], axis=0))
    assert before.max() > 10  # what the drift did to the part (red: 19 levels)
    # The same error on a whole colour correction: the gains are taken before the matrix.
    swap = ColorCorrection([1, 1, 1], SWAP_RB)
    assert (
        np.abs(swap.apply(seen.image, gains).astype(int) - swap.apply(clean.image).astype(int))[part].mean()
        < 2.5
    )


def test_drift_is_left_alone_when_it_cannot_be_measured() -> None:
    drift = DriftCorrection(STAGE)
    frame, mask = part_frame()
    # A crop that is all part: no stage around it.
    assert drift.gains(frame[70:130, 90:160], mask[70:130, 90:160]) is None
    # A clipped stage (the lamp or the exposure far too high) gives no trustworthy ratio.
    assert drift.gains(drifted(frame, [3, 3, 3]), mask) is None
    # Far-off gains are clipped to the sane range.
    dark = drift.gains(drifted(frame, [0.2, 0.2, 0.2]), mask)
    assert dark is not None and np.allclose(dark, 2.0)
    with pytest.raises(ConfigError, match="stage's colour at calibration"):
        DriftCorrection((255, 255, 255))


def test_pipeline_undoes_drift_before_recognition(tmp_path: Path, demo_library: Path) -> None:
    update_calibration(
        tmp_path / "cal.json", color={"white_balance": [1, 1, 1], "matrix": np.eye(3).tolist()}
    )
    config = write_sim_setup(tmp_path, demo_library, drift_correction=True, calibration="cal.json")
    with pytest.raises(ConfigError, match=r"no background_rgb.*run `edge calibrate color` again"):
        Pipeline.from_config(load_edge_config(config))
    pipe = Pipeline.from_config(load_edge_config(write_sim_setup(tmp_path / "plain", demo_library)))
    try:
        with pipe.camera:
            camera: Any = pipe.camera
            camera.next_part()
            frames = [camera.capture().image for _ in range(2)]
        clean = pipe.process(frames)
        assert pipe.last_drift == []  # not enabled: not measured
        stage = ring_median(clean.crops[0], pipe.segmenter.mask(clean.crops[0]))
        pipe.drift_correction = DriftCorrection(stage)
        gain = np.array([1.15, 1.0, 0.85])  # mild: the sim config's HSV range still keys the stage
        result = pipe.process([drifted(f, gain) for f in frames])
    finally:
        pipe.close()
    assert result.objects == clean.objects
    assert all(g is not None and g == pytest.approx(1 / gain, rel=0.05) for g in pipe.last_drift)
    for before, after in zip(clean.crops, result.crops, strict=True):
        assert before.shape == after.shape
        assert np.abs(np.median(after, axis=(0, 1)) - np.median(before, axis=(0, 1))).max() <= 3
