"""``trainer refit-color``: a trained network's colour head refitted under a camera's tone curve.

The network is frozen; only the colour head (``color_features``, ``color_stats``, ``color_head``
of :class:`trainer.models.PartNet`) learns again, from its trained weights, on pooled features of
``images`` training renders drawn from the training config's own split. Each render is augmented
once as stage 1 augments it (its colour-safe pipeline, background swap and mask jitter; not the
part head's strong photometric jitter, which drops colour labels) and then, with ``tone`` of the
draws, passed through a :class:`trainer.augment.ToneCurve`: a camera's black level, exposure and
gamma over the whole frame, the colour label kept. The part head, the embedding and the backbone
stay bit for bit as trained, so every part figure of the network is unchanged.

Why: the renders have one studio's tone; a real camera's is often much flatter, and the colour
head, trained within +-3% of the renders' brightness, names a light grey part on a white belt
white (docs/real_transfer.md, "The colour head under a camera's tone").

Resumable step by step: the features are computed in chunks of :data:`CHUNK` images, each
written when done (``OUT/features``, keyed by the checkpoint's weights and every setting that
changes them: a key that differs starts them over); a re-run computes only the missing chunks.
The fit itself takes seconds on the stored features and is redone whole. ``OUT/best`` is the
refitted checkpoint (``trainer export --checkpoint OUT/best``); ``OUT/refit.json`` its settings
and each epoch's validation colour top-1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

#: Images per feature chunk (a re-run after a stop recomputes at most one chunk).
CHUNK = 512
#: Inference batch for the features.
BATCH = 32


@dataclass(frozen=True)
class RefitSettings:
    """What a refit learns from and how (all of it recorded in ``refit.json``)."""

    images: int = 6000
    val_images: int = 1500
    tone: float = 0.7
    epochs: int = 8
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0

    def check(self) -> None:
        """ConfigError naming the setting out of range."""
        bounds = {"images": 1, "val_images": 0, "epochs": 1, "batch_size": 1}
        for name, low in bounds.items():
            if getattr(self, name) < low:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)} must be >= {low}")
        if not 0.0 <= self.tone <= 1.0:
            raise ConfigError(
                f"--tone {self.tone} must be within 0..1 (the share of draws given a tone curve)"
            )
        if not 0.0 < self.lr <= 1.0:
            raise ConfigError(f"--lr {self.lr} must be within (0, 1]")


def color_head_modules(model: Any) -> list[Any]:
    """The modules a refit trains: the colour head and its two inputs' layers."""
    if not getattr(model, "num_colors", 0):
        raise ModelError("the checkpoint's network has no colour head (num_colors 0): nothing to refit")
    return [model.color_features, model.color_stats, model.color_head]


# ---- features -------------------------------------------------------------------------------------


def _samples_digest(samples: Sequence[Any]) -> str:
    """The drawn samples, named by source, image file, part and colour (another split or data
    draws others)."""
    text = "\n".join(f"{s.source}|{s.image_path.name}|{s.part_num}|{s.color_id}" for s in samples)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def feature_key(
    checkpoint: Path,
    augmenter: Any,
    tone: Any,
    settings: RefitSettings,
    spec: Any,
    drawn: Sequence[Sequence[Any]],
) -> dict[str, Any]:
    """What the stored features depend on: a folder holding another key is computed anew.
    ``drawn``: the training and validation samples drawn."""
    from edge.manifest import sha256_file
    from trainer.checkpoint import MODEL_NAME

    return {
        "weights": sha256_file(checkpoint / MODEL_NAME)[:16],
        "samples": [_samples_digest(samples) for samples in drawn],
        "augmentation": augmenter.fingerprint,
        "tone": tone.fingerprint if tone is not None else None,
        "seed": settings.seed,
        "input": spec.model_dump(mode="json"),
    }


