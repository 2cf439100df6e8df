"""``benchmarks/plan_pipeline.py --quick``: both pipelines run on the same frames and the table is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import plan_pipeline
from benchmarks.u2net import build, parameter_count


@pytest.mark.slow
def test_quick_run_writes_the_table_and_the_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page, figures = tmp_path / "plan.md", tmp_path / "plan.json"
    argv = ["--quick", "--rounds", "2", "--threads", "1", "--engine-threads", "1"]
    assert plan_pipeline.main([*argv, "--markdown", str(page), "--json", str(figures)]) == 0
    result = json.loads(figures.read_text(encoding="utf-8"))
    assert result["quick"] and result["rounds"] == 2
    assert result["plan_threads"] == result["project_threads"] == 1
    assert result["plan"] == {"u2net": "u2netp", "seg_size": 64, "cls_size": 64, "count": 2000}
    # One part of the sim config's 4 views, timed by both sides in every round.
    assert result["views"] == 4
    assert len(result["plan_ms_per_view"]) == len(result["project_ms_per_view"]) == 2
    assert all(v > 0 for v in result["plan_ms_per_view"] + result["project_ms_per_view"])
    assert set(result["plan_stages"]) == {"segment", "preprocess", "infer", "search"}
    assert set(result["project_stages"]) == {"segment", "preprocess", "infer", "search", "fuse"}
    assert result["ratio"] == pytest.approx(result["plan_median"] / result["project_median"])
    assert len(result["plan_cpu_ms_per_view"]) == len(result["project_cpu_ms_per_view"]) == 2
    assert result["cpu_ratio"] > 0

    text = page.read_text(encoding="utf-8")
    assert text.strip() in capsys.readouterr().out  # the page is printed too
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| stage | plan | ms/view | project | ms/view | plan / project |")
    assert [row.split("|")[1].strip() for row in table[1:]] == [
        "background removal",
        "crop + input",
        "model",
        "search / decide",
        "**total** (wall clock)",
        "**total** (process CPU time)",
    ]
    assert f"**{result['ratio']:,.0f}x**" in table[-2]
    assert f"**{result['cpu_ratio']:,.0f}x**" in table[-1]
    assert "python benchmarks/plan_pipeline.py --quick" in text
    assert "figures mean nothing" in text


def test_u2net_has_the_papers_size_and_seven_outputs() -> None:
    import torch

    assert parameter_count("u2netp") == 1_131_181  # the authors' U2NETP
    with torch.inference_mode():
        outputs = build("u2netp")(torch.zeros(1, 3, 40, 56))  # not a multiple of 32: ceil_mode pools
    assert len(outputs) == 7 and all(o.shape == (1, 1, 40, 56) for o in outputs)
    assert all(float(o.min()) >= 0 and float(o.max()) <= 1 for o in outputs)  # sigmoids
    with pytest.raises(ValueError, match="unknown U-2-Net variant"):
        build("u3net")
