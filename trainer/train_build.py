"""What a training run is built from, before its epoch loop (:func:`trainer.train.train`): the
output folder and device (:func:`start_run`), the data and splits (:func:`build_data`), the model
(:func:`build_model`), the optimizer and its schedule (:func:`build_optimizer`), the state of a
resumed run (:func:`resume_state`) and the datasets, cached frozen-front features on a CPU
(:func:`build_datasets`, with the stage's augmentation from :func:`training_augmenter`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ConfigError
from trainer.train_config import TrainConfig

log = logging.getLogger(__name__)

#: Settings a resumed run may change: where and how it runs, not what or how it learns.
RESUMABLE_CHANGES = frozenset({"out", "device", "threads", "workers", "keep_last", "cache"})
#: Settings that name folders: compared by the folder's name, since a config's relative paths are
#: anchored to its own folder and an older checkpoint may hold them relative.
_FOLDER_SETTINGS = ("background_photos", "init_from")


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}
    for key in _FOLDER_SETTINGS:
        if out.get(key):
            out[key] = Path(out[key]).name
    out["sources"] = [{**s, "path": Path(s["path"]).name} for s in out.get("sources", [])]
    return out


def config_changes(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{setting: (saved value, value now)}`` for the settings of a checkpoint's config (``saved``)
    that this config (``now``, both as :meth:`TrainConfig.model_dump` in JSON mode) changes, other
    than :data:`RESUMABLE_CHANGES`."""
    a, b = _comparable(saved), _comparable(now)
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def resolve_device(name: str) -> str:
    """``"cuda"`` or ``"cpu"`` for a config's device (ConfigError when cuda is asked for but absent)."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but torch sees no GPU; use device: auto or cpu")
    return name


def deterministic_cuda() -> None:
    """Make a seeded GPU run repeat exactly, as a CPU run does (and a resumed run end where an
    uninterrupted one does): cuDNN's fastest kernels add in a varying order. Process-wide."""
    import torch

    # cuBLAS needs a fixed workspace to be deterministic; read when its first handle is made.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    # warn_only: an op with no deterministic kernel warns rather than stops the training.
    torch.use_deterministic_algorithms(True, warn_only=True)


