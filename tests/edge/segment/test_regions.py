"""Coarse-to-fine HSV masks: the masks and counts of keying the whole frame, for a fraction of the work."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.segment import create_segmenter
from edge.segment.hsv import HsvSegmenter
from edge.segment.regions import coarse_to_fine
from tests.edge.segment.test_hsv import BLUE, BLUE_RANGE, YELLOW, H, W, frame_with, paint

COLOURS = [YELLOW, (200, 30, 30), (30, 160, 40), (20, 20, 20), (240, 240, 240), (120, 60, 20)]


def hsv(**kw: object) -> HsvSegmenter:
    seg = create_segmenter({"type": "hsv", **BLUE_RANGE, **kw})
    assert isinstance(seg, HsvSegmenter)
    return seg


def scene(seed: int) -> np.ndarray:
    """A noisy blue turntable with 0-3 parts: polygons anywhere (at the edges too), some with holes
    or a thin antenna, and specks of part colour."""
    rng = np.random.default_rng(seed)
    frame = frame_with(BLUE, seed=seed)
    for i in range(int(rng.integers(0, 4))):
        shape = np.zeros((H, W), np.uint8)
        cx, cy = int(rng.integers(-10, W + 10)), int(rng.integers(-10, H + 10))
        radius = int(rng.integers(6, 45))
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 9))))
        points = [(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles]
        cv2.fillPoly(shape, [np.array(points, np.int32)], 1)
        if rng.random() < 0.3:  # a hole, small or large
            cv2.circle(shape, (cx, cy), int(rng.integers(1, max(2, radius // 2))), 0, -1)
        if rng.random() < 0.3:  # an antenna thinner than the shrink factor, leaving the part
            end = (cx + int(rng.integers(-90, 90)), cy + int(rng.integers(-90, 90)))
            cv2.line(shape, (cx, cy), end, 1, int(rng.integers(1, 3)))
        paint(frame, shape.astype(bool), COLOURS[int(rng.integers(len(COLOURS)))], seed=seed * 10 + i)
    for _ in range(int(rng.integers(0, 4))):  # specks, 1-4 px across
        y, x, size = int(rng.integers(0, H - 4)), int(rng.integers(0, W - 4)), int(rng.integers(1, 5))
        frame[y : y + size, x : x + size] = YELLOW
    return frame


@pytest.mark.parametrize("keep", ["largest", "all"])
@pytest.mark.parametrize("scale", [2, 4, 6])
def test_same_masks_and_counts_as_the_whole_frame(keep: str, scale: int) -> None:
    whole = hsv(search_scale=1, keep=keep, min_area_px=60, fill_holes_px=300)
    coarse = hsv(search_scale=scale, keep=keep, min_area_px=60, fill_holes_px=300)
    for seed in range(40):
        frame = scene(seed)
        want_mask, want_count, want_box = whole.mask_count_box(frame)
        got_mask, got_count, got_box = coarse.mask_count_box(frame)
        assert got_count == want_count, seed
        np.testing.assert_array_equal(got_mask, want_mask, err_msg=f"scene {seed}")
        # Both paths hand over the box around the mask's pixels, as crop_to_mask would find it.
        assert got_box == want_box == bounding_box(want_mask), seed


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    x, y, w, h = cv2.boundingRect(mask)
    return (x, y, x + w, y + h) if w else None


def _args(seg: HsvSegmenter, scale: int = 4) -> tuple:
    return (seg._key, seg._raw_mask, seg.hsv_config, scale, seg._blur // 2)


def test_only_the_box_around_the_part_is_masked_at_full_size() -> None:
    frame = frame_with(BLUE)
    part = np.zeros((H, W), bool)
    part[100:140, 150:200] = True
    paint(frame, part, YELLOW)
    seg = hsv()
    keyed: list[tuple[int, ...]] = []

    def raw_mask(image: np.ndarray) -> np.ndarray:
        keyed.append(image.shape)
        return seg._raw_mask(image)

    found = coarse_to_fine(frame, seg._key, raw_mask, seg.hsv_config, 4, 1)
    assert found is not None
    np.testing.assert_array_equal(found[0], hsv(search_scale=1).mask(frame))
    assert found[1] == 1 and found[2] == bounding_box(found[0])
    # The full-resolution key saw the part's box grown by the clean-up's reach, not the frame.
    ((h, w, _),) = keyed
    assert 40 < h < 80 and 50 < w < 90


def test_an_empty_turntable_is_settled_on_the_shrunk_frame() -> None:
    seg = hsv()
    found = coarse_to_fine(frame_with(BLUE), *_args(seg))
    assert found is not None
    mask, count, box = found
    assert count == 0 and box is None and mask.shape == (H, W) and not mask.any()


def test_a_region_leaving_the_box_sends_the_frame_to_the_whole_frame_path() -> None:
    frame = frame_with(BLUE)
    shape = np.zeros((H, W), np.uint8)
    cv2.rectangle(shape, (40, 40), (80, 80), 1, -1)
    cv2.line(shape, (80, 60), (300, 200), 1, 2)  # two pixels wide: lost when shrunk 4 times
    paint(frame, shape.astype(bool), YELLOW)
    seg = hsv(open_px=0, min_area_px=60)
    assert coarse_to_fine(frame, *_args(seg)) is None
    np.testing.assert_array_equal(seg.mask(frame), hsv(open_px=0, min_area_px=60, search_scale=1).mask(frame))
    assert seg.mask(frame)[200, 299] == 255  # the antenna's far end is part of the mask


def test_small_frames_and_crowded_frames_use_the_whole_frame() -> None:
    seg = hsv()
    assert coarse_to_fine(frame_with(BLUE)[:40, :300], *_args(seg)) is None  # 10 shrunk rows
    crowded = frame_with(BLUE)
    crowded[10:230, 10:310] = YELLOW  # the part's box is most of the frame
    assert coarse_to_fine(crowded, *_args(seg)) is None
    mask, count = seg.mask_and_count(crowded)
    assert count == 1 and mask[100, 100] == 255


def test_search_scale_is_validated() -> None:
    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match="search_scale"):
        hsv(search_scale=0)
    with pytest.raises(ConfigError, match="search_scale"):
        hsv(search_scale=9)
