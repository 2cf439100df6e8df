"""Training checkpoints: safetensors weights plus a ``checkpoint.json`` that can rebuild the model.

A checkpoint is a folder::

    checkpoint.json          format version, model arguments, input spec, label map, training
                             config, epoch, step, metrics, scheduler state, optimizer hyper-parameters
    model.safetensors        the network's state dict
    optimizer.safetensors    the optimizer's tensors (flattened ``state.{param}.{key}``), if saved

Checkpoints carry their own model arguments (nanoGPT style): :func:`load_checkpoint` rebuilds the
network with :func:`trainer.models.create_model` from the JSON alone. Nothing is pickled, and
:func:`save_checkpoint` is atomic: the folder is written under a temporary name and renamed into
place, so a reader never sees half a checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import DataFileError, MissingDependencyError, ModelError
from edge.manifest_entries import InputSpec
from trainer.data.labels import LabelMap

try:
    import torch
    from safetensors.torch import load_file, save_file
except ImportError as _exc:
    raise MissingDependencyError(_exc.name or "torch", "train", "saving and loading checkpoints") from None

FORMAT_VERSION = 1
META_NAME = "checkpoint.json"
MODEL_NAME = "model.safetensors"
OPTIMIZER_NAME = "optimizer.safetensors"
_EPOCH_DIR = re.compile(r"^epoch_(\d{4,})$")


@dataclass
class CheckpointMeta:
    """What a checkpoint says about itself besides the weights.

    Attributes:
        input_spec: how images were prepared for the network (feed :func:`edge.preprocess.prepare`).
        label_map: the part numbers and colour ids in output order.
        model_args: :meth:`trainer.models.PartNet.model_args` (filled in by :func:`save_checkpoint`).
        config: the training config as plain data.
        stage: ``"stage1"`` or ``"stage2"`` (free text for other producers).
        epoch: epochs completed.
        step: optimizer steps taken.
        metrics: figures of the last epoch, e.g. ``{"val_part_top1": 0.9}``.
        extra: anything else JSON-able (scheduler state, history, best score).
    """

    input_spec: InputSpec
    label_map: LabelMap
    model_args: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    stage: str = ""
    epoch: int = 0
    step: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The architecture name, e.g. ``efficientnet_lite0``."""
        return str(self.model_args["name"])

    @property
    def num_parts(self) -> int:
        """Part classes of the network."""
        return int(self.model_args["num_parts"])

    @property
    def num_colors(self) -> int:
        """Colour classes of the network (0: no colour head)."""
        return int(self.model_args["num_colors"])

    @property
    def embedding_dim(self) -> int:
        """Length of the embedding."""
        return int(self.model_args["embedding_dim"])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the contents of ``checkpoint.json``)."""
        data = asdict(self)
        data["input_spec"] = self.input_spec.model_dump(mode="json")
        data["label_map"] = {"parts": list(self.label_map.parts), "colors": list(self.label_map.colors)}
        return {"format_version": FORMAT_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<checkpoint>") -> CheckpointMeta:
        """Parse :meth:`to_dict`'s output (ModelError naming ``source`` on bad content)."""
        if data.get("format_version") != FORMAT_VERSION:
            raise ModelError(
                f"{source}: checkpoint format_version {data.get('format_version')!r} is not supported "
                f"(this code reads {FORMAT_VERSION}); re-train or use a matching lego-edge version"
            )
        try:
            spec = InputSpec.model_validate(data["input_spec"])
            labels = data["label_map"]
            label_map = LabelMap(list(labels["parts"]), [int(c) for c in labels["colors"]])
            fields = {
                k: data[k] for k in ("model_args", "config", "stage", "epoch", "step", "metrics", "extra")
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: checkpoint metadata is incomplete or invalid: {exc}") from None
        missing = {"name", "num_parts", "num_colors", "embedding_dim"} - set(fields["model_args"])
        if missing:
            raise ModelError(f"{source}: model_args lacks {sorted(missing)!r}; the checkpoint is damaged")
        return cls(input_spec=spec, label_map=label_map, **fields)


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The optimizer state as (tensors for safetensors, the JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, values in rest.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    groups = [
        {k: tuple(v) if k == "betas" and isinstance(v, list) else v for k, v in g.items()}
        for g in rest["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    meta: CheckpointMeta,
    *,
    scheduler: Any | None = None,
) -> Path:
    """Write a checkpoint folder atomically (replacing an existing one); returns its path.

    ``model`` must offer ``model_args()`` (a :class:`trainer.models.PartNet`); ``meta.model_args`` is
    set from it. The optimizer's and ``scheduler``'s state are saved when given.
    """
    directory = Path(directory)
    meta.model_args = dict(model.model_args())  # type: ignore[operator]
    data = meta.to_dict()
    if scheduler is not None:
        data["scheduler"] = scheduler.state_dict()
    tmp = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / MODEL_NAME), metadata={"format": "pt"})
        if optimizer is not None:
            tensors, rest = _flatten_optimizer(optimizer.state_dict())
            save_file(tensors, str(tmp / OPTIMIZER_NAME), metadata={"format": "pt"})
            data["optimizer"] = rest
        # The JSON goes last: a folder with checkpoint.json is complete.
        (tmp / META_NAME).write_text(json.dumps(data, indent=1, default=_json_default) + "\n", "utf-8")
        old = directory.with_name(f".{directory.name}.{os.getpid()}.old")
        if directory.exists():
            directory.replace(old)
        tmp.replace(directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"{type(value).__name__} {value!r} cannot be stored in checkpoint.json")


def read_meta(directory: str | Path) -> tuple[CheckpointMeta, dict[str, Any]]:
    """``(meta, raw JSON)`` of a checkpoint folder, without loading weights."""
    directory = Path(directory)
    path = directory / META_NAME
    if not path.is_file():
        what = "does not exist" if not directory.exists() else f"has no {META_NAME} (incomplete or not one)"
        raise DataFileError(
            f"checkpoint {str(directory)!r} {what}; pass a folder written by trainer stage1/2"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{str(path)!r} cannot be read as JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{str(path)!r} must hold a JSON object, got {type(raw).__name__}")
    return CheckpointMeta.from_dict(raw, str(path)), raw


def load_checkpoint(directory: str | Path, *, device: str = "cpu") -> tuple[Any, CheckpointMeta]:
    """Rebuild the network from ``checkpoint.json`` and load its weights: ``(PartNet, meta)``.

    The model is returned in eval mode on ``device``.

    Raises:
        DataFileError: the folder or one of its files is missing.
        ModelError: the metadata or weights are damaged or do not fit the rebuilt network.
    """
    from trainer.models import create_model

    directory = Path(directory)
    meta, _ = read_meta(directory)
    args = {k: v for k, v in meta.model_args.items() if k != "name"}
    model = create_model(meta.name, pretrained=False, **args)
    weights = _load_tensors(directory / MODEL_NAME)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"checkpoint {str(directory)!r}: weights do not fit the network: {exc}") from None
    return model.to(device).eval(), meta


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataFileError(f"{str(path)!r} is missing; the checkpoint is incomplete, re-save it")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types on damaged files
        raise ModelError(f"{str(path)!r} is not a readable safetensors file: {exc}") from None


def load_training_state(
    directory: str | Path, optimizer: torch.optim.Optimizer | None = None, scheduler: Any | None = None
) -> None:
    """Restore the optimizer's and scheduler's state saved with a checkpoint (for ``--resume``)."""
    directory = Path(directory)
    _, raw = read_meta(directory)
    if optimizer is not None:
        if "optimizer" not in raw:
            raise ModelError(f"checkpoint {str(directory)!r} has no optimizer state; it cannot be resumed")
        tensors = _load_tensors(directory / OPTIMIZER_NAME)
        optimizer.load_state_dict(_unflatten_optimizer(tensors, raw["optimizer"]))
    if scheduler is not None:
        if "scheduler" not in raw:
            raise ModelError(f"checkpoint {str(directory)!r} has no scheduler state; it cannot be resumed")
        scheduler.load_state_dict(raw["scheduler"])


def epoch_dir(out: str | Path, epoch: int) -> Path:
    """The folder of the checkpoint after ``epoch`` epochs under a training output folder."""
    return Path(out) / "checkpoints" / f"epoch_{epoch:04d}"


def epoch_checkpoints(out: str | Path) -> list[Path]:
    """The complete epoch checkpoints under ``out/checkpoints``, oldest first."""
    root = Path(out) / "checkpoints"
    found = []
    if root.is_dir():
        for child in root.iterdir():
            m = _EPOCH_DIR.match(child.name)
            if m and (child / META_NAME).is_file():
                found.append((int(m.group(1)), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(out: str | Path) -> Path | None:
    """The complete checkpoint with the highest epoch under ``out/checkpoints``, or None."""
    found = epoch_checkpoints(out)
    return found[-1] if found else None


def merge_label_maps(base: LabelMap, extra: LabelMap) -> LabelMap:
    """``base`` with the parts and colours of ``extra`` it lacks appended (base's indices unchanged)."""
    known_parts, known_colors = set(base.parts), set(base.colors)
    parts = list(base.parts) + [p for p in extra.parts if p not in known_parts]
    colors = list(base.colors) + [c for c in extra.colors if c not in known_colors]
    return LabelMap(parts, colors)


#: Tensors indexed by part class (rows) and by colour class, for :func:`transfer_weights`.
_PART_ROWS = ("part_head.1.weight", "part_head.1.bias", "proxies")
_COLOR_ROWS = ("color_head.3.weight", "color_head.3.bias")


def transfer_weights(
    source: torch.nn.Module, source_map: LabelMap, target: torch.nn.Module, target_map: LabelMap
) -> dict[str, int]:
    """Copy ``source``'s weights into ``target`` (e.g. a stage 1 model into a stage 2 model).

    Tensors of equal name and shape are copied; the rows of the class-indexed output layers are
    copied class by class (by part number / colour id), so classes the source knew keep their
    weights and new ones keep their fresh initialisation. Returns counts of copied tensors and
    class rows.
    """
    src = source.state_dict()
    dst = target.state_dict()
    part_rows = [
        (target_map.parts.index(p), i) for i, p in enumerate(source_map.parts) if p in target_map.parts
    ]
    color_rows = [
        (target_map.colors.index(c), i) for i, c in enumerate(source_map.colors) if c in target_map.colors
    ]
    copied = rows = 0
    with torch.no_grad():
        for name, tensor in dst.items():
            if name not in src:
                continue
            pairs = part_rows if name in _PART_ROWS else color_rows if name in _COLOR_ROWS else None
            if pairs is not None and src[name].shape[1:] == tensor.shape[1:]:
                for t, s in pairs:
                    tensor[t] = src[name][s]
                rows += len(pairs)
                copied += 1
            elif src[name].shape == tensor.shape:
                tensor.copy_(src[name])
                copied += 1
    target.load_state_dict(dst)
    return {"tensors": copied, "class_rows": rows, "target_tensors": len(dst)}


def copy_checkpoint(src: Path, dst: Path) -> None:
    """Replace ``dst`` with a copy of the checkpoint folder ``src`` (via a temporary name)."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        dst.replace(old)
    tmp.replace(dst)
    shutil.rmtree(old, ignore_errors=True)


def prune_checkpoints(out: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` epoch checkpoints."""
    root = Path(out) / "checkpoints"
    dirs = sorted(p for p in root.iterdir() if p.name.startswith("epoch_") and p.is_dir())
    for old in dirs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
