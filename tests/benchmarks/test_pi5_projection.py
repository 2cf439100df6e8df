"""``benchmarks/onnx_macs.py`` on graphs whose MACs are counted by hand, and
``benchmarks/pi5_projection.py --measured`` on small ``edge bench`` and projection files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from benchmarks import pi5_markdown, pi5_measured, pi5_projection, pi5_rates, pi5_stages
from benchmarks.onnx_macs import count_macs

# Hand counts for one image of 3 x 8 x 8:
CONV = 4 * 8 * 8 * (3 * 3 * 3)  # 4 output channels, 8x8 out (pad 1), 3 in x 3x3 kernel = 6,912
DEPTHWISE = 4 * 8 * 8 * (1 * 3 * 3)  # group 4: each output sees 1 channel x 3x3 = 2,304
TRANSPOSED = (4 * 8 * 8) * (2 * 2 * 2)  # every input element meets C_out x 2x2 weights = 2,048
GEMM = 10 * (4 * 8 * 8)  # 256 features -> 10 = 2,560


def _init(name: str, array: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(array, name)


def tiny_model(qdq: bool = False) -> onnx.ModelProto:
    """image (N, 3, 8, 8) -> Conv 3->4 3x3 -> depthwise Conv 3x3 -> ConvTranspose 4->2 2x2 stride 2 (a
    side output) and Flatten -> Gemm 256->10. With ``qdq`` the first Conv reads a DequantizeLinear
    of its quantized input, as ONNX Runtime's QDQ files do."""
    rng = np.random.default_rng(0)
    nodes = []
    first_input = "image"
    inits = [
        _init("w1", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
        _init("w2", rng.standard_normal((4, 1, 3, 3)).astype(np.float32)),
        _init("wt", rng.standard_normal((4, 2, 2, 2)).astype(np.float32)),
        _init("wg", rng.standard_normal((10, 256)).astype(np.float32)),
        _init("bg", np.zeros(10, np.float32)),
    ]
    if qdq:
        inits += [_init("s", np.array(0.02, np.float32)), _init("z", np.array(0, np.uint8))]
        nodes += [
            helper.make_node("QuantizeLinear", ["image", "s", "z"], ["image_q"]),
            helper.make_node("DequantizeLinear", ["image_q", "s", "z"], ["image_dq"]),
        ]
        first_input = "image_dq"
    nodes += [
        helper.make_node("Conv", [first_input, "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=4),
        helper.make_node("ConvTranspose", ["c2", "wt"], ["up"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["c2"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "wg", "bg"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10]),
            helper.make_tensor_value_info("up", TensorProto.FLOAT, ["N", 2, 16, 16]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("batch", [1, 3])
def test_macs_of_a_tiny_graph_match_the_hand_count(batch: int, tmp_path: Path) -> None:
    model = tiny_model()
    count = count_macs(model, batch=batch)
    assert count.by_op == {
        "Conv": batch * (CONV + DEPTHWISE),
        "ConvTranspose": batch * TRANSPOSED,
        "Gemm": batch * GEMM,
    }
    assert count.total == batch * (CONV + DEPTHWISE + TRANSPOSED + GEMM) == batch * 13_824
    assert count.int8 == 0 and count.float == count.total
    assert (count.nodes, count.other_nodes) == (4, 2)  # Relu and Flatten are not counted
    # The same from a file, and the model passed in is left as it was (its batch still symbolic).
    onnx.save(model, tmp_path / "tiny.onnx")
    assert count_macs(tmp_path / "tiny.onnx", batch=batch).total == count.total
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


def test_a_conv_fed_by_dequantize_linear_counts_as_int8() -> None:
    count = count_macs(tiny_model(qdq=True))
    assert count.int8 == CONV
    assert count.float == DEPTHWISE + TRANSPOSED + GEMM
    assert count.per_node[0][1:] == ("Conv", CONV, True)
    assert count.other_nodes == 4  # QuantizeLinear, DequantizeLinear, Relu, Flatten


def test_unknown_shapes_name_the_node() -> None:
    # A Gemm fed by a Reshape to a shape given at run time: shape inference cannot size it.
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "shape"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w"], ["y"], name="the_gemm"),
        ],
        "dynamic",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8]),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [_init("w", np.ones((4, 3), np.float32))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ValueError, match="the_gemm"):
        count_macs(model)
    with pytest.raises(ValueError, match="batch must be at least 1"):
        count_macs(tiny_model(), batch=0)


def test_pi5_rates_come_from_the_cited_figures() -> None:
    rates = pi5_rates.pi5_rates()
    assert rates["onnxruntime/int8"]["high"] == pytest.approx(5.713 / 0.11311)
    assert rates["onnxruntime/fp32"]["low"] == pytest.approx(6.5 / 2 / 0.168082)
    assert rates["onnxruntime/fp32"]["high"] == pytest.approx(21.5 / 2 / 0.32417)
    assert rates["pytorch/fp32"]["low"] == pytest.approx(6.5 / 2 / 0.405238)
    for rate in rates.values():
        assert 0 < rate["low"] <= rate["high"]
        assert all(key in pi5_rates.SOURCES for key in rate["sources"])
    for source in pi5_rates.SOURCES.values():
        assert source["url"].startswith("https://") and source["figure"]


# --- --measured ------------------------------------------------------------------------------------

STAGES = ["capture", "segment", "preprocess", "infer", "search", "fuse", "total"]


def bench_json(p50: dict[str, float], board: str | None = "Raspberry Pi 5 Model B Rev 1.0") -> dict[str, Any]:
    """An ``edge bench --json`` result with one ``hsv`` row (p95 = 2 x p50)."""
    stages = {s: {"p50": p50.get(s, 0.0), "p95": 2 * p50.get(s, 0.0)} for s in STAGES}
    return {
        "machine": {"arch": "aarch64", "board": board, "cpu": None, "cores": 4, "python": "3.11.2"},
        "camera": "sim camera",
        "model": "onnxruntime/int8 models/default/model_int8.onnx",
        "threads": 4,
        "views": 4,
        "parts": 10,
        "frames": 40,
        "stages": STAGES,
        "overhead_stages": ["segment", "preprocess", "search", "fuse"],
        "options": [{"segmenter": "hsv", "stages": stages}],
    }


def projection_json() -> dict[str, Any]:
    rows = [
        ("segment (HSV keying)", 1.0, 4.0),
        ("preprocess (crop, resize, normalise)", 0.5, 2.0),
        ("infer (EfficientNet-Lite0 int8, 128 px, one batch)", 10.0, 40.0),
        ("fuse (classifier + fusion)", 0.25, 1.0),
    ]
    proj = [{"stage": s, "pi5_ms": {"low": lo, "high": hi, "mid": (lo * hi) ** 0.5}} for s, lo, hi in rows]
    low, high = sum(r[1] for r in rows), sum(r[2] for r in rows)
    total = {"low": low, "high": high, "mid": (low * high) ** 0.5}
    per_min = {k: 60000 / v for k, v in total.items()}
    return {
        "date": "2026-12-02 22:00 UTC",
        "views": 4,
        "project": {"rows": proj, "total": total, "parts_per_minute": per_min},
    }


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_measured_against_projected_per_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    measured = _write(
        tmp_path / "pi.json",
        bench_json({"capture": 30.0, "segment": 2.0, "preprocess": 0.4, "infer": 50.0, "fuse": 0.5}),
    )
    proj = _write(tmp_path / "proj.json", projection_json())
    out, page = tmp_path / "cmp.json", tmp_path / "cmp.md"
    argv = [
        "--measured",
        str(measured),
        "--projection",
        str(proj),
        "--json",
        str(out),
        "--markdown",
        str(page),
    ]
    assert pi5_projection.main(argv) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    within = {s["stage"]: s["within"] for s in result["stages"]}
    assert within == {"segment": "inside", "preprocess": "faster", "infer": "slower", "fuse": "inside"}
    seg = result["stages"][0]
    assert seg["measured_p50"] == 2.0 and seg["measured_p95"] == 4.0
    assert seg["measured_over_mid"] == pytest.approx(2.0 / 2.0)
    # Compute is the stages' p50s without capture: 52.9 ms against 11.75 .. 47 ms.
    assert result["compute"]["measured_sum_of_p50"] == pytest.approx(52.9)
    assert result["compute"]["within"] == "slower"
    assert result["compute"]["parts_per_minute"] == pytest.approx(60000 / 52.9)
    assert result["warnings"] == []
    text = page.read_text(encoding="utf-8")
    assert text in capsys.readouterr().out
    assert "| infer | 50.00 | 100.00 | 10.00 | 40.00 | 20.00 | 2.50x | slower |" in text
    assert "Raspberry Pi 5 Model B Rev 1.0" in text and "Warning" not in text


def test_measured_warns_when_not_from_a_pi5_or_other_views(tmp_path: Path) -> None:
    data = bench_json({"segment": 2.0, "infer": 20.0}, board=None)
    data["views"] = 3
    result = pi5_measured.compare(projection_json(), data, "hsv", "x86.json")
    assert any("does not say it ran on a Raspberry Pi 5" in w and "aarch64" in w for w in result["warnings"])
    assert any("benched 3 views a part; the projection is for 4" in w for w in result["warnings"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all", "not JSON"),
        ("[1, 2]", "the top level is a list"),
        ('{"plan_stages": {}, "ratio": 3}', 'no "stages" list'),
        (json.dumps({**bench_json({}), "stages": ["capture", "total"]}), '"stages" lacks segment'),
        (json.dumps({**bench_json({}), "views": 0}), 'no "views" count'),
        (json.dumps({**bench_json({}), "options": []}), 'no "options" list'),
    ],
)
def test_a_file_that_is_not_an_edge_bench_result_is_named(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    proj = _write(tmp_path / "proj.json", projection_json())
    with pytest.raises(SystemExit, match=message) as excinfo:
        pi5_projection.main(["--measured", str(bad), "--projection", str(proj)])
    assert str(bad) in str(excinfo.value)


def test_bad_stage_timings_and_missing_rows_are_named(tmp_path: Path) -> None:
    data = bench_json({"segment": 1.0})
    data["options"][0]["stages"]["infer"] = {"p50": "fast"}
    with pytest.raises(SystemExit, match=r"options\[0\] \(hsv\) stage 'infer' has no numeric p50"):
        pi5_measured.load_bench(_write(tmp_path / "b.json", data))
    good = pi5_measured.load_bench(_write(tmp_path / "g.json", bench_json({"segment": 1.0})))
    with pytest.raises(SystemExit, match=r"no 'u2net' row .* \(rows: hsv\)"):
        pi5_measured.compare(projection_json(), good, "u2net", "g.json")
    with pytest.raises(SystemExit, match="no such file"):
        pi5_measured.load_bench(tmp_path / "missing.json")
    with pytest.raises(SystemExit, match="no projection JSON"):
        pi5_projection.main(
            ["--measured", str(tmp_path / "g.json"), "--projection", str(tmp_path / "none.json")]
        )


def test_pixel_step_counts() -> None:
    view = {"frame_px": 307_200, "coarse_px": 8_480, "fine_px": 10_000, "part_box_px": 3_000, "crop_side": 80}
    assert pi5_stages.hsv_pixel_steps(view) == 5 * 8_480 + 9 * 10_000 + 307_200 + 4 * 3_000
    assert pi5_stages.crop_pixel_steps(view, (128, 128)) == 2 * 80 * 80 + 2 * 128 * 128


def test_the_recorded_page_is_the_recorded_projection() -> None:
    """benchmarks/results/pi5_projection.md is what pi5_markdown makes of the recorded JSON."""
    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    recorded = json.loads((results / "pi5_projection.json").read_text(encoding="utf-8"))
    page = pi5_markdown.markdown(recorded)
    assert page == (results / "pi5_projection.md").read_text(encoding="utf-8")
    assert "A projection, not a measurement" in page and "| **compute per part** |" in page
