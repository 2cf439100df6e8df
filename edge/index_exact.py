"""Exact nearest-neighbour search in numpy: :class:`~edge.index.EmbeddingIndex`'s backend where
hnswlib is not installed.

hnswlib publishes no wheel for the Pi's aarch64, so a plain ``pip install`` there would have to
compile it (a C++ compiler and Python's headers). Without it the index compares each query with
every stored vector: one matrix product, exact (recall 1), in the same distances as hnswlib's
spaces, so scores and every caller stay the same. Its memory is the float32 vectors alone; its time
grows with the vectors' count (benchmarks/results/index_backends.md).
"""

from __future__ import annotations

import numpy as np

#: Queries compared at once: bounds the (queries x vectors) distance block held in memory.
QUERY_CHUNK = 256


class ExactSearch:
    """The stored vectors as one float32 matrix (for ``cosine`` normalised, as hnswlib stores them)."""

    def __init__(self, space: str, dim: int) -> None:
        self.space = space
        self.dim = dim
        self._x = np.zeros((0, dim), np.float32)
        self._sq = np.zeros(0, np.float32)  # squared norms, for l2

    def __len__(self) -> int:
        return len(self._x)

    @property
    def nbytes(self) -> int:
        """Bytes held: the vectors and their squared norms."""
        return int(self._x.nbytes + self._sq.nbytes)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        if self.space != "cosine":
            return x
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def add(self, x: np.ndarray) -> None:
        """Append (N, dim) float32 rows; their ids follow the ones stored."""
        x = np.asarray(self._prepare(x), np.float32)
        self._x = np.concatenate([self._x, x])
        self._sq = np.concatenate([self._sq, np.einsum("ij,ij->i", x, x)])  # the new rows' alone

    def items(self) -> np.ndarray:
        """(N, dim) float32 copy of the stored rows."""
        return self._x.copy()

    def knn(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids (Q, k) int64, distances (Q, k) float32), nearest first, in hnswlib's distances:
        cosine and ip ``1 - <q, x>``, l2 the squared distance. Equal distances among the k come in
        id order."""
        ids = np.empty((len(q), k), np.int64)
        dist = np.empty((len(q), k), np.float32)
        for start in range(0, len(q), QUERY_CHUNK):
            block = self._prepare(q[start : start + QUERY_CHUNK])
            dot = block @ self._x.T
            if self.space == "l2":
                d = np.maximum(np.einsum("ij,ij->i", block, block)[:, None] + self._sq[None, :] - 2 * dot, 0)
            else:
                d = 1.0 - dot
            near = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.argsort(d, axis=1)
            near_d = np.take_along_axis(d, near, axis=1)
            order = np.lexsort((near, near_d), axis=1)  # by distance, then by id
            ids[start : start + len(block)] = np.take_along_axis(near, order, axis=1)
            dist[start : start + len(block)] = np.take_along_axis(near_d, order, axis=1)
        return ids, dist
