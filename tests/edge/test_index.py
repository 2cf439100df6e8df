"""Embedding index: recall against brute force, the fp16 .npz artifact, manifest checks, bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError, DataFileError, ModelError
from edge.index import EmbeddingIndex
from edge.index_recall import brute_force_search, recall_at_k
from edge.manifest import sha256_file
from edge.manifest_entries import IndexEntry

REPO = Path(__file__).resolve().parents[2]


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _built(n: int = 300, dim: int = 16, seed: int = 0, **kw: object) -> tuple[EmbeddingIndex, np.ndarray]:
    x = _unit(n, dim, seed)
    index = EmbeddingIndex(dim, threads=1, **kw)  # type: ignore[arg-type]
    index.add(x, [f"p{i}" for i in range(n)])
    return index, x


def _entry(path: Path, index: EmbeddingIndex, **override: object) -> IndexEntry:
    fields: dict[str, object] = {
        "path": path.name,
        "sha256": sha256_file(path),
        "space": index.space,
        "dim": index.dim,
        "M": index.M,
        "ef_construction": index.ef_construction,
        "ef_search": index.ef_search,
        "count": len(index),
        "labels": path.name,  # labels live inside the .npz
    }
    return IndexEntry(**(fields | override))  # type: ignore[arg-type]


def test_recall_at_1_against_brute_force_on_2000_random_unit_vectors() -> None:
    gallery = _unit(2000, 64, seed=1)
    labels = [f"g{i}" for i in range(2000)]
    queries = _unit(300, 64, seed=2)
    index = EmbeddingIndex(64, seed=0)
    index.add(gallery, labels)
    recall = recall_at_k(index, queries, gallery, labels, k=1)
    assert recall >= 0.95, recall
    # recall_at_k agrees with a direct comparison of the top-1 labels
    truth, _ = brute_force_search(gallery, labels, queries, 1, "cosine")
    found, _ = index.search(queries, 1)
    assert recall == pytest.approx(float((truth == found).mean()))
    assert recall_at_k(index, queries, gallery, labels, k=10) >= 0.9


def test_scores_are_similarities_in_each_space() -> None:
    gallery = np.array([[1, 0], [0, 1], [3, 4]], np.float32)
    names = ["x", "y", "d"]
    q = np.array([[2.0, 0.0]], np.float32)
    for space, expect_labels, expect_scores in (
        ("cosine", ["x", "d", "y"], [1.0, 0.6, 0.0]),
        ("ip", ["d", "x", "y"], [6.0, 2.0, 0.0]),
        ("l2", ["x", "y", "d"], [-1.0, -5.0, -17.0]),
    ):
        index = EmbeddingIndex(2, space=space, threads=1)  # type: ignore[arg-type]
        index.add(gallery, names)
        labels, scores = index.search(q, 3)
        assert labels.tolist() == [expect_labels], space
        np.testing.assert_allclose(scores, [expect_scores], atol=1e-5, err_msg=space)
        ref_labels, ref_scores = brute_force_search(gallery, names, q, 3, space)  # type: ignore[arg-type]
        assert ref_labels.tolist() == [expect_labels], space
        np.testing.assert_allclose(ref_scores, [expect_scores], atol=1e-5, err_msg=space)


def test_add_in_batches_grows_capacity_and_keeps_ids() -> None:
    x = _unit(250, 8, seed=3)
    index = EmbeddingIndex(8, threads=1)
    for start in range(0, 250, 50):  # grows from an empty index several times
        index.add(x[start : start + 50], [f"p{i}" for i in range(start, start + 50)])
    assert len(index) == 250 and index.labels.tolist() == [f"p{i}" for i in range(250)]
    labels, scores = index.search(x[[0, 120, 249]], 1)
    assert labels[:, 0].tolist() == ["p0", "p120", "p249"]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(index.vectors(), x, atol=1e-6)
    with pytest.raises(ValueError):
        index.labels[0] = "changed"  # read-only view


def test_fp16_round_trip_gives_the_same_search_results(tmp_path: Path) -> None:
    index, x = _built(n=600, dim=32, seed=4, M=12, ef_construction=100, ef_search=80)
    rng = np.random.default_rng(5)
    queries = np.concatenate([x[:100] + rng.normal(0, 0.2, (100, 32)), _unit(100, 32, seed=6)])
    before_labels, before_scores = index.search(queries.astype(np.float32), 5)
    path = tmp_path / "index.npz"
    index.save(path)
    loaded = EmbeddingIndex.load(path, threads=1)
    assert (loaded.dim, loaded.space, loaded.M, loaded.ef_construction, loaded.ef_search, len(loaded)) == (
        32,
        "cosine",
        12,
        100,
        80,
        600,
    )
    assert loaded.labels.tolist() == index.labels.tolist()
    after_labels, after_scores = loaded.search(queries.astype(np.float32), 5)
    np.testing.assert_allclose(after_scores, before_scores, atol=2e-3)  # fp16 rounding only
    differ = after_labels != before_labels
    assert differ.mean() <= 0.02
    # the few label differences are near-ties swapped by rounding, not neighbours lost
    for q, r in zip(*np.nonzero(differ), strict=True):
        assert abs(float(after_scores[q, r]) - float(before_scores[q, r])) < 2e-3
    # the artifact is what the format says: fp16 vectors, fixed-width labels, JSON meta, no pickle
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["labels", "meta", "vectors"]
        assert npz["vectors"].dtype == np.float16 and npz["vectors"].shape == (600, 32)
        assert npz["labels"].dtype.kind == "U"
        meta = json.loads(str(npz["meta"]))
    assert meta == {
        "format_version": 1,
        "space": "cosine",
        "dim": 32,
        "M": 12,
        "ef_construction": 100,
        "ef_search": 80,
        "count": 600,
        "seed": 0,
    }
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed away


def test_empty_index_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    EmbeddingIndex(4, space="ip").save(path)
    loaded = EmbeddingIndex.load(path)
    assert len(loaded) == 0 and loaded.space == "ip"
    with pytest.raises(ModelError, match="empty"):
        loaded.search(np.ones((1, 4), np.float32))


def test_load_checks_the_manifest_entry(tmp_path: Path) -> None:
    index, x = _built(n=50, dim=8)
    path = tmp_path / "index.npz"
    index.save(path)
    good = _entry(path, index, ef_search=123)
    loaded = EmbeddingIndex.load(path, expect=good)
    assert loaded.ef_search == 123  # the manifest's query-time ef wins
    assert loaded.search(x[:1], 1)[0].tolist() == [["p0"]]

    for override, words in (
        ({"dim": 16}, ["dim 8 in the file, 16 in the manifest"]),
        ({"count": 51}, ["count 50 in the file, 51 in the manifest"]),
        ({"space": "ip"}, ["space 'cosine' in the file, 'ip' in the manifest"]),
        ({"M": 32}, ["M 16 in the file, 32 in the manifest"]),
        ({"sha256": "0" * 64}, ["sha256 expected " + "0" * 64, sha256_file(path)]),
    ):
        with pytest.raises(ModelError) as info:
            EmbeddingIndex.load(path, expect=_entry(path, index, **override))
        message = str(info.value)
        assert str(path) in message and "trainer index" in message, message
        for word in words:
            assert word in message, (word, message)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="does not exist"):
        EmbeddingIndex.load(tmp_path / "nope.npz")
    index, _ = _built(n=5, dim=4)
    index.save(tmp_path / "there.npz")
    entry = _entry(tmp_path / "there.npz", index)
    with pytest.raises(ModelError, match="manifest lists it"):
        EmbeddingIndex.load(tmp_path / "nope.npz", expect=entry)


def _write_npz(path: Path, **arrays: np.ndarray) -> Path:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    return path


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _meta(**override: object) -> np.ndarray:
    meta = {"format_version": 1, "space": "cosine", "dim": 4, "M": 16}
    meta |= {"ef_construction": 200, "ef_search": 64, "count": 2, "seed": 0}
    return np.array(json.dumps(meta | override))


_VECS = np.ones((2, 4), np.float16)
_LABELS = np.array(["a", "b"])


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.write_bytes(b"not a zip at all, just text"), "not a valid embedding index"),
        (lambda p: p.write_bytes(_npy_bytes(np.ones(3))), "single array"),
        (lambda p: _write_npz(p, vectors=_VECS, meta=_meta()), "['labels'] are missing"),
        (lambda p: _write_npz(p, vectors=_VECS, labels=np.array(["a", None]), meta=_meta()), "pickle"),
        (lambda p: _write_npz(p, vectors=_VECS.astype(np.float32), labels=_LABELS, meta=_meta()), "float16"),
        (lambda p: _write_npz(p, vectors=_VECS, labels=_LABELS, meta=_meta(count=3)), "meta says"),
        (lambda p: _write_npz(p, vectors=_VECS, labels=_LABELS, meta=_meta(format_version=9)), "format_ver"),
        (lambda p: _write_npz(p, vectors=_VECS, labels=_LABELS, meta=_meta(space="hamming")), "space"),
        (lambda p: _write_npz(p, vectors=_VECS, labels=_LABELS, meta=np.array("{oops")), "not valid JSON"),
        (lambda p: _write_npz(p, vectors=_VECS * np.nan, labels=_LABELS, meta=_meta()), "NaN"),
    ],
)
def test_corrupt_or_foreign_files_are_refused(tmp_path: Path, make: object, words: str) -> None:
    path = tmp_path / "index.npz"
    make(path)  # type: ignore[operator]
    with pytest.raises(ModelError) as info:
        EmbeddingIndex.load(path)
    assert words in str(info.value) and str(path) in str(info.value), str(info.value)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    index, _ = _built(n=40, dim=8)
    path = tmp_path / "index.npz"
    index.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="not a valid embedding index"):
        EmbeddingIndex.load(path)
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as zf:  # a zip of something else
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ModelError, match="missing"):
        EmbeddingIndex.load(tmp_path / "other.npz")


def test_bad_vectors_labels_and_k() -> None:
    index, _ = _built(n=3, dim=4)
    with pytest.raises(ModelError, match=r"shape \(2, 5\), expected \(N, 4\)"):
        index.add(np.ones((2, 5), np.float32), ["a", "b"])
    with pytest.raises(ModelError, match=r"shape \(4,\), expected \(N, 4\)"):
        index.search(np.ones(4, np.float32))
    nan = np.ones((2, 4), np.float32)
    nan[1, 2] = np.nan
    with pytest.raises(ModelError, match=r"NaN/inf in 1 row.*row 1"):
        index.add(nan, ["a", "b"])
    with pytest.raises(ModelError, match="NaN"):
        index.search(nan)
    with pytest.raises(ModelError, match="2 vectors but 3 labels"):
        index.add(np.ones((2, 4), np.float32), ["a", "b", "c"])
    with pytest.raises(ModelError, match="non-empty strings"):
        index.add(np.ones((1, 4), np.float32), [""])
    with pytest.raises(ModelError, match="all zeros"):
        index.add(np.zeros((1, 4), np.float32), ["z"])
    with pytest.raises(ModelError, match="k 0 must be a positive integer"):
        index.search(np.ones((1, 4), np.float32), k=0)
    assert len(index) == 3  # failed adds left nothing behind
    # k above the count is clamped with a warning
    with pytest.warns(UserWarning, match="k=5 exceeds the index's 3"):
        labels, scores = index.search(np.ones((2, 4), np.float32), k=5)
    assert labels.shape == scores.shape == (2, 3)
    assert sorted(labels[0].tolist()) == ["p0", "p1", "p2"]
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="space"):
        EmbeddingIndex(8, space="hamming")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="M"):
        EmbeddingIndex(8, M=1)
    with pytest.raises(ConfigError, match="dim"):
        EmbeddingIndex(0)
    with pytest.raises(ConfigError, match="threads"):
        EmbeddingIndex(8, threads=0)


def test_save_refuses_values_beyond_float16(tmp_path: Path) -> None:
    index = EmbeddingIndex(2, space="ip")
    index.add(np.array([[1e6, 0.0]], np.float32), ["big"])
    with pytest.raises(ModelError, match="float16 range"):
        index.save(tmp_path / "big.npz")
    assert not list(tmp_path.iterdir())
    with pytest.raises(DataFileError, match="create it"):
        _built(n=2, dim=2)[0].save(tmp_path / "no" / "such" / "index.npz")


def test_memory_budget_refuses_big_index(tmp_path: Path) -> None:
    index, _ = _built(n=200, dim=16)
    path = tmp_path / "index.npz"
    index.save(path)
    need = EmbeddingIndex.estimate_memory_mb(200, 16, 16)
    with pytest.raises(ModelError, match=r"over the memory budget of 0\.5 MB"):
        EmbeddingIndex.load(path, memory_budget_mb=0.5)
    assert len(EmbeddingIndex.load(path, memory_budget_mb=need + 1)) == 200


def test_memory_estimate_grows_with_each_parameter() -> None:
    base = EmbeddingIndex.estimate_memory_mb(10_000, 128, 16)
    assert EmbeddingIndex.estimate_memory_mb(20_000, 128, 16) > base
    assert EmbeddingIndex.estimate_memory_mb(10_000, 256, 16) > base
    assert EmbeddingIndex.estimate_memory_mb(10_000, 128, 32) > base
    with pytest.raises(ConfigError, match="M 1"):
        EmbeddingIndex.estimate_memory_mb(10, 8, 1)


_MEASURE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import hnswlib  # noqa: F401  (imported before the baseline: its code is not the index's memory)
    from edge.index import EmbeddingIndex

    def rss():
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))

    x = np.random.default_rng(0).standard_normal((20000, 128), dtype=np.float32)
    labels = [f"p{i % 700}" for i in range(20000)]
    before = rss()
    index = EmbeddingIndex(128, M=16, ef_construction=20, threads=1)  # ef_c: speed only, not memory
    index.add(x, labels)
    print((rss() - before) / 2**20)
    """
)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_memory_estimate_is_within_2x_of_measured_rss_growth() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    measured = float(out.stdout.strip())
    estimate = EmbeddingIndex.estimate_memory_mb(20_000, 128, 16)
    assert measured / 2 <= estimate <= measured * 2, (estimate, measured)


