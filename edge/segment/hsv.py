"""``type: hsv``: classic colour keying against the turntable's background colour.

Pixels whose HSV value lies inside the background range (optionally also a second, darker
"shadow" range) are background; everything else is part, tidied by :func:`clean_mask`. OpenCV
hue runs 0..179; a range whose lower hue exceeds its upper hue wraps around red (e.g. 170..10).
The parts are first found on a frame shrunk ``search_scale`` times, and only the box around them is
keyed and tidied at full resolution (:mod:`edge.segment.regions`).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from edge.calibration_file import HsvThresholds, HsvTriplet
from edge.config import StrictModel
from edge.errors import ConfigError
from edge.segment.base import Box, Calibration, MaskCleanup, Segmenter, check_frame, register_segmenter
from edge.segment.regions import coarse_to_fine

#: Kept importable from here: the range's model lives with the calibration file's schema.
__all__ = ["HsvConfig", "HsvSegmenter", "HsvThresholds", "HsvTriplet"]


class HsvConfig(MaskCleanup):
    """Settings of the HSV colour-keying segmenter."""

    type: Literal["hsv"] = Field("hsv", description="'hsv': key out the turntable's background colour")
    background_lower: HsvTriplet | None = Field(
        None, description="lowest background [h, s, v] (hue 0..179); unset when calibration is true"
    )
    background_upper: HsvTriplet | None = Field(
        None, description="highest background [h, s, v]; a lower hue above the upper hue wraps around red"
    )
    calibration: bool = Field(
        False, description="true: read the background range from the calibration file's background_hsv"
    )
    shadow_lower: HsvTriplet | None = Field(
        None, description="lowest [h, s, v] of the part's shadow; optional"
    )
    shadow_upper: HsvTriplet | None = Field(
        None, description="highest [h, s, v] of the part's shadow; optional"
    )
    blur_px: int = Field(
        3, ge=0, le=51, description="Gaussian blur kernel before keying, in pixels (made odd); 0 or 1 = off"
    )
    min_area_px: int = Field(200, ge=0, le=10_000_000, description="regions smaller than this are dropped")
    fill_holes_px: int = Field(
        300,
        ge=0,
        le=10_000_000,
        description="enclosed holes smaller than this many pixels are filled; 0 = off",
    )

    search_scale: int = Field(
        6,
        ge=1,
        le=8,
        description="find the parts on a frame shrunk this many times, then mask only around them "
        "at full resolution (the same mask for a fraction of the work; a region thinner than about "
        "this many pixels, apart from the others, may be missed); 1 = key the whole frame",
    )

    @model_validator(mode="after")
    def _ranges(self) -> HsvConfig:
        given = (self.background_lower is not None, self.background_upper is not None)
        if self.calibration and any(given):
            raise ValueError("calibration is true and background_lower/upper are set; use one or the other")
        if not self.calibration and not all(given):
            raise ValueError("set both background_lower and background_upper, or calibration: true")
        if (self.shadow_lower is None) != (self.shadow_upper is None):
            raise ValueError("set both shadow_lower and shadow_upper, or neither")
        # Checks the saturation/value order of both ranges.
        if all(given):
            HsvThresholds(lower=self.background_lower, upper=self.background_upper)  # type: ignore[arg-type]
        if self.shadow_lower is not None:
            HsvThresholds(lower=self.shadow_lower, upper=self.shadow_upper)  # type: ignore[arg-type]
        return self


@register_segmenter("hsv")
class HsvSegmenter(Segmenter):
    """Colour keying: background range (and optional shadow range) -> 0, the rest -> 255."""

    config_model = HsvConfig

    def __init__(self, config: HsvConfig, background: HsvThresholds | None = None) -> None:
        """``background`` is required when ``config.calibration`` is true (see :meth:`from_config`)."""
        super().__init__(config)
        self.hsv_config = config
        if background is None:
            if config.calibration or config.background_lower is None or config.background_upper is None:
                raise ConfigError(
                    "segmenter.calibration is true but no calibration data was given; pass the rig's "
                    "calibration file (run the background calibration first) or set "
                    "background_lower/background_upper"
                )
            background = HsvThresholds(lower=config.background_lower, upper=config.background_upper)
        self.background = background
        self.shadow = (
            HsvThresholds(lower=config.shadow_lower, upper=config.shadow_upper)
            if config.shadow_lower is not None and config.shadow_upper is not None
            else None
        )
        self._blur = config.blur_px | 1  # Gaussian kernels must be odd

    @classmethod
    def from_config(cls, config: StrictModel, *, calibration: Calibration = None) -> HsvSegmenter:
        """Build from config, reading ``background_hsv`` from ``calibration`` when the config asks."""
        if not isinstance(config, HsvConfig):
            raise TypeError(f"HsvSegmenter needs an HsvConfig; got {type(config).__name__}")
        background = None
        if config.calibration and calibration is not None:
            background = HsvThresholds.from_calibration(calibration)
        return cls(config, background)

    def mask_count_box(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, int, Box | None]:
        """See :meth:`Segmenter.mask_count_box`; found on a shrunk frame first (``search_scale``)."""
        cfg = self.hsv_config
        if cfg.search_scale > 1:
            frame = check_frame(frame_rgb)
            found = coarse_to_fine(frame, self._key, self._raw_mask, cfg, cfg.search_scale, self._blur // 2)
            if found is not None:
                return found
            frame_rgb = frame
        return super().mask_count_box(frame_rgb)

    def _raw_mask(self, frame_rgb: np.ndarray) -> np.ndarray:
        if self._blur > 1:
            frame_rgb = cv2.GaussianBlur(frame_rgb, (self._blur, self._blur), 0)
        return self._key(frame_rgb)

    def _key(self, frame_rgb: np.ndarray) -> np.ndarray:
        """0 where a pixel's HSV lies in the background (or shadow) range, 255 elsewhere."""
        hsv = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2HSV)
        background = self.background.in_range(hsv)
        if self.shadow is not None:
            background = cv2.bitwise_or(background, self.shadow.in_range(hsv))
        return cv2.bitwise_not(background)
