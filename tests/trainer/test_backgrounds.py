"""Background swap: the part's pixels stay, the background changes, reproducibly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import DataFileError
from trainer.augment import Augmenter
from trainer.backgrounds import BackgroundSwap, load_photos


def render() -> tuple[np.ndarray, np.ndarray]:
    """A blue part on the simulated rig's magenta backdrop, and its exact mask."""
    image = np.zeros((96, 96, 3), np.uint8)
    image[:] = (200, 40, 200)
    mask = np.zeros((96, 96), bool)
    mask[30:70, 25:75] = True
    image[mask] = (20, 60, 210)
    return image, mask


def test_background_changes_and_part_stays() -> None:
    image, mask = render()
    swap = BackgroundSwap(1.0)
    for seed in range(20):
        out = swap(image, mask, np.random.default_rng(seed))
        inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert np.array_equal(out[inner], image[inner])  # the part's pixels are untouched
        outside = ~cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        magenta = np.all(np.abs(out[outside].astype(int) - (200, 40, 200)) < 8, axis=1).mean()
        assert magenta < 0.5  # the magenta backdrop is gone


def test_probability_and_determinism() -> None:
    image, mask = render()
    assert BackgroundSwap(0.0)(image, mask, np.random.default_rng(0)) is image
    a = BackgroundSwap(1.0)(image, mask, np.random.default_rng(3))
    b = BackgroundSwap(1.0)(image, mask, np.random.default_rng(3))
    assert np.array_equal(a, b)
    swapped = sum(
        not np.array_equal(BackgroundSwap(0.5)(image, mask, np.random.default_rng(s)), image)
        for s in range(200)
    )
    assert 70 < swapped < 130
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        BackgroundSwap(1.5)


def test_photos_are_used_and_checked(tmp_path: Path) -> None:
    photo = np.zeros((600, 900, 3), np.uint8)
    photo[:, :, 1] = 255  # pure green: no flat or textured background draws it
    cv2.imwrite(str(tmp_path / "stage.jpg"), photo)
    photos = load_photos(tmp_path)
    assert max(photos[0].shape[:2]) == 480
    image, mask = render()
    swap = BackgroundSwap(1.0, photos)
    greens = 0
    for seed in range(30):
        out = swap(image, mask, np.random.default_rng(seed))
        corner = out[:8, :8].reshape(-1, 3).mean(axis=0)
        greens += corner[1] > 2 * max(corner[0], corner[2]) + 10
    assert greens > 3  # about a third of draws are photo windows
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match=r"no \.jpg/\.png"):
        load_photos(tmp_path / "empty")


def test_augmenter_uses_the_swap_and_its_fingerprint_tells_it() -> None:
    image, mask = render()
    plain = Augmenter("stage1", min_side=64)
    swapped = Augmenter("stage1", min_side=64, backgrounds=BackgroundSwap(1.0))
    assert plain.fingerprint != swapped.fingerprint
    assert Augmenter("none", backgrounds=BackgroundSwap(1.0)).backgrounds is None  # validation is plain
    a, am = plain(image, mask, seed=1)
    b, bm = swapped(image, mask, seed=1)
    assert np.array_equal(am, bm)  # same geometry: only the background differs
    assert not np.array_equal(a, b)
