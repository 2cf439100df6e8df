"""trainer quantize: ONNX int8 (QDQ, per-channel) and fp16 variants, TFLite via onnx2tf, measured.

The model set is the tiny ONNX classifier of ``tests.helpers.onnx_models`` (channel means -> one
Gemm per head, no torch needed) over the parts of images rendered from the project's demo LDraw
library. The TFLite test needs onnx2tf and TensorFlow (the ``convert`` extra) and is skipped
without them.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edge.engines import create_engine
from edge.errors import ConfigError, MissingDependencyError
from edge.manifest import load_manifest, verify_file
from studio.demo_library import DEMO_PARTS
from tests.helpers.onnx_models import ClassifierWeights, build_classifier, write_model_set
from trainer.model_set import run_engine
from trainer.quantize import (
    add_parser,
    calibration_split,
    float_sensitive_nodes,
    parse_formats,
    quantize_model_set,
)
from trainer.render import run_render
from trainer.render_worker import RenderJob

TFLITE_TOOLS = ("onnx2tf", "onnxsim", "tensorflow", "ai_edge_litert")
HAVE_ONNX2TF = all(importlib.util.find_spec(m) for m in TFLITE_TOOLS)
HAVE_FP16 = importlib.util.find_spec("onnxconverter_common") is not None
COLORS = (4, 1, 14)


@pytest.fixture(scope="module")
def data(demo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Renders of the demo parts: 4 captures of 2 views each, 64x64, legacy layout."""
    out = tmp_path_factory.mktemp("quant_data")
    job = RenderJob(str(demo_library), "legacy", str(out), 4, 2, COLORS, 0, "train", 1, 64)
    results = run_render(job, list(DEMO_PARTS))
    assert not [r.error for r in results if r.error]
    return out


def _model_set(folder: Path, data: Path) -> Path:
    parts = sorted(d.name for d in (data / "images").iterdir())
    write_model_set(folder, parts=parts, colors=COLORS, size=(32, 32), filename="model_fp32.onnx", seed=3)
    return folder


def _agreement(folder: Path, held: list, precision: str, runtime: str = "onnxruntime") -> float:
    manifest = load_manifest(folder)
    with create_engine("onnxruntime", folder, manifest, precision="fp32") as ref:
        expected = run_engine(ref, held)["part_logits"].argmax(1)
    with create_engine(runtime, folder, manifest, precision=precision) as eng:
        got = run_engine(eng, held)["part_logits"].argmax(1)
    return float(np.mean(got == expected))


