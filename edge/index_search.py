"""The embedding index in memory: labelled vectors added and searched, by hnswlib or exactly.

:class:`IndexSearch` is what :class:`~edge.index.EmbeddingIndex` is built on: the index's settings,
its labels and its vectors, held by one backend (``backend``): an hnswlib graph over float32 vectors
(hnswlib is imported only when chosen) or, where hnswlib is not installed (it has no wheel for the
Pi's aarch64, so the Pi install leaves it out), the vectors alone, searched exactly
(:mod:`edge.index_exact`). Here too: which backend ``auto`` means, the checks every vector passes,
and the memory an index needs. The index's files (the fp16 ``.npz``, hnswlib's graph beside it, the
manifest entry) and loading them are :mod:`edge.index`'s.

Scores are similarities, higher = closer: ``cosine``: 1 - cosine distance (the cosine similarity),
``ip``: the inner product, ``l2``: minus the squared Euclidean distance.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from edge.config import format_validation_error
from edge.errors import ConfigError, MissingDependencyError, ModelError
from edge.index_exact import ExactSearch
from edge.index_file import INDEX_FORMAT_VERSION, IndexMeta, Space

#: ``hnswlib``: approximate search on a graph; ``exact``: every vector compared (numpy);
#: ``auto``: hnswlib where it is installed, else exact.
Backend = Literal["auto", "hnswlib", "exact"]
BACKENDS: tuple[Backend, ...] = ("auto", "hnswlib", "exact")
FIX_HNSWLIB = (
    "pip install hnswlib (no wheel for aarch64: on a Pi it compiles, after "
    "sudo apt install build-essential python3-dev), or use the exact backend"
)

# hnswlib's per-element memory besides the vector and level-0 links (hnswalg.h): label (8), linkLists_
# pointer (8), element level (4), one std::mutex per element (48 on aarch64 glibc, 40 on x86-64), the
# visited-list entry (2) and the label -> id hash map node (~40 with malloc overhead).
_PER_ELEMENT_OVERHEAD = 8 + 8 + 4 + 48 + 2 + 40
# Fixed cost of every index: 65536 label-operation mutexes.
_FIXED_OVERHEAD_BYTES = 65536 * 48


def _index_settings(**values: Any) -> IndexMeta:
    """Validate constructor settings, raising :class:`ConfigError` naming the bad one."""
    try:
        return IndexMeta(format_version=INDEX_FORMAT_VERSION, count=0, **values)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, IndexMeta, "embedding index settings")) from None


def as_matrix(vectors: Any, dim: int, what: str) -> np.ndarray:
    """``vectors`` as a C-contiguous (N, dim) float32 array of finite values, or ModelError."""
    if not isinstance(vectors, np.ndarray) or not (
        np.issubdtype(vectors.dtype, np.floating) or np.issubdtype(vectors.dtype, np.integer)
    ):
        got = vectors.dtype if isinstance(vectors, np.ndarray) else type(vectors).__name__
        raise ModelError(f"{what} must be a numeric numpy array, got {got}")
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ModelError(
            f"{what} have shape {vectors.shape!r}, expected (N, {dim}); the embedding size must equal "
            f"the index dimension (use v[None] for one vector; a different model needs its own index)"
        )
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ModelError(
            f"{what} hold NaN/inf in {len(bad)} row(s), first at row {int(bad[0])}; "
            "check the model's embedding output"
        )
    return out


def import_hnswlib() -> Any:
    """The hnswlib module, or MissingDependencyError naming how to get it."""
    try:
        return importlib.import_module("hnswlib")
    except ImportError:
        raise MissingDependencyError("hnswlib", None, "the hnswlib index backend", fix=FIX_HNSWLIB) from None


def resolve_backend(backend: str) -> Literal["hnswlib", "exact"]:
    """``auto`` -> ``hnswlib`` where it can be imported, else ``exact``; others as given (checked)."""
    if backend not in BACKENDS:
        raise ConfigError(f"index backend {backend!r} must be one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend  # type: ignore[return-value]  # checked above
    try:
        import_hnswlib()
    except MissingDependencyError:  # not installed (the Pi's aarch64 has no wheel), or a broken build
        return "exact"
    return "hnswlib"


def _similarity(distances: np.ndarray, space: str) -> np.ndarray:
    """hnswlib distances -> similarities (higher = closer)."""
    return (-distances if space == "l2" else 1.0 - distances).astype(np.float32)


class IndexSearch:
    """Labelled vectors in memory and their search: :class:`~edge.index.EmbeddingIndex` less its files.

    The arguments, the backends and the ids are as :class:`~edge.index.EmbeddingIndex` describes.
    """

    def __init__(
        self,
        dim: int,
        *,
        space: Space = "cosine",
        M: int = 16,
        ef_construction: int = 200,
        ef_search: int = 64,
        seed: int = 0,
        threads: int | None = None,
        backend: Backend = "auto",
    ) -> None:
        self._meta = _index_settings(
            space=space, dim=dim, M=M, ef_construction=ef_construction, ef_search=ef_search, seed=seed
        )
        if threads is not None and (not isinstance(threads, int) or not 1 <= threads <= 256):
            raise ConfigError(f"index threads {threads!r} must be None (all cores) or an integer 1..256")
        self._threads = -1 if threads is None else threads
        self._backend = resolve_backend(backend)
        self._hnsw: Any = None
        self._exact: ExactSearch | None = None
        if self._backend == "hnswlib":
            self._hnsw = import_hnswlib().Index(space=space, dim=dim)
            self._hnsw.init_index(max_elements=0, M=M, ef_construction=ef_construction, random_seed=seed)
            self._hnsw.set_ef(ef_search)
        else:
            self._exact = ExactSearch(space, dim)
        self._labels = np.zeros(0, dtype="<U1")

    # -- properties -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._labels)

    def __repr__(self) -> str:
        m = self._meta
        return (
            f"{type(self).__name__}(dim={m.dim}, space={m.space!r}, count={len(self)}, M={m.M}, "
            f"backend={self._backend!r})"
        )

    @property
    def backend(self) -> Literal["hnswlib", "exact"]:
        """How it searches: ``hnswlib`` (a graph, approximate) or ``exact`` (every vector compared)."""
        return self._backend

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._meta.dim

    @property
    def space(self) -> Space:
        """Distance space: ``"cosine"``, ``"ip"`` or ``"l2"``."""
        return self._meta.space

    @property
    def M(self) -> int:
        """hnswlib M (links per node)."""
        return self._meta.M

    @property
    def ef_construction(self) -> int:
        """hnswlib ef_construction."""
        return self._meta.ef_construction

    @property
    def ef_search(self) -> int:
        """hnswlib query-time ef (at least k is used)."""
        return self._meta.ef_search

    @property
    def seed(self) -> int:
        """hnswlib random seed."""
        return self._meta.seed

    @property
    def labels(self) -> np.ndarray:
        """(N,) read-only unicode array: the label of each vector, by id."""
        view = self._labels.view()
        view.flags.writeable = False
        return view

    def meta(self) -> IndexMeta:
        """The ``meta`` record this index would be saved with."""
        return self._meta.model_copy(update={"count": len(self)})

    # -- building and searching -------------------------------------------------------------------

    def add(self, vectors: np.ndarray, labels: Sequence[str]) -> None:
        """Add (N, dim) vectors with one label each; capacity grows as needed."""
        x = as_matrix(vectors, self.dim, "vectors to add")
        labels = list(labels) if not isinstance(labels, str) else [labels]
        if len(labels) != len(x):
            raise ModelError(
                f"got {len(x)} vectors but {len(labels)} labels; give exactly one label per vector"
            )
        bad = [lab for lab in labels if not isinstance(lab, str) or not lab or lab != lab.strip()]
        if bad:
            raise ModelError(
                f"labels must be non-empty strings without surrounding spaces (part ids), got {bad[0]!r}"
            )
        if self.space == "cosine":
            zero = np.flatnonzero(np.linalg.norm(x, axis=1) == 0.0)
            if len(zero):
                raise ModelError(f"vector {int(zero[0])} to add is all zeros, which has no cosine direction")
        if not len(x):
            return
        if self._exact is not None:
            self._exact.add(x)
            self._labels = np.concatenate([self._labels, np.asarray(labels, dtype=str)])
            return
        needed = len(self) + len(x)
        capacity = self._hnsw.get_max_elements()
        if needed > capacity:
            # Geometric growth keeps one-part-at-a-time enrolment from resizing on every call.
            self._hnsw.resize_index(max(needed, capacity + capacity // 2))
        ids = np.arange(len(self), needed, dtype=np.int64)
        self._hnsw.add_items(x, ids, num_threads=self._threads)
        self._labels = np.concatenate([self._labels, np.asarray(labels, dtype=str)])

    def search(self, vectors: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest neighbours of each query row.

        Returns ``(labels (Q, k) str, scores (Q, k) float32)``, best first; scores are similarities
        (see the module docstring). A ``k`` above the number of vectors is clamped to it with a
        :class:`UserWarning` (a small gallery is legitimate; asking for more is a caller's slip).
        """
        ids, scores = self.search_ids(vectors, k)
        return self._labels[ids], scores

    def search_ids(self, vectors: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`search` but returns the neighbours' ids (int64) instead of their labels."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ModelError(f"k {k!r} must be a positive integer")
        q = as_matrix(vectors, self.dim, "query vectors")
        if len(self) == 0:
            raise ModelError("the embedding index is empty; add vectors (enrol parts) before searching")
        if k > len(self):
            warnings.warn(
                f"k={k} exceeds the index's {len(self)} vector(s); returning {len(self)} per query",
                UserWarning,
                stacklevel=3,
            )
            k = len(self)
        if not len(q):
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        if self._exact is not None:
            ids, dist = self._exact.knn(q, int(k))
        else:
            ids, dist = self._hnsw.knn_query(q, k=int(k), num_threads=self._threads)
        return ids.astype(np.int64), _similarity(dist, self.space)

    def vectors(self) -> np.ndarray:
        """(N, dim) float32 copy of the stored vectors (for cosine: normalised, as hnswlib stores them)."""
        if len(self) == 0:
            return np.zeros((0, self.dim), np.float32)
        if self._exact is not None:
            return self._exact.items()
        return np.asarray(self._hnsw.get_items(np.arange(len(self)), return_type="numpy"), np.float32)

    # -- memory -----------------------------------------------------------------------------------

    @staticmethod
    def estimate_memory_mb(count: int, dim: int, M: int, backend: Backend = "hnswlib") -> float:
        """hnswlib's expected footprint in MiB for ``count`` vectors of ``dim`` floats with ``M``.

        Per element: the float32 vector (dim*4), level-0 links (2M*4 + 4), the expected upper-level
        links ((4M + 4) / (M - 1): a node reaches level l with probability M**-l) and fixed
        bookkeeping (label, pointers, a mutex, hash-map node); plus a constant 3 MiB of label locks.
        ``backend`` ``exact`` (or ``auto`` resolving to it): the float32 vectors and their squared
        norms alone.
        """
        for name, value, low in (("count", count, 0), ("dim", dim, 1), ("M", M, 2)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ConfigError(f"{name} {value!r} must be an integer >= {low}")
        if resolve_backend(backend) == "exact":
            return count * (dim * 4 + 4) / 2**20
        per_element = dim * 4 + (2 * M * 4 + 4) + (4 * M + 4) / (M - 1) + _PER_ELEMENT_OVERHEAD
        return (count * per_element + _FIXED_OVERHEAD_BYTES) / 2**20
