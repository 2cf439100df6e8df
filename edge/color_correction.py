"""Colour correction of frames before recognition, from the calibration file's ``color`` section.

The correction works in linear sRGB: ``rgb' = matrix @ (white_balance * rgb)``, one 3x3 matrix once
the gains are folded in. Frames are decoded and encoded through lookup tables, so a 640x480 frame
costs a few milliseconds. The matrix and gains are fitted by ``edge calibrate color``
(:mod:`calibration.color`); the sRGB transfer functions live here so the fit and the runtime agree.

:class:`DriftCorrection` undoes what the camera's exposure and white balance did since then: the
colour calibration stores the stage's colour around the reference bricks (``background_rgb``, as the
camera saw it, uncorrected); per view, the background ring around the part in its crop gives the
stage's colour now, and the per-channel ratio (medians, in linear light) scales the view back before
the matrix. Drift of exposure and white balance is a per-channel gain in linear light, so the ratio
taken before the matrix undoes it exactly; after a non-diagonal matrix it would not.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np

from edge.errors import ConfigError, ImageError

log = logging.getLogger(__name__)

_ENCODE_STEPS = 4096  # linear -> sRGB table resolution (finer than 8-bit output near black)


def srgb_to_linear(values: Any) -> np.ndarray:
    """sRGB-encoded values in 0..1 to linear light (IEC 61966-2-1)."""
    v = np.asarray(values, np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values: Any) -> np.ndarray:
    """Linear light in 0..1 to sRGB encoding (IEC 61966-2-1); values are clipped to 0..1 first."""
    v = np.clip(np.asarray(values, np.float64), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


_DECODE = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_ENCODE = np.round(linear_to_srgb(np.arange(_ENCODE_STEPS) / (_ENCODE_STEPS - 1)) * 255).astype(np.uint8)


class ColorCorrection:
    """White balance then a 3x3 matrix, in linear sRGB, applied to RGB uint8 frames."""

    def __init__(self, white_balance: Any, matrix: Any) -> None:
        gains = np.asarray(white_balance, np.float64)
        m = np.asarray(matrix, np.float64)
        if gains.shape != (3,) or m.shape != (3, 3) or not (np.all(np.isfinite(m)) and np.all(gains > 0)):
            raise ConfigError(
                f"colour correction needs 3 positive gains and a finite 3x3 matrix; got gains "
                f"{gains.tolist()!r}, matrix {m.tolist()!r}: run `edge calibrate color` again"
            )
        self.white_balance = gains
        self.matrix = m
        self.combined = (m @ np.diag(gains)).astype(np.float32)

    @classmethod
    def from_calibration(cls, data: Any, source: str = "calibration") -> ColorCorrection:
        """The ``color`` section of calibration data (a file, a mapping or a CalibrationFile)."""
        from edge.calibration_file import FIX_RUN, load_calibration

        cal, source, _ = load_calibration(data, source)
        if cal.color is None:
            raise ConfigError(
                f"{source}: no 'color' section; {FIX_RUN['color']}, or set color_correction: false"
            )
        return cls(cal.color.white_balance, cal.color.matrix)

    def apply_linear(self, linear: np.ndarray) -> np.ndarray:
        """Correct (..., 3) linear RGB values (float; not clipped)."""
        return np.asarray(linear, np.float64) @ self.combined.T.astype(np.float64)

    def apply(self, frame_rgb: np.ndarray, gains: Any = None) -> np.ndarray:
        """The corrected copy of an (H, W, 3) uint8 RGB frame.

        ``gains``: linear per-channel gains applied first (a :class:`DriftCorrection`'s), folded
        into the matrix so they cost nothing extra.
        """
        if frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
            raise ImageError(
                "colour correction needs an (H, W, 3) uint8 RGB frame; got "
                f"{frame_rgb.dtype} {frame_rgb.shape!r}"
            )
        combined = self.combined
        if gains is not None:
            combined = (combined @ np.diag(np.asarray(gains, np.float32))).astype(np.float32)
        linear = _DECODE[frame_rgb]
        out = cv2.transform(linear, combined)
        index = np.clip(out * (_ENCODE_STEPS - 1) + 0.5, 0, _ENCODE_STEPS - 1).astype(np.int32)
        return _ENCODE[index]


#: The identity correction: drift correction alone, without a colour calibration's matrix.
IDENTITY = ColorCorrection((1.0, 1.0, 1.0), np.eye(3))
#: 8-bit medians at or beyond these are clipped or lost in noise: no trustworthy ratio.
_DARKEST, _BRIGHTEST = 4.0, 250.0


def background_ring(mask: np.ndarray) -> np.ndarray:
    """Where a crop shows the stage: outside its part mask grown by about 2 % of the crop's side
    (so the part's soft edge and contact shadow stay out). (H, W) bool."""
    part = (np.asarray(mask) > 0).astype(np.uint8)
    grow = max(3, (max(part.shape) // 50) * 2 + 1)
    return cv2.dilate(part, np.ones((grow, grow), np.uint8)) == 0


def ring_median(image_rgb: np.ndarray, mask: np.ndarray, min_pixels: int = 1) -> np.ndarray | None:
    """Median sRGB (3,) of the stage around the part in a crop, or None with under ``min_pixels``."""
    ring = background_ring(mask)
    if int(np.count_nonzero(ring)) < max(min_pixels, 1):
        return None
    return np.median(np.asarray(image_rgb)[ring].astype(np.float64), axis=0)


class DriftCorrection:
    """Per-view gains that bring the stage around the part back to its colour at calibration.

    ``reference_rgb``: the stage's median sRGB (0..255) when the colours were calibrated, as the
    camera saw it. A view is measured only with at least ``min_pixels`` ring pixels, making at least
    ``min_share`` of its crop, and no channel near black or clipped; its gains are clipped to
    ``1/max_gain .. max_gain``. Otherwise :meth:`gains` gives None: the view is not drift-corrected.
    """

    def __init__(
        self, reference_rgb: Any, *, min_pixels: int = 100, min_share: float = 0.05, max_gain: float = 2.0
    ) -> None:
        ref = np.asarray(reference_rgb, np.float64)
        if ref.shape != (3,) or not np.all((ref > _DARKEST) & (ref < _BRIGHTEST)):
            raise ConfigError(
                f"drift correction needs the stage's colour at calibration, 3 values within "
                f"{_DARKEST:g}..{_BRIGHTEST:g}; got {ref.tolist()!r}: run `edge calibrate color` again"
            )
        self.reference_rgb = ref
        self.reference_linear = srgb_to_linear(ref / 255.0)
        self.min_pixels, self.min_share, self.max_gain = int(min_pixels), float(min_share), float(max_gain)

    @classmethod
    def from_calibration(cls, data: Any, source: str = "calibration") -> DriftCorrection:
        """From the ``color`` section's ``background_rgb`` (a file, a mapping or a CalibrationFile)."""
        from edge.calibration_file import load_calibration

        cal, source, _ = load_calibration(data, source)
        if cal.color is None or cal.color.background_rgb is None:
            raise ConfigError(
                f"{source}: the color section has no background_rgb (the stage's colour at calibration); "
                "run `edge calibrate color` again, or set drift_correction: false"
            )
        return cls(cal.color.background_rgb)

    def gains(self, crop_rgb: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
        """Linear (3,) gains for a view's crop and its part mask, or None when it cannot be measured."""
        ring = background_ring(mask)
        count = int(np.count_nonzero(ring))
        if count < self.min_pixels or count < self.min_share * ring.size:
            return None
        now = np.median(np.asarray(crop_rgb)[ring].astype(np.float64), axis=0)
        if not np.all((now > _DARKEST) & (now < _BRIGHTEST)):
            log.debug("drift not measured: the stage around the part is %s (clipped or black)", now)
            return None
        ratio = self.reference_linear / srgb_to_linear(now / 255.0)
        return np.clip(ratio, 1.0 / self.max_gain, self.max_gain)