@pytest.mark.skipif(not HAVE_FP16, reason="onnxconverter-common (convert extra) is not installed")
def test_onnx_int8_and_fp16_are_listed_loadable_and_agree(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _model_set(tmp_path / "set", data)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    argv = ["quantize", "--model-set", str(folder), "--calib", str(data), "--formats", "onnx-int8,onnx-fp16"]
    args = parser.parse_args([*argv, "--calib-count", "16", "--eval-count", "40"])
    assert args.func(args) == 0
    assert "onnxruntime/int8" in capsys.readouterr().out
    manifest = load_manifest(folder)

    keys = [f.key for f in manifest.files]
    assert keys == ["onnxruntime/fp32", "onnxruntime/int8", "onnxruntime/fp16"]
    on_disk = load_manifest(folder)
    assert on_disk == manifest
    for entry in on_disk.files:
        verify_file(folder, entry)  # hash and size as listed

    # int8: QDQ graph with per-channel weight scales; float input and outputs.
    q = onnx.load(folder / "model_int8.onnx")
    ops = {n.op_type for n in q.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    weight_scales = [
        inits[n.input[1]] for n in q.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
    ]
    assert any(s.size > 1 for s in weight_scales), "weights should be quantised per channel"
    assert q.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # fp16: half-precision weights, float32 input and outputs for the unchanged engine wrapper.
    h = onnx.load(folder / "model_fp16.onnx")
    assert {i.data_type for i in h.graph.initializer if i.dims} == {onnx.TensorProto.FLOAT16}
    assert h.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert {o.type.tensor_type.elem_type for o in h.graph.output} == {onnx.TensorProto.FLOAT}
    # ... except the sums that would overflow or lose precision in fp16, which stay float32.
    producer = {out: n for n in h.graph.node for out in n.output}
    norm = next(n for n in h.graph.node if n.op_type == "LpNormalization")
    cast = producer[norm.input[0]]
    assert cast.op_type == "Cast" and cast.attribute[0].i == onnx.TensorProto.FLOAT

    # The recorded figures are what the engines give on the held-out (test split) images.
    _, held = calibration_split(on_disk, [data], 16, 40)
    figures = on_disk.evaluation["quantization"]
    assert figures["held_out_images"] == len(held)
    for precision in ("int8", "fp16"):
        measured = _agreement(folder, held, precision)
        recorded = figures["artifacts"][f"onnxruntime/{precision}"]
        assert recorded["part_top1_agreement"] == pytest.approx(measured)
        assert measured >= 0.9  # a linear 3-feature model: quantisation flips very few answers
        fp32_top1 = figures["artifacts"]["onnxruntime/fp32"]["part_top1"]
        assert recorded["part_top1_drop"] == pytest.approx(fp32_top1 - recorded["part_top1"])
    assert figures["artifacts"]["onnxruntime/fp16"]["embedding_cosine_mean"] > 0.999


def test_missing_converter_fails_tflite_but_keeps_onnx(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _model_set(tmp_path / "set", data)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        "trainer.tflite_convert.importlib.util.find_spec",
        lambda name: None if name == "onnx2tf" else real(name),
    )
    with pytest.raises(MissingDependencyError) as err:
        quantize_model_set(folder, [data], "onnx-int8,tflite-fp16", calib_count=8, eval_count=16)
    assert err.value.extra == "convert" and "onnx2tf" in str(err.value)
    manifest = load_manifest(folder)
    assert [f.key for f in manifest.files] == ["onnxruntime/fp32", "onnxruntime/int8"]
    assert "onnxruntime/int8" in manifest.evaluation["quantization"]["artifacts"]


def test_float_sensitive_nodes_are_the_image_statistics_and_the_normalisation() -> None:
    model = build_classifier(ClassifierWeights.random(3, 3, 4), (16, 16))
    names = set(float_sensitive_nodes(model))
    kept = [n.op_type for n in model.graph.node if n.name in names]
    assert kept == ["GlobalAveragePool", "Flatten", "LpNormalization"]  # the Gemm heads are converted


def test_parse_formats() -> None:
    assert parse_formats("tflite-int8, onnx-int8") == ["onnx-int8", "tflite-int8"]
    with pytest.raises(ConfigError, match="tflite-int4"):
        parse_formats("onnx-int8,tflite-int4")
    with pytest.raises(ConfigError):
        parse_formats("")


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_ONNX2TF, reason=f"TFLite conversion needs {TFLITE_TOOLS} (convert extra)")
def test_tflite_fp16_and_int8(data: Path, tmp_path: Path) -> None:
    folder = _model_set(tmp_path / "set", data)
    manifest = quantize_model_set(folder, [data], "tflite-fp16,tflite-int8", calib_count=16, eval_count=40)
    fp16 = manifest.select("litert", "fp16")
    int8 = manifest.select("litert", "int8")
    for entry in (fp16, int8):
        verify_file(folder, entry)
        assert entry.layout == "NHWC"
        assert entry.output_order is not None
        assert sorted(r for r in entry.output_order if r) == sorted(manifest.outputs.roles())
    assert fp16.input_dtype == "float32"
    assert int8.input_dtype == "int8" and int8.input_quant is not None
    assert int8.output_quant is not None and set(int8.output_quant) == set(manifest.outputs.roles())

    _, held = calibration_split(manifest, [data], 16, 40)
    with create_engine("onnxruntime", folder, manifest, precision="fp32") as ref:
        expected = run_engine(ref, held)
    # Each role's output must be the fp32 output of that role: the recorded output order is right.
    with create_engine("litert", folder, manifest, precision="fp16") as eng:
        got = run_engine(eng, held)
    for role in manifest.outputs.roles():
        np.testing.assert_allclose(got[role], expected[role], atol=0.05)
    assert _agreement(folder, held, "int8", "litert") >= 0.8
    recorded = manifest.evaluation["quantization"]["artifacts"]
    assert recorded["litert/fp16"]["part_top1_agreement"] >= 0.95


def test_beyond_trunk_nodes_are_the_heads_and_the_image_statistics() -> None:
    from onnx import TensorProto, helper

    from trainer.quantize import beyond_trunk_nodes

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    g = numpy_helper.from_array(np.ones((3, 7), np.float32), "g")
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["c1"], name="stem"),
        helper.make_node("Relu", ["c1"], ["r1"]),  # unnamed: gets a name
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="head_conv"),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("ReduceMean", ["image"], ["stats"], name="colour_stats", keepdims=0, axes=[2, 3]),
        helper.make_node("Concat", ["f", "stats"], ["both"], name="concat", axis=1),
        helper.make_node("Gemm", ["both", "g"], ["logits"], name="part_head", transB=1),
    ]
    w2 = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w2")
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
        [w, w2, g],
    )
    model = helper.make_model(graph)
    assert beyond_trunk_nodes(model) == ["pool", "flat", "colour_stats", "concat", "part_head"]
    assert model.graph.node[1].name == "node_1"  # named for nodes_to_exclude


