"""``type: hsv``: classic colour keying against the turntable's background colour.

Pixels whose HSV value lies inside the background range (optionally also a second, darker
"shadow" range) are background; everything else is part, tidied by :func:`clean_mask`. OpenCV
hue runs 0..179; a range whose lower hue exceeds its upper hue wraps around red (e.g. 170..10).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from edge.config import StrictModel, parse_yaml, read_text_file, validate_config
from edge.errors import ConfigError, DataFileError
from edge.segment.base import Calibration, MaskCleanup, Segmenter, register_segmenter

Hue = Annotated[int, Field(ge=0, le=179, description="OpenCV hue, 0..179 (degrees / 2)")]
Sat = Annotated[int, Field(ge=0, le=255, description="saturation, 0..255")]
Val = Annotated[int, Field(ge=0, le=255, description="value (brightness), 0..255")]
#: An OpenCV HSV colour: hue 0..179, saturation and value 0..255.
HsvTriplet = tuple[Hue, Sat, Val]


class HsvThresholds(StrictModel):
    """An inclusive HSV range; hue wraps around red when ``lower[0] > upper[0]``.

    This is also the ``background_hsv`` section the rig calibration writes:
    ``{"background_hsv": {"lower": [h, s, v], "upper": [h, s, v]}}``.
    """

    lower: HsvTriplet = Field(description="lowest [h, s, v] that counts as background")
    upper: HsvTriplet = Field(description="highest [h, s, v] that counts as background")

    @model_validator(mode="after")
    def _ordered(self) -> HsvThresholds:
        for i, name in ((1, "saturation"), (2, "value")):
            if self.lower[i] > self.upper[i]:
                raise ValueError(
                    f"lower {name} {self.lower[i]} exceeds upper {name} {self.upper[i]}; swap them "
                    "(only hue may wrap around)"
                )
        return self

    def in_range(self, hsv: np.ndarray) -> np.ndarray:
        """(H, W) uint8 mask, 255 where an (H, W, 3) uint8 HSV image lies inside the range."""
        (hl, sl, vl), (hu, su, vu) = self.lower, self.upper
        if hl <= hu:
            return cv2.inRange(hsv, np.array([hl, sl, vl], np.uint8), np.array([hu, su, vu], np.uint8))
        high = cv2.inRange(hsv, np.array([hl, sl, vl], np.uint8), np.array([179, su, vu], np.uint8))
        low = cv2.inRange(hsv, np.array([0, sl, vl], np.uint8), np.array([hu, su, vu], np.uint8))
        return cv2.bitwise_or(high, low)

    @classmethod
    def from_calibration(cls, data: Mapping[str, Any], source: str = "calibration") -> HsvThresholds:
        """Read the ``background_hsv`` section of parsed calibration data."""
        section = data.get("background_hsv") if isinstance(data, Mapping) else None
        if section is None:
            raise ConfigError(
                f"{source}: no 'background_hsv' section; run the rig's background calibration, or set "
                "segmenter.background_lower/background_upper and calibration: false"
            )
        return validate_config(cls, section, f"{source}: background_hsv")

    @classmethod
    def load(cls, path: str | Path) -> HsvThresholds:
        """Read the ``background_hsv`` section of a calibration file (JSON or YAML)."""
        return cls.from_calibration(read_calibration(path), str(path))


def read_calibration(path: str | Path) -> Mapping[str, Any]:
    """Parse a calibration file (JSON, or YAML which JSON is a subset of) into a mapping.

    Read like a config file (:func:`edge.config.read_text_file`, :func:`edge.config.parse_yaml`):
    at most 1 MB of UTF-8, no YAML aliases, no deep nesting; problems are ConfigErrors naming it.
    """
    path = Path(path)
    source = f"calibration file {str(path)!r}"
    text = read_text_file(
        path,
        "calibration file",
        missing=DataFileError,
        fix="run the rig calibration first or pass the file it wrote",
    )
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source} is not valid JSON at line {exc.lineno}: {exc.msg}") from None
        except RecursionError:
            raise ConfigError(f"{source} is nested deeper than JSON reading allows; check the file") from None
    else:
        data = parse_yaml(text, source)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} must hold a mapping at the top level")
    return data


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
            if isinstance(calibration, str | Path):
                background = HsvThresholds.load(calibration)
            else:
                background = HsvThresholds.from_calibration(calibration)
        return cls(config, background)

    def _raw_mask(self, frame_rgb: np.ndarray) -> np.ndarray:
        if self._blur > 1:
            frame_rgb = cv2.GaussianBlur(frame_rgb, (self._blur, self._blur), 0)
        hsv = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2HSV)
        background = self.background.in_range(hsv)
        if self.shadow is not None:
            background = cv2.bitwise_or(background, self.shadow.in_range(hsv))
        return cv2.bitwise_not(background)
