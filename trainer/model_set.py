"""The model-set plumbing the stages after ``trainer export`` share (``trainer quantize``,
``trainer index``, ``trainer evaluate``, ``trainer evaluate-real``).

Reading samples the way training split them (:class:`DataProtocol`, recorded by ``trainer export``
in the manifest's ``build.data``), preparing images with :func:`edge.preprocess.prepare` exactly as
on the Pi, running an engine over samples, and recording build information and evaluation figures
in a model set's manifest. Nothing here needs torch.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edge.engines import Engine
from edge.errors import DataFileError, ModelError
from edge.manifest import Manifest, load_manifest, write_manifest
from edge.manifest_entries import InputSpec
from edge.preprocess import prepare
from trainer.data import Sample, holdout_parts, load_source, read_sample, split_samples

#: Packages whose versions every build record lists (missing ones are left out).
VERSIONED = (
    "lego-edge",
    "torch",
    "timm",
    "onnx",
    "onnxruntime",
    "onnxconverter-common",
    "onnx2tf",
    "tensorflow",
    "numpy",
    "opencv-python-headless",
    "hnswlib",
)
_REPO = Path(__file__).resolve().parents[1]


# ---- build records and manifest updates ---------------------------------------------------------


def git_commit() -> str | None:
    """The commit of the code that builds (``+dirty`` with uncommitted changes), or None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(_REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names: Sequence[str] = VERSIONED) -> dict[str, str]:
    """Installed versions of ``names`` (packages that are not installed are left out)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def build_record(command: str | None = None) -> dict[str, Any]:
    """``{command, date, git_commit, versions}`` for a manifest's ``build`` or a stage's record."""
    return {
        "command": command if command is not None else " ".join(["trainer", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": package_versions(),
    }


def record_evaluation(folder: str | Path, key: str, figures: dict[str, Any]) -> Manifest:
    """Store ``figures`` under ``evaluation[key]`` of the model set's manifest (rewritten atomically)."""
    manifest = load_manifest(folder)
    evaluation = dict(manifest.evaluation)
    evaluation[key] = figures
    manifest = manifest.model_copy(update={"evaluation": evaluation})
    write_manifest(folder, manifest)
    return manifest


# ---- data: the samples, split as training split them --------------------------------------------


