"""The user index: parts enrolled on the rig, kept beside (never inside) the shipped model set.

``edge enroll --part P --color C IMAGE...`` (or ``--views N`` on the rig) cuts each view out with
the configured segmenter, embeds it with the configured model and adds the embedding to the user
index, an :class:`~edge.index.EmbeddingIndex` file (``data.user_index``, default
``data/user_index.npz``). Beside it:

* ``user_index.json``: one record per row (part, colour, crop file, where the view came from, when),
  plus which model set and file embedded them;
* ``user_index_crops/``: each view's crop and mask as PNG, so ``edge reindex`` can embed them again
  with a new model set (no re-capture).

Every file is written atomically; the index is saved after the record's crops exist. In ``vector``
and ``hybrid`` recognition the pipeline searches the user index first (:func:`rig_index`, see
:mod:`edge.recognize`), then the shipped index and the user index together (:func:`merged_index`);
a user index embedded by another model set is refused with the fix (``edge reindex``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from edge.config import StrictModel, validate_config
from edge.errors import DataFileError, ImageError, ModelError
from edge.fileio import write_atomic
from edge.index import EmbeddingIndex
from edge.manifest import Manifest, sha256_file

log = logging.getLogger(__name__)

USER_FORMAT_VERSION = 1
_FIX_REINDEX = "run `edge reindex` to embed the kept crops with the configured model"


class EnrolledView(StrictModel):
    """One enrolled view: row ``i`` of the index is ``views[i]``."""

    part: str = Field(min_length=1, description="part number")
    color_id: int | None = Field(default=None, description="Rebrickable colour id, if given")
    crop: str = Field(description="crop PNG, relative to the crops folder (its mask beside it)")
    source: str = Field(description="image file it came from, or 'rig view N'")
    added: datetime = Field(description="when it was enrolled (UTC)")


class UserRecord(StrictModel):
    """``user_index.json``: the rows of the user index and the model that embedded them."""

    format_version: int = Field(default=USER_FORMAT_VERSION, ge=1, le=USER_FORMAT_VERSION)
    model: str = Field(default="", description="model set + file that embedded the rows (model_key)")
    views: list[EnrolledView] = Field(default_factory=list, description="one per index row")


def model_key(folder: Path, runtime: str, precision: str) -> str:
    """Which model embedded a vector: the manifest's sha256 (first 16) and the runtime/precision."""
    return f"{sha256_file(Path(folder) / 'manifest.json')[:16]}:{runtime}/{precision}"


def engine_model_key(engine: Any) -> str:
    """:func:`model_key` of the model a config's ``engine`` section runs."""
    return model_key(Path(engine.model_set), engine.runtime, engine.precision)


def record_path(index_path: Path) -> Path:
    """``user_index.json`` beside ``user_index.npz``."""
    return index_path.with_suffix(".json")


def crops_dir(index_path: Path) -> Path:
    """``user_index_crops/`` beside ``user_index.npz``."""
    return index_path.with_name(f"{index_path.stem}_crops")


def _png(image: np.ndarray) -> bytes:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, data = cv2.imencode(".png", bgr)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise ImageError("a crop could not be encoded as PNG")
    return data.tobytes()


