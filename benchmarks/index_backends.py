"""The embedding index's two backends: hnswlib's graph against exact search in numpy.

    python benchmarks/index_backends.py [--model-set models/default] [--synthetic 30000] \\
        [--repeats 300] [--json FILE] [--markdown FILE]

The Pi's install has no hnswlib (no aarch64 wheel), so there the index searches exactly
(:mod:`edge.index_exact`). For the shipped model set's index and for a synthetic one of
``--synthetic`` random unit vectors (the same dimension, cosine), in the same run: one part's search
(4 views, k = 5, as the daemon searches) timed with the backends taking turns (median of
``--repeats``) and their ratio; the load time (the daemon's way, :meth:`EmbeddingIndex.from_manifest`);
the resident memory loading adds, each backend in a fresh process; and how often the two agree on
the nearest neighbour and hnswlib's recall@5 against the exact answer, on the stored vectors with
noise added as queries.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.machine import machine_line, run_child, write_results  # noqa: E402
from edge.index import EmbeddingIndex  # noqa: E402
from edge.manifest import load_manifest  # noqa: E402
from edge.manifest_entries import IndexEntry  # noqa: E402

BACKENDS = ("hnswlib", "exact")

# A fresh process: resident memory before and after loading the index with one backend.
_LOAD_RSS = """
import json, sys
import hnswlib, numpy  # noqa: F401  (their code is not the index's memory)
from edge.index import EmbeddingIndex
from edge.manifest_entries import IndexEntry
from edge.memory import resident_mb

folder, entry, backend = sys.argv[1], IndexEntry.model_validate_json(sys.argv[2]), sys.argv[3]
before = resident_mb()
index = EmbeddingIndex.from_manifest(folder, entry, backend=backend)
print(json.dumps({"added_mb": resident_mb() - before, "count": len(index)}))
"""


def synthetic_index(folder: Path, count: int, dim: int) -> IndexEntry:
    """``count`` random unit vectors saved as ``trainer index`` saves an index (graph included)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(count, dim)).astype(np.float32)
    index = EmbeddingIndex(dim, backend="hnswlib")
    index.add(x / np.linalg.norm(x, axis=1, keepdims=True), [f"p{i % 200}" for i in range(count)])
    index.save(folder / "index.npz", graph=folder / "index.hnsw")
    return index.manifest_entry(folder, "index.npz", "index.npz", "index.hnsw")


def measure(name: str, folder: Path, entry: IndexEntry, repeats: int) -> dict[str, Any]:
    """Search time, load time, memory and agreement of both backends on one index."""
    loaded, load_s = {}, {}
    for backend in BACKENDS:
        start = time.perf_counter()
        loaded[backend] = EmbeddingIndex.from_manifest(folder, entry, backend=backend)
        load_s[backend] = time.perf_counter() - start
    stored = loaded["exact"].vectors()
    rng = np.random.default_rng(1)
    rows = rng.choice(len(stored), size=min(400, len(stored)), replace=False)
    queries = (stored[rows] + rng.normal(0, 0.05, (len(rows), stored.shape[1]))).astype(np.float32)
    exact_ids, _ = loaded["exact"].search_ids(queries, 5)
    graph_ids, _ = loaded["hnswlib"].search_ids(queries, 5)
    recall = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact_ids, graph_ids, strict=True)]))
    part = queries[:4]  # one part: 4 views in one search
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for _ in range(repeats):
        for backend in BACKENDS:  # taking turns: both see the same background load
            start = time.perf_counter()
            loaded[backend].search(part, 5)
            times[backend].append((time.perf_counter() - start) * 1000)
    search_ms = {b: statistics.median(t) for b, t in times.items()}
    memory = {b: run_child(_LOAD_RSS, str(folder), entry.model_dump_json(), b)["added_mb"] for b in BACKENDS}
    return {
        "index": name,
        "count": entry.count,
        "dim": entry.dim,
        "search_ms_per_part": search_ms,
        "search_ratio_exact_over_hnswlib": search_ms["exact"] / search_ms["hnswlib"],
        "load_s": load_s,
        "memory_added_mb": memory,
        "top1_agreement": float(np.mean(exact_ids[:, 0] == graph_ids[:, 0])),
        "hnswlib_recall_at_5": recall,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# The index's backends: hnswlib against exact search",
        "",
        f"`{result['command']}`",
        "",
        result["machine"],
        "",
        "One part's search: 4 views, k = 5, median of the repeats, the backends taking turns. Memory: "
        "what loading adds to a fresh process's resident set. Agreement: queries are stored vectors "
        "with noise; recall@5 is hnswlib's against the exact answer.",
        "",
        "| index | vectors | search a part, hnswlib / exact (ms) | exact / hnswlib "
        "| load (s) hnswlib / exact | memory added (MB) hnswlib / exact | same nearest | hnswlib recall@5 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["indexes"]:
        s, lo, mem = r["search_ms_per_part"], r["load_s"], r["memory_added_mb"]
        lines.append(
            f"| {r['index']} | {r['count']:,} x {r['dim']} | {s['hnswlib']:.3f} / {s['exact']:.3f} "
            f"| {r['search_ratio_exact_over_hnswlib']:.1f}x | {lo['hnswlib']:.2f} / {lo['exact']:.2f} "
            f"| {mem['hnswlib']:.1f} / {mem['exact']:.1f} | {100 * r['top1_agreement']:.1f}% "
            f"| {r['hnswlib_recall_at_5']:.3f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-set", type=Path, default=REPO / "models" / "default")
    parser.add_argument(
        "--synthetic", type=int, default=30_000, help="vectors of the synthetic index (0: none)"
    )
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--note", default="", help="what else ran on the machine, for the results")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    entry = load_manifest(args.model_set).index
    if entry is None:
        raise SystemExit(f"{args.model_set} has no index; pass a model set with one")
    indexes = [measure(f"shipped ({args.model_set.name})", args.model_set, entry, args.repeats)]
    if args.synthetic:
        work = Path(tempfile.mkdtemp(prefix="index_backends_"))
        try:
            synthetic = synthetic_index(work, args.synthetic, entry.dim)
            indexes.append(measure("synthetic, random unit vectors", work, synthetic, args.repeats))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    command = "python benchmarks/index_backends.py " + " ".join(sys.argv[1:])
    result = {"command": command.strip(), "machine": machine_line(args.note), "indexes": indexes}
    write_results(result, args.json, args.markdown, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
