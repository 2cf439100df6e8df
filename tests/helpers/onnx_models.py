"""Tiny real ONNX classifiers built with ``onnx.helper`` (no torch), and model sets around them.

The classifier is ``GlobalAveragePool -> Flatten`` to the 3 channel means, then one ``Gemm`` per
head: ``part_logits`` (P), ``color_logits`` (C) and ``embedding`` (D, L2-normalised). Weights are
seeded, so :meth:`ClassifierWeights.reference` computes the exact expected outputs in numpy.

Use :func:`write_model_set` for a folder with ``classifier.onnx`` and a ``manifest.json`` carrying
correct hashes; :func:`build_classifier` for variants (NHWC, fixed batch, integer input, renamed or
reordered outputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.manifest import Manifest, make_file_entry, write_manifest
from edge.manifest_entries import InputSpec, OutputNames, QuantParams

DEFAULT_PARTS = ("3001", "3003", "3004", "3020", "3023")
DEFAULT_COLORS = (0, 1, 4, 14, 15)  # Rebrickable: black, blue, red, yellow, white
ROLES = ("part_logits", "color_logits", "embedding")
_ONNX_TYPES = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8, "int8": TensorProto.INT8}


@dataclass(frozen=True)
class ClassifierWeights:
    """Head weights of the tiny classifier: ``W`` is (out, 3), ``b`` is (out,)."""

    part_w: np.ndarray
    part_b: np.ndarray
    color_w: np.ndarray
    color_b: np.ndarray
    emb_w: np.ndarray
    emb_b: np.ndarray

    @classmethod
    def random(cls, parts: int, colors: int, dim: int, seed: int = 0) -> ClassifierWeights:
        """Seeded normal weights for P parts, C colours and a D-dimensional embedding."""
        rng = np.random.default_rng(seed)

        def draw(*shape: int) -> np.ndarray:
            return rng.normal(0.0, 1.0, shape).astype(np.float32)

        return cls(draw(parts, 3), draw(parts), draw(colors, 3), draw(colors), draw(dim, 3), draw(dim))

    @classmethod
    def for_manifest(cls, manifest: Manifest) -> ClassifierWeights:
        """The weights :func:`write_model_set` used for ``manifest`` (its seed is in ``build``)."""
        return cls.random(
            len(manifest.parts), len(manifest.colors), manifest.embedding_dim or 1, manifest.build["seed"]
        )

    def reference(self, batch: np.ndarray, layout: str = "NCHW") -> dict[str, np.ndarray]:
        """Expected outputs for a float batch, computed in float64 numpy."""
        feats = batch.astype(np.float64).mean(axis=(2, 3) if layout == "NCHW" else (1, 2))
        emb = feats @ self.emb_w.T.astype(np.float64) + self.emb_b
        return {
            "part_logits": feats @ self.part_w.T.astype(np.float64) + self.part_b,
            "color_logits": feats @ self.color_w.T.astype(np.float64) + self.color_b,
            "embedding": emb / np.linalg.norm(emb, axis=1, keepdims=True),
        }


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def build_classifier(
    weights: ClassifierWeights,
    size: tuple[int, int],
    *,
    layout: str = "NCHW",
    batch: int | None = None,
    input_name: str = "image",
    output_names: Mapping[str, str] | None = None,
    output_order: Sequence[str] = ROLES,
    input_dtype: str = "float32",
    input_quant: tuple[float, int] | None = None,
    output_quant: Mapping[str, tuple[float, int]] | None = None,
) -> onnx.ModelProto:
    """The classifier graph (opset 17, IR 8 so older ONNX Runtime builds load it).

    ``batch`` None makes the batch dimension dynamic. An integer ``input_dtype`` adds a
    ``DequantizeLinear`` with ``input_quant``; roles in ``output_quant`` end in ``QuantizeLinear`` to
    int8. ``output_order`` lists the roles in graph-output order (roles left out are not outputs).
    """
    names = {role: role for role in ROLES} | dict(output_names or {})
    h, w = size
    dims: list[int | str] = [batch if batch is not None else "N"]
    dims += [3, h, w] if layout == "NCHW" else [h, w, 3]
    inputs = [helper.make_tensor_value_info(input_name, _ONNX_TYPES[input_dtype], dims)]
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    x = input_name
    if input_dtype != "float32":
        if input_quant is None:
            raise ValueError("an integer input needs input_quant=(scale, zero_point)")
        zp_type = np.uint8 if input_dtype == "uint8" else np.int8
        inits += [_const("in_scale", np.float32(input_quant[0])), _const("in_zp", zp_type(input_quant[1]))]
        nodes.append(helper.make_node("DequantizeLinear", [x, "in_scale", "in_zp"], ["x_float"]))
        x = "x_float"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [x], ["x_nchw"], perm=[0, 3, 1, 2]))
        x = "x_nchw"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["feats"], axis=1))

    heads = {
        "part_logits": (weights.part_w, weights.part_b),
        "color_logits": (weights.color_w, weights.color_b),
        "embedding": (weights.emb_w, weights.emb_b),
    }
    outputs = []
    for role in output_order:
        wt, bias = heads[role]
        inits += [_const(f"{role}_w", wt), _const(f"{role}_b", bias)]
        quant = (output_quant or {}).get(role)
        last = f"{role}_gemm" if role == "embedding" or quant else names[role]
        nodes.append(helper.make_node("Gemm", ["feats", f"{role}_w", f"{role}_b"], [last], transB=1))
        if role == "embedding":
            done = f"{role}_norm" if quant else names[role]
            nodes.append(helper.make_node("LpNormalization", [last], [done], axis=1, p=2))
            last = done
        elem = TensorProto.FLOAT
        if quant:
            inits += [_const(f"{role}_scale", np.float32(quant[0])), _const(f"{role}_zp", np.int8(quant[1]))]
            nodes.append(
                helper.make_node("QuantizeLinear", [last, f"{role}_scale", f"{role}_zp"], [names[role]])
            )
            elem = TensorProto.INT8
        outputs.append(helper.make_tensor_value_info(names[role], elem, [dims[0], len(bias)]))

    graph = helper.make_graph(nodes, "tiny_classifier", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def write_model_set(
    folder: str | Path,
    *,
    parts: Sequence[str] = DEFAULT_PARTS,
    colors: Sequence[int] = DEFAULT_COLORS,
    embedding_dim: int = 8,
    size: tuple[int, int] = (16, 16),
    seed: int = 0,
    spec: Mapping[str, Any] | None = None,
    file_layout: str | None = None,
    filename: str = "classifier.onnx",
    precision: str = "fp32",
    entry_fields: Mapping[str, Any] | None = None,
    **build: Any,
) -> Manifest:
    """Write ``classifier.onnx`` and a matching ``manifest.json`` into ``folder``; return the manifest.

    ``spec`` overrides :class:`InputSpec` fields; ``file_layout`` makes the file NHWC/NCHW unlike
    ``spec['layout']`` (recorded as the entry's layout override); ``build`` goes to
    :func:`build_classifier` (e.g. ``batch=1``); ``entry_fields`` override the file entry's fields.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    input_spec = InputSpec(size=size, **dict(spec or {}))
    weights = ClassifierWeights.random(len(parts), len(colors), embedding_dim, seed)
    layout = file_layout or input_spec.layout
    model = build_classifier(weights, size, layout=layout, **build)
    onnx.save(model, folder / filename)

    fields: dict[str, Any] = {}
    if file_layout and file_layout != input_spec.layout:
        fields["layout"] = file_layout
    if build.get("input_dtype", "float32") != "float32":
        scale, zp = build["input_quant"]
        fields |= {
            "input_dtype": build["input_dtype"],
            "input_quant": QuantParams(scale=scale, zero_point=zp),
        }
    if build.get("output_quant"):
        fields["output_quant"] = {
            role: QuantParams(scale=s, zero_point=z) for role, (s, z) in build["output_quant"].items()
        }
    fields |= dict(entry_fields or {})
    manifest = Manifest(
        architecture="tiny_gap_classifier",
        input=input_spec,
        outputs=OutputNames(),
        parts=list(parts),
        colors=list(colors),
        embedding_dim=embedding_dim,
        files=[make_file_entry(folder, filename, "onnxruntime", precision, **fields)],  # type: ignore[arg-type]
        build={"command": "tests.helpers.onnx_models.write_model_set", "seed": seed},
    )
    write_manifest(folder, manifest)
    return manifest