# -- the saved hnswlib graph beside the vectors ---------------------------------------------------


def _saved(
    tmp_path: Path, n: int = 2000, dim: int = 32, seed: int = 0, **kw: object
) -> tuple[IndexEntry, np.ndarray]:
    """An index saved with its graph in ``tmp_path``; its manifest entry (graph listed) and vectors."""
    index, x = _built(n=n, dim=dim, seed=seed, **kw)
    index.save(tmp_path / "index.npz", graph=tmp_path / "index.hnsw")
    entry = index.manifest_entry(tmp_path, "index.npz", "index.npz", "index.hnsw")
    assert entry == _entry(
        tmp_path / "index.npz",
        index,
        labels_sha256=sha256_file(tmp_path / "index.npz"),
        graph="index.hnsw",
        graph_sha256=sha256_file(tmp_path / "index.hnsw"),
    )
    return entry, x


def test_saved_graph_loads_the_index_rebuilding_gives(tmp_path: Path) -> None:
    entry, x = _saved(tmp_path, ef_construction=100, ef_search=50)
    rebuilt = EmbeddingIndex.load(tmp_path / "index.npz", expect=entry, threads=1)  # no graph: rebuilds
    loaded = EmbeddingIndex.from_manifest(tmp_path, entry, threads=1)
    assert (loaded.dim, loaded.space, loaded.M, loaded.ef_search, len(loaded)) == (32, "cosine", 16, 50, 2000)
    assert loaded._hnsw.ef == 50  # load_index resets ef; the manifest's value is set again
    assert loaded.labels.tolist() == rebuilt.labels.tolist()
    rng = np.random.default_rng(7)
    queries = np.concatenate([x[:100] + rng.normal(0, 0.2, (100, 32)), _unit(200, 32, seed=8)]).astype(
        np.float32
    )
    ids_graph, scores_graph = loaded.search_ids(queries, 5)
    ids_rebuilt, scores_rebuilt = rebuilt.search_ids(queries, 5)
    # The graph is the one rebuilding gives: the same neighbours, the same scores.
    np.testing.assert_array_equal(ids_graph, ids_rebuilt)
    np.testing.assert_array_equal(scores_graph, scores_rebuilt)
    stored = loaded.vectors()
    np.testing.assert_array_equal(stored, rebuilt.vectors())
    assert recall_at_k(loaded, queries, stored, loaded.labels.tolist(), k=5) >= 0.9
    # Writing the graph again gives the same bytes (one thread, same seed, same order).
    EmbeddingIndex.load(tmp_path / "index.npz", threads=1).save_graph(tmp_path / "again.hnsw")
    assert sha256_file(tmp_path / "again.hnsw") == entry.graph_sha256
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: the temporary file was renamed away


