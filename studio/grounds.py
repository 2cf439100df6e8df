"""What a part lies on in a path-traced scene: textures of the surfaces real sorting rigs have.

Each ground is a linear-RGB albedo texture with its physical size, how it repeats, its gloss and
(for a backlit panel) its glow. Textures that repeat are periodic by construction (noise filtered in
the frequency domain), so no seam shows where tiles meet. All draws come from the generator given.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from studio import effects
from studio.errors import DataFileError
from studio.render import srgb_to_linear

#: Side of every ground texture in texels. One size for all keeps Mitsuba's compiled kernels reusable.
TEXTURE_SIZE = 512
_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Belt colours (linear RGB albedo): white and cream PVC, greys, black rubber, green and blue PVC.
_BELT_COLOURS = (
    (0.78, 0.78, 0.76),
    (0.70, 0.66, 0.55),
    (0.35, 0.36, 0.37),
    (0.12, 0.12, 0.12),
    (0.03, 0.03, 0.03),
    (0.05, 0.22, 0.08),
    (0.04, 0.10, 0.30),
)


@dataclass
class Ground:
    """A ground surface (the plane y = 0, LDraw axes) as the path tracer builds it.

    Attributes:
        kind: the ground kind (see :data:`studio.pathtrace_config.GroundKind`).
        albedo: (S, S, 3) float32 linear-RGB texture.
        tile_mm: physical side of one texture tile.
        wrap: how the texture continues past one tile: 'repeat' (periodic textures) or 'mirror'.
        roughness: the surface's roughness (principled BSDF); specular its specular level.
        emission: radiance of a backlit panel (0: not emissive).
        rig: for kind 'rig': the turntable disc's texture (spanning the disc's diameter), the colour
            of its side, and the enclosure floor's texture below it.
        meta: JSON-serialisable record of the draws.
    """

    kind: str
    albedo: np.ndarray
    tile_mm: float
    wrap: Literal["repeat", "mirror"] = "repeat"
    roughness: float = 0.7
    specular: float = 0.4
    emission: float = 0.0
    rig: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def periodic_noise(size: int, cell_px: float, rng: np.random.Generator, stretch: float = 1.0) -> np.ndarray:
    """(size, size) float32 noise, zero mean and unit deviation, with blobs about ``cell_px`` wide
    (``stretch`` times longer down the columns: streaks), that tiles seamlessly."""
    white = rng.standard_normal((size, size))
    f = np.fft.fftfreq(size)
    sigma_x, sigma_y = max(cell_px, 0.5) / 2.0, max(cell_px * stretch, 0.5) / 2.0
    gain = np.exp(-2 * math.pi**2 * ((f[None, :] * sigma_x) ** 2 + (f[:, None] * sigma_y) ** 2))
    out = np.fft.ifft2(np.fft.fft2(white) * gain).real
    out -= out.mean()
    std = float(out.std())
    return (out / std if std > 1e-12 else out).astype(np.float32)


def _tinted(rgb: np.ndarray, rng: np.random.Generator, tint: float) -> np.ndarray:
    return np.asarray(rgb, np.float64) * np.exp(rng.normal(0.0, tint, 3))


def _plain(rgb: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A board of one colour with faint blotches and grain."""
    s = TEXTURE_SIZE
    shade = 1 + strength * (0.7 * periodic_noise(s, 96, rng) + 0.3 * periodic_noise(s, 2, rng))
    return np.clip(shade[:, :, None] * np.asarray(rgb, np.float32), 0, 1).astype(np.float32)