def lr_factor(step: int, warmup: int, total: int, floor: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``floor`` at ``total`` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class RunState:
    """Where a run stands; each checkpoint carries it, and ``--resume`` continues from it."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best_score: float = -1.0  # best validation part top-1 (train's where there is no validation set)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Datasets:
    """Training and validation datasets: cached frozen-front features, or full images."""

    train: Any
    val: Any
    cached: bool
    cache_seconds: float = 0.0


def start_run(cfg: TrainConfig, stage: str, *, resume: bool = False, fresh: bool = False) -> tuple[Path, str]:
    """Check the stage, make the output folder, set up the device, seed torch and write
    ``config.json``; returns ``(out, device)``.

    A run started without ``resume`` in a folder holding epoch checkpoints would overwrite them
    one by one and leave a mix of two runs behind, so it is refused unless ``fresh`` asks for
    them to be deleted first."""
    import shutil

    import torch

    from trainer.checkpoint import latest_checkpoint, read_meta

    if stage not in ("stage1", "stage2"):
        raise ConfigError(f"stage {stage!r} is unknown; use stage1 or stage2")
    if stage == "stage2" and not cfg.init_from:
        raise ConfigError("stage2 needs a stage 1 checkpoint: set init_from in the config or pass --init")
    if resume and fresh:
        raise ConfigError("--resume and --fresh contradict each other: pass one")
    out = Path(cfg.out)
    last = latest_checkpoint(out)
    if last is not None and resume:
        changed = config_changes(read_meta(last)[0].config, cfg.model_dump(mode="json"))
        if changed:
            said = "; ".join(f"{k} {a!r} there, {b!r} here" for k, (a, b) in changed.items())
            raise ConfigError(
                f"--resume: {str(last)!r} was trained with other settings ({said}); a resumed run "
                "must keep what it learns from and how: resume with the settings it started with, "
                "pass --fresh to delete its epoch checkpoints and start over, or --out another folder"
            )
    if last is not None and not resume:
        if not fresh:
            raise ConfigError(
                f"{str(out)!r} already holds a run's epoch checkpoints (newest {last.name}): pass "
                "--resume to continue it, --fresh to delete them and start over, or --out another folder"
            )
        log.warning("--fresh: deleting the epoch checkpoints in %s", out / "checkpoints")
        shutil.rmtree(out / "checkpoints")
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device == "cuda":
        deterministic_cuda()
    torch.manual_seed(cfg.seed)
    write_json(out / "config.json", {"stage": stage, **cfg.model_dump(mode="json")})
    return out, device


def build_data(cfg: TrainConfig, out: Path) -> dict[str, Any]:
    """Sources, hold-out, splits, label map (written into ``out``) and the training sampler.

    Returns ``{sampler, val, label_map, low_res, holdout}``.
    """
    from trainer.checkpoint import merge_label_maps, read_meta
    from trainer.data import MixedSampler, build_label_map, holdout_parts, split_samples
    from trainer.dataset import load_sources

    by_source, low_res = load_sources(cfg.sources)
    weights = {
        name: src.weight for name, src in zip(by_source, cfg.sources, strict=True) if src.weight is not None
    }
    samples = [s for items in by_source.values() for s in items]
    holdout: list[str] = []
    if cfg.holdout_parts:
        samples, unseen = holdout_parts(samples, cfg.holdout_parts, cfg.seed)
        holdout = sorted({s.part_num for s in unseen})
        write_json(out / "holdout_parts.json", {"parts": holdout, "seed": cfg.seed})
    splits = split_samples(samples, cfg.split, cfg.seed)
    label_map = build_label_map(splits["train"], cfg.min_samples)
    if cfg.init_from:
        base, _ = read_meta(cfg.init_from)
        if base.name != cfg.model:
            raise ConfigError(
                f"init_from {cfg.init_from!r} is a {base.name!r} checkpoint but model is {cfg.model!r}; "
                "set model to match it"
            )
        label_map = merge_label_maps(base.label_map, label_map)
    saved = out / "label_map.json"
    if saved.is_file():
        from trainer.data import LabelMap

        old = LabelMap.from_json(saved)
        if (old.parts, old.colors) != (label_map.parts, label_map.colors):
            raise ConfigError(
                f"{str(saved)!r} holds another label map than this config's data gives; use a new --out "
                "folder, or delete that folder's contents to start over"
            )
    label_map.to_json(saved)
    train_set = set(label_map.keep(splits["train"]))
    train_by_source = {n: [s for s in items if s in train_set] for n, items in by_source.items()}
    train_by_source = {n: items for n, items in train_by_source.items() if items}
    counts = {
        split: {n: sum(s.source == n for s in items) for n in by_source} for split, items in splits.items()
    }
    write_json(out / "splits.json", {"seed": cfg.seed, "fractions": list(cfg.split), "images": counts})
    train_weights = {n: w for n, w in weights.items() if n in train_by_source}
    return {
        "sampler": MixedSampler(train_by_source, train_weights, seed=cfg.seed, epoch_size=cfg.epoch_size),
        "val": label_map.keep(splits["val"]),
        "label_map": label_map,
        "low_res": low_res,
        "holdout": holdout,
    }


def build_model(cfg: TrainConfig, data: dict[str, Any], device: str) -> tuple[Any, Any]:
    """The network for the run's label map (from ``init_from``'s weights where set) on ``device``,
    and its input spec."""
    import torch

    from trainer.checkpoint import load_checkpoint, transfer_weights
    from trainer.models import create_model, default_input_spec

    label_map = data["label_map"]
    spec = default_input_spec(
        cfg.model, cfg.input_size, background=cfg.background, crop_margin=cfg.crop_margin
    )
    model = create_model(
        cfg.model,
        num_parts=label_map.num_parts,
        num_colors=label_map.num_colors,
        embedding_dim=cfg.embedding_dim,
        pretrained=cfg.pretrained and not cfg.init_from,
        freeze_blocks=cfg.freeze_blocks,
    )
    if cfg.init_from:
        source, source_meta = load_checkpoint(cfg.init_from)
        copied = transfer_weights(source, source_meta.label_map, model, label_map)
        log.info("started from %s: %s", cfg.init_from, copied)
    model.to(device, memory_format=torch.channels_last)
    return model, spec


def build_optimizer(cfg: TrainConfig, model: Any, steps_per_epoch: int) -> tuple[Any, Any]:
    """AdamW (no weight decay on biases, norms and the proxies) and its per-step warm-up + cosine schedule.

    With ``probe_epochs`` the backbone's trained stages have their own groups, held at learning rate 0
    for those epochs (the heads learn on the pretrained features: a linear probe), then warmed up and
    decayed over the epochs left, while the heads' schedule spans the whole run (LP-FT: a head that
    already fits does not pull the pretrained features apart with its first, random gradients).
    """
    import torch

    total_steps = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    probe = cfg.probe_epochs * steps_per_epoch

    def whole_run(step: int) -> float:
        return lr_factor(step, warmup, total_steps, cfg.min_lr_ratio)

    def after_probe(step: int) -> float:
        return 0.0 if step < probe else lr_factor(step - probe, warmup, total_steps - probe, cfg.min_lr_ratio)

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    sets = [named]
    if probe:
        sets = [[(n, p) for n, p in named if not n.startswith("backbone.")]]
        sets.append([(n, p) for n, p in named if n.startswith("backbone.")])
    groups = []
    for params in sets:
        decayed = [p for n, p in params if p.ndim > 1 and n != "proxies"]
        groups += [
            {"params": decayed, "weight_decay": cfg.weight_decay},
            {"params": [p for n, p in params if p.ndim <= 1 or n == "proxies"], "weight_decay": 0.0},
        ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    schedules: list[Any] = [whole_run, whole_run] + ([after_probe, after_probe] if probe else [])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedules)
    return optimizer, scheduler


def resume_state(out: Path, model: Any, optimizer: Any, scheduler: Any, device: str) -> RunState:
    """Load the newest epoch checkpoint in ``out`` into the model, optimizer and scheduler and return
    its state; a fresh state (with a warning) when there is none."""
    from trainer.checkpoint import latest_checkpoint, load_checkpoint, load_training_state

    last = latest_checkpoint(out)
    if last is None:
        log.warning("--resume: no epoch checkpoint in %s; starting from the beginning", out)
        return RunState()
    saved, meta = load_checkpoint(last, device=device)
    model.load_state_dict(saved.state_dict())
    load_training_state(last, optimizer, scheduler)
    log.info("resuming after epoch %d (step %d) from %s", meta.epoch, meta.step, last)
    return RunState(meta.epoch, meta.step, float(meta.extra["best_score"]), list(meta.extra["history"]))


def training_augmenter(cfg: TrainConfig, stage: str, *, photometric: bool = True) -> Any:
    """The :class:`~trainer.augment.Augmenter` of a training stage as ``cfg`` sets it: the stage's
    pipeline (or ``cfg.augment``), the background swap, the mask jitter, the frame's-edge cut and,
    with ``photometric``, the part head's strong photometric jitter."""
    from trainer.augment import Augmenter, FrameEdge, MaskJitter, PartPhotometric
    from trainer.backgrounds import BackgroundSwap

    swap = (
        BackgroundSwap.from_folder(cfg.background_swap, cfg.background_photos)
        if cfg.background_swap
        else None
    )
    return Augmenter(
        cfg.augment or stage,  # type: ignore[arg-type]
        min_side=cfg.input_size,
        backgrounds=swap,
        mask_jitter=MaskJitter(cfg.mask_jitter) if cfg.mask_jitter else None,
        photometric=PartPhotometric(cfg.part_photometric) if photometric and cfg.part_photometric else None,
        frame_edge=FrameEdge(cfg.frame_edge, cfg.crop_margin) if cfg.frame_edge else None,
    )


