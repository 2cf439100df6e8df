"""Camera and surface effects for synthetic rig images: pure functions on float images.

Images are float32 (H, W, 3) RGB. Unless a function says otherwise they hold *linear* light
(before the sRGB curve), where light adds up: exposure, white balance and sensor noise belong
there. :func:`jpeg_roundtrip` works on display-encoded (sRGB) values, as a camera's encoder does.
Every random function takes a ``np.random.Generator`` and draws only from it, so results are
reproducible from a seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from studio.errors import ImageError

BackgroundKind = Literal["solid", "gradient", "noise"]


def _image(img: np.ndarray, name: str = "img") -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"{name} must be an (H, W, 3) RGB image, got shape {arr.shape!r}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ImageError(f"{name} must be a float image (0..1), got dtype {arr.dtype}; divide uint8 by 255")
    return arr.astype(np.float32, copy=False)


def _triple(value: object, name: str) -> np.ndarray:
    arr = np.asarray(value, np.float64)
    if arr.shape != (3,) or not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} must be three finite non-negative numbers (R, G, B), got {value!r}")
    return arr


def white_balance(img: np.ndarray, gains: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """Multiply each channel by its gain (a camera's white balance), linear light."""
    return _image(img) * _triple(gains, "gains").astype(np.float32)


def exposure(img: np.ndarray, ev: float) -> np.ndarray:
    """Brighten (ev > 0) or darken the image by ``2**ev``, linear light."""
    if not math.isfinite(ev) or abs(ev) > 10:
        raise ValueError(f"ev={ev!r} must be a finite exposure change within +-10 stops")
    return _image(img) * np.float32(2.0**ev)


def _planckian_xy(kelvin: float) -> tuple[float, float]:
    """CIE 1931 xy of a black body (Kim et al. 2002 cubic fit, valid 1667..25000 K)."""
    t = float(kelvin)
    if t <= 4000:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return x, y


_XYZ_TO_LINEAR_SRGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)


def _xy_to_rgb(x: float, y: float) -> np.ndarray:
    xyz = np.array([x / y, 1.0, (1.0 - x - y) / y])
    return _XYZ_TO_LINEAR_SRGB @ xyz


def kelvin_to_rgb(kelvin: float) -> np.ndarray:
    """Linear RGB colour of a light of colour temperature ``kelvin`` (1667..25000 K).

    Normalised so 6504 K (the sRGB white point's temperature) is (1, 1, 1) and the luminance (Y)
    stays 1: a warm 2700 K light comes out about (1.85, 0.82, 0.19), a cool 7500 K one about
    (0.93, 1.01, 1.14).
    """
    if not 1667 <= kelvin <= 25000:
        raise ValueError(
            f"kelvin={kelvin!r} is outside the supported 1667..25000 K (typical lights: 2700..7500)"
        )
    rgb = _xy_to_rgb(*_planckian_xy(kelvin)) / _xy_to_rgb(*_planckian_xy(6504.0))
    return np.clip(rgb, 0.0, None)


def sensor_noise(
    img: np.ndarray, rng: np.random.Generator, shot: float, read: float, *, scale: float = 1.0
) -> np.ndarray:
    """Add sensor noise, linear light: photon shot noise (variance ``shot * signal``) plus read
    noise (standard deviation ``read``), both Gaussian approximations.

    ``scale`` is how many image pixels one sensor pixel spans: an image rendered at 3x the sensor's
    resolution gets noise grains 3 pixels wide, one at 1/2 gets the averaged-down (weaker) noise.
    """
    if not (0 <= shot <= 1 and 0 <= read <= 1):
        raise ValueError(f"shot={shot!r} and read={read!r} must be in [0, 1] (fractions of full scale)")
    if not 0.01 <= scale <= 100:
        raise ValueError(f"scale={scale!r} must be in [0.01, 100] image pixels per sensor pixel")
    x = _image(img)
    h, w = x.shape[:2]
    sh, sw = max(1, round(h / scale)), max(1, round(w / scale))
    grain: np.ndarray = rng.standard_normal((sh, sw, 3), dtype=np.float32)
    if (sh, sw) != (h, w):
        # Area-averaging n sensor pixels into one divides the deviation by sqrt(n), as binning does.
        grain = cv2.resize(grain, (w, h), interpolation=cv2.INTER_AREA if sh > h else cv2.INTER_LINEAR)
    sigma = np.sqrt(np.clip(x, 0, None) * np.float32(shot) + np.float32(read) ** 2)
    return x + sigma * grain


