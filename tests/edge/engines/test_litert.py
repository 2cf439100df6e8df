"""LiteRT engine: the missing-package error, and real .tflite files built without TensorFlow.

The tiny TFLite classifier is written with the flatbuffer schema bundled in ai-edge-litert
(``schema_py_generated``) and mirrors the ONNX helper's graph: MEAN over H, W, then one
FULLY_CONNECTED per head (+ L2_NORMALIZATION for the embedding). Outputs get TFLite's generic
``StatefulPartitionedCall:N`` names, so the manifest's ``output_order`` is what names them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.engines import create_engine
from edge.errors import MissingDependencyError, ModelError
from edge.manifest import Manifest, make_file_entry, write_manifest
from edge.manifest_entries import QuantParams
from tests.helpers.onnx_models import DEFAULT_COLORS, ClassifierWeights, write_model_set

ROLES = ("part_logits", "color_logits", "embedding")


def build_tflite(
    weights: ClassifierWeights,
    size: tuple[int, int],
    *,
    dynamic_batch: bool = True,
    output_perm: tuple[int, int, int] = (2, 0, 1),
    input_quant: tuple[float, int] | None = None,
    output_quant: dict[str, tuple[float, int]] | None = None,
) -> bytes:
    """A real NHWC .tflite classifier; its outputs are the heads (part, colour, embedding) in
    ``output_perm`` order. ``input_quant`` makes the input uint8 (DEQUANTIZE first); roles in
    ``output_quant`` end in a QUANTIZE to int8.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    h, w = size
    buffers: list[Any] = [s.BufferT()]  # buffer 0 is the empty sentinel every model starts with
    tensors: list[Any] = []
    codes: list[int] = []
    ops: list[Any] = []

    def tensor(
        name: str,
        shape: list[int],
        ttype: int = s.TensorType.FLOAT32,
        data: np.ndarray | None = None,
        quant: tuple[float, int] | None = None,
    ) -> int:
        t = s.TensorT()
        t.name, t.shape, t.type = name, list(shape), ttype
        if data is not None:
            buf = s.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            buffers.append(buf)
            t.buffer = len(buffers) - 1
        elif dynamic_batch:
            t.shapeSignature = [-1, *shape[1:]]
        if quant is not None:
            q = s.QuantizationParametersT()
            q.scale, q.zeroPoint = [float(quant[0])], [int(quant[1])]
            t.quantization = q
        tensors.append(t)
        return len(tensors) - 1

    def op(
        code: int, inputs: list[int], outputs: list[int], options_type: int = 0, options: Any = None
    ) -> None:
        if code not in codes:
            codes.append(code)
        o = s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = codes.index(code), inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        ops.append(o)

    ops_ = s.BuiltinOperator
    if input_quant is not None:
        x_in = tensor("serving_default_input:0", [1, h, w, 3], s.TensorType.UINT8, quant=input_quant)
        x = tensor("input_float", [1, h, w, 3])
        op(ops_.DEQUANTIZE, [x_in], [x])
    else:
        x_in = x = tensor("serving_default_input:0", [1, h, w, 3])
    axes = tensor("axes", [2], s.TensorType.INT32, data=np.array([1, 2], np.int32))
    pooled = tensor("pooled", [1, 3])
    reducer = s.ReducerOptionsT()
    reducer.keepDims = False
    op(ops_.MEAN, [x, axes], [pooled], s.BuiltinOptions.ReducerOptions, reducer)
    heads = {
        "part_logits": (weights.part_w, weights.part_b),
        "color_logits": (weights.color_w, weights.color_b),
        "embedding": (weights.emb_w, weights.emb_b),
    }
    outs = []
    for role, (wt, bias) in heads.items():
        k = len(bias)
        tw = tensor(f"{role}/w", list(wt.shape), data=wt.astype(np.float32))
        tb = tensor(f"{role}/b", [k], data=bias.astype(np.float32))
        last = tensor(f"{role}/fc", [1, k])
        fc = s.FullyConnectedOptionsT()
        op(ops_.FULLY_CONNECTED, [pooled, tw, tb], [last], s.BuiltinOptions.FullyConnectedOptions, fc)
        if role == "embedding":
            normed = tensor(f"{role}/l2", [1, k])
            op(ops_.L2_NORMALIZATION, [last], [normed], s.BuiltinOptions.L2NormOptions, s.L2NormOptionsT())
            last = normed
        if output_quant and role in output_quant:
            quantised = tensor(f"{role}/q", [1, k], s.TensorType.INT8, quant=output_quant[role])
            op(ops_.QUANTIZE, [last], [quantised])
            last = quantised
        outs.append(last)
    outs = [outs[i] for i in output_perm]
    for n, t in enumerate(outs):
        tensors[t].name = f"StatefulPartitionedCall:{n}"

    graph = s.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators, graph.name = (
        tensors,
        [x_in],
        outs,
        ops,
        "main",
    )
    model = s.ModelT()
    model.version, model.subgraphs, model.buffers, model.description = (
        3,
        [graph],
        buffers,
        "tiny test classifier",
    )
    model.operatorCodes = []
    for code in codes:
        c = s.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, code, 1
        model.operatorCodes.append(c)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _litert_set(
    folder: Path,
    *,
    colors: tuple[int, ...] = DEFAULT_COLORS,
    precision: str = "fp32",
    entry: dict[str, Any] | None = None,
    **tflite: Any,
) -> Manifest:
    """An ONNX model set (NCHW spec) plus an NHWC .tflite of the same weights listed for litert."""
    manifest = write_model_set(folder, colors=colors)
    data = build_tflite(ClassifierWeights.for_manifest(manifest), manifest.input.size, **tflite)
    (folder / "classifier.tflite").write_bytes(data)
    fields: dict[str, Any] = {"layout": "NHWC"} | dict(entry or {})
    file_entry = make_file_entry(folder, "classifier.tflite", "litert", precision, **fields)  # type: ignore[arg-type]
    manifest = manifest.model_copy(update={"files": [*manifest.files, file_entry]})
    write_manifest(folder, manifest)
    return manifest


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, 3, 16, 16)).astype(np.float32)


