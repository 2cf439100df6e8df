"""Background replacement: a rendered part put on the backgrounds real rigs have.

Renders come with exact part masks, so one render can be shown on many backgrounds. A model trained
on one backdrop (the simulated rig's magenta disc) learns that backdrop: on a white belt or a black
cloth its colour head, which reads the crop's border as a white-balance reference, and its part head
both fail. :class:`BackgroundSwap` replaces what is not the part with one of:

- ``flat``: a plain surface: white, light or mid grey, black, or a pale tint, as belts, trays and
  paper are;
- ``texture``: a flat surface with low-frequency mottling (worn belts, felt, wood grain at a distance);
- ``photo``: a random window of a photo of a real rig's empty stage (``--background photos``, e.g.
  the MIT-licensed frames of real sorting machines), at a random scale;

then lights it unevenly (a linear gradient and a radial vignette) and darkens a soft shadow of the
part, offset in a random direction. The part's own pixels are never changed, so colour labels stay
true (but for the outermost ring of pixels, which holds some of the old backdrop); a 1-pixel
feathered edge avoids a cut-out halo.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.errors import DataFileError

KINDS = ("flat", "texture", "photo")
_PHOTO_SIDE = 480  # photos are kept at most this size: windows of them are small anyway


def load_photos(folder: str | Path) -> list[np.ndarray]:
    """RGB uint8 images of a folder (``*.jpg``, ``*.jpeg``, ``*.png``), longer side at most 480 px."""
    folder = Path(folder)
    files = (
        sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if folder.is_dir()
        else []
    )
    if not files:
        raise DataFileError(
            f"background photo folder {str(folder)!r} holds no .jpg/.png images; pass a folder of photos"
        )
    photos = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DataFileError(f"background photo {str(path)!r} is not a readable image")
        scale = _PHOTO_SIDE / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        photos.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return photos


class BackgroundSwap:
    """Replaces the background of (image, mask) pairs with probability ``p`` (see the module docstring)."""

    def __init__(self, p: float, photos: Sequence[np.ndarray] = (), *, source: str = "") -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"background swap probability {p!r} must be within 0..1")
        self.p = p
        self.photos = list(photos)
        self.source = source

    @classmethod
    def from_folder(cls, p: float, folder: str | Path | None) -> BackgroundSwap:
        """With the photos of ``folder`` (None: flat and textured backgrounds only)."""
        if folder is None:
            return cls(p)
        return cls(p, load_photos(folder), source=str(folder))

    @property
    def fingerprint(self) -> str:
        """Settings and photo content: feature caches made with other backgrounds are not reused."""
        digest = hashlib.sha256(f"{self.p}|{len(self.photos)}".encode())
        for photo in self.photos:
            digest.update(photo[::16, ::16].tobytes())
        return digest.hexdigest()[:12]

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``image`` with a new background where ``mask`` is 0 (or unchanged, with probability 1 - p)."""
        if self.p <= 0 or rng.random() >= self.p or not mask.any():
            return image
        h, w = image.shape[:2]
        kinds = KINDS if self.photos else KINDS[:2]
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "photo":
            back = self._photo_window(h, w, rng)
        else:
            back = np.empty((h, w, 3), np.float32)
            back[:] = _surface_colour(rng)
            if kind == "texture":
                back *= _mottle(h, w, rng)[..., None]
        back *= _uneven_light(h, w, rng)[..., None]
        back *= _shadow(mask, rng)[..., None]
        # The render's outermost ring of part pixels holds some of its old backdrop (antialiasing,
        # JPEG): it is given to the new background, and the edge feathered by a pixel.
        inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
        alpha = cv2.GaussianBlur(inner.astype(np.float32), (3, 3), 0)[..., None]
        out = alpha * image.astype(np.float32) + (1 - alpha) * back
        return np.clip(out, 0, 255).astype(np.uint8)

    def _photo_window(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        photo = self.photos[int(rng.integers(len(self.photos)))]
        ph, pw = photo.shape[:2]
        side = int(min(ph, pw) * rng.uniform(0.25, 1.0))
        y, x = int(rng.integers(ph - side + 1)), int(rng.integers(pw - side + 1))
        window = photo[y : y + side, x : x + side]
        return cv2.resize(window, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def _surface_colour(rng: np.random.Generator) -> np.ndarray:
    tone = rng.choice(["white", "light", "grey", "black", "tint"], p=[0.3, 0.2, 0.2, 0.15, 0.15])
    level = {
        "white": (215, 255),
        "light": (160, 215),
        "grey": (70, 160),
        "black": (5, 50),
        "tint": (150, 240),
    }
    base = rng.uniform(*level[tone])
    spread = 40.0 if tone == "tint" else 6.0  # a white belt is not quite neutral under real light
    return np.clip(base + rng.uniform(-spread, spread, 3), 0, 255).astype(np.float32)


def _mottle(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    small = rng.normal(0.0, 1.0, (max(h // 16, 2), max(w // 16, 2))).astype(np.float32)
    field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return 1.0 + rng.uniform(0.03, 0.12) * field


def _uneven_light(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ys, xs = ys / max(h - 1, 1) - 0.5, xs / max(w - 1, 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    gradient = 1.0 + rng.uniform(0, 0.35) * (np.cos(angle) * xs + np.sin(angle) * ys)
    cy, cx = rng.uniform(-0.5, 0.5, 2)
    vignette = 1.0 - rng.uniform(0, 0.4) * ((ys - cy) ** 2 + (xs - cx) ** 2)
    return (gradient * vignette * rng.uniform(0.8, 1.15)).astype(np.float32)


def _shadow(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A multiplicative shading field: 1 away from the part, darker in its offset, blurred shadow."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    size = max(int(ys.max() - ys.min()), int(xs.max() - xs.min()), 1)
    angle = rng.uniform(0, 2 * np.pi)
    dist = rng.uniform(0.0, 0.12) * size
    shift = np.float32([[1, 0, np.cos(angle) * dist], [0, 1, np.sin(angle) * dist]])
    moved = cv2.warpAffine(mask.astype(np.float32), shift, (w, h))
    sigma = max(rng.uniform(0.03, 0.15) * size, 0.5)
    soft = cv2.GaussianBlur(moved, (0, 0), sigma)
    return 1.0 - rng.uniform(0.0, 0.55) * soft
