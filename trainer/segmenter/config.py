"""Constants of the segmenter's files and :class:`SegConfig`, what a run is."""

from __future__ import annotations

from dataclasses import asdict, dataclass

MODEL_NAME = "seg.onnx"
SIDECAR_NAME = "seg.json"
INT8_NAME = "seg_int8.onnx"
INT8_SIDECAR_NAME = "seg_int8.json"
#: Convolutions nearest the image kept float in the int8 file (the stem: full resolution, 3 channels).
INT8_FLOAT_CONVS = 1
#: Training images the int8 file's activation ranges are calibrated on.
INT8_CALIBRATION_IMAGES = 64
REPORT_NAME = "report.json"
CHECKPOINT_DIR = "checkpoint"
#: Input normalisation per encoder (Lite0's ImageNet weights were trained on inputs scaled to -1..1).
NORMALISATION = {"tiny": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), "lite0": ((0.5,) * 3, (0.5,) * 3)}
ENCODERS = tuple(NORMALISATION)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class SegConfig:
    """What a run is: a resumed run must have the same (``epochs`` may grow)."""

    height: int = 240
    width: int = 320
    encoder: str = "tiny"  # "tiny" (from scratch) or "lite0" (EfficientNet-Lite0's ImageNet stages)
    width_mult: float = 1.0
    epochs: int = 6
    batch_size: int = 16
    epoch_images: int = 0  # training images drawn afresh each epoch; 0: all of them
    lr: float = 3e-3
    swap: float = 0.7
    val_share: float = 0.05
    seed: int = 0
    zoom: float = 0.0  # share of training images seen through a smaller window around the part
    max_zoom: float = 4.0  # the window's largest magnification (1 / side share)

    def same_run(self, other: SegConfig) -> bool:
        """Equal but for ``epochs``."""
        return asdict(self) | {"epochs": 0} == asdict(other) | {"epochs": 0}
