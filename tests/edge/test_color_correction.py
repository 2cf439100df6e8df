"""Colour correction at run time: the transform, the calibration section, and the pipeline applying it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.calibration_file import update_calibration
from edge.color_correction import ColorCorrection, linear_to_srgb, srgb_to_linear
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
