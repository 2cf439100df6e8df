"""``type: mobileseg``: the trainer's light segmentation ONNX model.

The model takes (N, 3, H, W) float32 and returns (N, 1, h, w) mask logits. A JSON sidecar next
to it (``seg.json`` or ``seg.onnx.json`` for ``seg.onnx``) describes its input::

    {"input_size": [H, W], "mean": [r, g, b], "std": [r, g, b], "output": "mask_logits"}

Pre-processing (the trainer must match it): RGB, resize to (H, W) (``INTER_AREA`` when shrinking,
``INTER_LINEAR`` when enlarging), divide by 255, subtract ``mean`` and divide by ``std`` per
channel (both in 0..1 units), NCHW. Post-processing: sigmoid, resize to the frame, threshold.

With ``calibration: true`` the segmenter also learns the rig's empty stage: it runs once on the
background model ``edge calibrate background`` fitted (the median image of the empty stage's
frames) and drops what it finds there, grown by ``static_grow_px``, from every frame's mask before
the clean-up, so the rig's own machinery at the edge of the view is never taken for a part.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from pydantic import Field

from edge.config import StrictModel, validate_config
from edge.errors import ConfigError, DataFileError, ModelError
from edge.manifest import verify_shipped_segmenter
from edge.segment.base import (
    Calibration,
    MaskCleanup,
    Segmenter,
    check_input_shape,
    load_onnx_session,
    register_segmenter,
    run_session,
)

MODEL_HINT = "point segmenter.model at the segmentation model the trainer exported (with its .json sidecar)"

Side = Annotated[int, Field(ge=8, le=4096, description="pixels")]
Mean = Annotated[float, Field(ge=-10.0, le=10.0, description="channel mean in 0..1 units")]
Std = Annotated[float, Field(gt=0.0, le=10.0, description="channel std in 0..1 units, > 0")]


class MobileSegSidecar(StrictModel):
    """The ``<model>.json`` file describing a mobileseg model's input and output."""

    input_size: tuple[Side, Side] = Field(description="model input [height, width], 8..4096 pixels each")
    mean: tuple[Mean, Mean, Mean] = Field(description="per-channel RGB mean in 0..1 units")
    std: tuple[Std, Std, Std] = Field(description="per-channel RGB std in 0..1 units, all > 0")
    output: str = Field("mask_logits", min_length=1, description="name of the (N, 1, h, w) logits output")


def sidecar_candidates(model: Path) -> list[Path]:
    """Where a model's sidecar may be: ``seg.json`` then ``seg.onnx.json`` for ``seg.onnx``."""
    return [model.with_suffix(".json"), model.with_name(model.name + ".json")]


def load_sidecar(model: Path, sidecar: Path | None = None) -> MobileSegSidecar:
    """Read and validate the sidecar of ``model`` (``sidecar`` overrides the default locations)."""
    paths = [sidecar] if sidecar is not None else sidecar_candidates(model)
    found = next((p for p in paths if p.is_file()), None)
    if found is None:
        tried = " or ".join(repr(str(p)) for p in paths)
        raise DataFileError(
            f"the sidecar of segmenter model {str(model)!r} is missing (looked for {tried}); copy the "
            "JSON file the trainer wrote next to the model, or set segmenter.sidecar"
        )
    try:
        data = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"sidecar {str(found)!r} is not readable JSON: {exc}") from None
    return validate_config(MobileSegSidecar, data, f"sidecar {str(found)!r}")


