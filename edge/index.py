"""Nearest-neighbour search over part embeddings (hnswlib), and its fp16 ``.npz`` artifact.

The index lives in memory as an hnswlib graph over float32 vectors, or, where hnswlib is not
installed (it has no wheel for the Pi's aarch64, so the Pi install leaves it out), as the vectors
alone, searched exactly (:mod:`edge.index_exact`; ``backend``): that, with adding and searching, is
:class:`~edge.index_search.IndexSearch`, and :class:`EmbeddingIndex` adds its files to it. On disk
it is one ``.npz`` written with :func:`numpy.savez` and read with ``allow_pickle=False``:

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
reference an index is measured against, :mod:`edge.index_recall`'s. Scores are similarities,
higher = closer (:mod:`edge.index_search` gives each space's).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from edge.errors import DataFileError, MissingDependencyError, ModelError
from edge.fileio import atomic_path, atomic_write
from edge.index_file import (
    FIX_GRAPH,
    FIX_REBUILD,
    check_expected,
    check_graph_vectors,
    check_sha256,
    read_npz,
    verify_graph_file,
)
from edge.index_graph import check_graph_header, read_graph_header
from edge.index_search import FIX_HNSWLIB, Backend, IndexSearch, import_hnswlib, resolve_backend
from edge.manifest import sha256_file
from edge.manifest_entries import IndexEntry

log = logging.getLogger(__name__)

_FP16_MAX = float(np.finfo(np.float16).max)


class EmbeddingIndex(IndexSearch):
    """Nearest-neighbour search over labelled embeddings (float32 in memory).

    ``space`` is ``"cosine"`` (vectors are normalised, as hnswlib does), ``"ip"`` or ``"l2"``; ``M``,
    ``ef_construction`` and ``seed`` shape hnswlib's graph; ``ef_search`` trades query speed for
    recall. ``threads`` None uses every core; 1 makes building deterministic (same seed + order =
    same graph). ``backend``: ``hnswlib`` (approximate, a graph), ``exact`` (every vector compared:
    :mod:`edge.index_exact`; the graph settings are kept for the file but unused) or ``auto``
    (hnswlib where installed). Ids are insertion positions; :attr:`labels` maps them to part ids (a
    part may have many vectors).

    Built on :class:`~edge.index_search.IndexSearch` (the vectors in memory and their search);
    saving and loading are this class's.
    """

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
            raise MissingDependencyError("hnswlib", None, "writing an index graph", fix=FIX_HNSWLIB)
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
        hnsw = import_hnswlib().Index(space=m.space, dim=m.dim)
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