@dataclass(frozen=True)
class DataProtocol:
    """How training split its data: the split fractions and seed, the held-out parts, the sources."""

    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    holdout: tuple[str, ...] = ()
    sources: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> DataProtocol:
        """The protocol ``trainer export`` recorded in ``build.data`` (defaults where absent)."""
        return cls.from_dict(manifest.build.get("data") or {}, "build.data")

    @classmethod
    def members_from_manifest(cls, manifest: Manifest) -> list[DataProtocol]:
        """Each member's protocol for an ensemble (``build.data_members``), else the one protocol."""
        members = manifest.build.get("data_members")
        if not members:
            return [cls.from_manifest(manifest)]
        if not isinstance(members, list):
            raise ModelError("manifest build.data_members is not a list; re-export the model set")
        return [cls.from_dict(m, "build.data_members") for m in members]

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> DataProtocol:
        """The protocol of one :meth:`as_dict` record, read from the manifest's ``where``."""
        try:
            return cls(
                fractions=tuple(data.get("fractions", (0.8, 0.1, 0.1))),  # type: ignore[arg-type]
                seed=int(data.get("seed", 0)),
                holdout=tuple(str(p) for p in data.get("holdout_parts", ())),
                sources=tuple(dict(s) for s in data.get("sources", ())),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise ModelError(f"manifest {where} is malformed ({exc}); re-export the model set") from None

    def as_dict(self) -> dict[str, Any]:
        """JSON form for ``build.data``."""
        return {
            "fractions": list(self.fractions),
            "seed": self.seed,
            "holdout_parts": list(self.holdout),
            "sources": list(self.sources),
        }


def load_samples(paths: Sequence[str | Path], protocol: DataProtocol | None = None) -> list[Sample]:
    """Samples of the data folders; a folder training used keeps its source name (so splits agree).

    A folder is training's when its path is one of training's sources, or else when its folder
    name is exactly one source's folder name: a build whose training run was linked from another
    folder (or moved) names the same renders by another path, and must split them as training did.
    """
    if not paths:
        raise DataFileError("no data folder given; pass --data with a trainer render or capture folder")
    known, by_name = {}, {}
    for src in protocol.sources if protocol else ():
        known[str(Path(src["path"]).resolve())] = src
        by_name.setdefault(Path(src["path"]).name, []).append(src)
    samples: list[Sample] = []
    names: set[str] = set()
    for i, path in enumerate(paths):
        resolved = Path(path).resolve()
        same_name = by_name.get(resolved.name, [])
        src = known.get(str(resolved)) or (same_name[0] if len(same_name) == 1 else {})
        loaded = load_source(path, src.get("kind") or "auto", name=src.get("name"))
        name = loaded[0].source
        if name in names:  # two folders of one kind: keep their capture ids apart
            loaded = load_source(path, src.get("kind") or "auto", name=f"{name}-{i}")
            name = loaded[0].source
        names.add(name)
        samples += loaded
    return samples


def split_like_training(
    samples: Sequence[Sample], protocol: DataProtocol
) -> tuple[dict[str, list[Sample]], list[Sample]]:
    """``(train/val/test splits, held-out samples)``: training's hold-out first, then its split."""
    held = [p for p in protocol.holdout if any(s.part_num == p for s in samples)]
    unseen: list[Sample] = []
    rest = list(samples)
    if held and len(held) < len({s.part_num for s in samples}):
        rest, unseen = holdout_parts(samples, held)
    return split_samples(rest, protocol.fractions, protocol.seed), unseen


def spread(samples: Sequence[Sample], count: int) -> list[Sample]:
    """Up to ``count`` samples taken evenly across the (part-sorted) list, so every part is likely in."""
    ordered = sorted(samples, key=lambda s: (s.part_num, s.source, s.capture_id, s.view))
    if len(ordered) <= count:
        return ordered
    picks = np.linspace(0, len(ordered) - 1, count).round().astype(int)
    return [ordered[i] for i in picks]


#: Replaces a sample's own mask: ``(RGB image, its mask or None) -> the mask to crop by``.
MaskFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray | None]


def prepared_batches(
    samples: Sequence[Sample], spec: InputSpec, batch: int = 32, mask_fn: MaskFn | None = None
) -> Iterator[np.ndarray]:
    """Network inputs of ``samples`` through :func:`edge.preprocess.prepare`, ``batch`` at a time;
    ``mask_fn`` (e.g. a rig's segmenter) replaces each sample's own mask."""
    for start in range(0, len(samples), batch):
        chunk = [read_sample(s) for s in samples[start : start + batch]]
        if mask_fn is not None:
            chunk = [(image, mask_fn(image, mask)) for image, mask in chunk]
        yield np.stack([prepare(image, mask, spec) for image, mask in chunk])


def prepare_samples(samples: Sequence[Sample], spec: InputSpec) -> np.ndarray:
    """All of ``samples`` prepared into one float32 batch."""
    if not samples:
        raise DataFileError("no images to prepare; the data selection is empty")
    return np.concatenate(list(prepared_batches(samples, spec)))


def run_engine(
    engine: Engine, samples: Sequence[Sample], batch: int = 32, mask_fn: MaskFn | None = None
) -> dict[str, np.ndarray]:
    """``{role: (N, K)}`` of the engine over ``samples``, prepared by the manifest's input spec
    (``mask_fn`` as for :func:`prepared_batches`)."""
    if not samples:
        raise DataFileError("no images to run the model on; the data selection is empty")
    parts: dict[str, list[np.ndarray]] = {}
    for x in prepared_batches(samples, engine.manifest.input, batch, mask_fn):
        for role, value in engine.run(x).items():
            parts.setdefault(role, []).append(value)
    return {role: np.concatenate(values) for role, values in parts.items()}