@pytest.fixture
def litert() -> None:
    pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is not installed")


def test_missing_runtime_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = write_model_set(tmp_path)
    (tmp_path / "classifier.tflite").write_bytes(b"TFL3 placeholder: never parsed")
    entry = make_file_entry(tmp_path, "classifier.tflite", "litert", "int8", layout="NHWC")
    write_manifest(tmp_path, manifest.model_copy(update={"files": [*manifest.files, entry]}))
    for name in (
        "ai_edge_litert",
        "ai_edge_litert.interpreter",
        "tflite_runtime",
        "tflite_runtime.interpreter",
    ):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules makes the import fail
    with pytest.raises(MissingDependencyError) as err:
        create_engine("litert", tmp_path, threads=1)
    assert err.value.extra == "litert" and err.value.package == "ai-edge-litert"
    assert "pip install 'lego-edge[litert]'" in str(err.value)
    assert isinstance(err.value, ImportError)


@pytest.mark.usefixtures("litert")
def test_outputs_match_reference_through_output_order(tmp_path: Path) -> None:
    manifest = _litert_set(tmp_path, entry={"output_order": ["embedding", "part_logits", "color_logits"]})
    x = _batch(4)
    ref = ClassifierWeights.for_manifest(manifest).reference(x)
    with create_engine("litert", tmp_path, threads=1) as engine:
        assert engine.max_batch is None and engine.input_shape == (3, 16, 16)
        together = engine.run(x)  # NCHW in, transposed to the file's NHWC by the wrapper
        singles = [engine.run(x[i : i + 1]) for i in range(4)]  # the input is resized back and forth
    for role in ROLES:
        assert together[role].dtype == np.float32
        np.testing.assert_allclose(together[role], ref[role], atol=1e-5, err_msg=role)
        np.testing.assert_allclose(np.concatenate([s[role] for s in singles]), together[role], atol=1e-6)


