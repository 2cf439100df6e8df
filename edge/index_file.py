"""The embedding index's files: the ``.npz`` (vectors, labels, meta) read and checked, and the checks
that tie an hnswlib graph file and a manifest entry to it (see :mod:`edge.index` for the format).

Every check raises :class:`~edge.errors.ModelError` naming the file, what is wrong and how to
rebuild it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError

from edge.config import StrictModel, format_validation_error
from edge.errors import ModelError
from edge.manifest import sha256_file
from edge.manifest_entries import IndexEntry

__all__ = [
    "FIX_GRAPH",
    "FIX_REBUILD",
    "INDEX_FORMAT_VERSION",
    "SPACES",
    "IndexMeta",
    "Space",
    "check_expected",
    "check_graph_vectors",
    "check_sha256",
    "read_npz",
    "verify_graph_file",
]

#: The index file format this code reads and writes.
INDEX_FORMAT_VERSION = 1
Space = Literal["cosine", "ip", "l2"]
SPACES: tuple[Space, ...] = ("cosine", "ip", "l2")
FIX_REBUILD = "rebuild the index with `trainer index` for this model set"
FIX_GRAPH = (
    "write the graph again from the vectors with `trainer index --graph-only --model-set FOLDER` "
    "(or run `trainer index` again)"
)
#: Rows of a loaded graph compared with the fp16 vectors (evenly spread, first and last included).
GRAPH_SAMPLE_ROWS = 256


class IndexMeta(StrictModel):
    """The ``meta`` JSON of an index file: how the graph was built and how to rebuild it."""

    format_version: int = Field(ge=1, le=1000, description="index file format version")
    space: Space = Field(description="hnswlib distance space: cosine, ip or l2")
    dim: int = Field(ge=1, le=65536, description="vector dimension")
    M: int = Field(ge=2, le=256, description="hnswlib M (links per node)")
    ef_construction: int = Field(ge=1, le=100000, description="hnswlib ef_construction used to build")
    ef_search: int = Field(ge=1, le=100000, description="hnswlib ef to set at query time")
    count: int = Field(ge=0, le=2**31 - 1, description="number of vectors")
    seed: int = Field(ge=0, le=2**32 - 1, description="hnswlib random seed (level assignment)")


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, IndexMeta]:
    """Vectors, labels and meta of an index file, each checked; ModelError on anything wrong."""

    def bad(why: str) -> ModelError:
        return ModelError(f"index file {str(path)!r} is not a valid embedding index: {why}; {FIX_REBUILD}")

    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise bad("it holds a single array, not an .npz archive")
        with loaded as npz:
            missing = [key for key in ("vectors", "labels", "meta") if key not in npz.files]
            if missing:
                raise bad(f"arrays {missing!r} are missing (found {npz.files!r})")
            vectors, labels, meta_arr = npz["vectors"], npz["labels"], npz["meta"]
    except ModelError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise bad(f"{type(exc).__name__}: {exc}") from None
    if meta_arr.shape != () or meta_arr.dtype.kind != "U":
        raise bad(f"'meta' must be a JSON string, got dtype {meta_arr.dtype} shape {meta_arr.shape!r}")
    try:
        raw = json.loads(str(meta_arr))
    except json.JSONDecodeError as exc:
        raise bad(f"'meta' is not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict) or raw.get("format_version") != INDEX_FORMAT_VERSION:
        found = raw.get("format_version") if isinstance(raw, dict) else raw
        raise bad(f"format_version {found!r} is not supported (this runtime reads {INDEX_FORMAT_VERSION})")
    try:
        meta = IndexMeta.model_validate(raw)
    except ValidationError as err:
        raise bad(format_validation_error(err, IndexMeta, "meta")) from None
    if vectors.dtype != np.float16 or vectors.shape != (meta.count, meta.dim):
        raise bad(
            f"'vectors' is {vectors.dtype} {vectors.shape!r}, meta says float16 ({meta.count}, {meta.dim})"
        )
    if labels.dtype.kind != "U" or labels.shape != (meta.count,):
        raise bad(f"'labels' is {labels.dtype} {labels.shape!r}, meta says unicode ({meta.count},)")
    if meta.count and not np.isfinite(vectors).all():
        raise bad("'vectors' hold NaN/inf")
    if meta.count and (labels == "").any():
        raise bad("'labels' hold an empty label")
    return vectors, labels, meta


def verify_graph_file(graph: Path, expect: IndexEntry | None) -> None:
    """The graph file exists and, with a manifest entry, matches its ``graph_sha256``."""
    if expect is not None and expect.graph_sha256 is None:
        raise ModelError(
            f"index graph {str(graph)!r} was given but the manifest lists no graph to check it against; "
            f"{FIX_GRAPH}"
        )
    if not graph.is_file():
        raise ModelError(f"index graph {str(graph)!r} does not exist; {FIX_GRAPH}")
    if expect is not None and expect.graph_sha256 is not None:
        check_sha256(graph, "index graph", expect.graph_sha256, FIX_GRAPH)


def check_sha256(path: Path, what: str, expected: str, fix: str) -> None:
    """ModelError unless the file's SHA-256 is the manifest's ``expected``."""
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(
            f"{what} {str(path)!r} does not match the manifest: sha256 expected {expected}, "
            f"actual {actual} (corrupt or replaced); {fix}"
        )


def check_graph_vectors(graph: Path, hnsw: Any, vectors: np.ndarray, space: Space) -> None:
    """ModelError unless sampled rows of the loaded graph are the fp16 ``vectors`` (as hnswlib stores them).

    Catches a graph built from other vectors (a stale cache) or in another space where it matters:
    cosine stores normalised vectors, ip and l2 the vectors as given.
    """
    ids = np.unique(np.linspace(0, len(vectors) - 1, min(len(vectors), GRAPH_SAMPLE_ROWS)).astype(np.int64))
    want = vectors[ids].astype(np.float32)
    if space == "cosine":
        want /= np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-30)
    try:
        got = np.asarray(hnsw.get_items(ids, return_type="numpy"), np.float32)
    except RuntimeError as exc:  # an id missing from the graph
        raise ModelError(
            f"index graph {str(graph)!r} lacks vector ids of the index ({exc}); {FIX_GRAPH}"
        ) from None
    off = np.abs(got - want) > 1e-3 + 2e-3 * np.abs(want)  # fp16 rounding stays far below this
    if off.any():
        row = int(ids[np.flatnonzero(off.any(axis=1))[0]])
        raise ModelError(
            f"index graph {str(graph)!r} holds other vectors than the index file (first at id {row}): "
            f"it was built from other vectors or in a space other than {space!r}; {FIX_GRAPH}"
        )


def check_expected(path: Path, meta: IndexMeta, expect: IndexEntry) -> None:
    """ModelError listing every build parameter where the file and the manifest disagree."""
    diffs = [
        f"{key} {getattr(meta, key)!r} in the file, {getattr(expect, key)!r} in the manifest"
        for key in ("dim", "space", "count", "M", "ef_construction")
        if getattr(meta, key) != getattr(expect, key)
    ]
    if diffs:
        raise ModelError(
            f"index file {str(path)!r} does not match the manifest: {'; '.join(diffs)}; {FIX_REBUILD}"
        )
