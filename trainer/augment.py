"""Training augmentation (albumentations) for the two stages, applied to image and mask together.

Augmentation runs BEFORE :func:`edge.preprocess.prepare`, so the network still sees exactly the
preprocessing the Pi applies. Each call first cuts a generous square around the mask (so rotating
and shifting never pull the frame's border into the crop that ``prepare`` takes, and 640x480 rig
frames are cheap to augment), then applies the stage's pipeline:

- ``stage1`` (synthetic): rotation (never a mirror: chiral parts have mirror twins), mild
  brightness/contrast, coarse dropout, then what a camera does to a frame: defocus or motion blur,
  sensor noise and JPEG compression (in rig-frame pixels, as the pre-crop keeps the frame's scale).
  Those three are the factors a render's part accuracy was most sensitive to (one factor at a time
  raised from the 'train' to the 'test' randomisation: blur cost 6 points, noise and JPEG 4.5,
  placement 3, lighting, white balance and backdrop about 1 each). Retrained with them, the model
  was no better on the blurred and noisy renders (docs/sensitivity.md): the loss is
  mostly detail gone at 128x128, not a robustness gap this augmentation closes.
- ``stage2`` (real + synthetic): stage 1 (less the JPEG step: real captures are JPEGs already) plus
  affine shift/scale/rotate and a mild hue/saturation/value jitter.
- ``none``: no augmentation (validation).

Before either stage's pipeline, an optional :class:`~trainer.backgrounds.BackgroundSwap` puts the
part on another background (flat, textured or a real rig's photo, unevenly lit, with a soft shadow):
the part's pixels stay as rendered, so the colour labels stay true.

No augmentation here may change a part's colour identity: the colour head is trained on these images.
Hue moves at most 2 degrees, and brightness, contrast, saturation and value only as far as keeps
every one of the 30 most common colours nearer (in CIE Lab) to itself than to any other of them
(``tests/trainer/test_augment.py`` checks it). Low-resolution sources (B200C, 64x64, no colour)
are upscaled with Lanczos and get extra blur, so sharp and soft images look alike to the network.

:class:`ToneCurve` is the exception, used only by ``trainer refit-color`` (:mod:`trainer.color_refit`):
a camera's tone over the whole frame, which keeps each colour's place against its surroundings but
not its absolute value.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from typing import Literal

import cv2
import numpy as np

from edge.errors import ConfigError, MissingDependencyError
from edge.preprocess import check_image, crop_to_mask
from trainer.backgrounds import BackgroundSwap

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations would ask PyPI for news
try:
    import albumentations as A
except ImportError:
    raise MissingDependencyError("albumentations", "train", "training augmentation") from None

Stage = Literal["stage1", "stage2", "none"]
STAGES: tuple[str, ...] = ("stage1", "stage2", "none")
#: Margin of the square cut around the mask before augmenting (fraction of the part's longer side).
PRECROP_MARGIN = 0.6
#: Colour-safe photometric limits (see the module docstring and the colour-identity test).
BRIGHTNESS_LIMIT = 0.03  # fraction of 255, added
CONTRAST_LIMIT = 0.03  # gain 1 +- this
HUE_SHIFT = 1  # OpenCV hue units: 1 = 2 degrees (2 units already turn Yellow orange)
SAT_SHIFT = 6  # of 255
VAL_SHIFT = 3  # of 255 (darkening Yellow turns it Bright Light Orange)


def _geometric() -> list[A.BasicTransform]:
    # No flips: a mirror image of a chiral part is its mirror twin (Wedge Plate 4 x 2 Left is the
    # mirror of ... Right), so a flip would be a wrong label. Rotation is safe for every part.
    return [A.Rotate(limit=180, border_mode=cv2.BORDER_REPLICATE, p=0.8)]


def _occlusion() -> list[A.BasicTransform]:
    # Occludes the part, not the mask: the crop stays where the part is.
    return [
        A.CoarseDropout(
            num_holes_range=(1, 3),
            hole_height_range=(0.05, 0.15),
            hole_width_range=(0.05, 0.15),
            fill="random_uniform",
            p=0.3,
        )
    ]


def _camera(*, jpeg: bool) -> list[A.BasicTransform]:
    # Blur and noise keep a region's mean colour; the colour-identity test covers them with the rest.
    blur_noise: list[A.BasicTransform] = [
        A.OneOf(
            [A.GaussianBlur(blur_limit=(3, 7), sigma_limit=(0.3, 1.8)), A.MotionBlur(blur_limit=(3, 7))],
            p=0.5,
        ),
        A.GaussNoise(std_range=(0.005, 0.03), p=0.4),
    ]
    return [*blur_noise, A.ImageCompression(quality_range=(55, 95), p=0.5)] if jpeg else blur_noise


def _brightness_contrast() -> A.BasicTransform:
    return A.RandomBrightnessContrast(brightness_limit=BRIGHTNESS_LIMIT, contrast_limit=CONTRAST_LIMIT, p=0.5)


def _stage1() -> list[A.BasicTransform]:
    return [*_geometric(), _brightness_contrast(), *_occlusion(), *_camera(jpeg=True)]


def _stage2() -> list[A.BasicTransform]:
    return [
        *_geometric(),
        A.Affine(
            scale=(0.85, 1.15),
            translate_percent=(-0.06, 0.06),
            rotate=(-15, 15),
            border_mode=cv2.BORDER_REPLICATE,
            p=0.7,
        ),
        _brightness_contrast(),
        A.HueSaturationValue(
            hue_shift_limit=HUE_SHIFT, sat_shift_limit=SAT_SHIFT, val_shift_limit=VAL_SHIFT, p=0.5
        ),
        *_occlusion(),
        # Real captures are the camera's own JPEGs already; compressing them again on top of the
        # hue/value jitter moved Yellow to Bright Light Orange in 2% of the colour test's draws.
        *_camera(jpeg=False),
    ]


class MaskJitter:
    """Makes a render's exact mask look like a segmenter's: real masks take in a rim of background
    and the part's shadow, bite into dark or background-coloured edges, and catch a stray region
    touching the part. With ``share`` of the draws the mask is, one of: grown by 1..12% of the part's
    size, shrunk by 1..6%, or joined with an ellipse half on the part's edge (a shadow or glare).

    Only the mask changes, so only what the mask decides changes: the crop around the part and,
    in ``background: fill`` mode, which pixels are painted over. The part's pixels and colours stay.
    """

    def __init__(self, share: float) -> None:
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"mask_jitter {share!r} must be within 0..1 (a share of training images)")
        self.share = share

    @property
    def fingerprint(self) -> dict[str, object]:
        return {"mask_jitter": self.share, "version": 1}

    def __call__(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.share:
            return mask
        binary = mask.astype(np.uint8)
        ys, xs = np.nonzero(binary)
        if ys.size < 16:
            return mask
        size = float(max(np.ptp(ys), np.ptp(xs)) + 1)
        kind = rng.choice(3, p=(0.45, 0.2, 0.35))
        if kind == 0:  # grown: a rim of background, a soft shadow's inner part
            r = max(1, round(size * rng.uniform(0.01, 0.12)))
            out = cv2.dilate(binary, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        elif kind == 1:  # shrunk: edges lost into a similar background
            r = max(1, round(size * rng.uniform(0.01, 0.06)))
            out = cv2.erode(binary, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
            if not out.any():
                return mask
        else:  # a stray region joined to the part: a shadow to one side, glare, a stage edge
            edge = (binary > 0) & (cv2.erode(binary, np.ones((3, 3), np.uint8)) == 0)
            ys, xs = np.nonzero(edge)
            i = int(rng.integers(ys.size))
            long, short = size * rng.uniform(0.1, 0.5), size * rng.uniform(0.05, 0.25)
            axes = (max(2, round(long)), max(2, round(short)))
            out = binary.copy()
            cv2.ellipse(out, (int(xs[i]), int(ys[i])), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        return out.astype(bool)


class PartPhotometric:
    """Strong camera-like colour changes for the part head only: white balance (gain per channel),
    exposure, gamma, contrast, saturation and a small hue turn, far beyond what keeps a colour label
    true. With ``share`` of the draws an image gets them and its colour label is dropped (the colour
    loss ignores it), so the part head learns shapes under any camera while the colour head still
    learns colour from untouched pixels (see the module docstring).
    """

    def __init__(self, share: float) -> None:
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"part_photometric {share!r} must be within 0..1 (a share of training images)")
        self.share = share
        self.pipeline = A.Compose(
            [
                A.ColorJitter(
                    brightness=(0.6, 1.5),
                    contrast=(0.6, 1.8),
                    saturation=(0.4, 2.2),
                    hue=(-0.06, 0.06),
                    p=1.0,
                ),
                A.RandomGamma(gamma_limit=(60, 160), p=0.7),
                A.MultiplicativeNoise(multiplier=(0.75, 1.3), per_channel=True, elementwise=False, p=0.7),
            ],
            seed=0,
        )

    @property
    def fingerprint(self) -> str:
        text = json.dumps([self.share, A.to_dict(self.pipeline)], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def chosen(self, seed: int) -> bool:
        """Whether the draw ``seed`` gets the jitter (and loses its colour label): a pure function."""
        return self.share > 0 and (zlib.crc32(f"photometric/{seed}".encode()) % 10_000) < self.share * 10_000

    def __call__(self, image: np.ndarray, seed: int) -> np.ndarray:
        self.pipeline.set_random_seed(seed & 0x7FFFFFFF)
        return self.pipeline(image=image)["image"]


class FrameEdge:
    """The part at the frame's edge, as a camera frames a part that lies near it: the frame ends
    on one side (a quarter of the draws: two sides, a corner) somewhere between the edge of the
    square :func:`~edge.preprocess.prepare` would crop and a bite of up to ``BITE`` of the part's
    own size. Beyond that line the image and the mask simply stop, so ``prepare`` crops around
    what is left of the mask and pads the square past the frame's edge by repeating the edge's
    pixels, exactly as on the Pi.

    Training frames hold their part near the middle, while on a real belt seen from close above a
    third of the frames put the part at an edge: 139 of the 388 belt frames of the known parts
    have a crop that leaves the frame (98 of them a mask that touches it), and the shipped set
    names them 26% of the time against 45% for the rest (mostly one part's loss). The ranges are
    geometric, not fitted to those photos. With ``share`` of the draws that do not get
    :class:`PartPhotometric` the image gets it; the colour label stays.

    Measured (docs/real_transfer.md, "The part at the frame's edge", rule 10): with a share of 0.3
    the belt's edge frames were read no better (26% -> 22%) and the belt as a whole worse, on one
    seed; off by default.
    """

    BITE = 0.3  # at most this share of the part's size cut off on a side

    def __init__(self, share: float, margin: float = 0.1) -> None:
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"frame_edge {share!r} must be within 0..1 (a share of training images)")
        self.share, self.margin = share, margin

    @property
    def fingerprint(self) -> str:
        text = json.dumps([self.share, self.margin, self.BITE, "v1"])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def chosen(self, seed: int) -> bool:
        """Whether the draw ``seed`` gets the frame's edge: a pure function, independent of
        :meth:`PartPhotometric.chosen`."""
        return self.share > 0 and (zlib.crc32(f"frame_edge/{seed}".encode()) % 10_000) < self.share * 10_000

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(image, mask)`` cut at the frame's new edge(s); unchanged when the mask is tiny or the
        cut would leave fewer than 16 of its pixels."""
        ys, xs = np.nonzero(mask)
        if ys.size < 16:
            return image, mask
        box = {1: (int(xs.min()), int(xs.max()) + 1), 0: (int(ys.min()), int(ys.max()) + 1)}
        side = max(hi - lo for lo, hi in box.values()) * (1.0 + 2.0 * self.margin)
        # (axis, end): axis 1 cuts columns, 0 rows; end True: the frame stops after the part
        # (right, bottom), False: it starts before it (left, top). One side, or a corner.
        cuts = [(1, bool(rng.integers(2))), (0, bool(rng.integers(2)))]
        if rng.random() >= 0.25:
            cuts = [cuts[int(rng.integers(2))]]
        img, msk = image, mask
        for axis, end in cuts:
            lo, hi = box[axis]
            depth = rng.uniform(-self.BITE * (hi - lo), (side - (hi - lo)) / 2)  # < 0: into the part
            keep = (
                slice(0, int(np.clip(round(hi + depth), lo + 1, img.shape[axis])))
                if end
                else slice(int(np.clip(round(lo - depth), 0, hi - 1)), None)
            )
            index = (slice(None), keep) if axis == 1 else (keep,)
            img, msk = img[index], msk[index]
        if np.count_nonzero(msk) < 16:
            return image, mask
        return np.ascontiguousarray(img), np.ascontiguousarray(msk)


class ToneCurve:
    """A camera's tone curve over the whole image, the colour label kept: for ``trainer refit-color``.

    With ``share`` of the draws, every pixel (part and ground alike) in sRGB values 0..1 becomes
    ``lift + (1 - lift) * min(1, gain * x) ** gamma``: ``lift`` a lifted black level (flare, a
    low-contrast picture profile), ``gain`` the exposure (highlights clip above 1), ``gamma`` a
    steeper or flatter curve. The renders' tone is one studio's; a real camera's can be far
    flatter: on the real belt photos a light grey part is 92% as bright as the white belt around
    it, where the renders make it 57-60% (docs/real_transfer.md). Unlike the stages' colour-safe
    jitter this changes every colour, but the whole frame alike, as a camera does, so what lies
    next to the part still tells its colour; the colour head refitted on such draws reads the real
    belt's light grey parts far better and its dark grey ones worse (docs/real_transfer.md, "The
    colour head under a camera's tone").
    The ranges are general camera variation, not fitted to any photo.
    """

    LIFT = (0.0, 0.3)
    GAIN = (0.7, 1.5)
    GAMMA = (0.75, 1.33)

    def __init__(self, share: float) -> None:
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"tone share {share!r} must be within 0..1 (a share of the draws)")
        self.share = share

    @property
    def fingerprint(self) -> str:
        text = json.dumps([self.share, self.LIFT, self.GAIN, self.GAMMA])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``image`` (uint8 RGB) through a curve drawn from ``rng``, or unchanged (``1 - share``)."""
        if not self.share or rng.random() >= self.share:
            return image
        lift, gain, gamma = rng.uniform(*self.LIFT), rng.uniform(*self.GAIN), rng.uniform(*self.GAMMA)
        x = image.astype(np.float32) / 255.0
        y = lift + (1 - lift) * np.clip(gain * x, 0, 1) ** gamma
        return np.clip(np.round(y * 255), 0, 255).astype(np.uint8)


class Augmenter:
    """Augments an (image, mask) pair for one training stage, reproducibly from a seed.

    Args:
        stage: ``"stage1"``, ``"stage2"`` or ``"none"``.
        min_side: low-resolution images (``low_res=True``) are Lanczos-upscaled until their
            square crop is at least this many pixels (use the network input size).
    """

    def __init__(
        self,
        stage: Stage,
        *,
        min_side: int = 128,
        backgrounds: BackgroundSwap | None = None,
        mask_jitter: MaskJitter | None = None,
        photometric: PartPhotometric | None = None,
        frame_edge: FrameEdge | None = None,
    ) -> None:
        if stage not in STAGES:
            raise ConfigError(f"augmentation stage {stage!r} is unknown; use one of {', '.join(STAGES)}")
        if not 8 <= min_side <= 4096:
            raise ConfigError(f"min_side {min_side!r} must be within 8..4096 pixels (the input size)")
        self.stage = stage
        self.min_side = min_side
        self.backgrounds = backgrounds if stage != "none" else None
        self.mask_jitter = mask_jitter if stage != "none" and mask_jitter and mask_jitter.share else None
        # Not part of the fingerprint: only the draws it is applied to (``strong=True``) differ.
        self.photometric = photometric if stage != "none" and photometric and photometric.share else None
        # Likewise: only the draws it is applied to (``edge=True``) differ.
        self.frame_edge = frame_edge if stage != "none" and frame_edge and frame_edge.share else None
        transforms = {"stage1": _stage1, "stage2": _stage2, "none": list}[stage]()
        self.pipeline = A.Compose(transforms, seed=0) if transforms else None
        self.low_res_blur = A.Compose(
            [A.GaussianBlur(blur_limit=(3, 7), sigma_limit=(0.5, 1.5), p=0.5)], seed=0
        )

    @property
    def fingerprint(self) -> str:
        """A digest of the stage's transforms and their settings: cached features made with other
        augmentation (an older version of this module) are never mistaken for these."""
        parts = [A.to_dict(p) for p in (self.pipeline, self.low_res_blur) if p is not None]
        swap = self.backgrounds.fingerprint if self.backgrounds is not None else None
        jitter = self.mask_jitter.fingerprint if self.mask_jitter is not None else None
        text = json.dumps(
            [self.stage, self.min_side, parts] + ([swap] if swap else []) + ([jitter] if jitter else []),
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __call__(
        self,
        image: np.ndarray,
        mask: np.ndarray | None,
        *,
        seed: int,
        low_res: bool = False,
        strong: bool = False,
        edge: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(image, mask)`` augmented: uint8 RGB and bool, the mask still marking the part.

        ``mask`` None means the whole image is the part. The same ``seed`` gives the same result.
        ``strong`` adds the :class:`PartPhotometric` jitter (the caller drops the colour label);
        ``edge`` the :class:`FrameEdge` cut, last, after the mask's jitter (a segmenter sees only
        what the frame holds).
        """
        check_image(image)
        if mask is None:  # the whole image is the part: nothing to centre on
            img, msk = image, np.ones(image.shape[:2], np.uint8)
        else:
            crop = crop_to_mask(image, mask, PRECROP_MARGIN)
            img, msk = crop.image, crop.mask.view(np.uint8)
        if low_res and img.shape[0] < self.min_side:
            factor = int(np.ceil(self.min_side / img.shape[0]))
            side = img.shape[0] * factor
            img = cv2.resize(img, (side, side), interpolation=cv2.INTER_LANCZOS4)
            msk = cv2.resize(msk, (side, side), interpolation=cv2.INTER_NEAREST)
        if self.backgrounds is not None and mask is not None:
            img = self.backgrounds(img, msk.astype(bool), np.random.default_rng([seed & 0x7FFFFFFF, 7]))
        if self.pipeline is not None:
            self.pipeline.set_random_seed(seed & 0x7FFFFFFF)
            out = self.pipeline(image=img, mask=msk)
            img, msk = out["image"], out["mask"]
            if low_res:
                self.low_res_blur.set_random_seed((seed + 1) & 0x7FFFFFFF)
                img = self.low_res_blur(image=img)["image"]
        if strong and self.photometric is not None:
            img = self.photometric(img, seed)
        if self.mask_jitter is not None and mask is not None:
            msk = self.mask_jitter(msk, np.random.default_rng([seed & 0x7FFFFFFF, 11]))
        if edge and self.frame_edge is not None and mask is not None:
            img, msk = self.frame_edge(img, msk, np.random.default_rng([seed & 0x7FFFFFFF, 13]))
        return np.ascontiguousarray(img), msk.astype(bool)
