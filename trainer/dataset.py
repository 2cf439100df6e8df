"""Torch datasets over :class:`~trainer.data.Sample` records, and the frozen-feature cache for CPU training.

:class:`PartDataset` reads an image (and its mask) with OpenCV as RGB, augments both
(:class:`trainer.augment.Augmenter`), then runs THE preprocessing, :func:`edge.preprocess.prepare`,
so trainer and Pi never disagree. Labels come from the :class:`~trainer.data.LabelMap`; a sample
without a colour label (or with a colour the map lacks) gets colour -1, which the colour loss ignores.

:class:`FeatureCache` makes CPU training affordable: the frozen front of the network (stem and the
first ``freeze_blocks`` stages, see :class:`trainer.models.PartNet`) gives the same output every
epoch for the same augmented image, so it is computed once for K augmented copies of each image and
stored as float16 safetensors files keyed by a hash of (sample, copy, model front, input spec,
augmentation). Training then runs only the unfrozen stages and the heads; each epoch picks one of
the K copies of every image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError, ImageError, MissingDependencyError
from edge.manifest_entries import InputSpec
from edge.preprocess import prepare
from trainer.augment import Augmenter
from trainer.data.labels import LabelMap
from trainer.data.sources import Sample, read_sample

try:
    import torch
    from safetensors.torch import load_file, save_file
    from torch.utils.data import Dataset
except ImportError as _exc:
    raise MissingDependencyError(_exc.name or "torch", "train", "training datasets") from None

log = logging.getLogger(__name__)

#: Bumped when the cached content changes meaning (invalidates every old cache entry).
CACHE_VERSION = 3  # 2: the colour descriptor's clamped mask; 3: entries keyed by file content, not path


def item_seed(seed: int, epoch: int, position: int, copy: int = 0) -> int:
    """The augmentation seed of one draw: depends only on its arguments (reproducible, resumable)."""
    return zlib.crc32(f"{seed}/{epoch}/{position}/{copy}".encode()) & 0x7FFFFFFF


def prepare_sample(
    sample: Sample,
    spec: InputSpec,
    augmenter: Augmenter,
    seed: int,
    *,
    low_res: bool = False,
    strong: bool = False,
    edge: bool = False,
) -> np.ndarray:
    """Read, augment and :func:`~edge.preprocess.prepare` one sample: float32 in ``spec``'s layout.
    ``strong``: with the augmenter's part-only photometric jitter (the colour label is dropped);
    ``edge``: with its frame's-edge cut (:class:`~trainer.augment.FrameEdge`)."""
    image, mask = read_sample(sample)
    image, aug_mask = augmenter(image, mask, seed=seed, low_res=low_res, strong=strong, edge=edge)
    return prepare(image, aug_mask, spec)


def special_draw(augmenter: Augmenter, seed: int) -> tuple[bool, bool]:
    """``(strong, edge)`` of the draw ``seed``: whether it gets the augmenter's part-only
    photometric jitter, or else its frame's-edge cut (never both)."""
    photometric, frame_edge = augmenter.photometric, augmenter.frame_edge
    strong = photometric is not None and photometric.chosen(seed)
    return strong, not strong and frame_edge is not None and frame_edge.chosen(seed)


class _EpochDataset(Dataset):
    """Labelled samples drawn per epoch: ``dataset[i]`` is the sample ``indices[i]`` of the epoch."""

    def __init__(self, samples: Sequence[Sample], label_map: LabelMap) -> None:
        self.samples = list(samples)
        self.labels = [label_map.encode(s, unknown_color="ignore") for s in self.samples]
        self.indices: np.ndarray = np.arange(len(self.samples))
        self.epoch = 0

    def set_epoch(self, epoch: int, indices: np.ndarray | None = None) -> None:
        """Use epoch ``epoch``'s augmentation draws over ``indices`` (default: every sample once)."""
        self.epoch = epoch
        self.indices = np.arange(len(self.samples)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)