def test_tampered_or_missing_graph_is_refused(tmp_path: Path) -> None:
    entry, _ = _saved(tmp_path, n=300, dim=8)
    graph = tmp_path / "index.hnsw"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelError) as info:
        EmbeddingIndex.from_manifest(tmp_path, entry)
    message = str(info.value)
    for word in (str(graph), f"sha256 expected {entry.graph_sha256}", "trainer index --graph-only"):
        assert word in message, (word, message)
    graph.unlink()
    with pytest.raises(ModelError, match=r"index\.hnsw' does not exist; write the graph again"):
        EmbeddingIndex.from_manifest(tmp_path, entry)
    with pytest.raises(ModelError, match="manifest lists no graph"):  # nothing to check it against
        EmbeddingIndex.load(
            tmp_path / "index.npz",
            expect=_entry(tmp_path / "index.npz", EmbeddingIndex.load(tmp_path / "index.npz")),
            graph=graph,
        )


def test_entry_without_graph_loads_by_rebuilding_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index, x = _built(n=200, dim=8)
    index.save(tmp_path / "index.npz")
    entry = _entry(tmp_path / "index.npz", index)
    assert entry.graph is None and entry.graph_sha256 is None  # an entry written before graphs
    with caplog.at_level("INFO", logger="edge.index"):
        loaded = EmbeddingIndex.from_manifest(tmp_path, entry)
    assert loaded.search(x[:1], 1)[0].tolist() == [["p0"]]
    assert (
        "no saved graph" in caplog.text
        and f"trainer index --graph-only --model-set {tmp_path}" in caplog.text
    )


