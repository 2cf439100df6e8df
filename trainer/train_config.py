"""The training config of ``trainer stage1`` and ``trainer stage2`` (YAML, validated), and its reader.

:class:`TrainConfig` is what a stage's YAML file holds (``config/stage1_synthetic.yaml``,
``config/stage2_real.yaml``); ``trainer ship config`` writes one and checks it against this model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from edge.config import StrictModel, load_config


class SourceConfig(StrictModel):
    """One data source folder."""

    path: str = Field(description="data source folder (trainer render output, B200C, rig captures)")
    kind: Literal["auto", "b200c", "legacy", "real"] = Field(default="auto", description="layout, or auto")
    name: str | None = Field(default=None, min_length=1, description="source name; default: its kind")
    weight: float | None = Field(
        default=None, ge=0.0, le=100.0, description="per-image sampling weight (default: real 3, else 1)"
    )


class CacheConfig(StrictModel):
    """Frozen-feature cache (CPU training)."""

    mode: Literal["auto", "on", "off"] = Field(default="auto", description="auto: on when training on a CPU")
    copies: int = Field(default=4, ge=1, le=64, description="augmented copies cached per training image")
    dir: str | None = Field(default=None, description="cache folder; default: <out>/feature_cache")


class TrainConfig(StrictModel):
    """A training run (see config/stage1_synthetic.yaml and config/stage2_real.yaml)."""

    sources: list[SourceConfig] = Field(min_length=1, description="data sources to train on")
    split: tuple[float, float, float] = Field(
        default=(0.8, 0.1, 0.1), description="train/val/test fractions of captures"
    )
    min_samples: int = Field(default=1, ge=1, le=100000, description="drop parts with fewer training images")
    holdout_parts: int | list[str] = Field(
        default=0, description="parts kept out of training for the unseen-parts test: a count or a list"
    )
    epoch_size: int | None = Field(default=None, ge=1, le=10**8, description="images per epoch; default all")
    input_size: int = Field(default=128, ge=32, le=512, description="network input side in pixels")
    background: Literal["keep", "fill"] = Field(default="keep", description="input background mode")
    crop_margin: float = Field(default=0.1, ge=0.0, le=2.0, description="crop margin around the part mask")
    model: str = Field(default="efficientnet_lite0", description="architecture (trainer.models registry)")
    pretrained: bool = Field(default=True, description="start the backbone from ImageNet weights")
    embedding_dim: int = Field(default=128, ge=8, le=256, description="embedding length")
    freeze_blocks: int = Field(default=3, ge=0, le=7, description="frozen backbone stages (plus stem)")
    init_from: str | None = Field(default=None, description="checkpoint to start from (stage2: stage 1's)")
    augment: Literal["stage1", "stage2", "none"] | None = Field(
        default=None, description="augmentation preset; default: the command's stage"
    )
    background_swap: float = Field(
        default=0.0, ge=0.0, le=1.0, description="share of training images put on another background"
    )
    background_photos: str | None = Field(
        default=None, description="folder of photos of real empty stages for the background swap"
    )
    mask_jitter: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of training images whose mask is grown, shrunk or given a stray region, as a"
        " real segmenter's masks are (trainer.augment.MaskJitter)",
    )
    part_photometric: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of training images given strong white-balance, exposure, contrast and"
        " saturation changes for the part head, colour labels dropped (trainer.augment.PartPhotometric)",
    )
    frame_edge: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of the training draws without part_photometric whose frame ends at or"
        " across the part, padded as the Pi pads a crop that leaves the frame (trainer.augment.FrameEdge)",
    )
    mixstyle: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of training batches whose front features have their per-image channel"
        " statistics mixed between images (MixStyle, trainer.mixstyle); 0 = off",
    )
    epochs: int = Field(default=10, ge=1, le=10000, description="training epochs")
    batch_size: int = Field(default=64, ge=1, le=4096, description="images per optimizer step")
    lr: float = Field(default=3e-3, gt=0.0, le=10.0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(default=1e-4, ge=0.0, le=1.0, description="AdamW weight decay")
    warmup_epochs: float = Field(default=1.0, ge=0.0, le=1000.0, description="linear warm-up length")
    min_lr_ratio: float = Field(default=0.01, ge=0.0, le=1.0, description="cosine floor, fraction of lr")
    probe_epochs: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="epochs at the start in which only the heads learn (the backbone's trained stages"
        " wait, then warm up and decay over the epochs left): linear probing, then fine-tuning (LP-FT)",
    )
    label_smoothing: float = Field(default=0.1, ge=0.0, le=0.5, description="label smoothing of the heads")
    part_weight: float = Field(default=1.0, ge=0.0, le=100.0, description="weight of the part loss")
    color_weight: float = Field(default=1.0, ge=0.0, le=100.0, description="weight of the colour loss")
    embedding_weight: float = Field(default=1.0, ge=0.0, le=100.0, description="weight of the embedding loss")
    embedding_scale: float = Field(default=16.0, gt=0.0, le=100.0, description="cosine classifier scale")
    embedding_margin: float = Field(default=0.2, ge=0.0, le=1.0, description="cosine (CosFace) margin")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="seed of splits, sampling and augmentation")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto: cuda when present")
    threads: int | None = Field(default=None, ge=1, le=256, description="torch CPU threads; default all")
    workers: int = Field(default=0, ge=0, le=64, description="DataLoader worker processes")
    cache: CacheConfig = Field(default_factory=CacheConfig, description="frozen-feature cache")
    keep_last: int = Field(default=2, ge=1, le=1000, description="epoch checkpoints kept")
    out: str = Field(description="output folder")

    @model_validator(mode="after")
    def _probe_within_run(self) -> TrainConfig:
        if self.probe_epochs >= self.epochs:
            raise ValueError(
                f"probe_epochs {self.probe_epochs} leaves no epoch of fine-tuning in {self.epochs}"
                " epochs; set probe_epochs below epochs (0: no linear probe)"
            )
        return self


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a config and apply the non-None ``overrides`` (CLI flags), re-validating them.

    Relative paths in the file (sources, ``init_from``, ``out``, ``cache.dir``, ``background_photos``) are
    taken from the file's folder, as in the project's other configs, and made absolute (a checkpoint
    records its sources: ``trainer export`` run from another folder finds them); overrides are used
    as given.
    """
    cfg = load_config(TrainConfig, path)
    base = Path(path).absolute().parent

    def anchored(value: str) -> str:
        return value if Path(value).is_absolute() else str(base / value)

    for src in cfg.sources:
        src.path = anchored(src.path)
    cfg.out = anchored(cfg.out)
    if cfg.init_from:
        cfg.init_from = anchored(cfg.init_from)
    if cfg.cache.dir:
        cfg.cache.dir = anchored(cfg.cache.dir)
    if cfg.background_photos:
        cfg.background_photos = anchored(cfg.background_photos)
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)  # validate_assignment checks the value
    return cfg