class PartDataset(_EpochDataset):
    """Prepared images with ``(part, colour)`` labels; ``dataset[i]`` draws the sample ``indices[i]``.

    Args:
        samples: the samples (e.g. a :class:`~trainer.data.MixedSampler`'s ``samples``).
        label_map: maps part numbers and colour ids to output indices.
        spec: the network's input spec (must be NCHW for torch).
        augmenter: the stage's augmentation (``Augmenter("none")`` for validation).
        seed: base seed of the augmentation draws.
        low_res_sources: names of sources whose images are low resolution (B200C).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        label_map: LabelMap,
        spec: InputSpec,
        augmenter: Augmenter,
        *,
        seed: int = 0,
        low_res_sources: frozenset[str] = frozenset(),
    ) -> None:
        if spec.layout != "NCHW":
            raise ImageError(f"input layout {spec.layout!r}: torch training needs NCHW; set layout: NCHW")
        super().__init__(samples, label_map)
        self.spec, self.augmenter, self.seed = spec, augmenter, seed
        self.low_res_sources = low_res_sources

    def __getitem__(self, position: int) -> dict[str, Any]:
        index = int(self.indices[position])
        sample = self.samples[index]
        seed = item_seed(self.seed, self.epoch, position)
        strong, edge = special_draw(self.augmenter, seed)
        x = prepare_sample(
            sample,
            self.spec,
            self.augmenter,
            seed,
            low_res=sample.source in self.low_res_sources,
            strong=strong,
            edge=edge,
        )
        part, color = self.labels[index]
        return {"image": torch.from_numpy(x), "part": part, "color": -1 if strong else color, "index": index}


def model_fingerprint(model: torch.nn.Module) -> str:
    """A hash of the frozen front (architecture, depth and weights): cached features depend on it."""
    h = hashlib.sha256()
    args = model.model_args()  # type: ignore[operator]
    h.update(f"{args['name']}/{args['freeze_blocks']}".encode())
    for module in model.frozen_modules():  # type: ignore[operator]
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class FeatureCache:
    """Frozen-front features of K augmented copies per sample, as float16 safetensors files.

    With the augmenter's part-only photometric jitter there is one more copy per sample (number K),
    drawn with that jitter; its key adds the jitter's settings, so the K plain copies stay shared
    with runs without it. The augmenter's frame's-edge cut adds one more after it, likewise.

    Args:
        root: cache folder (shared by runs: entries are keyed by the front, the augmentation and the
            image and mask files' content, never overwritten).
        model: the :class:`~trainer.models.PartNet` whose front is cached (``freeze_blocks`` >= 1).
        spec: the input spec; augmenter: the augmentation; copies: K; seed: base seed.
    """

    def __init__(
        self,
        root: str | Path,
        model: torch.nn.Module,
        spec: InputSpec,
        augmenter: Augmenter,
        *,
        copies: int,
        seed: int = 0,
        low_res_sources: frozenset[str] = frozenset(),
    ) -> None:
        if not model.freeze_blocks:  # type: ignore[union-attr]
            raise ConfigError("the feature cache needs a model with freeze_blocks >= 1 (nothing is frozen)")
        if copies < 1:
            raise ConfigError(f"cache copies {copies!r} must be >= 1")
        self.root = Path(root)
        self.model, self.spec, self.augmenter = model, spec, augmenter
        self.copies, self.seed, self.low_res_sources = copies, seed, low_res_sources
        self._context = json.dumps(
            {
                "v": CACHE_VERSION,
                "model": model_fingerprint(model),
                "spec": spec.model_dump(mode="json"),
                "augment": augmenter.stage,
                "augment_settings": augmenter.fingerprint,
                "min_side": augmenter.min_side,
                "seed": seed,
            },
            sort_keys=True,
        )
        self._digests: dict[tuple[str, int, int], str] = {}

    def digest(self, path: Path) -> str:
        """The SHA-256 of a file's bytes, read once per file and state (size, mtime) in this process.

        Entries are keyed by what the image and mask hold, not where they lie, so a build folder that
        is moved, or whose renders are hard-linked or copied into another, finds its entries again.
        """
        stat = path.stat()
        state = (str(path), stat.st_size, stat.st_mtime_ns)
        found = self._digests.get(state)
        if found is None:
            found = self._digests[state] = hashlib.sha256(path.read_bytes()).hexdigest()
        return found

    def key(self, sample: Sample, copy: int) -> str:
        """The entry name of ``sample``'s copy ``copy`` (changes when the image or mask's content does)."""
        mask = self.digest(sample.mask_path) if sample.mask_path else ""
        low_res = sample.source in self.low_res_sources
        text = f"{self._context}|{self.digest(sample.image_path)}|{mask}|{low_res}|{copy}"
        if copy == self.photometric_copy and self.augmenter.photometric is not None:
            text += f"|photometric:{self.augmenter.photometric.fingerprint}"
        if copy == self.edge_copy and self.augmenter.frame_edge is not None:
            text += f"|frame_edge:{self.augmenter.frame_edge.fingerprint}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def photometric_copy(self) -> int | None:
        """The number of the photometric copy (K), None without the jitter."""
        return self.copies if self.augmenter.photometric is not None else None

    @property
    def edge_copy(self) -> int | None:
        """The number of the frame's-edge copy (after the photometric one), None without it."""
        if self.augmenter.frame_edge is None:
            return None
        return self.copies + (self.augmenter.photometric is not None)

    @property
    def total_copies(self) -> int:
        """K, plus the photometric and the frame's-edge copies where the augmenter has them."""
        extra = (self.augmenter.photometric, self.augmenter.frame_edge)
        return self.copies + sum(x is not None for x in extra)

    def path(self, sample: Sample, copy: int) -> Path:
        """Where the entry lives (two-level fan-out keeps folders small)."""
        key = self.key(sample, copy)
        return self.root / key[:2] / f"{key}.safetensors"

    def missing(self, samples: Sequence[Sample]) -> list[tuple[int, int]]:
        """``(sample index, copy)`` pairs not yet cached."""
        return [
            (i, c)
            for i, s in enumerate(samples)
            for c in range(self.total_copies)
            if not self.path(s, c).is_file()
        ]

    @torch.no_grad()
    def build(self, samples: Sequence[Sample], *, batch_size: int = 32, progress: bool = True) -> int:
        """Compute and store every missing entry; returns how many were computed."""
        from tqdm import tqdm

        todo = self.missing(samples)
        if not todo:
            return 0
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        try:
            bar = tqdm(total=len(todo), unit="img", desc="feature cache", disable=not progress)
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                x = np.stack([self._prepare(samples[i], c) for i, c in chunk])
                batch = torch.from_numpy(x).to(device)
                front = self.model.front(batch).to(torch.float16).cpu()  # type: ignore[operator]
                stats = self.model.color_descriptor(batch).float().cpu()  # type: ignore[operator]
                for k, (i, c) in enumerate(chunk):
                    self._write(self.path(samples[i], c), front[k], stats[k])
                bar.update(len(chunk))
            bar.close()
        finally:
            self.model.train(was_training)
        return len(todo)

    def _prepare(self, sample: Sample, copy: int) -> np.ndarray:
        # Copy 0 of the "none" augmentation is the plain image; other copies are distinct draws.
        return prepare_sample(
            sample,
            self.spec,
            self.augmenter,
            # Drawn from the content too: an entry is the same draw wherever its image lies.
            item_seed(self.seed, -1, 0, copy) ^ int(self.digest(sample.image_path)[:8], 16),
            low_res=sample.source in self.low_res_sources,
            strong=copy == self.photometric_copy,
            edge=copy == self.edge_copy,
        )

    @staticmethod
    def _write(path: Path, front: torch.Tensor, stats: torch.Tensor) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({"front": front.contiguous(), "stats": stats.contiguous()}, str(tmp))
        tmp.replace(path)

    def load(self, sample: Sample, copy: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(front features float16, colour descriptor float32)`` of one cached entry."""
        data = load_file(str(self.path(sample, copy)))
        return data["front"], data["stats"]


class CachedDataset(_EpochDataset):
    """Like :class:`PartDataset` but yields cached front features: ``{front, stats, part, color, index}``.

    Each epoch draws, for each position, one of the K cached copies (reproducibly from the seed).
    """

    def __init__(self, samples: Sequence[Sample], label_map: LabelMap, cache: FeatureCache) -> None:
        super().__init__(samples, label_map)
        self.cache = cache

    def __getitem__(self, position: int) -> dict[str, Any]:
        index = int(self.indices[position])
        draw = item_seed(self.cache.seed, self.epoch, position)
        strong, edge = special_draw(self.cache.augmenter, draw)
        special = self.cache.photometric_copy if strong else self.cache.edge_copy if edge else None
        copy = draw % self.cache.copies if special is None else special
        front, stats = self.cache.load(self.samples[index], copy)
        part, color = self.labels[index]
        return {
            "front": front.float(),
            "stats": stats,
            "part": part,
            "color": -1 if strong else color,
            "index": index,
        }


def load_sources(sources: Sequence[Any]) -> tuple[dict[str, list[Sample]], frozenset[str]]:
    """``(samples by unique source name, names of low-resolution B200C sources)`` of configured sources.

    Each source has ``path``, ``kind`` and ``name`` attributes (``trainer.train_config.SourceConfig``).

    Raises:
        ConfigError: two sources end up with the same name.
    """
    from trainer.data.sources import detect_kind, load_source

    out: dict[str, list[Sample]] = {}
    low_res: set[str] = set()
    for src in sources:
        samples = load_source(src.path, src.kind, name=src.name)
        name = samples[0].source  # the given name, else the (detected) kind
        if name in out:
            raise ConfigError(
                f"two data sources are named {name!r}; give them distinct `name:` values (real-a, real-b)"
            )
        out[name] = samples
        if (src.kind if src.kind != "auto" else detect_kind(Path(src.path).resolve())) == "b200c":
            low_res.add(name)
    return out, frozenset(low_res)
