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
from edge.index import EmbeddingIndex, brute_force_search, recall_at_k
from edge.manifest import IndexEntry, sha256_file

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
