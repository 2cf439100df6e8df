"""Background-difference segmenter: fitted from frames of an empty stage, robust to light drift."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import ConfigError, DataFileError, ImageError
from edge.segment import create_segmenter
from edge.segment.bgdiff import BackgroundModel, BgDiffSegmenter, fit_background_files

H, W = 120, 160


def stage(rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """A white belt under uneven light (bright centre, dim corners), with sensor noise."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    light = 1.0 - 0.2 * (((ys - H / 2) / H) ** 2 + ((xs - W / 2) / W) ** 2) * 4  # corners at 60 %
    base = np.array([235, 232, 228], np.float32) * light[..., None] * gain
    return np.clip(base + rng.normal(0, 2.0, base.shape), 0, 255).astype(np.uint8)


def with_part(frame: np.ndarray, rgb: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    out = frame.copy()
    truth = np.zeros((H, W), bool)
    truth[40:80, 60:110] = True
    out[truth] = rgb
    return out, truth


def fits(mask: np.ndarray, truth: np.ndarray, grow: int = 3) -> bool:
    """The mask covers the part and stays within ``grow`` pixels of it (the pre-blur widens edges)."""
    m = mask > 0
    near = cv2.dilate(truth.astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0
    return bool((m & truth).sum() >= 0.98 * truth.sum() and not (m & ~near).any())


@pytest.fixture
def model() -> BackgroundModel:
    rng = np.random.default_rng(0)
    return BackgroundModel.fit([stage(rng) for _ in range(3)])


def segmenter(model: BackgroundModel, **settings: object) -> BgDiffSegmenter:
    from edge.segment.base import parse_segmenter_config

    cfg = parse_segmenter_config({"type": "bgdiff", "background_rgb": [0, 0, 0], **settings})
    return BgDiffSegmenter(cfg, model)  # type: ignore[arg-type]


def test_fit_measures_the_noise(model: BackgroundModel) -> None:
    # Noise of 2 grey levels on ~230 is about 0.009 in log units.
    assert model.frames == 3
    assert np.all((model.sigma > 0.005) & (model.sigma < 0.015))


def test_a_light_grey_part_on_a_white_belt_is_found_through_an_exposure_change(
    model: BackgroundModel,
) -> None:
    rng = np.random.default_rng(1)
    frame, truth = with_part(stage(rng, gain=0.75), (150, 150, 150))  # 25 % darker exposure
    mask = segmenter(model).mask(frame)
    assert fits(mask, truth)


def test_without_drift_removal_the_exposure_change_floods_the_frame(model: BackgroundModel) -> None:
    rng = np.random.default_rng(1)
    frame, _ = with_part(stage(rng, gain=0.75), (150, 150, 150))
    raw = segmenter(model, remove_drift=False, keep="all", min_area_px=0)._raw_mask(frame)
    assert (raw > 0).mean() > 0.9  # everything differs by 25 %: the drift removal is what keys it


def test_a_camera_shift_at_the_backgrounds_own_edges_stays_background() -> None:
    rng = np.random.default_rng(2)
    empty = []
    for _ in range(3):
        f = stage(rng)
        f[:, :20] = 60  # a dark rail along the belt
        empty.append(f)
    model = BackgroundModel.fit(empty)
    shifted = np.concatenate([empty[0][:, :1], empty[0][:, :-1]], axis=1)  # the camera moved a pixel
    assert not segmenter(model).mask(shifted).any()
    assert segmenter(model, registration_px=0, min_area_px=0, open_px=0).mask(shifted).any()


def test_constant_background_keys_a_black_cloth() -> None:
    frame = np.zeros((H, W, 3), np.uint8)
    frame, truth = with_part(frame, (200, 30, 20))
    seg = create_segmenter({"type": "bgdiff", "background_rgb": [0, 0, 0]})
    assert fits(seg.mask(frame), truth)


def test_save_load_round_trip_and_bad_files(tmp_path: Path, model: BackgroundModel) -> None:
    path = tmp_path / "bg.npz"
    model.save(path)
    loaded = BackgroundModel.load(path)
    assert np.abs(loaded.image - model.image).max() <= 1 / 32
    assert np.allclose(loaded.sigma, model.sigma) and loaded.frames == 3
    with np.load(path, allow_pickle=False) as data:  # plain arrays, nothing pickled
        assert set(data.files) == {"format_version", "image", "sigma", "frames"}
    with pytest.raises(DataFileError, match="does not exist"):
        BackgroundModel.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataFileError, match="not a readable model"):
        BackgroundModel.load(tmp_path / "junk.npz")


def test_calibration_file_names_the_model(tmp_path: Path, model: BackgroundModel) -> None:
    model.save(tmp_path / "background.npz")
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({"background_model": "background.npz"}))
    seg = create_segmenter({"type": "bgdiff", "calibration": True}, calibration=calibration)
    frame, truth = with_part(stage(np.random.default_rng(3)), (40, 60, 200))
    assert fits(seg.mask(frame), truth)
    calibration.write_text(json.dumps({"background_hsv": {"lower": [0, 0, 0], "upper": [9, 9, 9]}}))
    with pytest.raises(ConfigError, match="background_model"):
        create_segmenter({"type": "bgdiff", "calibration": True}, calibration=calibration)


def test_config_needs_exactly_one_background() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        create_segmenter({"type": "bgdiff"})
    with pytest.raises(ConfigError, match="exactly one"):
        create_segmenter({"type": "bgdiff", "background_rgb": [0, 0, 0], "background": "x.npz"})


def test_frames_of_another_aspect_are_refused(model: BackgroundModel) -> None:
    with pytest.raises(ImageError, match="another aspect"):
        segmenter(model).mask(np.zeros((100, 100, 3), np.uint8))
    # The same aspect at another size is fine (a preview mode).
    small = cv2.resize(stage(np.random.default_rng(4)), (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    assert not segmenter(model).mask(small).any()


def test_fit_from_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"empty{i}.png")
        cv2.imwrite(str(paths[-1]), stage(rng))
    assert fit_background_files(paths).frames == 2
    with pytest.raises(DataFileError, match="no frames"):
        fit_background_files([])
    with pytest.raises(ImageError, match="differ in size"):
        BackgroundModel.fit([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)])