def defocus(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma_px`` pixels (0 returns a copy)."""
    if not 0 <= sigma_px <= 100:
        raise ValueError(f"sigma_px={sigma_px!r} must be in [0, 100] pixels")
    x = _image(img)
    if sigma_px == 0:
        return x.copy()
    return cv2.GaussianBlur(x, (0, 0), sigmaX=float(sigma_px), borderType=cv2.BORDER_REFLECT)


def motion_kernel(angle_deg: float, length_px: float) -> np.ndarray:
    """Normalised line kernel of ``length_px`` pixels along ``angle_deg`` (0 = +x, 90 = +y down)."""
    if not 0 <= length_px <= 200:
        raise ValueError(f"length_px={length_px!r} must be in [0, 200] pixels")
    size = 2 * math.ceil(length_px / 2) + 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    a = math.radians(angle_deg)
    dx, dy = math.cos(a) * length_px / 2, math.sin(a) * length_px / 2
    # Draw at 16x sub-pixel precision so short and oblique lines keep their length.
    shift = 4
    p0 = (round((c - dx) * 16), round((c - dy) * 16))
    p1 = (round((c + dx) * 16), round((c + dy) * 16))
    cv2.line(kernel, p0, p1, 1.0, 1, cv2.LINE_AA, shift)
    if kernel.sum() <= 0:
        kernel[c, c] = 1.0
    return kernel / kernel.sum()


def motion_blur(img: np.ndarray, angle_deg: float, length_px: float) -> np.ndarray:
    """Linear motion blur: the image smeared over ``length_px`` pixels along ``angle_deg``."""
    x = _image(img)
    if length_px < 1:
        return x.copy()
    return cv2.filter2D(x, -1, motion_kernel(angle_deg, length_px), borderType=cv2.BORDER_REFLECT)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` (1..100) and decode again; display-encoded (sRGB) values in 0..1."""
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer) or not 1 <= quality <= 100:
        raise ValueError(f"quality={quality!r} must be an integer JPEG quality from 1 to 100")
    x = _image(img)
    u8 = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise ImageError("OpenCV failed to JPEG-encode the image")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:  # pragma: no cover - it just encoded this buffer
        raise ImageError("OpenCV failed to decode its own JPEG")
    out = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return out.astype(np.float32) / 255.0


def _smooth_noise(shape: tuple[int, int], rng: np.random.Generator, cell_px: float) -> np.ndarray:
    """Zero-mean, unit-deviation image noise with blotches about ``cell_px`` pixels wide."""
    h, w = shape
    cell = max(float(cell_px), 1.0)
    gh, gw = max(2, math.ceil(h / cell) + 2), max(2, math.ceil(w / cell) + 2)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    noise = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) if cell > 1 else coarse[:h, :w]
    noise = noise - noise.mean()
    std = float(noise.std())
    return noise / std if std > 1e-6 else noise


_M1, _M2, _M3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9)


