"""Training: checkpoints per epoch (resumable), the loop, the per-epoch IoU."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError, DataFileError
from edge.fileio import atomic_path, write_atomic
from trainer.backgrounds import BackgroundSwap
from trainer.segmenter.config import (
    CHECKPOINT_DIR,
    INT8_CALIBRATION_IMAGES,
    MODEL_NAME,
    REPORT_NAME,
    SegConfig,
)
from trainer.segmenter.data import SegDataset, find_pairs, split_pairs
from trainer.segmenter.evaluate import iou, mask_iou, reference_ious
from trainer.segmenter.export import export_onnx, quantize_segmenter
from trainer.segmenter.network import build_model, seg_loss

log = logging.getLogger(__name__)


def _save_checkpoint(out: Path, model: Any, cfg: SegConfig, epoch: int, history: list[dict]) -> None:
    from safetensors.torch import save_file

    folder = out / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(weights, str(tmp))
    state = {"config": asdict(cfg), "epoch": epoch, "history": history}
    write_atomic(folder / "state.json", json.dumps(state, indent=2) + "\n")


def _load_checkpoint(out: Path, model: Any, cfg: SegConfig) -> tuple[int, list[dict]]:
    """(epochs done, history) of a matching checkpoint in ``out`` (0, [] when there is none)."""
    state_path = out / CHECKPOINT_DIR / "state.json"
    if not state_path.is_file():
        return 0, []
    from safetensors.torch import load_file

    try:
        state = json.loads(state_path.read_text())
        saved = SegConfig(**state["config"])
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DataFileError(
            f"checkpoint state {str(state_path)!r} is damaged ({exc}); delete {str(out)!r}"
        ) from None
    if not saved.same_run(cfg):
        raise ConfigError(
            f"{str(out)!r} holds a run with other settings ({asdict(saved)}); "
            "use another --out or the same settings"
        )
    model.load_state_dict(load_file(str(out / CHECKPOINT_DIR / "model.safetensors")), strict=True)
    return int(state["epoch"]), list(state.get("history", []))


# ---- training --------------------------------------------------------------------------------------


def train_segmenter(
    data: Sequence[str | Path],
    out: str | Path,
    cfg: SegConfig,
    *,
    backgrounds: str | Path | None = None,
    test: Sequence[str | Path] = (),
    real: Sequence[tuple[Path, Path]] = (),
    workers: int = 0,
    progress: bool = True,
    max_val: int = 400,
    int8: bool = False,
) -> dict[str, Any]:
    """Train (resuming), export ``seg.onnx`` + sidecar (and ``int8``: ``seg_int8.onnx``), measure
    IoU of each; returns the report."""
    import torch
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = find_pairs(data)
    train_pairs, val_pairs = split_pairs(pairs, cfg.val_share)
    log.info("segmenter: %d training and %d validation images", len(train_pairs), len(val_pairs))
    swap = BackgroundSwap.from_folder(cfg.swap, backgrounds) if cfg.swap > 0 else None
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.width_mult, cfg.encoder)
    done, history = _load_checkpoint(out, model, cfg)
    if done:
        log.info("segmenter: resuming after epoch %d of %d", done, cfg.epochs)
    dataset = SegDataset(train_pairs, cfg, swap, train=True)
    per_epoch = min(cfg.epoch_images or len(dataset), len(dataset))
    steps_per_epoch = per_epoch // cfg.batch_size if per_epoch > cfg.batch_size else 1
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    offset = done * steps_per_epoch  # the schedule goes on where the finished epochs left it
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda step: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min((step + offset) / max(total, 1), 1.0))),
    )
    for epoch in range(done, cfg.epochs):
        dataset.epoch = epoch
        loader = torch.utils.data.DataLoader(
            dataset,  # type: ignore[arg-type]
            batch_size=cfg.batch_size,
            sampler=torch.utils.data.RandomSampler(
                dataset,  # type: ignore[arg-type]
                num_samples=per_epoch,
                generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch),
            ),
            num_workers=workers,
            drop_last=per_epoch > cfg.batch_size,  # batch norm cannot train on a last batch of one
        )
        model.train()
        losses = []
        bar = tqdm(
            loader, desc=f"segmenter epoch {epoch + 1}/{cfg.epochs}", disable=not progress, unit="batch"
        )
        for x, y in bar:
            loss = seg_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        val_iou = _torch_iou(model, val_pairs[:max_val], cfg)
        history.append(
            {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_iou_input_size": val_iou}
        )
        log.info(
            "segmenter epoch %d: loss %.4f, validation IoU at input size %.4f",
            epoch + 1,
            np.mean(losses),
            val_iou,
        )
        _save_checkpoint(out, model, cfg, epoch + 1, history)
    model.eval()
    parity = export_onnx(model, out, cfg, [p[0] for p in val_pairs[:8]])
    models = {"iou": out / MODEL_NAME}
    if int8:
        step = max(1, len(train_pairs) // INT8_CALIBRATION_IMAGES)
        models["iou_int8"] = quantize_segmenter(
            out, cfg, [p[0] for p in train_pairs[::step]][:INT8_CALIBRATION_IMAGES]
        )
    report: dict[str, Any] = {
        "config": asdict(cfg),
        "data": [str(d) for d in data],
        "backgrounds": str(backgrounds) if backgrounds else None,
        "images": {"train": len(train_pairs), "validation": len(val_pairs)},
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history,
        "export_parity_max_abs": parity,
    }
    for key, onnx_file in models.items():
        figures = report[key] = {"validation": mask_iou(onnx_file, val_pairs[:max_val], progress=progress)}
        for folder in test:
            figures[str(folder)] = mask_iou(onnx_file, find_pairs([folder])[:max_val], progress=progress)
        for photos, empty in real:
            both = reference_ious(
                onnx_file,
                photos,
                empty,
                out / "reference" / photos.name,
                max_images=max_val,
                progress=progress,
            )
            figures[f"real:{photos}"] = both[False]
            figures[f"real:{photos}:empty_stage_dropped"] = both[True]
    write_atomic(out / REPORT_NAME, json.dumps(report, indent=2) + "\n")
    return report


def _torch_iou(model: Any, pairs: Sequence[tuple[Path, Path]], cfg: SegConfig) -> float:
    """Mean IoU at the input size (threshold 0.5), a quick per-epoch figure."""
    import torch

    model.eval()
    ious = []
    with torch.no_grad():
        for i in range(0, len(pairs), 32):
            items = [SegDataset(pairs, cfg, None, train=False)[j] for j in range(i, min(i + 32, len(pairs)))]
            x = torch.from_numpy(np.stack([a for a, _ in items]))
            pred = (model(x) > 0).numpy()
            for p, (_, t) in zip(pred, items, strict=True):
                ious.append(iou(p[0], t[0] > 0.5))
    model.train()
    return float(np.mean(ious))