class MobileSegConfig(MaskCleanup):
    """Settings of the trainer's light segmentation model."""

    type: Literal["mobileseg"] = Field(
        "mobileseg", description="'mobileseg': the trainer's segmentation ONNX"
    )
    model: Path = Field(description="path of the segmentation ONNX file")
    sidecar: Path | None = Field(None, description="its JSON sidecar; default: next to the model")
    threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="probability (after sigmoid) that counts as part"
    )
    threads: int = Field(2, ge=0, le=64, description="onnxruntime intra-op threads; 0 = onnxruntime decides")
    calibration: bool = Field(
        False,
        description="true: drop what the model finds on the calibrated empty stage (the background model "
        "of `edge calibrate background`) from every mask",
    )
    static_grow_px: int = Field(
        9,
        ge=1,
        le=101,
        description="diameter by which the empty stage's regions grow before they are dropped",
    )


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow warnings for large negative logits."""
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


@register_segmenter("mobileseg")
class MobileSegSegmenter(Segmenter):
    """Mask logits -> sigmoid -> resize -> threshold -> :func:`clean_mask`."""

    config_model = MobileSegConfig

    def __init__(self, config: MobileSegConfig, empty_stage: np.ndarray | None = None) -> None:
        super().__init__(config)
        self.model_path = Path(config.model).expanduser()
        if not self.model_path.is_file():
            raise DataFileError(f"segmenter model {str(self.model_path)!r} does not exist; {MODEL_HINT}")
        # A model shipped in a model set is checked against the set's manifest before it runs.
        self.shipped = verify_shipped_segmenter(self.model_path, config.sidecar)
        self.spec = load_sidecar(self.model_path, config.sidecar)
        self.threshold = config.threshold
        self._session: Any = load_onnx_session(self.model_path, config.threads, MODEL_HINT)
        height, width = self.spec.input_size
        self._input = check_input_shape(self._session, self.model_path, (None, 3, height, width))
        names = [o.name for o in self._session.get_outputs()]
        if self.spec.output not in names:
            raise ModelError(
                f"segmenter model {str(self.model_path)!r} has no output {self.spec.output!r} (its outputs: "
                f"{names!r}); fix 'output' in the sidecar"
            )
        # The empty stage's own regions (machinery, marks), dropped from every mask; per frame size.
        self._empty_stage = empty_stage
        self._static: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    def from_config(cls, config: StrictModel, *, calibration: Calibration = None) -> MobileSegSegmenter:
        if not isinstance(config, MobileSegConfig):
            raise TypeError(f"MobileSegSegmenter needs a MobileSegConfig; got {type(config).__name__}")
        if not config.calibration:
            return cls(config)
        from edge.segment.bgdiff import model_from_calibration

        image = model_from_calibration(calibration).image
        return cls(config, np.clip(np.rint(image), 0, 255).astype(np.uint8))

    def static_regions(self, shape: tuple[int, int]) -> np.ndarray | None:
        """(H, W) bool: what the model finds on the calibrated empty stage, grown; None without one."""
        if self._empty_stage is None:
            return None
        if shape not in self._static:
            stage = self._empty_stage
            if stage.shape[:2] != shape:
                stage = cv2.resize(stage, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
            found = (self.probability(stage) >= self.threshold).astype(np.uint8)
            size = self.config.static_grow_px  # type: ignore[attr-defined]
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
            self._static[shape] = cv2.dilate(found, kernel) > 0
        return self._static[shape]

    def preprocess(self, frame_rgb: np.ndarray) -> np.ndarray:
        """(1, 3, H, W) float32 model input for an (h, w, 3) uint8 RGB frame."""
        height, width = self.spec.input_size
        shrink = height * width < frame_rgb.shape[0] * frame_rgb.shape[1]
        resized = cv2.resize(
            frame_rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        )
        scaled = resized.astype(np.float32) / 255.0
        normalised = (scaled - np.array(self.spec.mean, np.float32)) / np.array(self.spec.std, np.float32)
        return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None])

    def probability(self, frame_rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 part probability of a validated frame."""
        if self._session is None:
            raise RuntimeError(f"segmenter for {str(self.model_path)!r} is closed; create a new one")
        feed = {self._input: self.preprocess(frame_rgb)}
        (logits,) = run_session(self._session, self.model_path, [self.spec.output], feed)
        logits = np.asarray(logits)
        if logits.ndim != 4 or logits.shape[:2] != (1, 1):
            raise ModelError(
                f"segmenter model {str(self.model_path)!r} output {self.spec.output!r} has shape "
                f"{logits.shape!r}; expected (1, 1, h, w) mask logits"
            )
        height, width = frame_rgb.shape[:2]
        return cv2.resize(sigmoid(logits[0, 0]), (width, height), interpolation=cv2.INTER_LINEAR)

    def _raw_mask(self, frame_rgb: np.ndarray) -> np.ndarray:
        part = self.probability(frame_rgb) >= self.threshold
        static = self.static_regions(frame_rgb.shape[:2])
        if static is not None:
            part &= ~static
        return np.where(part, 255, 0).astype(np.uint8)

    def close(self) -> None:
        """Drop the onnxruntime session (frees the model's memory)."""
        self._session = None
