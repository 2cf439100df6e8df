"""The one image preprocessing shared by the trainer and the Pi (a single source of truth).

A frame and the part's mask become the network input: crop a square around the mask (grown by a
margin, padded where it leaves the frame), optionally paint the background a flat colour, resize,
scale and normalise, in the layout the manifest's :class:`~edge.manifest_entries.InputSpec` names.
Training and inference both call :func:`prepare`, so a model never sees differently prepared images.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Literal, NamedTuple

import cv2
import numpy as np

from edge.errors import ImageError
from edge.manifest_entries import InputSpec

log = logging.getLogger(__name__)

OnEmpty = Literal["centre", "error"]
#: Largest side of a crop in pixels. A square around a part in a long thin image (1 x 16384) would
#: otherwise be padded at full resolution (16384 x 16384, 800 MB) before being resized to the
#: network's input; above this side the visible part is shrunk first. Crops of frames up to 2048 px
#: are not affected (bit-identical).
MAX_CROP_SIDE = 2048


class Crop(NamedTuple):
    """A square cut around a mask.

    Attributes:
        image: (S, S, 3) uint8 RGB crop.
        mask: (S, S) bool, True on the part (False on padding).
        box: (x0, y0, x1, y1) of the square in source pixel coordinates; it may extend past the
            frame, where the crop is padded.
        empty: True when the mask was empty and the crop is the frame's centre square instead.
    """

    image: np.ndarray
    mask: np.ndarray
    box: tuple[int, int, int, int]
    empty: bool


def check_image(image: np.ndarray, what: str = "image") -> None:
    """Raise :class:`ImageError` unless ``image`` is a non-empty (H, W, 3) uint8 RGB array."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{what} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(
            f"{what} must be uint8 RGB (0..255), got dtype {image.dtype}; convert with .astype(np.uint8)"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"{what} must have shape (H, W, 3), got {image.shape!r}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"{what} is empty (shape {image.shape!r})")


