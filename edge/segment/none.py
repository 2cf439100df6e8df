"""``type: none``: no background removal; the mask covers the whole frame."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from edge.config import StrictModel
from edge.segment.base import Box, Segmenter, check_frame, register_segmenter


class NoneConfig(StrictModel):
    """Settings of the pass-through segmenter (the crop is the whole frame)."""

    type: Literal["none"] = Field("none", description="'none': keep the whole frame, no background removal")


@register_segmenter("none")
class NoneSegmenter(Segmenter):
    """Returns an all-255 mask the size of the frame."""

    config_model = NoneConfig

    def _raw_mask(self, frame_rgb: np.ndarray) -> np.ndarray:
        return np.full(frame_rgb.shape[:2], 255, np.uint8)

    def mask_count_box(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, int, Box | None]:
        """The all-255 mask, its one region (no labelling needed to count it) and the frame's box."""
        frame = check_frame(frame_rgb)
        return self._raw_mask(frame), 1, (0, 0, frame.shape[1], frame.shape[0])
