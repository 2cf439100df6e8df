"""Training augmentation: colour identity is preserved, masks follow images, draws are reproducible."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("albumentations")

from edge.colors import common_colors
from edge.errors import ConfigError
from edge.manifest_entries import InputSpec
from edge.preprocess import prepare
from trainer.augment import PRECROP_MARGIN, Augmenter

DRAWS = 200


def _patch(rgb: tuple[int, int, int], size: int = 40, part: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A square part of colour ``rgb`` on a neutral grey turntable, and its mask."""
    image = np.full((size, size, 3), 128, np.uint8)
    mask = np.zeros((size, size), np.uint8)
    lo = (size - part) // 2
    image[lo : lo + part, lo : lo + part] = rgb
    mask[lo : lo + part, lo : lo + part] = 255
    return image, mask


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (L 0..100) of RGB 0..255 colours, shape (..., 3)."""
    arr = np.asarray(rgb, np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(arr, cv2.COLOR_RGB2LAB).reshape(np.shape(rgb))


@pytest.mark.slow  # 2 x 6000 augmentations: about 10 s each
@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_augmentation_never_changes_a_colours_identity(stage: str) -> None:
    """Each of the 30 common colours, augmented 200 times, stays nearest (Lab) to itself in >= 99%."""
    colors = common_colors(30)
    palette = _lab(np.array([c.rgb for c in colors]))
    augment = Augmenter(stage, min_side=32)  # type: ignore[arg-type]
    kernel = np.ones((3, 3), np.uint8)
    rates = {}
    for i, color in enumerate(colors):
        image, mask = _patch(color.rgb)
        measured = []
        for draw in range(DRAWS):
            out, out_mask = augment(image, mask, seed=1000 * i + draw)
            inside = cv2.erode(out_mask.astype(np.uint8), kernel).astype(bool)  # skip blurred edges
            measured.append(np.median(out[inside], axis=0))
        lab = _lab(np.array(measured))
        nearest = np.linalg.norm(lab[:, None, :] - palette[None], axis=2).argmin(axis=1)
        rates[color.name] = float(np.mean(nearest == i))
    worst = min(rates, key=rates.__getitem__)
    assert rates[worst] >= 0.99, f"{worst} keeps its identity in only {rates[worst]:.1%} of draws"


def test_photometric_augmentation_is_actually_applied() -> None:
    """The colour test above must not pass because nothing changes colour at all."""
    image, mask = _patch((201, 26, 9))
    augment = Augmenter("stage2", min_side=32)
    medians = []
    for draw in range(50):
        out, out_mask = augment(image, mask, seed=draw)
        medians.append(np.median(out[out_mask], axis=0))
    assert np.ptp(np.array(medians), axis=0).max() >= 4  # brightness/contrast/HSV moved it


def test_the_mask_follows_the_image_through_geometric_augmentation() -> None:
    image, mask = _patch((201, 26, 9), size=60, part=16)
    image[22:26, 22:38] = (0, 85, 191)  # an asymmetric feature so rotations matter
    mask[22:26, 22:38] = 255
    augment = Augmenter("stage2", min_side=32)
    for draw in range(30):
        out, out_mask = augment(image, mask, seed=draw)
        assert out.shape[:2] == out_mask.shape and out_mask.dtype == bool
        inside = cv2.erode(out_mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        grey = np.all(np.abs(out[inside].astype(int) - 128) < 20, axis=1)
        assert grey.mean() < 0.05, f"draw {draw}: {grey.mean():.0%} of the mask shows background"
        outside = ~cv2.dilate(out_mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        red = (out[..., 0] > 150) & (out[..., 1] < 80) & (out[..., 2] < 80)  # the part, not a dropout hole
        assert (red & outside).sum() <= 2


def test_same_seed_same_result_other_seed_other_result() -> None:
    image, mask = _patch((242, 205, 55), size=48, part=24)
    augment = Augmenter("stage2", min_side=32)
    a, ma = augment(image, mask, seed=7)
    b, mb = augment(image, mask, seed=7)
    c, _ = augment(image, mask, seed=8)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_no_augmentation_leaves_the_prepared_input_unchanged() -> None:
    """The pre-crop around the mask must not change what prepare() makes of a frame."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    mask = np.zeros((120, 160), np.uint8)
    mask[5:40, 110:158] = 255  # near the frame's edge, so prepare() pads
    spec = InputSpec(size=(32, 32))
    out, out_mask = Augmenter("none")(frame, mask, seed=0)
    np.testing.assert_array_equal(prepare(out, out_mask, spec), prepare(frame, mask, spec))
    whole, whole_mask = Augmenter("none")(frame, None, seed=0)
    assert np.array_equal(whole, frame) and whole_mask.all()


