"""The shared preprocessing: square crops around masks, exact normalised values, layouts, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.errors import ImageError
from edge.manifest_entries import InputSpec
from edge.preprocess import crop_to_mask, leaves_frame, prepare, prepare_batch

GREY = 128
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _red_square_on_grey(h: int = 120, w: int = 160, box: tuple[int, int, int, int] = (60, 40, 100, 80)):
    """Frame, mask and box (x0, y0, x1, y1) of a pure red square on a grey background."""
    image = np.full((h, w, 3), GREY, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = (255, 0, 0)
    mask[y0:y1, x0:x1] = 255
    return image, mask


@pytest.mark.parametrize("seed", range(6))
def test_crop_holds_the_whole_mask_and_is_square(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = 90, 130
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    # Boxes anywhere, including touching the frame's edges, so padding is exercised.
    x0, y0 = rng.integers(0, w - 5), rng.integers(0, h - 5)
    x1, y1 = rng.integers(x0 + 1, w + 1), rng.integers(y0 + 1, h + 1)
    mask[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) > 0.3
    mask[y0, x0] = mask[y1 - 1, x1 - 1] = True
    crop = crop_to_mask(image, mask, 0.15)
    side = crop.image.shape[0]
    assert crop.image.shape == (side, side, 3) and crop.mask.shape == (side, side)
    assert crop.mask.sum() == mask.sum()  # every part pixel made it into the crop
    bx0, by0, bx1, by1 = crop.box
    assert bx1 - bx0 == by1 - by0 == side
    assert bx0 <= x0 and by0 <= y0 and bx1 >= x1 and by1 >= y1
    assert side >= np.ceil(max(x1 - x0, y1 - y0) * 1.3)
    # Inside the frame the crop is the frame itself.
    ix0, iy0, ix1, iy1 = max(bx0, 0), max(by0, 0), min(bx1, w), min(by1, h)
    np.testing.assert_array_equal(
        crop.image[iy0 - by0 : iy1 - by0, ix0 - bx0 : ix1 - bx0], image[iy0:iy1, ix0:ix1]
    )
    assert not crop.empty


def test_margin_grows_the_longer_side() -> None:
    image, mask = _red_square_on_grey(box=(60, 40, 100, 60))  # 40 x 20
    crop = crop_to_mask(image, mask, 0.1)
    assert crop.image.shape[:2] == (48, 48)
    assert crop.box == (56, 26, 104, 74)


def test_padding_replicates_or_fills_outside_the_frame() -> None:
    image, mask = _red_square_on_grey(box=(0, 0, 20, 40))  # touches the top-left corner
    image[:, :1] = (0, 0, 255)  # a blue left column, replicated into the left padding
    kept = crop_to_mask(image, mask, 0.0)
    assert kept.box == (-10, 0, 30, 40)
    assert (kept.image[:, :10] == (0, 0, 255)).all()
    filled = crop_to_mask(image, mask, 0.0, fill_rgb=(1, 2, 3))
    assert (filled.image[:, :10] == (1, 2, 3)).all()
    assert not filled.mask[:, :10].any()


def test_empty_mask_gives_centre_square_or_error() -> None:
    image = np.zeros((60, 100, 3), np.uint8)
    image[:, 20:80] = 200
    crop = crop_to_mask(image, np.zeros((60, 100), np.uint8), 0.1)
    assert crop.empty and crop.box == (20, 0, 80, 60)
    assert (crop.image == 200).all()
    with pytest.raises(ImageError, match="mask is empty"):
        crop_to_mask(image, np.zeros((60, 100), np.uint8), 0.1, on_empty="error")
    with pytest.raises(ImageError, match="mask is empty"):
        prepare(image, np.zeros((60, 100), bool), InputSpec(size=(8, 8)), on_empty="error")


def test_no_mask_means_the_whole_frame() -> None:
    image, _ = _red_square_on_grey(h=40, w=60)
    crop = crop_to_mask(image, None, 0.0)
    assert crop.box == (0, -10, 60, 50) and crop.mask.sum() == 40 * 60


def test_known_values_for_red_square_on_grey() -> None:
    image, mask = _red_square_on_grey()
    spec = InputSpec(size=(32, 32), crop_margin=0.25)
    x = prepare(image, mask, spec)
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    red = (np.array([1.0, 0.0, 0.0]) - MEAN) / STD
    np.testing.assert_allclose(x[:, 16, 16], red, rtol=1e-6)
    grey = (GREY / 255 - MEAN) / STD
    np.testing.assert_allclose(x[:, 0, 0], grey, rtol=1e-6)  # kept background


def test_fill_replaces_the_background_but_not_the_part() -> None:
    image, mask = _red_square_on_grey()
    spec = InputSpec(
        size=(32, 32),
        crop_margin=0.25,
        background="fill",
        fill_rgb=(0, 255, 0),
        mean=(0, 0, 0),
        std=(1, 1, 1),
    )
    x = prepare(image, mask, spec)
    np.testing.assert_allclose(x[:, 0, 0], [0.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(x[:, 16, 16], [1.0, 0.0, 0.0], atol=1e-6)


def test_layouts_hold_the_same_values() -> None:
    image, mask = _red_square_on_grey()
    rng = np.random.default_rng(0)
    image = np.clip(image + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
    nchw = prepare(image, mask, InputSpec(size=(24, 20), layout="NCHW"))
    nhwc = prepare(image, mask, InputSpec(size=(24, 20), layout="NHWC"))
    assert nchw.shape == (3, 24, 20) and nhwc.shape == (24, 20, 3)
    np.testing.assert_array_equal(nchw.transpose(1, 2, 0), nhwc)
    assert nchw.flags.c_contiguous and nhwc.flags.c_contiguous


@pytest.mark.parametrize(("size", "interpolation"), [(16, cv2.INTER_AREA), (96, cv2.INTER_LINEAR)])
def test_resize_uses_area_to_shrink_and_linear_to_enlarge(size: int, interpolation: int) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    mask = np.zeros((100, 100), np.uint8)
    mask[30:70, 30:70] = 255  # a 40-pixel part: the crop is 40 px before resizing
    spec = InputSpec(
        size=(size, size), crop_margin=0.0, layout="NHWC", mean=(0, 0, 0), std=(1, 1, 1), scale=1.0
    )
    expected = cv2.resize(image[30:70, 30:70], (size, size), interpolation=interpolation).astype(np.float32)
    np.testing.assert_array_equal(prepare(image, mask, spec), expected)


def test_batch_stacks_single_results() -> None:
    a = _red_square_on_grey()
    b = _red_square_on_grey(box=(10, 10, 30, 90))
    spec = InputSpec(size=(16, 16))
    batch = prepare_batch([a, b], spec)
    assert batch.shape == (2, 3, 16, 16)
    np.testing.assert_array_equal(batch[1], prepare(*b, spec))


@pytest.mark.parametrize(
    ("image", "mask", "message"),
    [
        (np.zeros((10, 10, 3), np.float32), None, "must be uint8"),
        (np.zeros((10, 10), np.uint8), None, r"shape \(H, W, 3\), got \(10, 10\)"),
        (np.zeros((10, 10, 4), np.uint8), None, r"got \(10, 10, 4\)"),
        (np.zeros((0, 10, 3), np.uint8), None, "is empty"),
        ([[0, 0, 0]], None, "numpy array"),
        (
            np.zeros((10, 10, 3), np.uint8),
            np.ones((10, 11), np.uint8),
            r"mask shape \(10, 11\) does not match",
        ),
        (np.zeros((10, 10, 3), np.uint8), np.ones((10, 10), np.float32), "mask must be uint8"),
    ],
)
def test_bad_inputs_say_what_is_wrong(image: object, mask: object, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        prepare(image, mask, InputSpec(size=(8, 8)))  # type: ignore[arg-type]


def test_bad_batches_name_the_item() -> None:
    good = _red_square_on_grey()
    with pytest.raises(ImageError, match=r"no \(image, mask\) pairs"):
        prepare_batch([], InputSpec(size=(8, 8)))
    with pytest.raises(ImageError, match="batch item 1: image must be uint8"):
        prepare_batch([good, (good[0].astype(np.float32), good[1])], InputSpec(size=(8, 8)))
    with pytest.raises(ImageError, match=r"crop margin 3\.0"):
        crop_to_mask(good[0], good[1], 3.0)


# --- pinned: the trainer's preprocessing must not move by a bit ---


def _reference_prepare(image: np.ndarray, mask: np.ndarray | None, spec: InputSpec) -> np.ndarray:
    """:func:`prepare` as first written (commit ac8ffec), kept plain as the bit-exact reference."""
    height, width = image.shape[:2]
    part = np.ones((height, width), bool) if mask is None else mask.astype(bool)
    rows, cols = np.flatnonzero(part.any(axis=1)), np.flatnonzero(part.any(axis=0))
    if rows.size == 0:
        side = min(height, width)
        sx, sy, empty = (width - side) // 2, (height - side) // 2, True
    else:
        x0, y0, x1, y1 = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
        w, h = x1 - x0, y1 - y0
        side = int(np.ceil(max(w, h) * (1.0 + 2.0 * spec.crop_margin)))
        sx, sy, empty = x0 - (side - w + 1) // 2, y0 - (side - h + 1) // 2, False
    cx0, cy0, cx1, cy1 = max(sx, 0), max(sy, 0), min(sx + side, width), min(sy + side, height)
    pads = (cy0 - sy, sy + side - cy1, cx0 - sx, sx + side - cx1)
    img, sub = image[cy0:cy1, cx0:cx1], part[cy0:cy1, cx0:cx1].view(np.uint8)
    if side > 2048:  # MAX_CROP_SIDE
        scale, top_side = 2048 / side, 2048
        nh, nw = (max(1, min(top_side, round(n * scale))) for n in img.shape[:2])
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        sub = cv2.resize(sub, (nw, nh), interpolation=cv2.INTER_NEAREST)
        top, left = min(round(pads[0] * scale), top_side - nh), min(round(pads[2] * scale), top_side - nw)
        pads = (top, top_side - nh - top, left, top_side - nw - left)
    fill = spec.background == "fill"
    if any(pads):
        if fill:
            img = cv2.copyMakeBorder(
                img, *pads, cv2.BORDER_CONSTANT, value=tuple(int(c) for c in spec.fill_rgb)
            )
        else:
            img = cv2.copyMakeBorder(img, *pads, cv2.BORDER_REPLICATE)
        sub = cv2.copyMakeBorder(sub, *pads, cv2.BORDER_CONSTANT, value=0)
    img = np.ascontiguousarray(img)
    if fill and not empty:
        img = np.where(sub.astype(bool)[..., None], img, np.asarray(spec.fill_rgb, np.uint8))
    out_h, out_w = spec.size
    if img.shape[:2] != (out_h, out_w):
        shrinking = img.shape[0] * img.shape[0] >= out_h * out_w
        img = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    x = (img.astype(np.float32) * np.float32(spec.scale) - np.asarray(spec.mean, np.float32)) / np.asarray(
        spec.std, np.float32
    )
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def _random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, InputSpec]:
    h, w = (int(v) for v in rng.integers(1, 260, 2))
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    kind = rng.integers(0, 6)
    mask: np.ndarray | None
    if kind == 0:
        mask = None
    elif kind == 1:
        mask = np.zeros((h, w), rng.choice([np.uint8, np.bool_]))  # empty: the centre square
    else:
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = rng.integers(x0, w) + 1, rng.integers(y0, h) + 1
        mask = np.zeros((h, w), np.uint8)
        mask[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) > 0.4
        mask[y0, x0] = 1
        mask *= np.uint8(rng.choice([1, 7, 255]))
        if kind == 5:
            mask = mask.astype(bool)
    spec = InputSpec(
        size=(int(rng.integers(8, 200)), int(rng.integers(8, 200))),
        layout=rng.choice(["NCHW", "NHWC"]),
        mean=tuple(float(v) for v in rng.random(3)),
        std=tuple(float(v) for v in rng.random(3) + 0.05),
        scale=float(rng.choice([1 / 255, 1.0, rng.random() + 1e-3])),
        background=rng.choice(["keep", "fill"]),
        fill_rgb=tuple(int(v) for v in rng.integers(0, 256, 3)),
        crop_margin=float(rng.choice([0.0, 0.1, rng.random() * 2])),
    )
    return image, mask, spec


@pytest.mark.parametrize("seed", range(4))
def test_prepare_is_bit_identical_to_the_reference(seed: int) -> None:
    # The trainer's features and the shipped models were made with this preprocessing: a speed-up
    # may change how it is computed, never a bit of what it computes.
    rng = np.random.default_rng(seed)
    for _ in range(60):
        image, mask, spec = _random_case(rng)
        got = prepare(image, mask, spec)
        want = _reference_prepare(image, mask, spec)
        assert got.shape == want.shape and got.dtype == want.dtype and got.flags.c_contiguous
        assert got.tobytes() == want.tobytes(), (image.shape, spec)


def test_prepare_is_bit_identical_to_the_reference_on_a_huge_crop() -> None:
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, (12, 2300, 3), dtype=np.uint8)  # its square is over MAX_CROP_SIDE
    mask = np.zeros((12, 2300), np.uint8)
    mask[3:9, 5:2290] = 255
    for background in ("keep", "fill"):
        spec = InputSpec(size=(64, 64), background=background, fill_rgb=(9, 8, 7))
        assert prepare(image, mask, spec).tobytes() == _reference_prepare(image, mask, spec).tobytes()


@pytest.mark.parametrize("seed", range(2))
def test_a_known_box_gives_the_same_crop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        image, mask, spec = _random_case(rng)
        if mask is None or not mask.any():
            continue
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        for fill in (None, (1, 2, 3)):
            searched = crop_to_mask(image, mask, spec.crop_margin, fill_rgb=fill)
            told = crop_to_mask(image, mask, spec.crop_margin, fill_rgb=fill, box=(x, y, x + w, y + h))
            assert told.box == searched.box and told.empty == searched.empty
            np.testing.assert_array_equal(told.image, searched.image)
            np.testing.assert_array_equal(told.mask, searched.mask)


def test_leaves_frame_says_where_the_square_was_padded() -> None:
    frame = np.zeros((60, 80, 3), np.uint8)
    middle, edge = np.zeros((60, 80), np.uint8), np.zeros((60, 80), np.uint8)
    middle[20:40, 30:50] = 255
    edge[45:60, 30:50] = 255  # touches the bottom: the square around it reaches past row 60
    assert not leaves_frame(crop_to_mask(frame, middle, 0.1), frame.shape)
    assert leaves_frame(crop_to_mask(frame, edge, 0.1), frame.shape)