def _lattice(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """A reproducible pseudo-random value in [-1, 1) per integer lattice point (a hash, no state)."""
    with np.errstate(over="ignore"):
        h = ix.astype(np.uint64) * _M1 ^ iy.astype(np.uint64) * _M2 ^ np.uint64(seed) * _M3
        h ^= h >> np.uint64(31)
        h *= _M2
        h ^= h >> np.uint64(29)
    return (h >> np.uint64(11)).astype(np.float64) * (2.0 / 2**53) - 1.0


def value_noise(u: np.ndarray, v: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth noise of the plane coordinates (u, v): features about ``cell`` units wide, zero mean,
    deviation about 1. A pure function of position, so any region at any resolution agrees."""
    gu, gv = np.asarray(u, np.float64) / cell, np.asarray(v, np.float64) / cell
    iu, iv = np.floor(gu), np.floor(gv)
    fu, fv = gu - iu, gv - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    iu, iv = iu.astype(np.int64), iv.astype(np.int64)
    top = _lattice(iu, iv, seed) * (1 - fu) + _lattice(iu + 1, iv, seed) * fu
    bottom = _lattice(iu, iv + 1, seed) * (1 - fu) + _lattice(iu + 1, iv + 1, seed) * fu
    return ((top * (1 - fv) + bottom * fv) * 2.3).astype(np.float32)  # 2.3: unit deviation


def _grid_noise(u: np.ndarray, v: np.ndarray, cell: float, seed: int, footprint: float) -> np.ndarray:
    """:func:`value_noise` for features many pixels wide on an image grid: evaluated on every 4th
    pixel and interpolated (the noise is smooth at that scale), else evaluated everywhere."""
    step = 4
    if u.ndim == 2 and min(u.shape) >= 4 * step and cell >= 4 * step * footprint:
        coarse = value_noise(u[::step, ::step], v[::step, ::step], cell, seed)
        return cv2.resize(coarse, (u.shape[1], u.shape[0]), interpolation=cv2.INTER_LINEAR)
    return value_noise(u, v, cell, seed)


#: Relative albedo changes below this are not drawn (well under one 8-bit step after noise).
_FAINT = 0.004


def _resolved(feature: float, footprint: float) -> float:
    """How much of a feature ``feature`` wide survives pixels ``footprint`` wide (1 sharp, 0 gone)."""
    return float(np.clip(feature / max(footprint, 1e-9) - 1.0, 0.0, 1.0))


@dataclass(frozen=True)
class DiscSurface:
    """A turntable disc's procedural surface, a pure function of position on the disc (mm).

    Attributes:
        rgb: linear-RGB albedo of the plain surface.
        noise: relative strength of fine mottling (0.3 mm grains plus 8 mm blotches).
        grain: relative strength of concentric machining rings 0.5 mm apart.
        felt: 0..1, how much the surface looks like felt (fibrous, desaturated, darker patches).
        seed: picks the noise pattern (draw it from the scene's generator).
    """

    rgb: tuple[float, float, float]
    noise: float = 0.0
    grain: float = 0.0
    felt: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _triple(self.rgb, "DiscSurface.rgb")
        for name in ("noise", "grain", "felt"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"DiscSurface.{name}={getattr(self, name)!r} must be in [0, 1]")

    def albedo(self, u_mm: np.ndarray, v_mm: np.ndarray, footprint_mm: float = 0.1) -> np.ndarray:
        """Albedo (..., 3) at disc coordinates (mm from the centre), seen with pixels
        ``footprint_mm`` wide: details finer than a pixel fade out instead of aliasing."""
        u, v = np.asarray(u_mm, np.float64), np.asarray(v_mm, np.float64)
        shade = np.ones(u.shape, np.float32)
        if self.noise > 0:
            shade += np.float32(self.noise * 0.5) * _grid_noise(u, v, 8.0, self.seed + 1, footprint_mm)
            fine = self.noise * 0.7 * _resolved(0.3, footprint_mm)
            if fine >= _FAINT:  # grains that pixels this wide would not show are not computed
                shade += np.float32(fine) * value_noise(u, v, 0.3, self.seed)
        if self.grain > 0:
            strength = self.grain * _resolved(0.25, footprint_mm)
            if strength > 0:
                phase = (self.seed % 1000) / 1000 * 2 * math.pi
                rings = np.sin(np.hypot(u, v) * (2 * math.pi / 0.5) + phase)
                wobble = 0.6 + 0.4 * _grid_noise(u, v, 3.0, self.seed + 2, footprint_mm)
                shade += np.float32(strength) * (rings * wobble).astype(np.float32)
        out = shade[..., None] * np.asarray(self.rgb, np.float32)
        if self.felt > 0:
            amount = np.float32(self.felt)
            patches = np.abs(_grid_noise(u, v, 5.0, self.seed + 4, footprint_mm))
            grey = out.mean(axis=-1, keepdims=True)
            out = out * (1 - 0.3 * amount) + grey * (0.3 * amount)  # felt scatters: less saturated
            texture = -0.08 * patches
            fibres = 0.12 * self.felt * _resolved(0.2, footprint_mm)
            if fibres >= _FAINT:
                texture += np.float32(0.12 * _resolved(0.2, footprint_mm)) * value_noise(
                    u, v, 0.2, self.seed + 3
                )
            out = out * (1 + amount * texture)[..., None]
        return np.clip(out, 0.0, None).astype(np.float32)


def disc_texture(size: int, surface: DiscSurface, radius_mm: float) -> np.ndarray:
    """The disc seen straight from above as a (size, size, 3) linear-RGB image (outside: black)."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not 4 <= size <= 8192:
        raise ValueError(f"size={size!r} must be an integer from 4 to 8192 pixels")
    if not radius_mm > 0:
        raise ValueError(f"radius_mm={radius_mm!r} must be positive")
    step = 2 * radius_mm / size
    coords = (np.arange(size) + 0.5) * step - radius_mm
    u, v = np.meshgrid(coords, coords)
    out = surface.albedo(u, v, step)
    out[np.hypot(u, v) > radius_mm] = 0
    return out


def background_texture(
    height: int,
    width: int,
    rgb: np.ndarray | tuple[float, float, float],
    rng: np.random.Generator,
    *,
    kind: BackgroundKind = "solid",
    strength: float = 0.2,
) -> np.ndarray:
    """An (height, width, 3) linear-RGB backdrop beyond the turntable.

    ``solid``: plain ``rgb``. ``gradient``: ``rgb`` brightening/darkening by up to ``strength``
    across the frame in a random direction (uneven light falling off). ``noise``: blotchy
    variation of relative strength ``strength`` (a textured housing or table).
    """
    if any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1 for v in (height, width)):
        raise ValueError(f"size {height!r} x {width!r} must be positive integers")
    if not 0 <= strength <= 1:
        raise ValueError(f"strength={strength!r} must be in [0, 1]")
    base = _triple(rgb, "rgb").astype(np.float32)
    shade: np.ndarray
    if kind == "solid":
        shade = np.ones((height, width), np.float32)
    elif kind == "gradient":
        a = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        t = (xx - width / 2) * math.cos(a) + (yy - height / 2) * math.sin(a)
        t /= max(float(np.abs(t).max()), 1.0)
        shade = 1.0 + np.float32(strength) * t
    elif kind == "noise":
        cell = max(height, width) / 6.0
        shade = 1.0 + np.float32(strength) * 0.5 * (
            _smooth_noise((height, width), rng, cell) + 0.3 * _smooth_noise((height, width), rng, cell / 8)
        )
    else:
        raise ValueError(f"kind={kind!r} is not a background kind; use 'solid', 'gradient' or 'noise'")
    return np.clip(shade, 0.0, None)[:, :, None] * base


# ----------------------------------------------------------------------------- colour appearance

_LINEAR_SRGB_TO_XYZ = np.linalg.inv(_XYZ_TO_LINEAR_SRGB)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])


