"""The shared preprocessing: square crops around masks, exact normalised values, layouts, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.errors import ImageError
from edge.manifest import InputSpec
from edge.preprocess import crop_to_mask, prepare, prepare_batch

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
