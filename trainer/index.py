"""``trainer index``: the model set's embedding index, built from what the Pi's engine computes.

The gallery images are read and prepared as on the Pi and run through edge's engine
(``--runtime``/``--precision``, by default the ONNX int8 file the Pi runs), and their embeddings go
into an :class:`edge.index.EmbeddingIndex` (hnswlib, cosine), saved as its fp16 ``index.npz`` with
``index_labels.json`` (the part of each vector, by id) and ``index.hnsw`` (hnswlib's graph, built
from the fp16 vectors, so the Pi loads it instead of rebuilding it), all listed with their checksums
in the manifest's ``index`` entry.

``--graph-only`` writes just ``index.hnsw`` for a model set whose index has none (made before graphs
were saved), from its existing ``index.npz`` (unchanged), and adds it to the manifest entry.

Gallery: ``--split train`` (default) takes the training and validation captures of the data (as
training split them), so the test captures can serve as queries that the index has never seen;
``--split all`` enrols every image. The index written is loaded back the way the Pi loads it
(from the fp16 vectors and the saved graph), and its recall@1 and recall@10 against exact brute-force search
over the same vectors, with the test captures as queries, go into ``evaluation.index``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.engines import create_engine
from edge.errors import ConfigError, DataFileError
from edge.fileio import write_atomic
from edge.index import EmbeddingIndex
from edge.index_recall import brute_force_search, recall_at_k
from edge.manifest import Manifest, load_manifest, sha256_file, write_manifest
from trainer.data import Sample
from trainer.model_set import (
    DataProtocol,
    build_record,
    load_samples,
    run_engine,
    split_like_training,
    spread,
)

log = logging.getLogger(__name__)

INDEX_NAME = "index.npz"
LABELS_NAME = "index_labels.json"
GRAPH_NAME = "index.hnsw"
GallerySplit = Literal["train", "all"]


def gallery_and_queries(
    samples: Sequence[Sample], protocol: DataProtocol, split: GallerySplit, max_queries: int
) -> tuple[list[Sample], list[Sample], bool]:
    """``(gallery, queries, queries_in_gallery)``: gallery per ``split``, queries from the test captures."""
    splits, unseen = split_like_training(samples, protocol)
    test = splits["test"] or splits["val"]
    if split == "train":
        gallery = splits["train"] + splits["val"]
        in_gallery = not splits["test"]  # the val fallback is in the gallery
    elif split == "all":
        gallery = [*splits["train"], *splits["val"], *splits["test"], *unseen]
        in_gallery = True
    else:
        raise ConfigError(f"gallery split {split!r} must be 'train' or 'all'")
    if not gallery:
        raise DataFileError("the data gives no gallery images; pass --data with captures of the parts")
    return gallery, spread(test or gallery, max_queries), in_gallery


def _write_labels(path: Path, labels: list[str]) -> None:
    write_atomic(path, json.dumps(labels) + "\n")


def build_index(
    model_set: str | Path,
    data: Sequence[str | Path],
    *,
    runtime: str = "onnxruntime",
    precision: str | None = "int8",
    split: GallerySplit = "train",
    M: int = 16,
    ef_construction: int = 200,
    ef_search: int = 64,
    max_queries: int = 500,
    threads: int = 2,
    command: str | None = None,
) -> Manifest:
    """Build, save and measure the model set's index; returns the updated manifest.

    Raises:
        ConfigError: bad hnswlib settings, or a model set without an embedding output.
        ModelError: no file for ``runtime``/``precision`` in the model set.
        DataFileError: the data holds no images.
    """
    folder = Path(model_set)
    manifest = load_manifest(folder)
    if manifest.outputs.embedding is None or manifest.embedding_dim is None:
        raise ConfigError(f"model set {str(folder)!r} has no embedding output to index")
    index = EmbeddingIndex(
        manifest.embedding_dim,
        space="cosine",
        M=M,
        ef_construction=ef_construction,
        ef_search=ef_search,
        threads=1,  # one thread: the same data always gives the same graph
    )
    protocol = DataProtocol.from_manifest(manifest)
    gallery, queries, in_gallery = gallery_and_queries(
        load_samples(data, protocol), protocol, split, max_queries
    )
    with create_engine(runtime, folder, manifest, precision=precision, threads=threads) as engine:
        key = engine.entry.key
        vectors = run_engine(engine, gallery)["embedding"]
        query_vectors = run_engine(engine, queries)["embedding"]
    labels = [s.part_num for s in gallery]
    index.add(vectors, labels)
    index.save(folder / INDEX_NAME, graph=folder / GRAPH_NAME)  # the graph: rebuilt from fp16 vectors
    _write_labels(folder / LABELS_NAME, labels)
    entry = index.manifest_entry(folder, INDEX_NAME, LABELS_NAME, GRAPH_NAME)
    # Measure the index as the Pi gets it: loaded from the files, fp16 vectors and saved graph.
    loaded = EmbeddingIndex.from_manifest(folder, entry, threads=1)
    stored = loaded.vectors()
    figures: dict[str, Any] = {
        "model": key,
        "gallery_split": split,
        "gallery_images": len(gallery),
        "gallery_parts": len(set(labels)),
        "queries": len(queries),
        "queries_in_gallery": in_gallery,
    }
    for k in (1, 10):
        kk = min(k, len(loaded))
        figures[f"recall_at_{k}"] = recall_at_k(loaded, query_vectors, stored, labels, kk)
    found, _ = loaded.search(query_vectors, 1)
    exact, _ = brute_force_search(stored, labels, query_vectors, 1, loaded.space)
    truth = np.array([s.part_num for s in queries])
    figures["vector_top1"] = float(np.mean(found[:, 0] == truth))
    figures["brute_force_top1"] = float(np.mean(exact[:, 0] == truth))
    figures["build"] = build_record(command)
    evaluation = {**manifest.evaluation, "index": figures}
    manifest = manifest.model_copy(update={"index": entry, "evaluation": evaluation})
    write_manifest(folder, manifest)
    log.info(
        "index of %d vectors (%d parts) from %s: recall@1 %.4f vs brute force, top-1 %.3f on %d queries",
        len(index),
        figures["gallery_parts"],
        key,
        figures["recall_at_1"],
        figures["vector_top1"],
        len(queries),
    )
    return manifest


def write_graph(model_set: str | Path, *, force: bool = False) -> Manifest:
    """Write the saved graph for the model set's existing index; returns the updated manifest.

    The graph is rebuilt from ``index.npz`` (checked against the manifest, left unchanged) as the Pi
    would rebuild it, saved atomically as ``index.hnsw`` beside it and added with its checksum to the
    manifest's index entry. An entry that already lists a graph is left alone unless ``force``.

    Raises:
        ConfigError: the model set has no index, or already has a graph (without ``force``).
        ModelError: the index file does not match the manifest.
    """
    folder = Path(model_set)
    manifest = load_manifest(folder)
    entry = manifest.index
    if entry is None:
        raise ConfigError(f"model set {str(folder)!r} has no index; build one with `trainer index`")
    if entry.graph is not None and not force:
        raise ConfigError(
            f"model set {str(folder)!r} already lists the index graph {entry.graph!r}; pass --force to "
            "write it again"
        )
    plain = entry.model_copy(update={"graph": None, "graph_sha256": None})
    name = entry.graph or GRAPH_NAME
    EmbeddingIndex.load(folder / entry.path, expect=plain, threads=1).save_graph(folder / name)
    entry = entry.model_copy(update={"graph": name, "graph_sha256": sha256_file(folder / name)})
    EmbeddingIndex.from_manifest(folder, entry, threads=1)  # the graph loads and agrees with the vectors
    manifest = manifest.model_copy(update={"index": entry})
    write_manifest(folder, manifest)
    log.info("wrote %s (%d vectors) and its checksum into the manifest", folder / name, entry.count)
    return manifest


# ---- command line --------------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trainer index``."""
    p = sub.add_parser(
        "index",
        help="build the model set's embedding index from a gallery, through edge's engine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model-set", required=True, type=Path, help="model set folder")
    p.add_argument("--data", nargs="+", type=Path, help="gallery data folders (needed unless --graph-only)")
    p.add_argument(
        "--graph-only",
        action="store_true",
        help="only write the saved graph (index.hnsw) for the model set's existing index.npz",
    )
    p.add_argument("--force", action="store_true", help="with --graph-only: replace a listed graph")
    p.add_argument("--runtime", default="onnxruntime", choices=("onnxruntime", "litert"))
    p.add_argument("--precision", default="int8", choices=("fp32", "fp16", "int8"))
    p.add_argument("--split", default="train", choices=("train", "all"), help="gallery captures (train)")
    p.add_argument("--M", type=int, default=16, help="hnswlib links per node (16)")
    p.add_argument("--ef-construction", type=int, default=200, help="hnswlib build ef (200)")
    p.add_argument("--ef-search", type=int, default=64, help="hnswlib query ef (64)")
    p.add_argument("--max-queries", type=int, default=500, help="test images for recall (500)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run ``trainer index``."""
    if args.graph_only:
        entry = write_graph(args.model_set, force=args.force).index
        count = entry.count if entry is not None else 0
        graph = args.model_set / (entry.graph if entry is not None and entry.graph else GRAPH_NAME)
        print(f"{graph}: graph of {count} vectors, {graph.stat().st_size / 1e6:.1f} MB")
        return 0
    if not args.data:
        raise ConfigError("trainer index needs --data (the gallery), or --graph-only")
    manifest = build_index(
        args.model_set,
        args.data,
        runtime=args.runtime,
        precision=args.precision,
        split=args.split,
        M=args.M,
        ef_construction=args.ef_construction,
        ef_search=args.ef_search,
        max_queries=args.max_queries,
    )
    f = manifest.evaluation["index"]
    print(
        f"{args.model_set / INDEX_NAME}: {f['gallery_images']} vectors of {f['gallery_parts']} parts; "
        f"recall@1 {f['recall_at_1']:.4f}, recall@10 {f['recall_at_10']:.4f} vs brute force; "
        f"top-1 {f['vector_top1']:.3f} on {f['queries']} queries"
    )
    return 0