def open_feature_folder(folder: Path, key: dict[str, Any]) -> None:
    """Make ``folder`` hold features of ``key``: kept when its key matches, emptied otherwise."""
    key_file = folder / "key.json"
    if key_file.is_file():
        if json.loads(key_file.read_text("utf-8")) == key:
            return
        log.warning("%s holds features of other settings or weights; computing them anew", folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key_file.write_text(json.dumps(key, indent=1) + "\n", "utf-8")


def _chunk(
    model: Any, samples: Sequence[Any], start: int, label_map: Any, prepare_one: Any
) -> dict[str, np.ndarray]:
    import torch

    pooled, stats, colors = [], [], []
    for at in range(0, len(samples), BATCH):
        batch = samples[at : at + BATCH]
        x = torch.from_numpy(np.stack([prepare_one(s, start + at + i) for i, s in enumerate(batch)]))
        with torch.no_grad():
            pooled.append(model.rest(model.front(x)).numpy().astype(np.float16))
            stats.append(model.color_descriptor(x).numpy())
        colors += [label_map.encode(s, unknown_color="ignore")[1] for s in batch]
    return {
        "pooled": np.concatenate(pooled),
        "stats": np.concatenate(stats),
        "color": np.array(colors, np.int64),
    }


def compute_features(
    folder: Path,
    name: str,
    model: Any,
    samples: Sequence[Any],
    label_map: Any,
    prepare_one: Any,
    progress: bool,
) -> dict[str, np.ndarray]:
    """``{pooled, stats, color}`` of ``samples``, chunk by chunk under ``folder`` (existing chunks are
    read, not recomputed). ``prepare_one(sample, position)`` gives the network input of one draw."""
    from safetensors.numpy import load_file, save_file
    from tqdm import tqdm

    parts = []
    starts = range(0, len(samples), CHUNK)
    for start in tqdm(starts, desc=f"refit-color {name} features", unit="chunk", disable=not progress):
        path = folder / f"{name}-{start // CHUNK:04d}.safetensors"
        if not path.is_file():
            data = _chunk(model, samples[start : start + CHUNK], start, label_map, prepare_one)
            tmp = path.with_name(f".{path.name}.tmp")
            save_file(data, str(tmp))
            tmp.replace(path)
        parts.append(load_file(str(path)))
    return {k: np.concatenate([p[k] for p in parts]) for k in ("pooled", "stats", "color")}


# ---- the fit --------------------------------------------------------------------------------------


def color_top1(model: Any, features: dict[str, np.ndarray]) -> float | None:
    """Colour top-1 of the head on stored features (None when no sample has a colour label)."""
    import torch

    for module in color_head_modules(model):
        module.eval()
    labels = torch.from_numpy(features["color"])
    known = labels >= 0
    if not bool(known.any()):
        return None
    with torch.no_grad():
        pooled = torch.from_numpy(features["pooled"].astype(np.float32))
        logits = model.color_logits(pooled, torch.from_numpy(features["stats"]))
    return float((logits.argmax(dim=1)[known] == labels[known]).float().mean())


def fit_color_head(
    model: Any,
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    settings: RefitSettings,
    label_smoothing: float,
) -> list[dict[str, Any]]:
    """Train the colour head on stored features (AdamW, cosine learning rate per epoch); returns
    each epoch's mean loss and validation colour top-1."""
    import torch
    import torch.nn.functional as F

    modules = color_head_modules(model)
    torch.manual_seed(settings.seed)  # the head's dropout draws
    params = [p for m in modules for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=1e-4)
    pooled = torch.from_numpy(train["pooled"].astype(np.float32))
    stats, labels = torch.from_numpy(train["stats"]), torch.from_numpy(train["color"])
    order = torch.Generator().manual_seed(settings.seed)
    history = []
    for epoch in range(settings.epochs):
        for module in modules:
            module.train()
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * 0.5 * (1 + math.cos(math.pi * epoch / settings.epochs))
        total = 0.0
        perm = torch.randperm(len(labels), generator=order)
        for at in range(0, len(labels), settings.batch_size):
            idx = perm[at : at + settings.batch_size]
            logits = model.color_logits(pooled[idx], stats[idx])
            loss = F.cross_entropy(logits, labels[idx], ignore_index=-1, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        record = {
            "epoch": epoch + 1,
            "loss": round(total / len(labels), 5),
            "val_color_top1": color_top1(model, val),
        }
        log.info("refit-color epoch %d: %s", epoch + 1, record)
        history.append(record)
    return history


# ---- the command ----------------------------------------------------------------------------------


def _subset(samples: Sequence[Any], count: int, seed: int) -> list[Any]:
    if count >= len(samples):
        return list(samples)
    pick = np.random.default_rng(seed).choice(len(samples), size=count, replace=False)
    return [samples[i] for i in pick]


def refit_color(
    config: Any, checkpoint: Path, out: Path, settings: RefitSettings, *, progress: bool = True
) -> dict[str, Any]:
    """Refit ``checkpoint``'s colour head (see the module docstring) into ``out/best``; returns
    ``refit.json``'s content."""
    from edge.preprocess import prepare
    from trainer.augment import Augmenter, ToneCurve
    from trainer.checkpoint import load_checkpoint, save_checkpoint
    from trainer.data.sources import read_sample
    from trainer.dataset import item_seed
    from trainer.train_build import build_data, training_augmenter, write_json

    settings.check()
    model, meta = load_checkpoint(checkpoint)
    color_head_modules(model)  # refuses a network without a colour head before any work
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    data = build_data(config, out)
    if (data["label_map"].parts, data["label_map"].colors) != (meta.label_map.parts, meta.label_map.colors):
        raise ConfigError(
            f"{str(checkpoint)!r} was trained with another label map than --config's data gives: refit "
            "with the config the checkpoint was trained with"
        )
    spec = meta.input_spec
    augmenter = training_augmenter(config, "stage1", photometric=False)
    plain = Augmenter("none", min_side=config.input_size)
    tone = ToneCurve(settings.tone) if settings.tone else None

    def draw(sample: Any, position: int) -> np.ndarray:
        image, mask = read_sample(sample)
        seed = item_seed(settings.seed, 0, position)
        image, mask = augmenter(image, mask, seed=seed)
        if tone is not None:
            image = tone(image, np.random.default_rng([seed, 99]))
        return prepare(image, mask, spec)

    def plain_draw(sample: Any, position: int) -> np.ndarray:
        image, mask = read_sample(sample)
        image, mask = plain(image, mask, seed=0)
        return prepare(image, mask, spec)

    train_samples = _subset(data["sampler"].samples, settings.images, settings.seed)
    val_samples = _subset(data["val"], settings.val_images, settings.seed + 1)
    folder = out / "features"
    key = feature_key(checkpoint, augmenter, tone, settings, spec, (train_samples, val_samples))
    open_feature_folder(folder, key)
    lm = meta.label_map
    train = compute_features(folder, "train", model, train_samples, lm, draw, progress)
    val = (
        compute_features(folder, "val", model, val_samples, lm, plain_draw, progress) if val_samples else None
    )
    empty = {"pooled": np.zeros((0, 1)), "stats": np.zeros((0, 1)), "color": np.zeros(0, np.int64)}
    before = color_top1(model, val) if val is not None else None
    history = fit_color_head(
        model, train, val if val is not None else empty, settings, config.label_smoothing
    )
    result = {
        "checkpoint": str(checkpoint),
        "settings": asdict(settings),
        "images": len(train_samples),
        "val_images": len(val_samples),
        "val_color_top1_before": before,
        "history": history,
    }
    meta.stage = "refit-color"
    meta.metrics = {**meta.metrics, "val_color_top1": history[-1]["val_color_top1"]}
    meta.extra = {**meta.extra, "refit_color": result}
    save_checkpoint(out / "best", model, None, meta)
    write_json(out / "refit.json", result)
    return result


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trainer refit-color``."""
    p = sub.add_parser(
        "refit-color",
        help="refit a trained network's colour head under a camera's tone curve (the rest frozen)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = RefitSettings()
    p.add_argument(
        "--config", required=True, type=Path, help="the training config the checkpoint was trained with"
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint folder (e.g. RUN/best)")
    p.add_argument("--out", required=True, type=Path, help="folder for the features, best/ and refit.json")
    p.add_argument(
        "--images", type=int, default=d.images, help=f"training renders drawn (default {d.images})"
    )
    p.add_argument(
        "--val-images", type=int, default=d.val_images, help=f"validation renders (default {d.val_images})"
    )
    p.add_argument(
        "--tone",
        type=float,
        default=d.tone,
        help=f"share of draws given a tone curve (default {d.tone}; 0: none)",
    )
    p.add_argument(
        "--epochs", type=int, default=d.epochs, help=f"epochs over the features (default {d.epochs})"
    )
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    p.add_argument(
        "--seed", type=int, default=d.seed, help=f"draws, subset and head's order (default {d.seed})"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from trainer.train_config import load_train_config

    settings = RefitSettings(
        images=args.images,
        val_images=args.val_images,
        tone=args.tone,
        epochs=args.epochs,
        lr=args.lr,
        seed=args.seed,
    )
    settings.check()
    config = load_train_config(args.config, out=str(args.out))
    result = refit_color(config, args.checkpoint, args.out, settings, progress=not args.no_progress)
    last = result["history"][-1]["val_color_top1"]
    print(
        f"refitted colour head: {args.out / 'best'}; validation colour top-1 "
        f"{result['val_color_top1_before']} -> {last}"
    )
    return 0
