"""``type: u2net``: salient-object segmentation with a U-2-Net ONNX model (rembg compatible).

Pre- and post-processing follow rembg's ``U2netSession``/``U2netpSession`` so a user's copy of
rembg's ``u2net.onnx`` or ``u2netp.onnx`` works unchanged: resize to 320x320, divide by the
image's maximum (not 255), ImageNet mean/std, NCHW float32; the first output's channel 0 is
min-max normalised to 0..1, scaled to 0..255 and resized back. rembg resizes with PIL's LANCZOS;
this uses ``cv2.INTER_LANCZOS4``, the closest OpenCV kernel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from edge.errors import ModelError
from edge.segment.base import (
    MaskCleanup,
    Segmenter,
    check_input_shape,
    load_onnx_session,
    register_segmenter,
    run_session,
)

SIZE = 320
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
MODEL_HINT = (
    "point segmenter.model at a U-2-Net ONNX file such as rembg's u2netp.onnx (small, fast) or "
    "u2net.onnx (from the rembg project's releases, or ~/.u2net/ after rembg has run once)"
)


class U2NetConfig(MaskCleanup):
    """Settings of the U-2-Net segmenter."""

    type: Literal["u2net"] = Field("u2net", description="'u2net': U-2-Net ONNX model (rembg's u2net/u2netp)")
    model: Path = Field(description="path of the U-2-Net ONNX file, e.g. u2netp.onnx")
    threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="saliency (0..1, after min-max normalisation) that counts as part"
    )
    threads: int = Field(2, ge=0, le=64, description="onnxruntime intra-op threads; 0 = onnxruntime decides")


def preprocess(frame_rgb: np.ndarray) -> np.ndarray:
    """rembg's U-2-Net input tensor (1, 3, 320, 320) float32 for an (H, W, 3) uint8 RGB frame."""
    small = cv2.resize(frame_rgb, (SIZE, SIZE), interpolation=cv2.INTER_LANCZOS4)
    scaled = small / max(float(small.max()), 1e-6)  # rembg divides by the image's max, not 255
    normalised = (scaled - np.array(MEAN)) / np.array(STD)
    return normalised.transpose(2, 0, 1)[None].astype(np.float32)


def postprocess(output: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """rembg's mask from the model's first output (N, C, h, w): (height, width) uint8 saliency 0..255."""
    pred = np.asarray(output, np.float32)[:, 0, :, :]
    lo, hi = float(pred.min()), float(pred.max())
    # A flat map carries no foreground (rembg would divide by zero here).
    pred = np.zeros_like(pred) if hi - lo <= 0.0 else (pred - lo) / (hi - lo)
    saliency = (np.squeeze(pred, axis=0) * 255).astype(np.uint8)
    height, width = size
    return cv2.resize(saliency, (width, height), interpolation=cv2.INTER_LANCZOS4)


@register_segmenter("u2net")
class U2NetSegmenter(Segmenter):
    """U-2-Net saliency -> threshold -> :func:`clean_mask`. Loads the model on construction."""

    config_model = U2NetConfig

    def __init__(self, config: U2NetConfig) -> None:
        super().__init__(config)
        self.threshold = config.threshold
        self.model_path = Path(config.model).expanduser()
        self._session: Any = load_onnx_session(self.model_path, config.threads, MODEL_HINT)
        self._input = check_input_shape(self._session, self.model_path, (1, 3, SIZE, SIZE))

    def saliency(self, frame_rgb: np.ndarray) -> np.ndarray:
        """rembg-equivalent (H, W) uint8 saliency map (0..255) of a validated frame."""
        if self._session is None:
            raise RuntimeError(f"segmenter for {str(self.model_path)!r} is closed; create a new one")
        outputs = run_session(self._session, self.model_path, None, {self._input: preprocess(frame_rgb)})
        first = np.asarray(outputs[0])
        if first.ndim != 4 or first.shape[0] != 1:
            raise ModelError(
                f"segmenter model {str(self.model_path)!r} returned shape {first.shape!r}; a U-2-Net "
                "model returns (1, 1, h, w) first"
            )
        return postprocess(first, frame_rgb.shape[:2])

    def _raw_mask(self, frame_rgb: np.ndarray) -> np.ndarray:
        saliency = self.saliency(frame_rgb)
        return np.where(saliency >= self.threshold * 255.0, 255, 0).astype(np.uint8)

    def close(self) -> None:
        """Drop the onnxruntime session (frees the model's memory)."""
        self._session = None
