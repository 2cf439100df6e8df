"""Start-up cost of the embedding index: loading the saved hnswlib graph against rebuilding it.

    python benchmarks/index_load.py [--work /tmp/index_load] [--count 94000] [--dim 128] \\
        [--repeats 3] [--json FILE] [--markdown FILE]

Builds once (cached in ``--work``, reused by later runs) a model set: the default set's network
files and manifest with its index replaced by ``--count`` random unit vectors of ``--dim`` (cosine,
M 16, ef_construction 200), saved the way ``trainer index`` saves it (fp16 ``index.npz``, labels,
and the graph rebuilt from the fp16 vectors as ``index.hnsw``, all checksummed in the manifest).

Then, in the same run, alternating so both see the same background load: the old way (the index
file read, checked and its graph rebuilt from the vectors on every core, as the daemon did) against
the new way (:meth:`EmbeddingIndex.from_manifest`: the same file checks, then hnswlib's
``load_index`` of the checksummed graph); the median of ``--repeats`` each, and their ratio.

Memory, each in a fresh process: the resident memory that loading the index the new way adds
(against :meth:`EmbeddingIndex.estimate_memory_mb`), and the daemon's: ``Pipeline.from_config``
with ``config/sim.yaml`` (sim camera, HSV, onnxruntime int8, 4 threads) switched to hybrid
recognition on this model set, after two parts went through it; and the same with recognition
``classifier`` (no index loaded) as the baseline.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.machine import machine_line, run_child, write_results  # noqa: E402
from edge.index import EmbeddingIndex  # noqa: E402
from edge.manifest import load_manifest, sha256_file, write_manifest  # noqa: E402

M, EF_CONSTRUCTION, EF_SEARCH = 16, 200, 64

# A fresh process: resident memory (VmRSS) before and after loading the index the daemon's way.
_INDEX_RSS = """
import json, sys
import hnswlib, numpy  # noqa: F401  (their code is not the index's memory)
from edge.index import EmbeddingIndex
from edge.manifest import load_manifest
from edge.memory import resident_mb

def peak():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))

folder = sys.argv[1]
entry = load_manifest(folder).index
before = resident_mb()
index = EmbeddingIndex.from_manifest(folder, entry)
print(json.dumps({"before_mb": before, "after_mb": resident_mb(), "peak_mb": peak(), "count": len(index)}))
"""

# A fresh process: the daemon's pipeline objects (sim config, this model set), after two parts.
_PIPELINE_RSS = """
import json, sys
from pathlib import Path
from edge.bench import capture_parts
from edge.memory import resident_mb
from edge.pipeline import Pipeline
from edge.settings import load_edge_config

cfg = load_edge_config(Path(sys.argv[1]))
cfg = cfg.model_copy(update={
    "engine": cfg.engine.model_copy(update={"model_set": Path(sys.argv[2])}),
    "recognition": cfg.recognition.model_copy(update={"mode": sys.argv[3]}),
})
before = resident_mb()
pipeline = Pipeline.from_config(cfg)
loaded = resident_mb()
groups = capture_parts(pipeline, 2, cfg.capture.views, cfg.capture.step_deg)
for frames, capture_ms in groups:
    result = pipeline.process(frames, capture_ms)
after = resident_mb()
index = pipeline.recognizer.index
print(json.dumps({"imports_mb": before, "loaded_mb": loaded, "after_parts_mb": after,
                  "index_count": len(index) if index is not None else 0}))
