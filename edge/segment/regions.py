"""Coarse-to-fine masks for pixel-local backends: find the regions on a shrunk frame, mask them at full size.

A colour key decides each pixel from a small neighbourhood, so most of a frame's cost is spent on
background far from any part. :func:`coarse_to_fine` keys a copy of the frame shrunk ``scale``
times (one sample per block), finds its regions, then runs the backend's full-resolution key and the
shared clean-up (:func:`~edge.segment.base.clean_mask`) only on the box around them, grown by the
clean-up's reach so the pixels of every region found there come out as they would on the whole
frame. When a region found at full size reaches the edge of that box (it continues outside), or
the box is most of the frame, it returns None and the caller masks the whole frame instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from edge.segment.base import Box, MaskCleanup, fill_small_holes, keep_regions, open_close

#: Frames whose shrunk copy would be smaller than this (either side) are masked whole.
MIN_COARSE_SIDE = 16
#: More outer contours than this on the shrunk frame are labelled in one call instead.
MAX_CONTOURS = 32
#: A box covering more than this share of the frame is not worth cutting out.
MAX_BOX_SHARE = 0.5


def reach_px(cleanup: MaskCleanup, context_px: int) -> int:
    """How far (pixels) a frame pixel can sway the cleaned mask: the backend's own neighbourhood
    (``context_px``, e.g. a blur's radius) plus opening's and closing's erosion and dilation."""
    radius = (cleanup.open_px // 2 if cleanup.open_px > 1 else 0) + (
        cleanup.close_px // 2 if cleanup.close_px > 1 else 0
    )
    return context_px + 2 * radius


def coarse_to_fine(
    frame: np.ndarray,
    key: Callable[[np.ndarray], np.ndarray],
    raw_mask: Callable[[np.ndarray], np.ndarray],
    cleanup: MaskCleanup,
    scale: int,
    context_px: int,
) -> tuple[np.ndarray, int, Box | None] | None:
    """The cleaned mask, region count and box of ``frame`` (as :func:`clean_count_box` gives them
    for the whole frame), or None.

    Args:
        frame: validated (H, W, 3) uint8 RGB frame.
        key: the backend's per-pixel 0/255 decision, used on the shrunk frame (without the
            backend's blur: it only has to find the regions).
        raw_mask: the backend's full-resolution 0/255 mask, used on the box around the regions.
        cleanup: the backend's clean-up settings.
        scale: how many times the frame is shrunk to find the regions (2..8).
        context_px: how far the backend's ``raw_mask`` looks around a pixel (a blur's radius).

    A region that the shrunk frame's samples miss (thinner than about ``scale`` pixels) and that
    lies apart from the regions found is not seen: neither masked nor counted.
    """
    height, width = frame.shape[:2]
    sh, sw = height // scale, width // scale
    if sh < MIN_COARSE_SIDE or sw < MIN_COARSE_SIDE:
        return None
    # One pixel per block: an eighth of INTER_AREA's cost for a quarter (OpenCV's area path is fast
    # only for halving). A region found this way is masked at full size; noise specks stay under
    # the area limit, and a region that the sampling cuts short is seen whole in the box.
    small = cv2.resize(frame[: sh * scale, : sw * scale], (sw, sh), interpolation=cv2.INTER_NEAREST)
    found = _coarse_boxes(key(small), cleanup.min_area_px / (2 * scale * scale))
    if found.shape[0] == 0:
        return np.zeros((height, width), np.uint8), 0, None
    reach = reach_px(cleanup, context_px)
    # A region reaches up to a shrunk pixel past its shrunk box; `reach` more pixels keep it exact.
    grow = reach + 2 * scale
    x0 = max(int(found[:, 0].min()) * scale - grow, 0)
    y0 = max(int(found[:, 1].min()) * scale - grow, 0)
    x1 = min(int((found[:, 0] + found[:, 2]).max()) * scale + grow, width)
    y1 = min(int((found[:, 1] + found[:, 3]).max()) * scale + grow, height)
    if (x1 - x0) * (y1 - y0) > MAX_BOX_SHARE * height * width:
        return None
    raw = raw_mask(frame[y0:y1, x0:x1])
    binary = open_close((raw > 0).view(np.uint8), cleanup.open_px, cleanup.close_px)
    # Pixels within `reach` of a cut edge (not the frame's) may differ from the whole-frame mask: a
    # region there, or next to them, may continue outside the box, so the whole frame decides.
    # Boxes (x, y, w, h) inside these open bounds are clear of that margin.
    bw, bh = x1 - x0, y1 - y0
    bounds = (
        reach if x0 > 0 else -1,
        reach if y0 > 0 else -1,
        bw - reach if x1 < width else bw + 1,
        bh - reach if y1 < height else bh + 1,
    )
    out = np.zeros((height, width), np.uint8)
    n, labels = cv2.connectedComponents(binary, connectivity=8, ltype=_label_type(binary))
    if n <= 2:
        # No region or one (the usual frame): measured without OpenCV's labelling statistics,
        # which cost three times the labelling, and kept as it is.
        if n == 1:
            return out, 0, None
        bx, by, bw1, bh1 = box = cv2.boundingRect(binary)
        if not _clear(box, bounds):
            return None
        if cv2.countNonZero(binary) < max(cleanup.min_area_px, 1):
            return out, 0, None
        part = binary[by : by + bh1, bx : bx + bw1]
        if cleanup.fill_holes_px > 0:
            part = fill_small_holes(part, cleanup.fill_holes_px)
        out[y0 + by : y0 + by + bh1, x0 + bx : x0 + bx + bw1] = part * np.uint8(255)
        return out, 1, (x0 + bx, y0 + by, x0 + bx + bw1, y0 + by + bh1)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8, ltype=_label_type(binary))
    stats = stats[:n]
    if not all(_clear(box, bounds) for box in stats[1:, :4].tolist()):
        return None
    out[y0:y1, x0:x1], count, kept = keep_regions(
        labels, stats, cleanup.keep, cleanup.min_area_px, cleanup.fill_holes_px
    )
    if kept is None:
        return out, count, None
    return out, count, (x0 + kept[0], y0 + kept[1], x0 + kept[2], y0 + kept[3])