def srgb_to_lab(rgb: np.ndarray | Sequence[float]) -> np.ndarray:
    """CIE L*a*b* (D65) of sRGB colours given as 0..255 values, shape (..., 3)."""
    c = np.clip(np.asarray(rgb, np.float64) / 255.0, 0, 1)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = (lin @ _LINEAR_SRGB_TO_XYZ.T) / _D65_WHITE
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """sRGB 0..255 (float, clipped to the gamut) of CIE L*a*b* (D65) colours, shape (..., 3)."""
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    t = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _D65_WHITE
    lin = np.clip(t @ _XYZ_TO_LINEAR_SRGB.T, 0, 1)
    c = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return c * 255.0


def delta_e(rgb1: np.ndarray | Sequence[float], rgb2: np.ndarray | Sequence[float]) -> np.ndarray:
    """CIE76 colour difference (Euclidean distance in L*a*b*) between sRGB 0..255 colours."""
    return np.linalg.norm(srgb_to_lab(rgb1) - srgb_to_lab(rgb2), axis=-1)


def jitter_color(
    rgb: Sequence[float] | np.ndarray,
    rng: np.random.Generator,
    max_delta_e: float,
    others: np.ndarray | Sequence[Sequence[float]] = (),
) -> np.ndarray:
    """A random colour within ``max_delta_e`` (CIE76) of ``rgb`` that still looks like it.

    ``others`` are the sRGB values of the other named colours: the result stays on ``rgb``'s side
    of every boundary between ``rgb`` and one of them (closer to ``rgb`` than to any of them, with
    a 10% safety margin), so a jittered Dark Bluish Gray never turns into Dark Gray. Colours within
    1 delta E of ``rgb`` (duplicates) impose no boundary. Returns sRGB 0..255 floats.
    """
    if not 0 <= max_delta_e <= 20:
        raise ValueError(f"max_delta_e={max_delta_e!r} must be in [0, 20]")
    origin = srgb_to_lab(rgb)
    direction = rng.standard_normal(3)
    direction /= max(float(np.linalg.norm(direction)), 1e-12)
    step = float(max_delta_e * rng.uniform(0.0, 1.0) ** (1 / 3))  # uniform within the ball
    pts = srgb_to_lab(np.asarray(others, np.float64).reshape(-1, 3))
    gap = pts - origin
    dist2 = np.einsum("ij,ij->i", gap, gap)
    towards = gap @ direction
    blocking = (dist2 > 1.0) & (towards > 0)
    if blocking.any():  # distance along `direction` to each bisecting plane, kept 10% short of it
        step = min(step, 0.9 * float(np.min(dist2[blocking] / (2 * towards[blocking]))))
    distinct = pts[dist2 > 1.0]
    for _ in range(8):
        out = lab_to_srgb(origin + step * direction)
        # Gamut clipping may have moved it: accept it only if it still keeps both promises.
        lab = srgb_to_lab(out)
        mine = float(np.linalg.norm(lab - origin))
        if mine <= max_delta_e and (not len(distinct) or np.linalg.norm(distinct - lab, axis=1).min() > mine):
            return out
        step *= 0.5
    return np.asarray(rgb, np.float64).copy()