@pytest.mark.usefixtures("litert")
def test_fixed_batch_model_is_looped(tmp_path: Path) -> None:
    manifest = _litert_set(
        tmp_path, dynamic_batch=False, entry={"output_order": ["embedding", "part_logits", "color_logits"]}
    )
    x = _batch(3, seed=2)
    with create_engine("litert", tmp_path, threads=1) as engine:
        assert engine.max_batch == 1
        out = engine.run(x)
    ref = ClassifierWeights.for_manifest(manifest).reference(x)
    for role in ROLES:
        np.testing.assert_allclose(out[role], ref[role], atol=1e-5, err_msg=role)


@pytest.mark.usefixtures("litert")
def test_generic_names_fall_back_to_unique_widths(tmp_path: Path) -> None:
    manifest = _litert_set(tmp_path, colors=(0, 4, 14, 15))  # widths 5, 4, 8: unambiguous
    x = _batch(2)
    with create_engine("litert", tmp_path, threads=1) as engine:
        out = engine.run(x)
    ref = ClassifierWeights.for_manifest(manifest).reference(x)
    for role in ROLES:
        np.testing.assert_allclose(out[role], ref[role], atol=1e-5, err_msg=role)


@pytest.mark.usefixtures("litert")
def test_ambiguous_or_wrong_output_order_is_reported(tmp_path: Path) -> None:
    _litert_set(tmp_path)  # 5 parts and 5 colours: widths cannot tell them apart
    with pytest.raises(ModelError, match=r"cannot tell which output is 'part_logits'.*record output_order"):
        create_engine("litert", tmp_path, threads=1)
    _litert_set(tmp_path, entry={"output_order": ["embedding", "part_logits"]})
    with pytest.raises(ModelError, match="output_order lists 2 outputs but the file has 3"):
        create_engine("litert", tmp_path, threads=1)


@pytest.mark.usefixtures("litert")
def test_quantised_input_and_output(tmp_path: Path) -> None:
    in_q, out_q = (0.02, 128), (0.05, 0)
    order = {"output_order": ["embedding", "part_logits", "color_logits"]}
    quant = {"input_dtype": "uint8", "input_quant": QuantParams(scale=in_q[0], zero_point=in_q[1])}
    manifest = _litert_set(
        tmp_path, precision="int8", entry=order | quant, input_quant=in_q, output_quant={"part_logits": out_q}
    )
    x = _batch(4, seed=4)
    q = np.clip(np.rint(x / np.float32(in_q[0])) + in_q[1], 0, 255)
    ref = ClassifierWeights.for_manifest(manifest).reference(
        ((q - in_q[1]) * np.float32(in_q[0])).astype(np.float32)
    )
    with create_engine("litert", tmp_path, precision="int8", threads=1) as engine:
        out = engine.run(x)  # int8 part logits are dequantised with the file's own scale/zero point
    np.testing.assert_allclose(out["part_logits"], ref["part_logits"], atol=out_q[0] / 2 + 1e-5)
    np.testing.assert_allclose(out["embedding"], ref["embedding"], atol=1e-5)

    wrong = quant | {"input_quant": QuantParams(scale=0.03, zero_point=128)}
    _litert_set(tmp_path, precision="int8", entry=order | wrong, input_quant=in_q)
    with pytest.raises(
        ModelError, match=r"input quantisation is \(0\.0199.*the manifest says \(0\.03, 128\)"
    ):
        create_engine("litert", tmp_path, precision="int8", threads=1)


@pytest.mark.usefixtures("litert")
def test_unreadable_file_is_a_model_error(tmp_path: Path) -> None:
    manifest = write_model_set(tmp_path)
    (tmp_path / "classifier.tflite").write_bytes(b"definitely not a flatbuffer")
    entry = make_file_entry(tmp_path, "classifier.tflite", "litert", "fp32", layout="NHWC")
    write_manifest(tmp_path, manifest.model_copy(update={"files": [*manifest.files, entry]}))
    with pytest.raises(ModelError, match="cannot be loaded by LiteRT"):
        create_engine("litert", tmp_path, threads=1)
