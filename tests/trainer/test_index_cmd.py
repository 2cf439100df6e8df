"""trainer index: the gallery's embeddings (through edge's engine) in the model set's hnswlib index.

Uses the tiny ONNX classifier of ``tests.helpers.onnx_models`` (no torch) on renders of the demo
LDraw library.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from edge.engines import create_engine
from edge.errors import ConfigError, ModelError
from edge.index import EmbeddingIndex
from edge.manifest import Manifest, load_manifest, make_file_entry, sha256_file, write_manifest
from edge.manifest_entries import OutputNames
from studio.demo_library import DEMO_PARTS
from tests.helpers.onnx_models import ClassifierWeights, build_classifier, write_model_set
from trainer.index import (
    GRAPH_NAME,
    INDEX_NAME,
    LABELS_NAME,
    add_parser,
    build_index,
    gallery_and_queries,
    write_graph,
)
from trainer.model_set import DataProtocol, load_samples, run_engine
from trainer.render import run_render
from trainer.render_worker import RenderJob

COLORS = (4, 1, 14)


@pytest.fixture(scope="module")
def data(demo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Renders of the demo parts: 4 captures of 2 views each, 64x64, legacy layout."""
    out = tmp_path_factory.mktemp("index_data")
    job = RenderJob(str(demo_library), "legacy", str(out), 4, 2, COLORS, 1, "train", 1, 64)
    assert not [r.error for r in run_render(job, list(DEMO_PARTS)) if r.error]
    return out


def _model_set(folder: Path, data: Path) -> Manifest:
    parts = sorted(d.name for d in (data / "images").iterdir())
    return write_model_set(folder, parts=parts, colors=COLORS, size=(32, 32), embedding_dim=6, seed=5)


def test_index_holds_the_engine_embeddings_of_the_train_captures(data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "set"
    _model_set(folder, data)
    manifest = build_index(folder, [data], precision="fp32", M=8, ef_construction=50, ef_search=20)

    assert load_manifest(folder) == manifest
    entry = manifest.index
    assert entry is not None
    assert (entry.path, entry.labels, entry.space, entry.dim) == (INDEX_NAME, LABELS_NAME, "cosine", 6)
    assert (entry.M, entry.ef_construction, entry.ef_search) == (8, 50, 20)
    assert entry.sha256 == sha256_file(folder / INDEX_NAME)
    assert entry.labels_sha256 == sha256_file(folder / LABELS_NAME)
    # The graph beside the vectors: the one rebuilding from them gives, so the Pi loads it instead.
    assert (entry.graph, entry.graph_sha256) == (GRAPH_NAME, sha256_file(folder / GRAPH_NAME))
    rebuilt = EmbeddingIndex.load(folder / INDEX_NAME, threads=1)
    rebuilt.save_graph(folder / "rebuilt.hnsw")
    assert sha256_file(folder / "rebuilt.hnsw") == entry.graph_sha256

    # The gallery is the train+val captures; its vectors are exactly what the engine computes.
    protocol = DataProtocol.from_manifest(manifest)
    gallery, queries, in_gallery = gallery_and_queries(load_samples([data]), protocol, "train", 500)
    assert not in_gallery
    assert not {(s.source, s.capture_id) for s in gallery} & {(s.source, s.capture_id) for s in queries}
    with create_engine("onnxruntime", folder, manifest) as engine:
        expected = run_engine(engine, gallery)["embedding"]
    index = EmbeddingIndex.load(folder / INDEX_NAME, expect=entry)
    assert len(index) == entry.count == len(gallery)
    np.testing.assert_allclose(index.vectors(), expected, atol=2e-3)  # stored as fp16
    labels = json.loads((folder / LABELS_NAME).read_text())
    assert labels == [s.part_num for s in gallery] == index.labels.tolist()

    figures = manifest.evaluation["index"]
    assert figures["gallery_images"] == len(gallery) and figures["queries"] == len(queries)
    # A gallery this small is searched exactly: hnswlib finds what brute force finds.
    assert figures["recall_at_1"] == 1.0
    assert figures["vector_top1"] == figures["brute_force_top1"]


def test_index_of_everything_and_checks(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "set"
    _model_set(folder, data)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["index", "--model-set", str(folder), "--data", str(data), "--precision", "fp32", "--split", "all"]
    )
    assert args.func(args) == 0
    assert "recall@1 1.0000" in capsys.readouterr().out
    manifest = load_manifest(folder)
    assert manifest.index is not None and manifest.index.count == len(load_samples([data]))
    assert manifest.evaluation["index"]["queries_in_gallery"] is True
    with pytest.raises(ModelError, match="int8"):  # the default precision is absent from this model set
        build_index(folder, [data])
    with pytest.raises(ConfigError, match="gallery split"):
        build_index(folder, [data], precision="fp32", split="test")  # type: ignore[arg-type]


def test_model_set_without_embedding_is_refused(data: Path, tmp_path: Path) -> None:
    import onnx

    parts = sorted(d.name for d in (data / "images").iterdir())
    weights = ClassifierWeights.random(len(parts), len(COLORS), 1)
    model = build_classifier(weights, (16, 16), output_order=("part_logits", "color_logits"))
    onnx.save(model, tmp_path / "model_fp32.onnx")
    manifest = Manifest(
        architecture="tiny",
        input={"size": (16, 16)},
        outputs=OutputNames(embedding=None),
        parts=parts,
        colors=list(COLORS),
        files=[make_file_entry(tmp_path, "model_fp32.onnx", "onnxruntime", "fp32")],
    )
    write_manifest(tmp_path, manifest)
    with pytest.raises(ConfigError, match="no embedding"):
        build_index(tmp_path, [data], precision="fp32")


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["index", *argv])


def test_graph_only_adds_the_graph_to_an_index_made_without_one(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "set"
    _model_set(folder, data)
    manifest = build_index(folder, [data], precision="fp32", M=8, ef_construction=50)
    assert manifest.index is not None
    # A model set indexed before graphs were saved: no graph file, no graph in the manifest.
    (folder / GRAPH_NAME).unlink()
    old = manifest.index.model_copy(update={"graph": None, "graph_sha256": None})
    write_manifest(folder, manifest.model_copy(update={"index": old}))
    npz_before = sha256_file(folder / INDEX_NAME)

    args = _parse("--model-set", str(folder), "--graph-only")
    assert args.func(args) == 0
    assert f"{folder / GRAPH_NAME}: graph of {old.count} vectors" in capsys.readouterr().out
    entry = load_manifest(folder).index
    assert entry is not None
    assert sha256_file(folder / INDEX_NAME) == npz_before == entry.sha256  # the vectors are untouched
    assert (entry.graph, entry.graph_sha256) == (
        GRAPH_NAME,
        manifest.index.graph_sha256,
    )  # as `trainer index`
    assert entry.model_copy(update={"graph": None, "graph_sha256": None}) == old
    loaded = EmbeddingIndex.from_manifest(folder, entry)
    assert len(loaded) == old.count

    with pytest.raises(ConfigError, match="already lists the index graph"):
        write_graph(folder)
    assert write_graph(folder, force=True).index == entry  # the same bytes again
    with pytest.raises(ConfigError, match="needs --data"):
        _parse("--model-set", str(folder)).func(_parse("--model-set", str(folder)))