class UserIndex:
    """The user index on disk: vectors (``.npz``), their records (``.json``) and the crops."""

    def __init__(self, path: Path, index: EmbeddingIndex | None, record: UserRecord) -> None:
        self.path = Path(path)
        self.index = index
        self.record = record

    def __len__(self) -> int:
        return len(self.record.views)

    @classmethod
    def load(cls, path: str | Path) -> UserIndex:
        """Read the user index at ``path``; a missing one is empty. Rows and records must agree."""
        path = Path(path)
        rec = record_path(path)
        if not rec.exists():
            if path.exists():
                raise DataFileError(
                    f"user index {str(path)!r} has no record {rec.name!r} beside it; restore it or delete "
                    "the index and enrol again"
                )
            return cls(path, None, UserRecord())
        try:
            data = json.loads(rec.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataFileError(f"user index record {str(rec)!r} is unreadable ({exc}); restore it") from None
        record = validate_config(UserRecord, data, str(rec))
        index = EmbeddingIndex.load(path, threads=1) if record.views else None
        if index is not None and len(index) != len(record.views):
            raise DataFileError(
                f"user index {str(path)!r} holds {len(index)} vectors but {rec.name!r} lists "
                f"{len(record.views)} views; {_FIX_REINDEX}"
            )
        return cls(path, index, record)

    def parts(self) -> list[dict[str, Any]]:
        """One row per enrolled (part, colour): views and when last enrolled."""
        rows: dict[tuple[str, int | None], dict[str, Any]] = {}
        for v in self.record.views:
            row = rows.setdefault(
                (v.part, v.color_id), {"part": v.part, "color_id": v.color_id, "views": 0, "added": v.added}
            )
            row["views"] += 1
            row["added"] = max(row["added"], v.added)
        return sorted(rows.values(), key=lambda r: (r["part"], r["color_id"] or -1))

    def add(
        self,
        vectors: np.ndarray,
        crops: Sequence[tuple[np.ndarray, np.ndarray]],
        *,
        part: str,
        color_id: int | None,
        sources: Sequence[str],
        model: str,
    ) -> None:
        """Add one embedding per (crop, mask) of ``part``; writes the crops, then index and record."""
        if self.record.views and self.record.model != model:
            raise ModelError(
                f"user index {str(self.path)!r} was embedded by model {self.record.model!r}, not the "
                f"configured {model!r}; {_FIX_REINDEX} before enrolling more"
            )
        vectors = np.asarray(vectors, np.float32)
        if self.index is None:
            self.index = EmbeddingIndex(vectors.shape[1], threads=1)
        folder = crops_dir(self.path)
        now = datetime.now(UTC).replace(microsecond=0)
        stamp = now.strftime("%Y%m%dT%H%M%S")
        views = []
        for i, ((crop, mask), source) in enumerate(zip(crops, sources, strict=True)):
            name = f"{part}/{part}_{color_id if color_id is not None else 'x'}_{stamp}_{len(self) + i}.png"
            write_atomic(folder / name, _png(crop))
            write_atomic(folder / name.replace(".png", "_mask.png"), _png(mask))
            views.append(EnrolledView(part=part, color_id=color_id, crop=name, source=source, added=now))
        self.index.add(vectors, [part] * len(views))
        self.record = self.record.model_copy(update={"model": model, "views": [*self.record.views, *views]})
        self.save()

    def remove(self, part: str) -> int:
        """Drop every view of ``part`` (and its crops); returns how many. The index is rebuilt."""
        return self._remove_where(lambda v: v.part == part)

    def remove_sources(self, prefix: str) -> int:
        """Drop the views whose ``source`` starts with ``prefix`` (an earlier correction's); how many."""
        return self._remove_where(lambda v: v.source.startswith(prefix))

    def _remove_where(self, drop: Callable[[EnrolledView], bool]) -> int:
        keep = [i for i, v in enumerate(self.record.views) if not drop(v)]
        gone = [v for v in self.record.views if drop(v)]
        if not gone:
            return 0
        old = self.index
        assert old is not None  # views exist, so the index does
        vectors = old.vectors()[keep]
        self.index = EmbeddingIndex(old.dim, space=old.space, M=old.M, threads=1)
        self.index.add(vectors, [self.record.views[i].part for i in keep])
        self.record = self.record.model_copy(update={"views": [self.record.views[i] for i in keep]})
        self.save()
        folder = crops_dir(self.path)
        for v in gone:
            for name in (v.crop, v.crop.replace(".png", "_mask.png")):
                (folder / name).unlink(missing_ok=True)
        return len(gone)

    def replace_vectors(self, vectors: np.ndarray, model: str) -> None:
        """New embeddings of every row (same order) from another model: ``edge reindex``."""
        index = EmbeddingIndex(np.asarray(vectors).shape[1], threads=1)
        index.add(np.asarray(vectors, np.float32), [v.part for v in self.record.views])
        self.index = index
        self.record = self.record.model_copy(update={"model": model})
        self.save()

    def load_crops(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every row's (crop RGB, mask) from the crops folder, in row order."""
        from edge.imagefile import read_image

        folder = crops_dir(self.path)
        out = []
        for v in self.record.views:
            crop = read_image(folder / v.crop)
            mask = cv2.imread(str(folder / v.crop.replace(".png", "_mask.png")), cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise DataFileError(f"mask of enrolled crop {v.crop!r} is missing in {str(folder)!r}")
            out.append((crop, mask))
        return out

    def save(self) -> None:
        """Write the index, then the record (both atomically)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.index is not None and len(self.index):
            self.index.save(self.path)
        else:
            self.path.unlink(missing_ok=True)
        write_atomic(record_path(self.path), json.dumps(self.record.model_dump(mode="json"), indent=1) + "\n")


def embed_views(pipeline: Any, images: Sequence[np.ndarray], names: Sequence[str]) -> tuple[np.ndarray, list]:
    """Cut each view out (the pipeline's segmenter), colour-correct it as recognition would, embed it.

    Returns the (N, D) embeddings and the (crop, mask) pairs kept for ``edge reindex``. The network
    sees exactly the kept crops, so re-embedding them later gives what a fresh enrolment would.
    """
    from edge.preprocess import crop_to_mask

    spec = pipeline.manifest.input
    crops = []
    for image, name in zip(images, names, strict=True):
        mask = pipeline.segmenter.mask(image)
        if not np.any(mask):
            raise ImageError(
                f"{name}: the segmenter found no part; place the part on the stage (or check the background)"
            )
        crop = crop_to_mask(image, mask, spec.crop_margin)
        pipeline.last_drift = []
        crops.append((pipeline.correct_crop(crop), crop.mask.astype(np.uint8) * 255))
    return embed_crops(pipeline, crops), crops


def embed_crops(pipeline: Any, crops: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Embeddings of (crop, mask) pairs with the pipeline's engine, in batches of 16."""
    from edge.preprocess import prepare_batch

    if pipeline.manifest.outputs.embedding is None:
        raise ModelError("the model set has no embedding output; enrolment needs a model with one")
    out = []
    for start in range(0, len(crops), 16):
        batch = prepare_batch(list(crops[start : start + 16]), pipeline.manifest.input)
        out.append(np.asarray(pipeline.engine.run(batch)["embedding"], np.float32))
    return np.concatenate(out)


#: Share of enrolled views whose nearest view of another enrolled part :func:`fit_rig_threshold`
#: keeps below the threshold it suggests.
FIT_QUANTILE = 0.95


def fit_rig_threshold(
    vectors: np.ndarray, labels: Sequence[str], quantile: float = FIT_QUANTILE
) -> dict[str, Any] | None:
    """A ``recognition.rig_threshold`` fitted to the rig's own enrolled views, or None with fewer than
    two parts enrolled.

    For each enrolled view, the cosine similarity of the nearest view of *another* enrolled part
    says how alike two different parts look on this rig, camera and light; the threshold is the
    ``quantile`` of those, so that share of the enrolled views would not be taken for another
    enrolled part from one view. Returns ``{threshold, views, parts, quantile, same_part_median}``
    (the last: the median similarity of a view to its own part's nearest other view, None where
    every part has one view): a fitted threshold above that median warns that the rig's views do
    not tell its parts apart.
    """
    x = np.asarray(vectors, np.float64)
    names = np.asarray(list(labels), dtype=str)
    if x.ndim != 2 or len(x) != len(names):
        raise ModelError(f"got {len(x)} vectors but {len(names)} labels; give exactly one label per vector")
    if len(set(names.tolist())) < 2:
        return None
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T
    same = names[:, None] == names[None, :]
    np.fill_diagonal(sim, -np.inf)
    other = np.where(same, -np.inf, sim).max(axis=1)
    own = np.where(same, sim, -np.inf).max(axis=1)
    own = own[np.isfinite(own)]
    return {
        "threshold": round(float(np.clip(np.quantile(other, quantile), 0.01, 1.0)), 3),
        "views": len(x),
        "parts": len(set(names.tolist())),
        "quantile": quantile,
        "same_part_median": round(float(np.median(own)), 3) if len(own) else None,
    }


def rig_index(user_path: Path, manifest: Manifest, model: str) -> EmbeddingIndex | None:
    """The user index alone (the views enrolled on this rig), or None when nothing is enrolled.

    Raises ModelError, naming the fix, when it was embedded by another model.
    """
    user = UserIndex.load(user_path)
    if not len(user) or user.index is None:
        return None
    if user.record.model != model:
        raise ModelError(
            f"user index {str(user_path)!r} was embedded by model {user.record.model!r} but the configured "
            f"model is {model!r}; {_FIX_REINDEX}"
        )
    if manifest.embedding_dim is not None and user.index.dim != manifest.embedding_dim:
        raise ModelError(
            f"user index {str(user_path)!r} has dimension {user.index.dim}, the model "
            f"{manifest.embedding_dim}; {_FIX_REINDEX}"
        )
    log.info("user index: %d enrolled view(s) of %d part(s)", len(user), len(user.parts()))
    return user.index


def merged_index(shipped: EmbeddingIndex | None, rig: EmbeddingIndex | None) -> EmbeddingIndex | None:
    """``shipped`` (freshly loaded) with the rows of :func:`rig_index` added; the shipped file is
    untouched. ``shipped`` when nothing is enrolled, ``rig`` itself when there is no shipped index."""
    if rig is None:
        return shipped
    if shipped is None:
        return rig
    shipped.add(rig.vectors(), list(rig.labels))
    return shipped
