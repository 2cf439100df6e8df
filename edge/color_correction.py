"""Colour correction of frames before recognition, from the calibration file's ``color`` section.

The correction works in linear sRGB: ``rgb' = matrix @ (white_balance * rgb)``, one 3x3 matrix once
the gains are folded in. Frames are decoded and encoded through lookup tables, so a 640x480 frame
costs a few milliseconds. The matrix and gains are fitted by ``edge calibrate color``
(:mod:`calibration.color`); the sRGB transfer functions live here so the fit and the runtime agree.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edge.errors import ConfigError, ImageError

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

    def apply(self, frame_rgb: np.ndarray) -> np.ndarray:
        """The corrected copy of an (H, W, 3) uint8 RGB frame."""
        if frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
            raise ImageError(
                "colour correction needs an (H, W, 3) uint8 RGB frame; got "
                f"{frame_rgb.dtype} {frame_rgb.shape!r}"
            )
        linear = _DECODE[frame_rgb]
        out = cv2.transform(linear, self.combined)
        index = np.clip(out * (_ENCODE_STEPS - 1) + 0.5, 0, _ENCODE_STEPS - 1).astype(np.int32)
        return _ENCODE[index]
