"""The memory budget: estimate per component before loading, measure after, refuse over budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.daemon import Daemon
from edge.index import EmbeddingIndex
from edge.manifest import load_manifest
from edge.memory import (
    PER_THREAD_MB,
    RUNTIME_FACTORS,
    MemoryBudgetError,
    check_estimate,
    check_resident,
    estimate_memory,
    resident_mb,
)
from edge.settings import load_edge_config
from tests.edge.segment.seg_models import make_u2net
from tests.edge.test_settings import add_index, write_sim_setup


def test_resident_memory_comes_from_vmrss(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(
        "Name:\tpython\nVmPeak:\t  999999 kB\nVmRSS:\t  204800 kB\nThreads:\t4\n", encoding="ascii"
    )
    assert resident_mb(status) == 200.0
    assert 10 < resident_mb() < 65536  # this very process


def test_estimate_adds_baseline_model_index_and_segmenter(tmp_path: Path, demo_library: Path) -> None:
    seg_model = make_u2net(tmp_path / "u2net.onnx", size=32)
    config = write_sim_setup(
        tmp_path,
        demo_library,
        engine={"threads": 2},
        recognition={"mode": "hybrid"},
        segmenter={
            "type": "u2net",
            "model": str(seg_model),
            "threads": 1,
        },
    )
    add_index(tmp_path / "models", count=50)
    cfg = load_edge_config(config)
    manifest = load_manifest(cfg.engine.model_set)
    report = estimate_memory(cfg, manifest, baseline_mb=100.0)
    names = [c.name for c in report.components]
    assert names[0].startswith("process baseline") and report.components[0].mb == 100.0
    model_mb = (
        manifest.files[0].bytes / 2**20 * RUNTIME_FACTORS["onnxruntime"] + 2 * PER_THREAD_MB["onnxruntime"]
    )
    assert "classifier.onnx" in names[1] and report.components[1].mb == pytest.approx(model_mb)
    assert "index.npz" in names[2] and report.components[2].mb == pytest.approx(
        EmbeddingIndex.estimate_memory_mb(50, 8, 16)
    )
    assert "u2net.onnx" in names[3]
    assert report.total_mb == pytest.approx(sum(c.mb for c in report.components))
    assert not report.over and check_estimate(report) is report
    assert report.lines()[-1].startswith("total:") and "8192 MB budget" in report.lines()[-1]


def test_classifier_mode_does_not_count_the_index(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    add_index(tmp_path / "models")
    report = estimate_memory(cfg, baseline_mb=50.0)
    assert len(report.components) == 2  # baseline and model: the index is never loaded


def test_over_budget_names_the_biggest_component_and_the_fix(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(
        write_sim_setup(tmp_path, demo_library, engine={"threads": 3}, memory_budget_mb=64)
    )
    manifest = load_manifest(cfg.engine.model_set)
    big = manifest.model_copy(update={"files": [manifest.files[0].model_copy(update={"bytes": 200 * 2**20})]})
    with pytest.raises(MemoryBudgetError) as info:
        check_estimate(estimate_memory(cfg, big, baseline_mb=20.0))
    text = str(info.value)
    assert "over the budget of 64 MB" in text and "memory_budget_mb" in text
    assert "biggest part is model 'classifier.onnx'" in text
    assert "engine.precision: int8" in text and "lower engine.threads (now 3)" in text


def test_a_big_index_is_named_with_its_fix(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(
        write_sim_setup(tmp_path, demo_library, recognition={"mode": "vector"}, memory_budget_mb=64)
    )
    add_index(tmp_path / "models")
    manifest = load_manifest(cfg.engine.model_set)
    assert manifest.index is not None
    huge = manifest.model_copy(update={"index": manifest.index.model_copy(update={"count": 2_000_000})})
    with pytest.raises(MemoryBudgetError, match=r"biggest part is embedding index.*fewer vectors per part"):
        check_estimate(estimate_memory(cfg, huge, baseline_mb=20.0))


def test_measured_memory_over_budget(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    report = estimate_memory(cfg, baseline_mb=10.0)
    assert check_resident(500.0, report, measured_mb=120.0) == 120.0
    with pytest.raises(MemoryBudgetError, match=r"resident memory after loading is 600 MB.*biggest part"):
        check_resident(512.0, report, measured_mb=600.0)


def test_the_daemon_refuses_to_start_over_a_tiny_budget(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library, memory_budget_mb=16))
    with pytest.raises(MemoryBudgetError, match="over the budget of 16 MB"):
        Daemon(cfg, sim=True, parts=1).run()
    assert not cfg.data.db.exists()  # refused before opening anything