def _as_mask(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The mask as uint8 (H, W), non-zero on the part (a view, not a copy); None stays None (the
    whole frame is the part)."""
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray):
        raise ImageError(f"mask must be a numpy array or None, got {type(mask).__name__}")
    if mask.dtype not in (np.uint8, np.bool_):
        raise ImageError(f"mask must be uint8 (0/255) or bool, got dtype {mask.dtype}")
    if mask.shape != shape:
        raise ImageError(
            f"mask shape {mask.shape!r} does not match the image's {shape!r}; pass the frame's own mask"
        )
    return mask.view(np.uint8)


def _square_around(box: tuple[int, int, int, int], margin: float) -> tuple[int, int, int]:
    """(x0, y0, side) of the square centred on ``box`` whose side is its longer side grown by margin."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    side = int(np.ceil(max(w, h) * (1.0 + 2.0 * margin)))
    # Integer split of the slack keeps the box inside the square whatever the rounding.
    return x0 - (side - w + 1) // 2, y0 - (side - h + 1) // 2, side


def crop_to_mask(
    image_rgb: np.ndarray,
    mask: np.ndarray | None,
    margin: float,
    *,
    fill_rgb: tuple[int, int, int] | None = None,
    on_empty: OnEmpty = "centre",
    max_side: int | None = MAX_CROP_SIDE,
    box: tuple[int, int, int, int] | None = None,
) -> Crop:
    """Cut the square around the mask's bounding box grown by ``margin`` (fraction of its longer side).

    Where the square leaves the frame it is padded with ``fill_rgb``, or by replicating the frame's
    edge pixels when ``fill_rgb`` is None. An empty mask gives the frame's centre square with
    ``empty=True`` (``on_empty="centre"``) or raises :class:`ImageError` (``on_empty="error"``).
    A square wider than ``max_side`` comes out ``max_side`` wide (the visible part shrunk with
    INTER_AREA before padding, so memory stays bounded); ``box`` is in source pixels either way.

    ``box``: the (x0, y0, x1, y1) box around the mask's non-zero pixels when the caller already has
    it (a segmenter finds it on the way, :meth:`~edge.segment.Segmenter.mask_count_box`), so the
    whole mask is not searched again; it is trusted, not checked.
    """
    check_image(image_rgb)
    if not 0.0 <= margin <= 2.0:
        raise ImageError(f"crop margin {margin!r} must be within 0..2 (a fraction of the part's size)")
    height, width = image_rgb.shape[:2]
    part = _as_mask(mask, (height, width))
    # The bounding box of the non-zero pixels, found by OpenCV without a bool copy of the frame.
    if box is not None:
        bx, by, bw, bh = box[0], box[1], box[2] - box[0], box[3] - box[1]
    elif part is None:
        bx, by, bw, bh = 0, 0, width, height
    else:
        bx, by, bw, bh = cv2.boundingRect(np.ascontiguousarray(part))
    if bw == 0:
        if on_empty == "error":
            raise ImageError("mask is empty: no part pixels to crop around; check the segmenter's output")
        side = min(height, width)
        sx, sy, empty = (width - side) // 2, (height - side) // 2, True
    else:
        sx, sy, side = _square_around((bx, by, bx + bw, by + bh), margin)
        empty = False

    # The part of the square inside the frame, then padding for the rest.
    cx0, cy0 = max(sx, 0), max(sy, 0)
    cx1, cy1 = min(sx + side, width), min(sy + side, height)
    pads = (cy0 - sy, sy + side - cy1, cx0 - sx, sx + side - cx1)  # top, bottom, left, right
    img: np.ndarray = image_rgb[cy0:cy1, cx0:cx1]
    sub: np.ndarray = (
        np.ones((cy1 - cy0, cx1 - cx0), np.uint8)
        if part is None
        else (part[cy0:cy1, cx0:cx1] != 0).view(np.uint8)
    )
    if max_side is not None and side > max_side:
        img, sub, pads = _shrink(img, sub, pads, max_side / side, max_side)
    if any(pads):
        if fill_rgb is None:
            img = cv2.copyMakeBorder(img, *pads, cv2.BORDER_REPLICATE)
        else:
            img = cv2.copyMakeBorder(img, *pads, cv2.BORDER_CONSTANT, value=tuple(int(c) for c in fill_rgb))
        sub = cv2.copyMakeBorder(sub, *pads, cv2.BORDER_CONSTANT, value=0)
    return Crop(np.ascontiguousarray(img), sub.astype(bool), (sx, sy, sx + side, sy + side), empty)


def leaves_frame(crop: Crop, shape: tuple[int, ...]) -> bool:
    """Whether ``crop``'s square reaches past a frame of ``shape`` ((H, W, ...)): where it does,
    :func:`crop_to_mask` padded it (a part at the frame's edge, seen from close)."""
    x0, y0, x1, y1 = crop.box
    return x0 < 0 or y0 < 0 or x1 > shape[1] or y1 > shape[0]


def _shrink(
    img: np.ndarray, sub: np.ndarray, pads: tuple[int, int, int, int], scale: float, side: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """The visible part and its mask scaled by ``scale``, and pads that make a ``side`` square."""
    h, w = img.shape[:2]
    nh, nw = (max(1, min(side, round(n * scale))) for n in (h, w))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    sub = cv2.resize(sub, (nw, nh), interpolation=cv2.INTER_NEAREST)
    top, left = min(round(pads[0] * scale), side - nh), min(round(pads[2] * scale), side - nw)
    return img, sub, (top, side - nh - top, left, side - nw - left)


def prepare(
    image_rgb: np.ndarray, mask: np.ndarray | None, spec: InputSpec, *, on_empty: OnEmpty = "centre"
) -> np.ndarray:
    """One network input from a frame and its part mask: float32 (C, H, W) or (H, W, C) per ``spec.layout``.

    Steps: square crop around the mask with ``spec.crop_margin``; in ``background="fill"`` mode every
    non-part pixel (and the padding) becomes ``spec.fill_rgb``; resize to ``spec.size`` (INTER_AREA
    when shrinking, INTER_LINEAR when enlarging); ``(pixel * scale - mean) / std`` per channel.
    ``mask`` None means the whole frame is the part.
    """
    return prepare_crop(crop_for(image_rgb, mask, spec, on_empty=on_empty), spec)


def crop_for(
    image_rgb: np.ndarray,
    mask: np.ndarray | None,
    spec: InputSpec,
    *,
    on_empty: OnEmpty = "centre",
    box: tuple[int, int, int, int] | None = None,
) -> Crop:
    """The crop :func:`prepare` starts from (padded with ``spec.fill_rgb`` in ``fill`` mode);
    ``box`` as for :func:`crop_to_mask`."""
    fill = spec.background == "fill"
    return crop_to_mask(
        image_rgb,
        mask,
        spec.crop_margin,
        fill_rgb=spec.fill_rgb if fill else None,
        on_empty=on_empty,
        box=box,
    )


def prepare_crop(crop: Crop, spec: InputSpec) -> np.ndarray:
    """The rest of :func:`prepare` for a crop from :func:`crop_for`: fill, resize and normalise."""
    img: np.ndarray = crop.image
    if crop.empty:
        log.warning("empty part mask: using the frame's centre square, background kept")
    elif spec.background == "fill":
        img = np.where(crop.mask[..., None], img, np.asarray(spec.fill_rgb, np.uint8))
    out_h, out_w = spec.size
    side = img.shape[0]
    if (side, side) != (out_h, out_w):
        shrinking = side * side >= out_h * out_w
        img = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    # Every uint8 value's normalised float per channel, looked up: the same float32 operations as
    # (x * scale - mean) / std on the image, so the same bits, for a fifth of the cost.
    planes, pixels = _normalise_tables(float(spec.scale), tuple(spec.mean), tuple(spec.std))
    if spec.layout == "NHWC":
        return np.ascontiguousarray(cv2.LUT(img, pixels), dtype=np.float32)
    x = np.empty((3, out_h, out_w), np.float32)
    for c, channel in enumerate(cv2.split(img)):
        plane = x[c]
        if cv2.LUT(channel, planes[c], dst=plane) is not plane:  # OpenCV wrote elsewhere
            plane[...] = cv2.LUT(channel, planes[c])
    return x


@functools.lru_cache(maxsize=8)
def _normalise_tables(
    scale: float, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[list[np.ndarray], np.ndarray]:
    """``(v * scale - mean[c]) / std[c]`` in float32 for each uint8 value v and channel c, as
    OpenCV look-up tables: one (1, 256) per channel, and one (1, 256, 3) for whole pixels."""
    values = np.arange(256, dtype=np.float32)[:, None]
    table = (values * np.float32(scale) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    table = table.astype(np.float32, copy=False)
    planes = [np.ascontiguousarray(table[:, c].reshape(1, 256)) for c in range(3)]
    return planes, np.ascontiguousarray(table.reshape(1, 256, 3))


def prepare_batch(
    items: Sequence[tuple[np.ndarray, np.ndarray | None]], spec: InputSpec, *, on_empty: OnEmpty = "centre"
) -> np.ndarray:
    """:func:`prepare` each (image, mask) pair and stack them: float32 (N, C, H, W) or (N, H, W, C)."""
    if len(items) == 0:
        raise ImageError("prepare_batch got no (image, mask) pairs; pass at least one")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise ImageError(f"batch item {i} must be an (image, mask) pair, got {type(item).__name__}")
        try:
            out.append(prepare(item[0], item[1], spec, on_empty=on_empty))
        except ImageError as exc:
            raise ImageError(f"batch item {i}: {exc}") from None
    return np.stack(out)
