"""HSV keying on synthetic turntable frames, plus the shared segmenter machinery (base, none)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import Field

from edge.config import StrictModel, validate_config
from edge.errors import ConfigError, DataFileError, ImageError
from edge.segment import (
    SegmenterConfig,
    clean_mask,
    count_objects,
    create_segmenter,
    parse_segmenter_config,
    register_segmenter,
)
from edge.segment.hsv import HsvConfig, HsvSegmenter, HsvThresholds
from edge.segment.none import NoneSegmenter

BLUE = (40, 70, 200)  # OpenCV hue ~113
BLUE_RANGE = {"background_lower": [100, 80, 130], "background_upper": [130, 255, 255]}
YELLOW = (230, 200, 30)
H, W = 240, 320


def frame_with(background: tuple[int, int, int], noise: float = 6.0, seed: int = 0) -> np.ndarray:
    """A turntable-like frame: a flat colour with Gaussian sensor noise."""
    rng = np.random.default_rng(seed)
    base = np.broadcast_to(np.array(background, np.float32), (H, W, 3))
    return np.clip(base + rng.normal(0, noise, (H, W, 3)), 0, 255).astype(np.uint8)


def paint(frame: np.ndarray, shape: np.ndarray, colour: tuple[int, int, int], seed: int = 1) -> None:
    """Draw a part (a bool mask) in ``colour`` with its own noise."""
    rng = np.random.default_rng(seed)
    values = np.array(colour, np.float32) + rng.normal(0, 6.0, (int(shape.sum()), 3))
    frame[shape] = np.clip(values, 0, 255).astype(np.uint8)


def polygon(points: list[tuple[int, int]]) -> np.ndarray:
    out = np.zeros((H, W), np.uint8)
    cv2.fillPoly(out, [np.array(points, np.int32)], 1)
    return out.astype(bool)


def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    out = np.zeros((H, W), bool)
    out[y0:y1, x0:x1] = True
    return out


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    m = mask > 0
    return float((m & truth).sum() / (m | truth).sum())


def hsv(**kw: object) -> HsvSegmenter:
    seg = create_segmenter({"type": "hsv", **BLUE_RANGE, **kw})
    assert isinstance(seg, HsvSegmenter)
    return seg


# --- HSV keying ---


def test_hsv_keys_a_part_off_a_noisy_coloured_background() -> None:
    part = polygon([(100, 60), (220, 80), (200, 170), (120, 190), (90, 120)])
    frame = frame_with(BLUE)
    paint(frame, part, YELLOW)
    mask = hsv().mask(frame)
    assert mask.shape == (H, W) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    assert iou(mask, part) >= 0.95


def test_hsv_hue_range_wraps_around_red() -> None:
    red = (200, 20, 20)
    frame = frame_with(red, noise=8.0)
    part = box(70, 170, 100, 220)
    paint(frame, part, (40, 180, 60))
    hsv_img = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
    background = ~part
    # The noise puts red hues on both sides of 0/179: one side alone misses much of the background.
    one_side = HsvThresholds(lower=(0, 100, 80), upper=(10, 255, 255)).in_range(hsv_img)
    wrapped = HsvThresholds(lower=(170, 100, 80), upper=(10, 255, 255)).in_range(hsv_img)
    assert (one_side[background] > 0).mean() < 0.9
    assert (wrapped[background] > 0).mean() > 0.99
    seg = create_segmenter(
        {"type": "hsv", "background_lower": [170, 100, 80], "background_upper": [10, 255, 255]}
    )
    assert iou(seg.mask(frame), part) >= 0.95


def test_largest_component_kept_specks_removed_and_two_parts_counted() -> None:
    big, small = box(40, 120, 40, 120), box(150, 190, 200, 250)
    frame = frame_with(BLUE)
    paint(frame, big | small, YELLOW)
    for y, x in [(20, 200), (200, 30), (100, 280), (220, 150)]:  # 2x2 specks of part colour
        paint(frame, box(y, y + 2, x, x + 2), YELLOW, seed=y)
    seg = hsv()
    mask, count = seg.mask_and_count(frame)
    assert count == 2
    assert iou(mask, big) >= 0.95
    assert (mask[small] == 0).all()
    every = hsv(keep="all").mask(frame)
    assert iou(every, big | small) >= 0.95
    assert count_objects(every, 200) == 2
    assert (every[~(big | small)] == 0).mean() > 0.999  # the specks are gone


def test_small_holes_filled_large_holes_kept() -> None:
    part = box(40, 200, 40, 260)
    small_hole, big_hole = box(60, 68, 60, 68), box(100, 150, 150, 200)
    frame = frame_with(BLUE)
    paint(frame, part & ~small_hole & ~big_hole, YELLOW)
    mask = hsv(fill_holes_px=300).mask(frame)
    assert (mask[small_hole] == 255).all()
    assert (mask[big_hole] == 0).mean() > 0.95
    unfilled = hsv(fill_holes_px=0).mask(frame)
    assert (unfilled[small_hole] == 0).mean() > 0.5


def test_shadow_range_removes_the_parts_shadow() -> None:
    part, shadow = box(60, 160, 80, 180), box(80, 180, 180, 230)
    frame = frame_with(BLUE)
    paint(frame, shadow, (15, 25, 80), seed=3)  # same hue, darker
    paint(frame, part, YELLOW)
    assert iou(hsv().mask(frame), part) < 0.8  # without a shadow range the shadow is "part"
    masked = hsv(shadow_lower=[100, 80, 40], shadow_upper=[130, 255, 129]).mask(frame)
    assert iou(masked, part) >= 0.95


def test_thresholds_from_calibration_data_and_file(tmp_path: Path) -> None:
    part = box(60, 160, 80, 180)
    frame = frame_with(BLUE)
    paint(frame, part, YELLOW)
    section = {"lower": [100, 80, 130], "upper": [130, 255, 255]}
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"background_hsv": section, "other": 1}))
    assert HsvThresholds.load(path) == HsvThresholds(lower=(100, 80, 130), upper=(130, 255, 255))
    expected = hsv().mask(frame)
    for calibration in (path, str(path), {"background_hsv": section}):
        seg = create_segmenter({"type": "hsv", "calibration": True}, calibration=calibration)
        assert np.array_equal(seg.mask(frame), expected)


def test_calibration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no calibration data was given"):
        create_segmenter({"type": "hsv", "calibration": True})
    with pytest.raises(ConfigError, match="no 'background_hsv' section"):
        create_segmenter(
            {"type": "hsv", "calibration": True}, calibration={"turntable": {"steps_per_turn": 4096}}
        )
    with pytest.raises(ConfigError, match=r"lower\[0\].*200"):
        HsvThresholds.from_calibration({"background_hsv": {"lower": [200, 0, 0], "upper": [10, 255, 255]}})
    missing = tmp_path / "nope.json"
    with pytest.raises(DataFileError, match=r"nope\.json.*run the rig calibration"):
        HsvThresholds.load(missing)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"calibration": True, **BLUE_RANGE}, "use one or the other"),
        ({"background_lower": [100, 80, 130]}, "set both background_lower and background_upper"),
        ({**BLUE_RANGE, "shadow_lower": [0, 0, 0]}, "shadow_lower and shadow_upper"),
        ({"background_lower": [100, 200, 130], "background_upper": [130, 100, 255]}, "lower saturation"),
        ({**BLUE_RANGE, "blur": 3}, "unknown key"),
        ({"background_lower": [180, 0, 0], "background_upper": [10, 255, 255]}, "less than or equal to 179"),
    ],
)
def test_hsv_config_errors(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_segmenter_config({"type": "hsv", **settings})


# --- the shared machinery ---


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((10, 10, 3), np.float32), "must be uint8"),
        (np.zeros((10, 10), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((10, 10, 4), np.uint8), "RGBA"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_bad_frames_raise_image_error(frame: object, message: str) -> None:
    for seg in (hsv(), create_segmenter({"type": "none"})):
        with pytest.raises(ImageError, match=message):
            seg.mask(frame)  # type: ignore[arg-type]


def test_none_backend_masks_the_whole_frame() -> None:
    with create_segmenter({"type": "none"}) as seg:
        assert isinstance(seg, NoneSegmenter)
        mask, count = seg.mask_and_count(frame_with(BLUE)[:50, :70])
        assert seg.mask_count_box(frame_with(BLUE)[:50, :70])[2] == (0, 0, 70, 50)
    assert mask.shape == (50, 70) and (mask == 255).all() and count == 1


def test_clean_mask_and_count_objects() -> None:
    raw = np.zeros((100, 100), np.uint8)
    cv2.circle(raw, (30, 30), 15, 255, -1)
    cv2.circle(raw, (75, 70), 10, 1, -1)  # any non-zero value counts as part
    raw[90, 5] = raw[5, 90] = 255  # single-pixel specks
    assert count_objects(raw) == 4
    assert count_objects(raw, min_area_px=50) == 2
    assert count_objects(np.zeros((5, 5), np.uint8)) == 0
    opened = clean_mask(raw, open_px=3, keep="all")
    assert count_objects(opened) == 2 and set(np.unique(opened)) == {0, 255}
    largest = clean_mask(raw, keep="largest", min_area_px=10)
    assert count_objects(largest) == 1 and largest[30, 30] == 255 and largest[70, 75] == 0
    assert not clean_mask(raw, keep="all", min_area_px=10_000).any()
    edge = np.zeros((40, 40), np.uint8)
    edge[10:30, 2:20] = 255
    closed = clean_mask(edge, close_px=9, keep="all")
    assert not closed[:, :2].any()  # closing does not glue the part to the border
    with pytest.raises(ImageError, match="mask must be an"):
        clean_mask(np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="keep must be"):
        clean_mask(raw, keep="biggest")  # type: ignore[arg-type]


def test_config_union_and_registry() -> None:
    class Rig(StrictModel):
        segmenter: SegmenterConfig = Field(description="background removal")

    rig = validate_config(Rig, {"segmenter": {"type": "hsv", **BLUE_RANGE}})
    assert isinstance(rig.segmenter, HsvConfig)
    assert isinstance(create_segmenter(rig.segmenter), HsvSegmenter)
    with pytest.raises(ConfigError, match="does not match any of the expected tags"):
        validate_config(Rig, {"segmenter": {"type": "grabcut"}})
    with pytest.raises(ConfigError, match="unknown; use one of: bgdiff, hsv, mobileseg, none, u2net"):
        create_segmenter({"type": "grabcut"})
    with pytest.raises(TypeError, match="Literal"):
        register_segmenter("other")(HsvSegmenter)


def test_backends_are_imported_only_when_selected() -> None:
    code = (
        "import sys, numpy as np\n"
        "from edge.segment import create_segmenter\n"
        "create_segmenter({'type': 'none'}).mask(np.zeros((4, 4, 3), np.uint8))\n"
        "print(sorted(m for m in sys.modules if m.startswith('edge.segment') or m == 'onnxruntime'))\n"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "['edge.segment', 'edge.segment.base', 'edge.segment.none']"
