"""A long thin image must not become a huge square: the crop is capped at MAX_CROP_SIDE pixels.

Found by the fuzz test (tools/fuzz.py): a 611-byte JPEG of 1x16384 pixels (16 kilopixels, far below
the megapixel limit) took 15 s and 2 GB in ``edge classify``, because the square around the part was
padded at full resolution (16384 x 16384) before being resized to the network's input. Replayed by
the folder camera it would take the daemon down the same way.
"""

from __future__ import annotations

import resource
import time

import numpy as np
import pytest

from edge.manifest_entries import InputSpec
from edge.preprocess import MAX_CROP_SIDE, crop_to_mask, prepare


@pytest.mark.parametrize("shape", [(16384, 1), (1, 16384), (20000, 256), (3, 12000)])
def test_a_long_thin_image_is_cheap(shape: tuple[int, int]) -> None:
    image = np.full((*shape, 3), 90, np.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    x = prepare(image, None, InputSpec(size=(32, 32)))  # the whole image is the part
    crop = crop_to_mask(image, None, 0.1)
    assert time.perf_counter() - start < 2.0
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 200  # MB (was 2000+)
    assert x.shape == (3, 32, 32) and np.isfinite(x).all()
    assert crop.image.shape == (MAX_CROP_SIDE, MAX_CROP_SIDE, 3) and crop.mask.any()
    longer = max(shape)
    assert crop.box[2] - crop.box[0] == int(np.ceil(longer * 1.2))  # the box stays in source pixels


def test_crops_up_to_the_cap_are_unchanged() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (900, 1200, 3), np.uint8)
    mask = np.zeros((900, 1200), np.uint8)
    mask[100:800, 300:1000] = 255
    capped = crop_to_mask(image, mask, 0.3)
    uncapped = crop_to_mask(image, mask, 0.3, max_side=None)
    assert capped.image.shape[0] <= MAX_CROP_SIDE
    np.testing.assert_array_equal(capped.image, uncapped.image)
    np.testing.assert_array_equal(capped.mask, uncapped.mask)
    big = crop_to_mask(image, mask, 0.3, max_side=300)  # over a (smaller) cap: shrunk, same layout
    assert big.image.shape == (300, 300, 3) and big.box == uncapped.box
    share = uncapped.mask.mean()
    assert abs(big.mask.mean() - share) < 0.01
