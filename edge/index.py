"""Nearest-neighbour search over part embeddings (hnswlib), and its fp16 ``.npz`` artifact.

The index lives in memory as an hnswlib graph over float32 vectors, or, where hnswlib is not
installed (it has no wheel for the Pi's aarch64, so the Pi install leaves it out), as the vectors
alone, searched exactly (:mod:`edge.index_exact`; ``backend``). On disk it is one ``.npz``
written with :func:`numpy.savez` and read with ``allow_pickle=False``:

* ``vectors``: (N, D) float16, in insertion order (row i has id i),
* ``labels``: (N,) fixed-width unicode, the part id of each row,
* ``meta``: a 0-d unicode array holding JSON (format_version, space, dim, M, ef_construction,
  ef_search, count, seed).

Beside it, optionally, the graph: hnswlib's own ``save_index`` file (float32 vectors and links:
62 MB beside a 27 MB .npz for 94k x 128; not a pickle), written atomically by
:meth:`EmbeddingIndex.save_graph` and listed with its checksum in the manifest's index entry
(``graph``, ``graph_sha256``). The vectors stay the source of truth and the graph is a cache of
them: :meth:`EmbeddingIndex.save` with ``graph=`` writes the graph that rebuilding from the fp16
vectors gives (one thread, same seed and order), so loading the graph and rebuilding give the same
index. hnswlib's file records neither space nor dimension, and ``load_index`` takes the dimension on
trust, so before loading it :mod:`edge.index_graph` checks its header against the vectors' meta
(dim, count, M) and after loading sampled vectors are compared with the fp16 ones; the space comes
from the meta and the manifest. Loading the graph takes a fraction of a second where rebuilding
takes seconds to minutes (benchmarks/results/index_load.md: 94k x 128 in 0.34 s against 77 s
rebuilt, on two busy cores). An entry without a graph still loads, by rebuilding, with a log line.

The file's reading and checks are :mod:`edge.index_file`'s; exact search and recall@k, the
reference an index is measured against, :mod:`edge.index_recall`'s.

Scores are similarities, higher = closer: ``cosine``: 1 - cosine distance (the cosine similarity),
``ip``: the inner product, ``l2``: minus the squared Euclidean distance.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from edge.config import format_validation_error
from edge.errors import ConfigError, DataFileError, MissingDependencyError, ModelError
from edge.fileio import atomic_path, atomic_write
from edge.index_exact import ExactSearch
from edge.index_file import (
    FIX_GRAPH,
    FIX_REBUILD,
    INDEX_FORMAT_VERSION,
    IndexMeta,
    Space,
    check_expected,
    check_graph_vectors,
    check_sha256,
    read_npz,
    verify_graph_file,
)
from edge.index_graph import check_graph_header, read_graph_header
from edge.manifest import sha256_file
from edge.manifest_entries import IndexEntry

log = logging.getLogger(__name__)

#: ``hnswlib``: approximate search on a graph; ``exact``: every vector compared (numpy);
#: ``auto``: hnswlib where it is installed, else exact.
Backend = Literal["auto", "hnswlib", "exact"]
BACKENDS: tuple[Backend, ...] = ("auto", "hnswlib", "exact")
_FIX_HNSWLIB = (
    "pip install hnswlib (no wheel for aarch64: on a Pi it compiles, after "
    "sudo apt install build-essential python3-dev), or use the exact backend"
)
_FP16_MAX = float(np.finfo(np.float16).max)

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


def _hnswlib() -> Any:
    """The hnswlib module, or MissingDependencyError naming how to get it."""
    try:
        return importlib.import_module("hnswlib")
    except ImportError:
        raise MissingDependencyError("hnswlib", None, "the hnswlib index backend", fix=_FIX_HNSWLIB) from None


def resolve_backend(backend: str) -> Literal["hnswlib", "exact"]:
    """``auto`` -> ``hnswlib`` where it can be imported, else ``exact``; others as given (checked)."""
    if backend not in BACKENDS:
        raise ConfigError(f"index backend {backend!r} must be one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend  # type: ignore[return-value]  # checked above
    try:
        _hnswlib()
    except MissingDependencyError:  # not installed (the Pi's aarch64 has no wheel), or a broken build
        return "exact"
    return "hnswlib"


def _similarity(distances: np.ndarray, space: str) -> np.ndarray:
    """hnswlib distances -> similarities (higher = closer)."""
    return (-distances if space == "l2" else 1.0 - distances).astype(np.float32)


class EmbeddingIndex:
    """Nearest-neighbour search over labelled embeddings (float32 in memory).

    ``space`` is ``"cosine"`` (vectors are normalised, as hnswlib does), ``"ip"`` or ``"l2"``; ``M``,
    ``ef_construction`` and ``seed`` shape hnswlib's graph; ``ef_search`` trades query speed for
    recall. ``threads`` None uses every core; 1 makes building deterministic (same seed + order =
    same graph). ``backend``: ``hnswlib`` (approximate, a graph), ``exact`` (every vector compared:
    :mod:`edge.index_exact`; the graph settings are kept for the file but unused) or ``auto``
    (hnswlib where installed). Ids are insertion positions; :attr:`labels` maps them to part ids (a
    part may have many vectors).
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
            self._hnsw = _hnswlib().Index(space=space, dim=dim)
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
            f"EmbeddingIndex(dim={m.dim}, space={m.space!r}, count={len(self)}, M={m.M}, "
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

    # -- persistence ------------------------------------------------------------------------------

    def save(self, path: str | Path, *, graph: str | Path | None = None) -> None:
        """Write the fp16 ``.npz`` artifact atomically (a reader sees the old file or the new).

        ``graph``: also write the hnswlib graph file there, the graph that rebuilding from the fp16
        vectors just written gives (it is rebuilt here, on one thread), so that loading it is the
        same as rebuilding. :meth:`save_graph` writes this index's own graph instead.
        """
        path = Path(path)
        self._save_npz(path)
        if graph is not None:
            EmbeddingIndex.load(path, threads=1).save_graph(graph)

    def save_graph(self, path: str | Path) -> None:
        """Write this index's hnswlib graph (``save_index``) to ``path`` atomically.

        Pair it with the ``.npz`` it was loaded from (see :meth:`save`): loading checks the two agree.
        """
        path = Path(path)
        if not path.parent.is_dir():
            raise DataFileError(
                f"folder {str(path.parent)!r} for index graph {path.name!r} does not exist; create it"
            )
        if self._hnsw is None:
            raise MissingDependencyError("hnswlib", None, "writing an index graph", fix=_FIX_HNSWLIB)
        with atomic_path(path) as tmp:
            self._hnsw.save_index(str(tmp))

    def manifest_entry(
        self, folder: str | Path, path: str, labels: str, graph: str | None = None
    ) -> IndexEntry:
        """The model manifest's entry for this index saved (:meth:`save`) in ``folder`` as ``path``,
        its labels file ``labels`` and its graph ``graph`` (names relative to ``folder``): the
        index's settings and count, and each file's SHA-256."""
        folder = Path(folder)
        m = self.meta()
        return IndexEntry(
            path=path,
            sha256=sha256_file(folder / path),
            space=m.space,
            dim=m.dim,
            M=m.M,
            ef_construction=m.ef_construction,
            ef_search=m.ef_search,
            count=m.count,
            labels=labels,
            labels_sha256=sha256_file(folder / labels),
            graph=graph,
            graph_sha256=sha256_file(folder / graph) if graph else None,
        )

    def _save_npz(self, path: Path) -> None:
        vecs = self.vectors()
        if len(vecs) and float(np.abs(vecs).max()) > _FP16_MAX:
            raise ModelError(
                f"cannot save index {str(path)!r}: vector values exceed the float16 range (+-{_FP16_MAX:g}); "
                "normalise the embeddings or use the cosine space"
            )
        if not path.parent.is_dir():
            raise DataFileError(
                f"folder {str(path.parent)!r} for index {path.name!r} does not exist; create it"
            )
        meta = json.dumps(self.meta().model_dump(mode="json"), sort_keys=True)
        labels = self._labels if len(self) else np.zeros(0, dtype="<U1")
        with atomic_write(path) as fh:  # a file object: savez would append ".npz" to a name
            np.savez(fh, vectors=vecs.astype(np.float16), labels=labels, meta=np.array(meta))

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        expect: IndexEntry | None = None,
        graph: str | Path | None = None,
        memory_budget_mb: float | None = None,
        threads: int | None = None,
        backend: Backend = "auto",
    ) -> EmbeddingIndex:
        """Read an index file, then load its saved hnswlib ``graph`` or (None) rebuild the graph.

        ``expect``: the manifest's entry; the file's sha256, dim, space, count, M and ef_construction
        must match it (else :class:`ModelError`), and its ``ef_search`` replaces the file's; the graph
        must then match the entry's ``graph_sha256``. A graph whose dimension, count or M differ from
        the vectors', or whose vectors are not these, is refused (ModelError).
        ``memory_budget_mb``: refuse (ModelError) an index whose estimated hnswlib footprint exceeds it.
        ``backend`` (see the class): the exact backend keeps the vectors alone and leaves the graph
        unread (its checksum is still verified).
        """
        path = Path(path)
        graph = None if graph is None else Path(graph)
        started = time.perf_counter()
        if not path.is_file():
            msg = f"index file {str(path)!r} does not exist"
            if expect is not None:
                raise ModelError(f"{msg} but the manifest lists it; {FIX_REBUILD}")
            raise DataFileError(f"{msg}; pass the .npz written by EmbeddingIndex.save / `trainer index`")
        if expect is not None:
            check_sha256(path, "index file", expect.sha256, FIX_REBUILD)
        if graph is not None:
            verify_graph_file(graph, expect)
        vectors, labels, meta = read_npz(path)
        if expect is not None:
            check_expected(path, meta, expect)
            meta = meta.model_copy(update={"ef_search": expect.ef_search})
        if memory_budget_mb is not None:
            need = cls.estimate_memory_mb(meta.count, meta.dim, meta.M, backend)
            if need > memory_budget_mb:
                raise ModelError(
                    f"index file {str(path)!r} ({meta.count} x {meta.dim}, M={meta.M}) needs about "
                    f"{need:.1f} MB, over the memory budget of {memory_budget_mb:g} MB; raise the budget or "
                    "rebuild a smaller index (fewer vectors per part, smaller M)"
                )
        index = cls(
            meta.dim,
            space=meta.space,
            M=meta.M,
            ef_construction=meta.ef_construction,
            ef_search=meta.ef_search,
            seed=meta.seed,
            threads=threads,
            backend=backend,
        )
        if index._exact is not None:
            if meta.count:
                index._exact.add(vectors.astype(np.float32))
        elif graph is not None:
            index._load_graph(graph, vectors)
        elif meta.count:
            index._hnsw.resize_index(meta.count)  # exact capacity: no growth slack on the Pi
            index._hnsw.add_items(
                vectors.astype(np.float32), np.arange(meta.count, dtype=np.int64), num_threads=index._threads
            )
        if meta.count:
            index._labels = labels
        if index._exact is not None:
            how = "exact search (hnswlib not used" + (f"; graph {graph} left unread)" if graph else ")")
        else:
            how = f"graph loaded from {graph}" if graph is not None else "graph rebuilt from the vectors"
        log.info(
            "index %s: %d x %d, %s in %.2f s", path, meta.count, meta.dim, how, time.perf_counter() - started
        )
        return index

    @classmethod
    def from_manifest(
        cls,
        folder: str | Path,
        entry: IndexEntry,
        *,
        memory_budget_mb: float | None = None,
        threads: int | None = None,
        backend: Backend = "auto",
    ) -> EmbeddingIndex:
        """The model set's index as the daemon loads it: checked against ``entry``, graph loaded if listed.

        An entry without a graph (written before graphs were saved) loads by rebuilding the graph from
        the vectors, which takes seconds for a large index; a log line says so and how to add one.
        """
        folder = Path(folder)
        graph = None if entry.graph is None else folder / entry.graph
        if graph is None and resolve_backend(backend) == "hnswlib":  # the exact backend needs none
            log.info(
                "the manifest lists no saved graph for index %s: rebuilding it from its %d vectors "
                "(seconds for a large index); to load it directly, write the graph with "
                "`trainer index --graph-only --model-set %s` (or run `trainer index` again)",
                folder / entry.path,
                entry.count,
                folder,
            )
        return cls.load(
            folder / entry.path,
            expect=entry,
            graph=graph,
            memory_budget_mb=memory_budget_mb,
            threads=threads,
            backend=backend,
        )

    def _load_graph(self, graph: Path, vectors: np.ndarray) -> None:
        """Replace the (empty) hnswlib index by the saved graph, checked against the fp16 ``vectors``."""
        m = self._meta
        count = len(vectors)
        header = read_graph_header(graph, FIX_GRAPH)
        check_graph_header(
            graph, header, dim=m.dim, count=count, M=m.M, ef_construction=m.ef_construction, fix=FIX_GRAPH
        )
        if not count:
            return
        hnsw = _hnswlib().Index(space=m.space, dim=m.dim)
        try:
            # max_elements = count: exact capacity (the file records the capacity it was saved with).
            hnsw.load_index(str(graph), max_elements=count)
        except (RuntimeError, MemoryError, ValueError) as exc:
            raise ModelError(
                f"index graph {str(graph)!r} cannot be loaded by hnswlib: {exc}; {FIX_GRAPH}"
            ) from None
        hnsw.set_ef(m.ef_search)  # load_index resets ef to hnswlib's default
        check_graph_vectors(graph, hnsw, vectors, m.space)
        self._hnsw = hnsw

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