def build_datasets(
    cfg: TrainConfig,
    stage: str,
    data: dict[str, Any],
    model: Any,
    spec: Any,
    out: Path,
    device: str,
    progress: bool,
) -> Datasets:
    """The training (augmented, with the background swap) and validation datasets.

    With the feature cache (``cache.mode`` on, or auto on a CPU; needs a frozen front) the frozen
    front's output of ``cache.copies`` augmented copies per image is computed once and stored;
    otherwise every epoch augments and runs full images.
    """
    from trainer.augment import Augmenter
    from trainer.dataset import CachedDataset, FeatureCache, PartDataset

    mode = cfg.cache.mode
    if mode == "on" and not cfg.freeze_blocks:
        raise ConfigError("cache mode 'on' needs freeze_blocks >= 1: only a frozen front can be cached")
    use_cache = bool(cfg.freeze_blocks) and (mode == "on" or (mode == "auto" and device == "cpu"))
    augmenter = training_augmenter(cfg, stage)
    plain = Augmenter("none", min_side=cfg.input_size)
    samples, val, label_map = data["sampler"].samples, data["val"], data["label_map"]
    kw: dict[str, Any] = {"seed": cfg.seed, "low_res_sources": data["low_res"]}
    if not use_cache:
        return Datasets(
            PartDataset(samples, label_map, spec, augmenter, **kw),
            PartDataset(val, label_map, spec, plain, **kw),
            cached=False,
        )
    root = Path(cfg.cache.dir) if cfg.cache.dir else out / "feature_cache"
    train_cache = FeatureCache(root, model, spec, augmenter, copies=cfg.cache.copies, **kw)
    val_cache = FeatureCache(root, model, spec, plain, copies=1, **kw)
    started = time.perf_counter()
    train_cache.build(samples, batch_size=cfg.batch_size, progress=progress)
    val_cache.build(val, batch_size=cfg.batch_size, progress=progress)
    seconds = elapsed(started)
    return Datasets(
        CachedDataset(samples, label_map, train_cache),
        CachedDataset(val, label_map, val_cache),
        cached=True,
        cache_seconds=seconds,
    )


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def elapsed(start: float) -> float:
    """Seconds since ``start`` (time.perf_counter)."""
    return time.perf_counter() - start