def test_graph_that_does_not_belong_to_the_vectors_is_refused(tmp_path: Path) -> None:
    entry, _ = _saved(tmp_path, n=300, dim=32)
    npz = tmp_path / "index.npz"
    for name, make, words in (
        ("dim16.hnsw", lambda: _built(n=300, dim=16)[0], ["dim 16 in the graph, 32 in the vectors"]),
        ("count.hnsw", lambda: _built(n=299, dim=32)[0], ["count 299 in the graph, 300 in the vectors"]),
        ("m8.hnsw", lambda: _built(n=300, dim=32, M=8)[0], ["M 8 in the graph, 16 in the vectors"]),
        ("other.hnsw", lambda: _built(n=300, dim=32, seed=9)[0], ["holds other vectors", "first at id 0"]),
    ):
        make().save_graph(tmp_path / name)
        bad = entry.model_copy(update={"graph": name, "graph_sha256": sha256_file(tmp_path / name)})
        with pytest.raises(ModelError) as info:
            EmbeddingIndex.from_manifest(tmp_path, bad)
        message = str(info.value)
        for word in [str(tmp_path / name), "trainer index --graph-only", *words]:
            assert word in message, (word, message)
    # A graph built in another space from the same (not unit-length) vectors: cosine normalises them.
    raw = np.random.default_rng(3).normal(0, 3, (300, 32)).astype(np.float32)
    for space in ("l2", "cosine"):
        index = EmbeddingIndex(32, space=space, threads=1)  # type: ignore[arg-type]
        index.add(raw, [f"p{i}" for i in range(300)])
        index.save(tmp_path / f"{space}.npz", graph=tmp_path / f"{space}.hnsw")
    with pytest.raises(ModelError, match="in a space other than 'l2'"):
        EmbeddingIndex.load(tmp_path / "l2.npz", graph=tmp_path / "cosine.hnsw")
    assert len(EmbeddingIndex.load(tmp_path / "l2.npz", graph=tmp_path / "l2.hnsw")) == 300
    # Not an hnswlib file at all, and one cut short.
    (tmp_path / "junk.hnsw").write_bytes(b"not a graph" * 3)
    with pytest.raises(ModelError, match="too short for an hnswlib index header"):
        EmbeddingIndex.load(npz, graph=tmp_path / "junk.hnsw")
    (tmp_path / "cut.hnsw").write_bytes((tmp_path / "index.hnsw").read_bytes()[:5000])
    with pytest.raises(ModelError, match="truncated"):
        EmbeddingIndex.load(npz, graph=tmp_path / "cut.hnsw")


