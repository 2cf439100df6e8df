"""trainer ship: the stage config and the shipped copy of a model set (tools/build_default_models.sh)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edge.errors import ConfigError, ModelError
from edge.manifest import (
    load_manifest,
    make_file_entry,
    sha256_file,
    verify_file,
    verify_shipped_segmenter,
    write_manifest,
)
from edge.manifest_entries import IndexEntry, SegmenterEntry
from tests.helpers.onnx_models import write_model_set
from trainer.cli import main
from trainer.ship import parse_setting, write_stage_config
from trainer.shipping import read_timings, ship_model_set
from trainer.train_config import load_train_config

REPO = Path(__file__).resolve().parents[2]
BIG = 30_000  # bytes of the file over the limit; classifier.onnx is about 1 kB
LIMIT_MB = 0.01


@pytest.fixture
def model_set(tmp_path: Path) -> Path:
    """A set of two files (the tiny classifier and a 30 kB one) with an index and its labels."""
    folder = tmp_path / "set"
    manifest = write_model_set(folder)
    (folder / "big.onnx").write_bytes(bytes(range(256)) * (BIG // 256) + b"x" * (BIG % 256))
    (folder / "index.npz").write_bytes(b"vectors" * 10)
    (folder / "index_labels.json").write_text('["3001"]\n')
    index = IndexEntry(
        path="index.npz",
        sha256=sha256_file(folder / "index.npz"),
        dim=manifest.embedding_dim or 0,
        count=1,
        labels="index_labels.json",
        labels_sha256=sha256_file(folder / "index_labels.json"),
    )
    big = make_file_entry(folder, "big.onnx", "onnxruntime", "fp16")
    evaluation = {"evaluate": {"part_top1": 0.5}}
    write_manifest(
        folder,
        manifest.model_copy(
            update={"files": [*manifest.files, big], "index": index, "evaluation": evaluation}
        ),
    )
    return folder


@pytest.fixture
def shipped_before(tmp_path: Path) -> Path:
    """A destination that already holds a shipped set (to be replaced, or kept on failure)."""
    dest = tmp_path / "default"
    dest.mkdir()
    (dest / "manifest.json").write_text('{"old": true}\n')
    (dest / "SENSITIVITY.md").write_text("old study\n")
    return dest


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_files_within_the_limit_ship_and_larger_ones_are_recorded(model_set: Path, tmp_path: Path) -> None:
    dest = tmp_path / "default"
    figures = ship_model_set(model_set, dest, max_mb=LIMIT_MB)
    assert figures["shipped"] == ["classifier.onnx"] and figures["not_shipped"] == ["big.onnx"]
    manifest = load_manifest(dest)
    assert [f.path for f in manifest.files] == ["classifier.onnx"]
    for entry in [*manifest.files, manifest.index]:
        assert entry is not None
        verify_file(dest, entry)
    assert sorted(p.name for p in dest.iterdir()) == [
        "classifier.onnx",
        "index.npz",
        "index_labels.json",
        "manifest.json",
    ]
    big = load_manifest(model_set).files[1]
    assert manifest.evaluation["not_shipped"] == [
        {
            "path": "big.onnx",
            "key": "onnxruntime/fp16",
            "bytes": BIG,
            "sha256": big.sha256,
            "why": "larger than 0.01 MB; kept in the build folder, figures above",
        }
    ]
    assert manifest.evaluation["evaluate"] == {"part_top1": 0.5}  # the set's own figures stay
    assert not (tmp_path / "default.tmp").exists() and not (tmp_path / "default.old").exists()

    everything = ship_model_set(model_set, tmp_path / "all", max_mb=1)
    assert everything["shipped"] == ["classifier.onnx", "big.onnx"]
    assert load_manifest(tmp_path / "all").evaluation["not_shipped"] == []


def _with_quantization(folder: Path, drops: dict[str, tuple[float, float]]) -> None:
    """Record ``trainer quantize`` figures: artifact key -> (part top-1, colour top-1), by file."""
    manifest = load_manifest(folder)
    files = {f.key: f.path for f in manifest.files}
    artifacts = {
        key: {"part_top1": part, "color_top1": color, "file": files.get(key, f"{key}.bin")}
        for key, (part, color) in drops.items()
    }
    evaluation = {**manifest.evaluation, "quantization": {"artifacts": artifacts}}
    write_manifest(folder, manifest.model_copy(update={"evaluation": evaluation}))


def test_a_converted_file_that_loses_more_than_max_drop_stays_out_with_the_reason(
    model_set: Path, tmp_path: Path
) -> None:
    # big.onnx (onnxruntime/fp16) lost 4 points of colour top-1 against the fp32 reference.
    _with_quantization(model_set, {"onnxruntime/fp32": (0.90, 0.80), "onnxruntime/fp16": (0.90, 0.76)})
    figures = ship_model_set(model_set, tmp_path / "strict", max_mb=1, max_drop=3)
    assert figures["not_shipped"] == ["big.onnx"]
    (left,) = load_manifest(tmp_path / "strict").evaluation["not_shipped"]
    assert left["path"] == "big.onnx"
    assert left["why"].startswith("onnxruntime/fp16 loses 4.0 points of colour top-1 against fp32")
    assert "--max-drop 3" in left["why"]
    # A looser limit, or none, ships it.
    assert ship_model_set(model_set, tmp_path / "loose", max_mb=1, max_drop=5)["not_shipped"] == []
    assert ship_model_set(model_set, tmp_path / "any", max_mb=1, max_drop=None)["not_shipped"] == []
    with pytest.raises(ConfigError, match="--max-drop -1"):
        ship_model_set(model_set, tmp_path / "bad", max_mb=1, max_drop=-1)


def test_a_set_without_quantization_figures_ships_whole_under_max_drop(
    model_set: Path, tmp_path: Path
) -> None:
    assert ship_model_set(model_set, tmp_path / "d", max_mb=1, max_drop=0)["not_shipped"] == []


def test_a_file_failing_its_checksum_is_refused_by_name_and_the_destination_is_kept(
    model_set: Path, shipped_before: Path
) -> None:
    before = _snapshot(shipped_before)
    data = bytearray((model_set / "big.onnx").read_bytes())
    data[100] ^= 0xFF  # same size, other content
    (model_set / "big.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"big\.onnx.*sha256 expected"):
        ship_model_set(model_set, shipped_before, max_mb=LIMIT_MB)  # a file that would not even ship
    assert _snapshot(shipped_before) == before
    assert not shipped_before.with_name("default.tmp").exists()

    (model_set / "big.onnx").unlink()
    with pytest.raises(ModelError, match=r"big\.onnx.*missing"):
        ship_model_set(model_set, shipped_before, max_mb=LIMIT_MB)
    assert _snapshot(shipped_before) == before


def test_corrupt_index_labels_are_refused(model_set: Path, shipped_before: Path) -> None:
    before = _snapshot(shipped_before)
    (model_set / "index_labels.json").write_text('["3002"]\n')
    with pytest.raises(ModelError, match=r"index_labels\.json.*corrupt"):
        ship_model_set(model_set, shipped_before, max_mb=LIMIT_MB)
    assert _snapshot(shipped_before) == before


def test_a_set_with_no_file_within_the_limit_is_refused(model_set: Path, shipped_before: Path) -> None:
    before = _snapshot(shipped_before)
    with pytest.raises(
        ModelError, match=r"can ship: classifier\.onnx \(larger than 0\.0001 MB\).*raise --max-mb"
    ):
        ship_model_set(model_set, shipped_before, max_mb=0.0001)
    with pytest.raises(ConfigError, match="the model set itself"):
        ship_model_set(model_set, model_set, max_mb=LIMIT_MB)
    assert _snapshot(shipped_before) == before


def test_a_missing_report_fails_before_anything_is_replaced(model_set: Path, shipped_before: Path) -> None:
    before = _snapshot(shipped_before)
    with pytest.raises(ConfigError, match=r"report\.md"):
        ship_model_set(model_set, shipped_before, max_mb=LIMIT_MB, report=shipped_before.parent / "nowhere")
    assert _snapshot(shipped_before) == before


def test_history_timings_report_and_added_files_are_shipped(
    model_set: Path, shipped_before: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    history = [{"epoch": 1, "val_part_top1": 0.25}, {"epoch": 2, "val_part_top1": 0.5}]
    (run / "history.json").write_text(json.dumps(history))
    timings = tmp_path / "timings.tsv"
    timings.write_text("render\t100\nstage1\t3000\nexport\t30\n\nexport\t31\n")  # export re-run
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("# Evaluation\n\nfigures\n\n")
    (report / "confusion.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    config = tmp_path / "stage1.yaml"
    config.write_text("epochs: 3\n")

    ship_model_set(
        model_set,
        shipped_before,
        max_mb=LIMIT_MB,
        run=run,
        timings=timings,
        report=report,
        notes=["Built by a test."],
        credit="Rendered from the LDraw.org Parts Library (CC BY).",
        add=[config],
    )
    evaluation = load_manifest(shipped_before).evaluation
    assert evaluation["training_history"] == history
    assert evaluation["build_timings_s"] == {"render": 100, "stage1": 3000, "export": 31}
    assert list(evaluation["build_timings_s"]) == ["render", "stage1", "export"]
    assert (shipped_before / "stage1.yaml").read_text() == "epochs: 3\n"
    assert (shipped_before / "confusion.png").is_file()
    assert not (shipped_before / "SENSITIVITY.md").exists()  # the old set is replaced whole
    assert (shipped_before / "REPORT.md").read_text() == "\n".join(
        [
            "# Evaluation",
            "",
            "figures",
            "",
            "## Build",
            "",
            "Built by a test.",
            "",
            "| step | wall time (s) |",
            "|---|---|",
            "| render | 100 |",
            "| stage1 | 3000 |",
            "| export | 31 |",
            "",
            "Not shipped (figures above; in the build folder): `big.onnx` (0.0 MB; larger than 0.01 MB)",
            "",
            "*Rendered from the LDraw.org Parts Library (CC BY).*",
            "",
        ]
    )


def test_segmenters_shipped_into_the_destination_are_carried_into_the_new_set(
    model_set: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "default"
    ship_model_set(model_set, dest, max_mb=LIMIT_MB)
    (dest / "seg.onnx").write_bytes(b"segmenter weights" * 50)
    (dest / "seg.json").write_text('{"input_size": [256, 192]}\n')
    entry = SegmenterEntry(
        path="seg.onnx",
        sidecar="seg.json",
        precision="fp32",
        sha256=sha256_file(dest / "seg.onnx"),
        sidecar_sha256=sha256_file(dest / "seg.json"),
        bytes=(dest / "seg.onnx").stat().st_size,
        evaluation={"mask_iou": {"test": 0.9}},
    )
    write_manifest(dest, load_manifest(dest).model_copy(update={"segmenters": [entry]}))

    ship_model_set(model_set, dest, max_mb=LIMIT_MB)  # a new classifier, the segmenter kept
    assert load_manifest(dest).segmenters == [entry]
    assert verify_shipped_segmenter(dest / "seg.onnx") == entry

    (dest / "seg.onnx").write_bytes(b"another network" * 50)
    before = _snapshot(dest)
    with pytest.raises(ModelError, match=r"segmenter model .*seg\.onnx.*corrupt or was replaced"):
        ship_model_set(model_set, dest, max_mb=LIMIT_MB)
    assert _snapshot(dest) == before and not (tmp_path / "default.tmp").exists()


def test_bad_timings_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "timings.tsv"
    path.write_text("render\t10\nstage1 20\n")
    with pytest.raises(ConfigError, match=r"timings.tsv:2"):
        read_timings(path)


def test_the_ship_command_runs_and_reports_a_corrupt_file(model_set: Path, tmp_path: Path) -> None:
    dest = tmp_path / "default"
    assert main(["ship", "model-set", "--from", str(model_set), "--to", str(dest), "--max-mb", "1"]) == 0
    assert [f.path for f in load_manifest(dest).files] == ["classifier.onnx", "big.onnx"]
    (model_set / "classifier.onnx").write_bytes(b"not a model")
    assert main(["ship", "model-set", "--from", str(model_set), "--to", str(dest)]) == 2
    verify_file(dest, load_manifest(dest).files[0])  # the earlier copy is intact


# ---- trainer ship config -------------------------------------------------------------------------


def test_a_stage_config_keeps_the_base_and_validates(tmp_path: Path) -> None:
    base = REPO / "config" / "stage1_synthetic.yaml"
    out = tmp_path / "work" / "stage1.yaml"
    texts = [
        "epochs=3",
        "out=runs/stage1",
        "pretrained=true",
        "freeze_blocks=5",
        "cache.mode=on",
        "cache.dir=fc",
    ]
    argv = ["ship", "config", "--base", str(base), "--out", str(out), "--kind", "real", "--weight", "1"]
    assert main([*argv, "--source", "render-train", "render-train2", "--set", *texts]) == 0

    written = yaml.safe_load(out.read_text())
    original = yaml.safe_load(base.read_text())
    assert list(written) == list(original)  # same keys, same order
    changed = {"sources", "epochs", "out", "freeze_blocks", "cache"}
    assert {k: v for k, v in written.items() if k not in changed} == {
        k: v for k, v in original.items() if k not in changed
    }
    assert written["cache"] == {**original["cache"], "mode": "on", "dir": "fc"}  # "on" stays a string
    cfg = load_train_config(out)
    work = tmp_path / "work"
    assert [(s.path, s.kind, s.name, s.weight) for s in cfg.sources] == [
        (str(work / "render-train"), "real", "render-train", 1.0),
        (str(work / "render-train2"), "real", "render-train2", 1.0),
    ]
    assert (cfg.epochs, cfg.out, cfg.freeze_blocks, cfg.pretrained) == (3, str(work / "runs/stage1"), 5, True)
    assert cfg.cache.mode == "on" and cfg.cache.dir == str(work / "fc")

    keep = write_stage_config(base, tmp_path / "same.yaml", settings={"epochs": 1})
    assert keep.sources[0].path == str(tmp_path / original["sources"][0]["path"])  # no --source: the base's


def test_one_weight_per_source_or_one_for_all(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base = REPO / "config" / "stage1_synthetic.yaml"
    out = tmp_path / "stage1.yaml"
    argv = ["ship", "config", "--base", str(base), "--out", str(out), "--source", "rig", "crop", "traced"]
    assert main([*argv, "--weight", "1", "1", "3"]) == 0
    assert [(s.name, s.weight) for s in load_train_config(out).sources] == [
        ("rig", 1.0),
        ("crop", 1.0),
        ("traced", 3.0),
    ]
    assert main([*argv, "--weight", "2"]) == 0
    assert [s.weight for s in load_train_config(out).sources] == [2.0, 2.0, 2.0]
    before = out.read_text()
    assert main([*argv, "--weight", "1", "3"]) != 0
    assert "2 weights for 3 sources; give one for all or one per source" in caplog.text
    assert out.read_text() == before


def test_settings_are_read_as_yaml_but_only_true_and_false_are_booleans() -> None:
    assert parse_setting("epochs=10") == ("epochs", 10)
    assert parse_setting("lr=3e-3") == ("lr", 0.003)
    assert parse_setting("pretrained=false") == ("pretrained", False)
    assert parse_setting("cache.mode=off") == ("cache.mode", "off")
    assert parse_setting("threads=null") == ("threads", None)
    assert parse_setting("split=[0.5, 0.25, 0.25]") == ("split", [0.5, 0.25, 0.25])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_setting("epochs")


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ({"epoch": 3}, "epoch: unknown key"),
        ({"embedding_dim": 512}, "embedding_dim"),
        ({"cache.mode": "sometimes"}, "cache.mode"),
        ({"epochs.max": 3}, "'epochs' is not a section"),
    ],
)
def test_a_bad_setting_is_refused_naming_it_and_nothing_is_written(
    tmp_path: Path, setting: dict[str, object], error: str
) -> None:
    out = tmp_path / "stage1.yaml"
    with pytest.raises(ConfigError, match=error):
        write_stage_config(REPO / "config" / "stage1_synthetic.yaml", out, settings=setting)
    assert not out.exists()


def test_the_index_graph_ships_when_it_fits_and_is_dropped_from_the_entry_when_not(
    model_set: Path, tmp_path: Path
) -> None:
    manifest = load_manifest(model_set)
    assert manifest.index is not None
    (model_set / "index.hnsw").write_bytes(b"g" * 5_000)
    graph = {"graph": "index.hnsw", "graph_sha256": sha256_file(model_set / "index.hnsw")}
    write_manifest(model_set, manifest.model_copy(update={"index": manifest.index.model_copy(update=graph)}))

    ship_model_set(model_set, tmp_path / "fits", max_mb=LIMIT_MB)
    index = load_manifest(tmp_path / "fits").index
    assert index is not None and (index.graph, index.graph_sha256) == (graph["graph"], graph["graph_sha256"])
    assert (tmp_path / "fits" / "index.hnsw").read_bytes() == b"g" * 5_000

    (model_set / "index.hnsw").write_bytes(b"g" * 20_000)
    graph["graph_sha256"] = sha256_file(model_set / "index.hnsw")
    write_manifest(model_set, manifest.model_copy(update={"index": manifest.index.model_copy(update=graph)}))
    ship_model_set(model_set, tmp_path / "over", max_mb=LIMIT_MB)
    shipped = load_manifest(tmp_path / "over")
    assert shipped.index is not None and shipped.index.graph is None and shipped.index.graph_sha256 is None
    assert not (tmp_path / "over" / "index.hnsw").exists()
    assert shipped.evaluation["not_shipped"][-1] == {
        "path": "index.hnsw",
        "key": "index/graph",
        "bytes": 20_000,
        "sha256": graph["graph_sha256"],
        "why": "larger than 0.01 MB; the daemon rebuilds the graph from the vectors",
    }

    (model_set / "index.hnsw").write_bytes(b"tampered")
    with pytest.raises(ModelError, match=r"index\.hnsw.*corrupt"):
        ship_model_set(model_set, tmp_path / "bad", max_mb=LIMIT_MB)