pipeline.close()
"""


def build_model_set(
    work: Path, count: int, dim: int, source: Path = REPO / "models" / "default"
) -> tuple[Path, dict[str, Any]]:
    """``source``'s network files with a ``count`` x ``dim`` index of random unit vectors, cached in
    ``work`` (reused while it verifies and was made from the same ``source`` manifest)."""
    folder = work / f"model-set-{count}x{dim}"
    stamp = folder / "built.json"
    made_from = sha256_file(source / "manifest.json")
    if stamp.is_file():
        manifest = load_manifest(folder)
        entry = manifest.index
        record = json.loads(stamp.read_text())
        if (
            entry is not None
            and entry.count == count
            and entry.graph_sha256 == sha256_file(folder / str(entry.graph))
            and record.get("source_manifest_sha256") == made_from
        ):
            return folder, record
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    manifest = load_manifest(source)
    if manifest.embedding_dim != dim:
        raise SystemExit(f"--dim must be the default set's embedding size {manifest.embedding_dim}")
    for f in manifest.files:
        shutil.copy2(source / f.path, folder / f.path)
    x = np.random.default_rng(0).standard_normal((count, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = [manifest.parts[i % len(manifest.parts)] for i in range(count)]
    start = time.perf_counter()
    index = EmbeddingIndex(dim, M=M, ef_construction=EF_CONSTRUCTION, ef_search=EF_SEARCH)
    index.add(x, labels)
    built_s = time.perf_counter() - start
    start = time.perf_counter()
    index.save(folder / "index.npz", graph=folder / "index.hnsw")  # as `trainer index` does
    saved_s = time.perf_counter() - start
    (folder / "index_labels.json").write_text(json.dumps(labels) + "\n")
    entry = index.manifest_entry(folder, "index.npz", "index_labels.json", "index.hnsw")
    write_manifest(folder, manifest.model_copy(update={"index": entry}))
    record = {
        "build_s": round(built_s, 1),
        "save_with_graph_s": round(saved_s, 1),
        "source": str(source),
        "source_manifest_sha256": made_from,
    }
    stamp.write_text(json.dumps(record) + "\n")
    return folder, record


def _recall_at_5(index: EmbeddingIndex, queries: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of the exact 5 nearest ids (``truth``) the index returns."""
    found = index.search_ids(queries, 5)[0]
    return float(np.mean([len(set(f) & set(t)) / 5 for f, t in zip(found, truth, strict=True)]))


def time_loads(folder: Path, repeats: int) -> dict[str, Any]:
    """Median seconds of loading by rebuilding (old) and from the graph (new), alternated; recall of each."""
    entry = load_manifest(folder).index
    assert entry is not None and entry.graph is not None
    plain = entry.model_copy(update={"graph": None, "graph_sha256": None})
    with np.load(folder / entry.path) as npz:
        gallery = npz["vectors"].astype(np.float32)
    rng = np.random.default_rng(1)
    near = gallery[rng.choice(len(gallery), 100, replace=False)]
    near = near + rng.normal(0, 0.5 / np.sqrt(entry.dim), near.shape).astype(np.float32)
    queries = np.concatenate([near, rng.standard_normal((100, entry.dim), dtype=np.float32)])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = np.argsort(-(queries @ gallery.T), axis=1)[:, :5]  # exact: unit vectors, cosine = dot
    del gallery
    old, new, sums = [], [], []
    recall: dict[str, dict[str, float]] = {}
    for rep in range(repeats):
        start = time.perf_counter()
        rebuilt = EmbeddingIndex.load(folder / entry.path, expect=plain)  # the old way, every core
        old.append(time.perf_counter() - start)
        if rep == repeats - 1:
            recall["rebuild"] = {"near": _recall_at_5(rebuilt, queries[:100], truth[:100])}
            recall["rebuild"]["random"] = _recall_at_5(rebuilt, queries[100:], truth[100:])
        del rebuilt
        gc.collect()
        start = time.perf_counter()
        loaded = EmbeddingIndex.from_manifest(folder, entry)
        new.append(time.perf_counter() - start)
        if rep == repeats - 1:
            recall["graph"] = {"near": _recall_at_5(loaded, queries[:100], truth[:100])}
            recall["graph"]["random"] = _recall_at_5(loaded, queries[100:], truth[100:])
        del loaded
        gc.collect()
        start = time.perf_counter()
        sha256_file(folder / entry.path), sha256_file(folder / entry.graph)
        sums.append(time.perf_counter() - start)
    return {
        "rebuild_s": [round(t, 3) for t in old],
        "graph_s": [round(t, 3) for t in new],
        "rebuild_median_s": round(statistics.median(old), 3),
        "graph_median_s": round(statistics.median(new), 3),
        "ratio_rebuild_over_graph": round(statistics.median(old) / statistics.median(new), 1),
        "checksums_median_s": round(statistics.median(sums), 3),
        "recall_at_5": recall,
    }