def test_add_after_a_graph_load_grows_the_index(tmp_path: Path) -> None:
    entry, x = _saved(tmp_path, n=500, dim=16)
    loaded = EmbeddingIndex.from_manifest(tmp_path, entry, threads=1)
    assert loaded._hnsw.get_max_elements() == 500  # exact capacity, as when rebuilding
    new = _unit(30, 16, seed=11)
    for i in range(0, 30, 3):  # enrolment: a few vectors at a time, past the loaded capacity
        loaded.add(new[i : i + 3], [f"new{i // 3}"] * 3)
    assert len(loaded) == 530 and loaded._hnsw.get_max_elements() >= 530
    labels, scores = loaded.search(new, 1)
    assert labels[:, 0].tolist() == [f"new{i // 3}" for i in range(30)]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert loaded.search(x[:50], 1)[0][:, 0].tolist() == [f"p{i}" for i in range(50)]


def test_empty_index_round_trips_with_a_graph(tmp_path: Path) -> None:
    EmbeddingIndex(4, space="ip").save(tmp_path / "empty.npz", graph=tmp_path / "empty.hnsw")
    loaded = EmbeddingIndex.load(tmp_path / "empty.npz", graph=tmp_path / "empty.hnsw")
    assert len(loaded) == 0 and loaded.space == "ip"
    loaded.add(np.ones((1, 4), np.float32), ["a"])
    assert loaded.search(np.ones((1, 4), np.float32), 1)[0].tolist() == [["a"]]