def test_low_resolution_images_are_lanczos_upscaled_with_their_mask() -> None:
    image, mask = _patch((0, 85, 191), size=64, part=40)
    out, out_mask = Augmenter("stage1", min_side=128)(image, mask, seed=3, low_res=True)
    assert out.shape[0] >= 128 and out.shape[:2] == out_mask.shape
    plain, plain_mask = Augmenter("none", min_side=128)(image, mask, seed=3, low_res=True)
    side = int(np.ceil(40 * (1 + 2 * PRECROP_MARGIN)))  # the pre-crop around the 40 px part: 88 px
    assert plain.shape[:2] == (2 * side, 2 * side)  # the smallest whole factor reaching 128
    assert abs(plain_mask.mean() - (40 / side) ** 2) < 0.01
    # Lanczos keeps the flat colour exactly away from edges.
    assert np.array_equal(plain[side, side], np.array([0, 85, 191], np.uint8))


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(ConfigError, match="'stage3'"):
        Augmenter("stage3")  # type: ignore[arg-type]


def test_no_stage_mirrors_an_image() -> None:
    """A flip turns a left-handed part into its right-handed twin: a wrong label."""
    import albumentations as A

    from trainer.augment import _stage1, _stage2

    def walk(transforms: list) -> list:
        out = []
        for t in transforms:
            out.append(t)
            out += walk(list(getattr(t, "transforms", [])))
        return out

    for stage in (_stage1(), _stage2()):
        kinds = {type(t) for t in walk(stage)}
        assert not kinds & {A.HorizontalFlip, A.VerticalFlip, A.Transpose, A.D4}


def test_mask_jitter_changes_only_the_mask_as_a_segmenter_would() -> None:
    from trainer.augment import MaskJitter

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    mask = np.zeros((200, 200), bool)
    mask[70:130, 60:140] = True
    jitter = MaskJitter(1.0)
    kinds = set()
    for seed in range(40):
        out = jitter(mask, np.random.default_rng(seed))
        assert out.dtype == bool and out.shape == mask.shape and out.any()
        grown, lost = int((out & ~mask).sum()), int((mask & ~out).sum())
        assert grown or lost  # share 1: every draw changes the mask
        assert not (grown and lost)  # grown, shrunk or joined: never moved elsewhere
        kinds.add("grown" if grown else "shrunk")
        assert (out & mask).sum() >= 0.7 * mask.sum()  # still the part
    assert kinds == {"grown", "shrunk"}
    assert np.array_equal(MaskJitter(0.0)(mask, np.random.default_rng(1)), mask)

    plain = Augmenter("stage1", min_side=128)
    jittered = Augmenter("stage1", min_side=128, mask_jitter=MaskJitter(1.0))
    assert plain.fingerprint != jittered.fingerprint  # cached features never mixed up
    a_img, a_mask = plain(image, mask, seed=5)
    b_img, b_mask = jittered(image, mask, seed=5)
    assert np.array_equal(a_img, b_img) and not np.array_equal(a_mask, b_mask)
    assert Augmenter("none", mask_jitter=MaskJitter(1.0)).mask_jitter is None  # validation stays exact
    with pytest.raises(ConfigError, match="mask_jitter"):
        MaskJitter(1.5)


def test_part_photometric_jitter_is_strong_reproducible_and_chosen_by_share() -> None:
    from trainer.augment import PartPhotometric

    image, mask = _patch((200, 30, 30), size=64, part=32)
    jitter = PartPhotometric(0.3)
    chosen = [jitter.chosen(seed) for seed in range(2000)]
    assert 0.25 < np.mean(chosen) < 0.35
    assert chosen == [jitter.chosen(seed) for seed in range(2000)]  # a pure function of the seed
    assert not any(PartPhotometric(0.0).chosen(seed) for seed in range(200))
    # Far beyond the colour-safe limits: the red part's Lab colour moves by more than the distance
    # between two of the common colours in most draws.
    moved = []
    for seed in range(40):
        out = jitter(image, seed)
        assert np.array_equal(out, jitter(image, seed))
        moved.append(float(np.linalg.norm(_lab(out[32, 32]) - _lab(image[32, 32]))))
    assert np.median(moved) > 10
    augmenter = Augmenter("stage1", min_side=64, photometric=jitter)
    assert augmenter.fingerprint == Augmenter("stage1", min_side=64).fingerprint  # plain draws shared
    a, _ = augmenter(image, mask, seed=3)
    b, _ = augmenter(image, mask, seed=3, strong=True)
    assert np.array_equal(a, Augmenter("stage1", min_side=64)(image, mask, seed=3)[0])
    assert not np.array_equal(a, b)
    with pytest.raises(ConfigError, match="part_photometric"):
        PartPhotometric(-0.1)


