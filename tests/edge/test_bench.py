"""``edge bench``: one row per background-removal option, p50/p95 per stage, ratio to ``none``, memory."""

from __future__ import annotations

import json
import logging
import os
import platform
from pathlib import Path

import pytest

from edge import cli
from edge.bench import format_table, int8_dot_product, machine_info, run_bench, segmenter_options
from edge.errors import ConfigError
from edge.part import STAGES
from edge.settings import load_edge_config
from tests.edge.segment.seg_models import make_u2net
from tests.edge.test_settings import write_sim_setup

ALL_STAGES = [*STAGES, "total"]


def test_bench_rows_stages_and_ratio(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library, capture={"views": 2}))
    result = run_bench(cfg, frames=6)
    assert result["views"] == 2 and result["parts"] == 3 and result["frames"] == 6
    assert result["stages"] == ALL_STAGES
    assert [r["segmenter"] for r in result["options"]] == ["none", "hsv"]  # no model segmenter present
    for row in result["options"]:
        assert set(row["stages"]) == set(ALL_STAGES)
        for stage in ALL_STAGES:
            p50, p95 = row["stages"][stage]["p50"], row["stages"][stage]["p95"]
            assert 0 <= p50 <= p95
        assert row["rss_mb"] > 10
    none, hsv = result["options"]
    assert none["ratio_to_none"] == 1.0
    assert hsv["ratio_to_none"] == pytest.approx(
        hsv["stages"]["total"]["p50"] / none["stages"]["total"]["p50"]
    )
    # The same captured frames go through every option: capture times are identical.
    assert none["stages"]["capture"] == hsv["stages"]["capture"]

    table = format_table(result).splitlines()
    assert "3 parts x 2 views" in table[0]
    assert table[1].split()[:2] == ["segmenter", "capture"] and table[1].split()[-2:] == ["RSS", "MB"]
    assert [line.split()[0] for line in table[3:]] == ["none", "hsv"]
    assert table[3].split()[-2] == "1.00"


