"""The index's exact backend (numpy; where hnswlib is not installed, as on the Pi): the same answers
as brute force and as hnswlib where hnswlib is exact, the same files, and the daemon's loading path."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError, MissingDependencyError, ModelError
from edge.index import EmbeddingIndex
from edge.index_exact import QUERY_CHUNK
from edge.index_recall import brute_force_search, recall_at_k
from edge.index_search import resolve_backend
from edge.manifest import sha256_file
from tests.edge.test_index import _entry, _unit


@pytest.fixture
def without_hnswlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without hnswlib (None in sys.modules stops its import, as if it were not installed)."""
    monkeypatch.setitem(sys.modules, "hnswlib", None)


@pytest.mark.parametrize("space", ["cosine", "ip", "l2"])
def test_exact_search_is_brute_force_in_each_space(space: str) -> None:
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(700, 24)).astype(np.float32)
    names = [f"p{i % 50}" for i in range(700)]
    queries = rng.normal(size=(QUERY_CHUNK + 40, 24)).astype(np.float32)  # more than one chunk
    index = EmbeddingIndex(24, space=space, backend="exact")  # type: ignore[arg-type]
    index.add(gallery[:300], names[:300])
    index.add(gallery[300:], names[300:])  # added in two batches
    labels, scores = index.search(queries, 7)
    ref_labels, ref_scores = brute_force_search(gallery, names, queries, 7, space)  # type: ignore[arg-type]
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-4)
    assert (labels == ref_labels).mean() > 0.999  # equal up to float32 near-ties
    assert index.backend == "exact" and "backend='exact'" in repr(index)


def test_exact_recall_is_one_and_hnswlib_agrees_on_a_small_gallery() -> None:
    gallery = _unit(400, 16, seed=1)
    labels = [f"p{i}" for i in range(400)]
    queries = _unit(100, 16, seed=2)
    exact = EmbeddingIndex(16, backend="exact")
    exact.add(gallery, labels)
    assert recall_at_k(exact, queries, gallery, labels, k=10) == 1.0
    graph = EmbeddingIndex(16, threads=1, backend="hnswlib", ef_search=400)  # ef >= count: exact too
    graph.add(gallery, labels)
    np.testing.assert_array_equal(exact.search_ids(queries, 5)[0], graph.search_ids(queries, 5)[0])
    np.testing.assert_allclose(exact.search(queries, 5)[1], graph.search(queries, 5)[1], atol=1e-5)
    np.testing.assert_allclose(exact.vectors(), graph.vectors(), atol=1e-6)


def test_the_same_file_loads_into_either_backend_and_the_graph_is_left_unread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    built = EmbeddingIndex(16, threads=1)
    x = _unit(500, 16, seed=3)
    built.add(x, [f"p{i % 40}" for i in range(500)])
    built.save(tmp_path / "index.npz", graph=tmp_path / "index.hnsw")
    entry = _entry(
        tmp_path / "index.npz", built, graph="index.hnsw", graph_sha256=sha256_file(tmp_path / "index.hnsw")
    )
    with caplog.at_level("INFO", logger="edge.index"):
        exact = EmbeddingIndex.from_manifest(tmp_path, entry, backend="exact")
    assert "exact search" in caplog.text and "left unread" in caplog.text
    graph = EmbeddingIndex.from_manifest(tmp_path, entry, backend="hnswlib")
    assert (len(exact), exact.ef_search, exact.M) == (len(graph), graph.ef_search, graph.M)
    q = x[:50] + np.random.default_rng(4).normal(0, 0.05, (50, 16)).astype(np.float32)
    assert (exact.search(q, 1)[0] == graph.search(q, 1)[0]).mean() >= 0.98
    # A tampered graph is refused even by the backend that does not read it (the manifest vouches for it).
    (tmp_path / "index.hnsw").write_bytes(b"not a graph")
    with pytest.raises(ModelError, match="sha256"):
        EmbeddingIndex.from_manifest(tmp_path, entry, backend="exact")
    # An exact index saves the same .npz (a graph is hnswlib's to write).
    exact.save(tmp_path / "again.npz")
    again = EmbeddingIndex.load(tmp_path / "again.npz", backend="exact")
    np.testing.assert_array_equal(again.vectors(), exact.vectors())
    with pytest.raises(MissingDependencyError, match="hnswlib"):
        exact.save_graph(tmp_path / "exact.hnsw")


def test_without_hnswlib_auto_searches_exactly_and_asking_for_it_names_the_fix(without_hnswlib: None) -> None:
    assert resolve_backend("auto") == "exact"
    index = EmbeddingIndex(8)
    x = _unit(30, 8, seed=5)
    index.add(x, [f"p{i}" for i in range(30)])
    assert index.backend == "exact" and index.search(x[[7]], 1)[0].tolist() == [["p7"]]
    with pytest.raises(MissingDependencyError) as info:
        EmbeddingIndex(8, backend="hnswlib")
    assert "pip install hnswlib" in str(info.value) and "build-essential python3-dev" in str(info.value)
    with pytest.raises(ConfigError, match="backend 'faiss' must be one of auto, hnswlib, exact"):
        EmbeddingIndex(8, backend="faiss")  # type: ignore[arg-type]


def test_the_exact_backend_refuses_bad_input_as_hnswlib_does() -> None:
    index = EmbeddingIndex(4, backend="exact")
    with pytest.raises(ModelError, match="empty"):
        index.search(np.ones((1, 4), np.float32))
    index.add(_unit(3, 4, seed=6), ["a", "b", "c"])
    with pytest.raises(ModelError, match="all zeros"):
        index.add(np.zeros((1, 4), np.float32), ["z"])
    with pytest.warns(UserWarning, match="k=5 exceeds the index's 3"):
        labels, scores = index.search(np.ones((2, 4), np.float32), k=5)
    assert labels.shape == (2, 3) and np.all(np.diff(scores, axis=1) <= 1e-6)
    assert len(index) == 3