def _conv_chain(tmp_path: Path) -> Path:
    """image -> Conv "stem" -> Relu -> Conv "block" -> Relu -> Conv "last" -> mean -> Gemm: a tiny trunk."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    init = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=(4, 4, 3, 3)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(size=(4, 4, 1, 1)).astype(np.float32), "w3"),
        numpy_helper.from_array(rng.normal(size=(2, 4)).astype(np.float32), "g"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="block", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="r2"),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], name="last"),
        helper.make_node("GlobalAveragePool", ["c3"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "g"], ["part_logits"], name="part_head", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("part_logits", TensorProto.FLOAT, ["n", 2])],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "chain.onnx"
    onnx.save(model, str(path))
    return path


def test_first_convs_are_the_convolutions_nearest_the_image(tmp_path: Path) -> None:
    from trainer.quantize import first_convs

    model = onnx.load(str(_conv_chain(tmp_path)))
    assert first_convs(model, 2) == ["stem", "block"]
    assert first_convs(model, 0) == []
    assert first_convs(model, 10) == ["stem", "block", "last"]
    with pytest.raises(ConfigError, match="float convs"):
        first_convs(model, -1)


@pytest.mark.parametrize("float_convs", [0, 2])
def test_onnx_int8_keeps_the_first_convolutions_float(tmp_path: Path, float_convs: int) -> None:
    from trainer.quantize import quantize_onnx_int8

    src = _conv_chain(tmp_path)
    dst = tmp_path / "int8.onnx"
    calib = np.random.default_rng(1).normal(size=(16, 3, 8, 8)).astype(np.float32)
    quantize_onnx_int8(src, dst, calib, "image", float_convs=float_convs)
    model = onnx.load(str(dst))
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    int8_weights = {n.name for n in model.graph.node if n.op_type == "Conv" and n.input[1] in dequantized}
    expected = ["stem", "block", "last"][float_convs:]
    assert sorted(int8_weights) == sorted(expected)
    # The quantised file still computes the float model's answer on these inputs.
    import onnxruntime as ort

    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"image": calib})[0]
    got = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"image": calib})[0]
    assert (ref.argmax(1) == got.argmax(1)).mean() >= 0.75


def test_an_ensembles_graph_has_a_trunk_per_member() -> None:
    """Two members' trunks side by side (trainer.ensemble), their heads averaged: each trunk's first
    convolutions and everything past both trunks stay float, both trunks' bodies are quantized."""
    from onnx import TensorProto, helper

    from trainer.quantize import beyond_trunk_nodes, first_convs, trunks

    init = [
        numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w"),
        numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w2"),
        numpy_helper.from_array(np.ones((3, 4), np.float32), "g"),
    ]
    nodes = []
    for m in "ab":
        nodes += [
            helper.make_node("Conv", ["image", "w"], [f"{m}1"], name=f"{m}_stem"),
            helper.make_node("Relu", [f"{m}1"], [f"{m}2"], name=f"{m}_relu"),
            helper.make_node("Conv", [f"{m}2", "w2"], [f"{m}3"], name=f"{m}_last"),
            helper.make_node("GlobalAveragePool", [f"{m}3"], [f"{m}4"], name=f"{m}_pool"),
            helper.make_node("Flatten", [f"{m}4"], [f"{m}5"], name=f"{m}_flat"),
            helper.make_node("Gemm", [f"{m}5", "g"], [f"{m}6"], name=f"{m}_head", transB=1),
        ]
    nodes.append(helper.make_node("Mean", ["a6", "b6"], ["logits"], name="mean"))
    graph = helper.make_graph(
        nodes,
        "ensemble",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
        init,
    )
    model = helper.make_model(graph)
    assert [sorted(t) for t in trunks(list(model.graph.node))] == [[0, 1, 2], [6, 7, 8]]
    assert first_convs(model, 1) == ["a_stem", "b_stem"]
    assert beyond_trunk_nodes(model) == [
        *(f"{m}_{n}" for m in "ab" for n in ("pool", "flat", "head")),
        "mean",
    ]