def markdown(result: dict[str, Any]) -> str:
    t, m, p, q = (
        result["timing"],
        result["index_rss"],
        result["pipeline_hybrid"],
        result["pipeline_classifier"],
    )
    c = result["setup"]
    lines = [
        "# Index load: saved hnswlib graph against rebuilding from the fp16 vectors",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}  ",
        f"Date: {result['date']}; git {result['git']}",
        "",
        f"Index: {c['count']} x {c['dim']} random unit vectors, cosine, M {M}, ef_construction "
        f"{EF_CONSTRUCTION}; files: index.npz {c['npz_mb']:.1f} MB, index.hnsw {c['graph_mb']:.1f} MB. "
        f"Cached build: {result['build']}.",
        "",
        "## Load time (median of {n}, alternated in one process)".format(n=len(t["graph_s"])),
        "",
        "| way | median s | runs s |",
        "|---|---:|---|",
        f"| old: read + check vectors, rebuild graph (every core) | {t['rebuild_median_s']:.3f} | "
        f"{', '.join(f'{x:.3f}' for x in t['rebuild_s'])} |",
        f"| new: read + check vectors, load_index of the checksummed graph | {t['graph_median_s']:.3f} | "
        f"{', '.join(f'{x:.3f}' for x in t['graph_s'])} |",
        "",
        f"Ratio old / new: **{t['ratio_rebuild_over_graph']}x**. Of the new way's time, the two "
        f"SHA-256 checksums (npz + graph) take {t['checksums_median_s']:.3f} s.",
        "",
        "Recall@5 against brute force (ids; ef_search 64), last repetition: near queries (100 gallery "
        "vectors plus noise): rebuilt {rn:.3f}, graph {gn:.3f}; random queries (100, the hardest case "
        "for random data: near-ties everywhere): rebuilt {rr:.3f}, graph {gr:.3f}. The daemon rebuilds "
        "on every core, which does not give one fixed graph; the saved graph is the one-thread rebuild "
        "`trainer index` makes.".format(
            rn=t["recall_at_5"]["rebuild"]["near"],
            gn=t["recall_at_5"]["graph"]["near"],
            rr=t["recall_at_5"]["rebuild"]["random"],
            gr=t["recall_at_5"]["graph"]["random"],
        ),
        "",
        "## Resident memory (fresh processes)",
        "",
        f"- Index only, loaded the new way: {m['after_mb'] - m['before_mb']:.1f} MB added to "
        f"{m['before_mb']:.1f} MB (Python, numpy, hnswlib); peak {m['peak_mb']:.1f} MB while loading "
        f"(the fp16 vectors are read to check the graph, then freed). "
        f"`EmbeddingIndex.estimate_memory_mb`: {result['estimate_mb']:.1f} MB.",
        f"- Daemon pipeline (`Pipeline.from_config`, config/sim.yaml, recognition hybrid, this model set), "
        f"after 2 parts: **{p['after_parts_mb']:.1f} MB** ({p['imports_mb']:.1f} MB after imports, "
        f"{p['loaded_mb']:.1f} MB loaded).",
        f"- Same config, recognition classifier (no index loaded): {q['after_parts_mb']:.1f} MB; the "
        f"index adds {p['after_parts_mb'] - q['after_parts_mb']:.1f} MB to the daemon.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/index_load"), help="cache folder")
    parser.add_argument("--count", type=int, default=94_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", type=Path, default=REPO / "config" / "sim.yaml")
    parser.add_argument("--note", default="", help="added to the machine line (e.g. what else ran)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    folder, build = build_model_set(args.work, args.count, args.dim)
    print(f"model set {folder}: {build}", flush=True)
    timing = time_loads(folder, args.repeats)
    print(json.dumps(timing), flush=True)
    index_rss = run_child(_INDEX_RSS, str(folder))
    hybrid = run_child(_PIPELINE_RSS, str(args.config), str(folder), "hybrid")
    classifier = run_child(_PIPELINE_RSS, str(args.config), str(folder), "classifier")
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": machine_line(args.note),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "git": git.stdout.strip(),
        "setup": {
            "count": args.count,
            "dim": args.dim,
            "npz_mb": (folder / "index.npz").stat().st_size / 1e6,
            "graph_mb": (folder / "index.hnsw").stat().st_size / 1e6,
        },
        "build": build,
        "timing": timing,
        "index_rss": index_rss,
        "estimate_mb": EmbeddingIndex.estimate_memory_mb(args.count, args.dim, M),
        "pipeline_hybrid": hybrid,
        "pipeline_classifier": classifier,
    }
    write_results(result, args.json, args.markdown, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