def test_model_segmenters_join_when_their_model_is_present(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    (tmp_path / "segment").mkdir()
    make_u2net(tmp_path / "segment" / "u2netp.onnx")  # next to the model set folder
    labels = [label for label, _ in segmenter_options(cfg)]
    assert labels == ["none", "hsv", "u2net"]
    explicit = segmenter_options(cfg, ["hsv", f"u2net={tmp_path / 'segment' / 'u2netp.onnx'}"])
    assert [label for label, _ in explicit] == ["hsv", "u2net"]
    make_u2net(tmp_path / "segment" / "u2net_b.onnx")
    twice = segmenter_options(cfg, [f"u2net={tmp_path / 'segment' / n}.onnx" for n in ("u2netp", "u2net_b")])
    assert [label for label, _ in twice] == ["u2net", "u2net:u2net_b"]  # told apart by file name
    with pytest.raises(ConfigError, match="no mobileseg model found"):
        segmenter_options(cfg, ["mobileseg"])
    with pytest.raises(ConfigError, match="'grabcut' is unknown"):
        segmenter_options(cfg, ["none", "grabcut"])


def test_a_segmenter_shipped_in_the_model_set_joins_the_bench(tmp_path: Path, demo_library: Path) -> None:
    from edge.manifest import load_manifest, sha256_file, write_manifest
    from edge.manifest_entries import SegmenterEntry
    from tests.edge.segment.seg_models import make_mobileseg

    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    models = Path(cfg.engine.model_set)
    model = make_mobileseg(models / "seg.onnx")
    sidecar = models / "seg.json"
    sidecar.write_text(json.dumps({"input_size": [64, 96], "mean": [0, 0, 0], "std": [1, 1, 1]}))
    entry = SegmenterEntry(
        path="seg.onnx",
        sidecar="seg.json",
        precision="fp32",
        sha256=sha256_file(model),
        sidecar_sha256=sha256_file(sidecar),
        bytes=model.stat().st_size,
    )
    write_manifest(models, load_manifest(models).model_copy(update={"segmenters": [entry]}))
    options = dict(segmenter_options(cfg))
    assert list(options) == ["none", "hsv", "mobileseg"]
    assert Path(options["mobileseg"].model) == model  # type: ignore[attr-defined]


def test_bench_command_writes_json(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_sim_setup(tmp_path, demo_library, capture={"views": 2})
    model = make_u2net(tmp_path / "fake_u2net.onnx")
    out = tmp_path / "bench.json"
    argv = ["bench", "--config", str(config), "--frames", "4", "--segmenters", f"none,u2net={model}"]
    assert cli.main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text(encoding="utf-8"))
    assert [r["segmenter"] for r in result["options"]] == ["none", "u2net"]
    assert result["parts"] == 2 and f"wrote {out}" in printed
    assert [line.split()[0] for line in printed.splitlines()[3:5]] == ["none", "u2net"]


def test_bench_command_rejects_an_unknown_option(
    tmp_path: Path, demo_library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    with caplog.at_level(logging.ERROR, "edge"):
        assert cli.main(["bench", "--config", str(config), "--segmenters", "none,magic"]) == 2
    assert "'magic' is unknown" in caplog.text


def test_overhead_is_the_work_beyond_inference(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library, capture={"views": 2}))
    result = run_bench(cfg, frames=6, segmenters=["hsv"])
    assert result["overhead_stages"] == ["segment", "preprocess", "search", "fuse"]
    (row,) = result["options"]
    p50, p95 = row["overhead"]["p50"], row["overhead"]["p95"]
    assert 0 < p50 <= p95
    assert row["overhead_pct_of_infer"] == pytest.approx(100 * p50 / row["stages"]["infer"]["p50"])
    table = format_table(result).splitlines()
    assert "overhead = segment+preprocess+search+fuse" in table[0]
    assert table[1].split()[-5:] == ["%infer", "x", "none", "RSS", "MB"]
    assert table[3].split()[-3] == f"{row['overhead_pct_of_infer']:.0f}%"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "avx512f", "avx512_vnni"}, "AVX-512 VNNI"),
        ({"avx2", "avx_vnni"}, "AVX-VNNI"),
        ({"fp", "asimd", "asimddp"}, "Arm dot product (asimddp)"),
        ({"sse2", "avx2"}, "none (AVX2 only: 16-bit pairs, may saturate)"),
        ({"fp", "asimd"}, "none"),
    ],
)
def test_int8_dot_product_reads_the_cpu_flags(flags: set[str], expected: str) -> None:
    assert int8_dot_product(flags) == expected


def test_machine_info_says_where_the_bench_ran() -> None:
    info = machine_info()
    assert info["arch"] == platform.machine() and info["cores"] == os.cpu_count()
    assert info["python"] == platform.python_version()
    assert "numpy" in info["packages"]  # edge.bench imports it
    assert info["int8_dot"]  # a word on the CPU's int8 instructions, even "none"
    json.dumps(info)  # goes into `edge bench --json`
    # The table's first line names the machine (a Pi's board, else its CPU).
    row = {
        "segmenter": "hsv",
        "stages": {s: {"p50": 1.0, "p95": 2.0} for s in ALL_STAGES},
        "overhead": {"p50": 1.0, "p95": 2.0},
        "overhead_pct_of_infer": 100.0,
        "ratio_to_none": 1.0,
        "rss_mb": 100.0,
    }
    result = {
        "machine": {"arch": "aarch64", "board": "Raspberry Pi 5 Model B Rev 1.0", "cores": 4},
        "parts": 1,
        "views": 4,
        "camera": "cam",
        "model": "m",
        "threads": 4,
        "stages": ALL_STAGES,
        "options": [row],
    }
    assert (
        format_table(result)
        .splitlines()[0]
        .endswith("machine aarch64, Raspberry Pi 5 Model B Rev 1.0 (4 cores)")
    )
