"""``trainer average``: one checkpoint whose weights are the mean of several (a weight average).

Averaging the weights of one run's epoch checkpoints (stochastic weight averaging, SWA; in the
"model soup" papers a uniform soup) finds a point in the middle of the region the late epochs
move through: flatter than any one of them, which is what the domain-generalisation literature
(SWAD) credits for better transfer to unseen domains. It costs the Pi nothing: the result is one
network of the same size. Every checkpoint must come from the same network (same model arguments,
label map and input spec); the epochs of one run are the intended input (``--run RUN --last N``:
its last N), and a run keeps them when its config's ``keep_last`` is at least N.

Float tensors (weights and batch-norm running statistics) are averaged; integer ones (batch-norm
step counters) are taken from the last checkpoint. The result carries the last checkpoint's
metadata with ``extra.averaged_from`` (each source's folder and epoch) and no optimizer state (an
average is exported, not resumed). ``trainer export --checkpoint OUT`` takes it as any other.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, ModelError

log = logging.getLogger(__name__)


def average_checkpoints(checkpoints: Sequence[str | Path], out: str | Path, *, force: bool = False) -> Path:
    """Write the checkpoint ``out`` whose float tensors are the mean of ``checkpoints``' (2 or more).

    Raises:
        ConfigError: fewer than 2 checkpoints, one given twice, or ``out`` exists without ``force``
            (or is one of the inputs).
        DataFileError: a checkpoint folder or file is missing.
        ModelError: the checkpoints are not of one network (the message names the first difference).
    """
    import torch

    from trainer.checkpoint import MODEL_NAME, _load_tensors, load_checkpoint, read_meta, save_checkpoint

    paths = [Path(c) for c in checkpoints]
    out = Path(out)
    if len(paths) < 2:
        raise ConfigError(
            f"average needs at least 2 checkpoints, got {len(paths)}; list the epochs to average"
        )
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        raise ConfigError("a checkpoint is listed twice; each epoch counts once in the average")
    if out.resolve() in resolved:
        raise ConfigError(
            f"--out {str(out)!r} is one of the checkpoints averaged; write the average elsewhere"
        )
    if out.exists() and not force:
        raise ConfigError(f"{str(out)!r} already exists; pass --force to replace it")
    metas = [read_meta(p)[0] for p in paths]
    last = metas[-1]
    for path, meta in zip(paths, metas, strict=True):
        for what, mine, theirs in (
            ("model arguments", meta.model_args, last.model_args),
            ("label map", meta.label_map, last.label_map),
            ("input spec", meta.input_spec, last.input_spec),
        ):
            if mine != theirs:
                raise ModelError(
                    f"checkpoint {str(path)!r} differs from {str(paths[-1])!r} in its {what}; only "
                    "checkpoints of one network (the epochs of one run) can be averaged"
                )
    total: dict[str, Any] = {}
    for path in paths:
        tensors = _load_tensors(path / MODEL_NAME)
        if total and tensors.keys() != total.keys():
            differ = sorted(tensors.keys() ^ total.keys())
            raise ModelError(f"checkpoint {str(path)!r} holds other tensors than the first ({differ[:3]}...)")
        for name, t in tensors.items():
            if not t.is_floating_point():
                total[name] = t  # step counters: the last one's
            elif name not in total:
                total[name] = t.to(torch.float64)
            elif total[name].shape != t.shape:
                raise ModelError(
                    f"checkpoint {str(path)!r}: tensor {name} has shape {tuple(t.shape)}, "
                    f"the first checkpoint's {tuple(total[name].shape)}"
                )
            else:
                total[name] += t
    model, meta = load_checkpoint(paths[-1])
    state = model.state_dict()
    mean = {
        name: (t / len(paths)).to(state[name].dtype) if t.is_floating_point() else t
        for name, t in total.items()
    }
    model.load_state_dict(mean, strict=True)
    meta.extra = {
        **meta.extra,
        "averaged_from": [
            {"checkpoint": str(p), "epoch": m.epoch} for p, m in zip(paths, metas, strict=True)
        ],
    }
    meta.metrics = {}  # the last epoch's figures do not describe the average
    save_checkpoint(out, model, None, meta)
    log.info("averaged %d checkpoints (epochs %s) into %s", len(paths), [m.epoch for m in metas], out)
    return out


def last_epochs(run: str | Path, count: int) -> list[Path]:
    """The last ``count`` epoch checkpoints of a training run's folder, oldest first.

    Raises:
        ConfigError: ``count`` is below 2, or the run keeps fewer epochs (the message says how many
            it keeps and that ``keep_last`` sets it).
    """
    from trainer.checkpoint import epoch_checkpoints

    if count < 2:
        raise ConfigError(f"--last {count} must be at least 2 (one epoch is not an average)")
    found = epoch_checkpoints(run)
    if len(found) < count:
        raise ConfigError(
            f"run {str(run)!r} keeps {len(found)} epoch checkpoint(s), fewer than the {count} to average; "
            f"train with keep_last: {count} or more (the config's keep_last deletes older epochs)"
        )
    return found[-count:]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trainer average``."""
    p = sub.add_parser(
        "average",
        help="one checkpoint whose weights are the mean of several epochs' (weight averaging)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "checkpoints", nargs="*", type=Path, metavar="CHECKPOINT", help="checkpoint folders (2 or more)"
    )
    p.add_argument("--run", type=Path, help="a training run's folder: average its last --last epochs")
    p.add_argument("--last", type=int, default=0, metavar="N", help="with --run: how many epochs")
    p.add_argument("--out", required=True, type=Path, help="the averaged checkpoint's folder")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run ``trainer average``."""
    if (args.run is None) == (not args.checkpoints):
        raise ConfigError("give checkpoint folders or --run RUN --last N (one of the two)")
    checkpoints = last_epochs(args.run, args.last) if args.run is not None else args.checkpoints
    out = average_checkpoints(checkpoints, args.out, force=args.force)
    print(f"averaged checkpoint: {out} (export it with: trainer export --checkpoint {out} --out SET)")
    return 0