def test_tone_curve_moves_the_whole_frame_alike_and_keeps_its_order() -> None:
    """A camera's tone: every pixel through one curve, so brighter stays brighter, as the share says."""
    from trainer.augment import ToneCurve

    image = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (4, 1, 3))
    assert ToneCurve(0.0)(image, np.random.default_rng(0)) is image
    changed = 0
    for seed in range(50):
        out = ToneCurve(1.0)(image, np.random.default_rng(seed))
        assert out.dtype == np.uint8 and out.shape == image.shape
        row = out[0, :, 0].astype(int)
        assert np.all(np.diff(row) >= 0), "the curve reorders two grey levels"
        assert row[0] <= 0.3 * 255 + 1, "the black level lifted beyond the curve's range"
        assert np.array_equal(out[1:], np.broadcast_to(out[:1], out[1:].shape))  # one curve for every pixel
        changed += not np.array_equal(out, image)
    assert changed == 50
    kept = sum(ToneCurve(0.3)(image, np.random.default_rng(s)) is image for s in range(400))
    assert 0.6 * 400 < kept < 0.8 * 400
    with pytest.raises(ConfigError, match="tone share"):
        ToneCurve(1.5)


def test_frame_edge_ends_the_frame_at_or_across_the_part_and_prepare_pads_past_it() -> None:
    """The frame stops on one side or two (a corner), between the edge of the square ``prepare``
    crops and a bite of the part; the Pi's padding (repeated edge pixels) then fills the square."""
    from trainer.augment import FrameEdge

    image = np.full((200, 300, 3), 90, np.uint8)
    mask = np.zeros((200, 300), np.uint8)
    mask[80:120, 100:200] = 255  # a 100 x 40 part
    image[mask > 0] = (200, 30, 30)
    edge = FrameEdge(1.0, margin=0.1)
    bitten, corners, shapes = 0, 0, set()
    for seed in range(300):
        out, msk = edge(image, mask, np.random.default_rng([seed, 13]))
        assert np.array_equal(out, edge(image, mask, np.random.default_rng([seed, 13]))[0])
        assert out.shape[:2] == msk.shape and out.shape[0] <= 200 and out.shape[1] <= 300
        assert (out.shape[0] < 200) or (out.shape[1] < 300)  # some side always moves in
        corners += (out.shape[0] < 200) and (out.shape[1] < 300)
        kept = np.count_nonzero(msk)
        assert kept >= 0.7 * 40 * 40  # at most 30% of a side's size cut off, never the whole part
        bitten += kept < 100 * 40
        # Only what the frame still holds: the part's pixels are the image's own, where the mask is.
        assert np.all(out[msk > 0] == (200, 30, 30))
        shapes.add(out.shape[:2])
        # Never beyond the square prepare crops (120 px, centred on the part: columns 90-210,
        # rows 40-160), where a frame's edge would change nothing.
        assert out.shape[1] == 300 or out.shape[1] <= 211
        assert out.shape[0] == 200 or out.shape[0] <= 161
    assert 0.1 < corners / 300 < 0.4 and 0.3 < bitten / 300 < 0.9 and len(shapes) > 50
    # The square around what is left of the mask leaves the shortened frame: the Pi pads it.
    out, msk = edge(image, mask, np.random.default_rng([0, 13]))
    spec = InputSpec(size=(64, 64), mean=(0.5,) * 3, std=(0.5,) * 3, crop_margin=0.1)
    assert prepare(out, msk, spec).shape == (3, 64, 64)
    # A tiny mask is left alone; the share picks draws, independently of the photometric jitter.
    tiny = np.zeros_like(mask)
    tiny[5:8, 5:8] = 1
    assert edge(image, tiny, np.random.default_rng(0))[0] is image
    picks = [FrameEdge(0.3).chosen(s) for s in range(3000)]
    assert 0.25 < np.mean(picks) < 0.35 and not any(FrameEdge(0.0).chosen(s) for s in range(100))
    with pytest.raises(ConfigError, match="frame_edge"):
        FrameEdge(1.5)


def test_frame_edge_draws_only_where_asked_and_leaves_the_plain_draws_and_validation_alone() -> None:
    from trainer.augment import FrameEdge

    image, mask = _patch((30, 30, 200), size=96, part=40)
    plain = Augmenter("stage1", min_side=64)
    with_edge = Augmenter("stage1", min_side=64, frame_edge=FrameEdge(0.5))
    assert with_edge.fingerprint == plain.fingerprint  # the plain copies stay shared with older runs
    a, am = with_edge(image, mask, seed=5)
    assert np.array_equal(a, plain(image, mask, seed=5)[0])
    b, bm = with_edge(image, mask, seed=5, edge=True)
    assert b.shape[0] < a.shape[0] or b.shape[1] < a.shape[1]
    assert np.count_nonzero(bm) <= np.count_nonzero(am)
    assert Augmenter("none", frame_edge=FrameEdge(1.0)).frame_edge is None