def _clear(box: Sequence[int], bounds: tuple[int, int, int, int]) -> bool:
    """Whether the box (x, y, w, h) lies strictly inside ``bounds`` (left, top, right, bottom)."""
    x, y, w, h = box
    left, top, right, bottom = bounds
    return x > left and y > top and x + w < right and y + h < bottom


def _label_type(binary: np.ndarray) -> int:
    """16-bit labels where they cannot overflow (OpenCV labels them twice as fast as 32-bit)."""
    return cv2.CV_16U if binary.size < 2**16 else cv2.CV_32S


def _coarse_boxes(small_mask: np.ndarray, min_area: float) -> np.ndarray:
    """(x, y, w, h) rows of the 8-connected regions of a shrunk 0/255 mask with at least
    ``min_area`` pixels (counted in each region's box, which is generous)."""
    # Outer contours are a fraction of labelling's cost with statistics; many of them (a noisy
    # frame) are labelled instead of looped over in Python.
    contours, _ = cv2.findContours(small_mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if len(contours) > MAX_CONTOURS:
        n, _, stats, _ = cv2.connectedComponentsWithStats(small_mask, connectivity=8, ltype=cv2.CV_32S)
        stats = stats[1:n]
        return stats[stats[:, cv2.CC_STAT_AREA] >= min_area, :4]
    boxes = [cv2.boundingRect(c) for c in contours]
    kept = [
        b for b in boxes if cv2.countNonZero(small_mask[b[1] : b[1] + b[3], b[0] : b[0] + b[2]]) >= min_area
    ]
    return np.array(kept, np.int64).reshape(-1, 4)
