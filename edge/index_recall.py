"""Exact k-nearest-neighbour search by full comparison, and an index's recall against it.

The reference :class:`edge.index.EmbeddingIndex` is measured against (``trainer index`` reports its
recall@k; the tests hold the graph search to it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from edge.errors import ConfigError, ModelError
from edge.index import EmbeddingIndex
from edge.index_file import SPACES, Space
from edge.index_search import as_matrix

__all__ = ["brute_force_search", "recall_at_k"]


def brute_force_search(
    gallery: np.ndarray, gallery_labels: Sequence[str], queries: np.ndarray, k: int, space: Space = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN by full comparison: the reference :class:`EmbeddingIndex` is measured against.

    Same return convention as :meth:`EmbeddingIndex.search` (labels (Q, k), float32 similarities).
    """
    if space not in SPACES:
        raise ConfigError(f"space {space!r} must be one of {list(SPACES)!r}")
    g = np.asarray(gallery, np.float64)
    if g.ndim != 2 or not len(g):
        raise ModelError(f"gallery must be a non-empty (N, D) array, got shape {g.shape!r}")
    names = np.asarray(list(gallery_labels), dtype=str)
    if names.shape != (len(g),):
        raise ModelError(f"got {len(g)} gallery vectors but {len(names)} labels; give one label per vector")
    q = as_matrix(np.asarray(queries), g.shape[1], "query vectors").astype(np.float64)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= len(g):
        raise ModelError(f"k {k!r} must be an integer within 1..{len(g)} (the gallery size)")
    if space == "cosine":
        g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-30)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    sims = q @ g.T
    if space == "l2":  # minus the squared distance, like hnswlib's l2 scores
        sims = -((q**2).sum(1)[:, None] - 2 * sims + (g**2).sum(1)[None, :])
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return names[order], np.take_along_axis(sims, order, axis=1).astype(np.float32)


def recall_at_k(
    index: EmbeddingIndex,
    queries: np.ndarray,
    gallery: np.ndarray,
    gallery_labels: Sequence[str],
    k: int,
) -> float:
    """Fraction of the true k nearest neighbours (by brute force over ``gallery``) the index finds.

    ``gallery`` must be the vectors the index holds. Neighbours are compared by label, counting
    repeats (a multiset intersection per query), so two vectors of the same part tying for a rank
    do not count as a miss.
    """
    if len(gallery) != len(index):
        raise ModelError(
            f"the gallery has {len(gallery)} vectors but the index holds {len(index)}; "
            "pass the vectors the index was built from"
        )
    truth, _ = brute_force_search(gallery, gallery_labels, queries, k, index.space)
    found, _ = index.search(queries, k)
    hits = sum(
        sum((Counter(t.tolist()) & Counter(f.tolist())).values()) for t, f in zip(truth, found, strict=True)
    )
    return hits / (len(truth) * k) if len(truth) else 1.0