def belt_texture(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A conveyor belt: rubber or PVC grain, streaks along the run, dirt, and sometimes a weave."""
    s = TEXTURE_SIZE
    shade = (
        1
        + 0.05 * periodic_noise(s, 1.5, rng)
        + float(rng.uniform(0.02, 0.08)) * periodic_noise(s, 3, rng, stretch=40)
    )
    shade += float(rng.uniform(0.0, 0.12)) * periodic_noise(s, 60, rng)  # dirt and wear
    if rng.uniform() < 0.4:  # fabric belt: a weave of threads a few texels apart
        period = float(rng.integers(4, 10))
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        weave = np.sin(2 * math.pi * xx / period) * np.sin(2 * math.pi * yy / period)
        shade += float(rng.uniform(0.03, 0.1)) * weave
    return np.clip(shade[:, :, None] * np.asarray(rgb, np.float32), 0, 1).astype(np.float32)


def list_photos(folder: Path | str) -> list[Path]:
    """The photos (jpg/png) in ``folder``, sorted. Raises :class:`DataFileError` if there are none."""
    root = Path(folder)
    photos = sorted(p for p in root.iterdir() if p.suffix.lower() in _PHOTO_SUFFIXES) if root.is_dir() else []
    if not photos:
        raise DataFileError(
            f"background folder {str(root)!r} holds no .jpg/.png photos; "
            "pass a folder of photos of empty rigs"
        )
    return photos


@functools.lru_cache(maxsize=16)
def _read_photo(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataFileError(f"background photo {str(path)!r} cannot be read as an image")
    return srgb_to_linear(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)


def photo_texture(path: Path, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """A random square window of a background photo, flipped/turned at random, as albedo.

    A photo holds its own lighting; it is scaled so its bright end is a plausible albedo.
    """
    img = _read_photo(path)
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.5, 1.0))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    tex = cv2.resize(
        img[y0 : y0 + side, x0 : x0 + side], (TEXTURE_SIZE, TEXTURE_SIZE), interpolation=cv2.INTER_AREA
    )
    tex = np.rot90(tex, int(rng.integers(4)))
    if rng.uniform() < 0.5:
        tex = tex[:, ::-1]
    top = float(np.percentile(tex, 98))
    scale = float(rng.uniform(0.6, 0.9)) / max(top, 1e-3)
    return np.clip(tex * scale, 0, 1).astype(np.float32), {"photo": path.name, "window": [x0, y0, side]}


def draw_ground(
    kind: str,
    rng: np.random.Generator,
    *,
    rig_disc: effects.DiscSurface,
    disc_radius_mm: float,
    floor_rgb: np.ndarray,
    floor_kind: effects.BackgroundKind = "solid",
    floor_strength: float = 0.0,
    photos: list[Path] | None = None,
) -> Ground:
    """Draw a ground of ``kind``. The rig's disc and floor come from the scene's own draws, so the
    'rig' ground is the turntable the rasteriser draws."""
    s = TEXTURE_SIZE
    meta: dict[str, Any] = {"kind": kind}
    if kind == "rig":
        disc = effects.disc_texture(s, rig_disc, disc_radius_mm)
        floor = effects.background_texture(s, s, floor_rgb, rng, kind=floor_kind, strength=floor_strength)
        rig = {"disc": disc, "rim_rgb": np.asarray(rig_disc.rgb) * 0.8, "floor": floor}
        return Ground(kind, floor, 400.0, "mirror", 0.6, 0.4, rig=rig, meta=meta)
    if kind in ("white", "grey", "black"):
        level = {"white": (0.7, 0.9), "grey": (0.12, 0.45), "black": (0.015, 0.05)}[kind]
        rgb = _tinted(np.full(3, rng.uniform(*level)), rng, 0.03)
        tex = _plain(rgb, rng, float(rng.uniform(0.005, 0.04)))
        meta["rgb"] = rgb.tolist()
        return Ground(kind, tex, 100.0, "repeat", float(rng.uniform(0.35, 0.95)), 0.4, meta=meta)
    if kind == "backlit":
        glow = float(rng.uniform(0.9, 1.8))
        meta["emission"] = glow
        tex = _plain(np.full(3, 0.8), rng, 0.01)
        return Ground(kind, tex, 100.0, "repeat", 0.9, 0.3, emission=glow, meta=meta)
    if kind == "belt":
        rgb = _tinted(np.asarray(_BELT_COLOURS[int(rng.integers(len(_BELT_COLOURS)))]), rng, 0.05)
        meta["rgb"] = rgb.tolist()
        tile = float(rng.uniform(60, 140))
        return Ground(
            kind, belt_texture(rgb, rng), tile, "repeat", float(rng.uniform(0.4, 0.9)), 0.4, meta=meta
        )
    if kind == "photo":
        if not photos:
            raise DataFileError("the 'photo' ground needs background photos; pass a backgrounds folder")
        tex, info = photo_texture(photos[int(rng.integers(len(photos)))], rng)
        meta.update(info)
        return Ground(
            kind, tex, float(rng.uniform(150, 400)), "mirror", float(rng.uniform(0.4, 0.9)), 0.4, meta=meta
        )
    if kind == "procedural":
        rgb = _tinted(np.full(3, rng.uniform(0.05, 0.8)), rng, 0.25)
        surface = effects.DiscSurface(
            tuple(np.clip(rgb, 0, 1).tolist()),
            noise=float(rng.uniform(0.0, 0.3)),
            grain=float(rng.uniform(0.0, 0.2)) if rng.uniform() < 0.4 else 0.0,
            felt=float(rng.uniform(0.4, 1.0)) if rng.uniform() < 0.4 else 0.0,
            seed=int(rng.integers(2**31)),
        )
        tile = float(rng.uniform(60, 200))
        coords = (np.arange(s) + 0.5) * (tile / s) - tile / 2
        u, v = np.meshgrid(coords, coords)
        tex = np.clip(surface.albedo(u, v, tile / s), 0, 1).astype(np.float32)
        meta.update(rgb=rgb.tolist(), noise=surface.noise, grain=surface.grain, felt=surface.felt)
        return Ground(kind, tex, tile, "mirror", float(rng.uniform(0.5, 0.95)), 0.35, meta=meta)
    raise ValueError(
        f"ground kind {kind!r} is unknown; use one of rig, white, grey, black, backlit, belt, photo, "
        "procedural"
    )