def test_manifest_entry_needs_graph_and_checksum_together(tmp_path: Path) -> None:
    index, _ = _built(n=5, dim=4)
    index.save(tmp_path / "index.npz")
    with pytest.raises(ValueError, match="graph and graph_sha256 go together"):
        _entry(tmp_path / "index.npz", index, graph="index.hnsw")
    with pytest.raises(ValueError, match="relative path"):
        _entry(tmp_path / "index.npz", index, graph="../index.hnsw", graph_sha256="0" * 64)


_MEASURE_GRAPH = textwrap.dedent(
    """
    import sys
    import hnswlib  # noqa: F401  (imported before the baseline: its code is not the index's memory)
    from edge.index import EmbeddingIndex

    def rss():
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))

    before = rss()
    index = EmbeddingIndex.load(sys.argv[1], graph=sys.argv[2])
    print((rss() - before) / 2**20)
    """
)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_memory_estimate_holds_for_a_loaded_graph(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((20000, 128), dtype=np.float32)
    index = EmbeddingIndex(128, M=16, ef_construction=20, threads=1)  # ef_c: speed only, not memory
    index.add(x, [f"p{i % 700}" for i in range(20000)])
    index.save_graph(tmp_path / "index.hnsw")  # this index's own graph: the vectors differ by rounding only
    index.save(tmp_path / "index.npz")
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE_GRAPH, str(tmp_path / "index.npz"), str(tmp_path / "index.hnsw")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    measured = float(out.stdout.strip())
    estimate = EmbeddingIndex.estimate_memory_mb(20_000, 128, 16)
    assert measured / 2 <= estimate <= measured * 2, (estimate, measured)
