"""Multiply-accumulates of an ONNX graph, from its weight shapes and its shape-inferred output shapes.

Counted: ``Conv`` and ``ConvTranspose`` (and their integer forms ``ConvInteger``, ``QLinearConv``),
``Gemm`` and ``MatMul`` (and ``MatMulInteger``, ``QLinearMatMul``): the operations that carry a
network's arithmetic. Everything else (activations, adds, pooling, normalisation, quantize and
dequantize steps) is left out, as MAC counts conventionally do; :func:`count_macs` reports how many
such nodes there were.

- Conv: ``prod(output shape) * (C_in / group) * kh * kw`` = ``prod(output) * prod(weight.shape[1:])``.
- ConvTranspose: each input element meets ``(C_out / group) * kh * kw`` weights:
  ``prod(input) * prod(weight.shape[1:])``.
- Gemm: ``prod(output) * K`` (K the inner size of A, after ``transA``); MatMul: ``prod(output) * K``
  with K the last dimension of A.

A node computes in int8 when it is an integer operator, or when its data input comes from a
``DequantizeLinear`` (the QDQ format ONNX Runtime's quantizer writes: the runtime fuses the
DequantizeLinear -> Conv -> QuantizeLinear group into an integer kernel).

Symbolic dimensions of the graph's inputs are set to ``batch`` first (e.g. a dynamic batch axis);
a MAC-carrying node whose shapes are still unknown after shape inference raises ``ValueError``
naming it. Subgraphs (``If``/``Loop`` bodies) are not entered.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The operators that carry MACs, and the position of their weight input.
WEIGHT_INPUT = {
    "Conv": 1,
    "ConvInteger": 1,
    "QLinearConv": 3,
    "ConvTranspose": 1,
}
MATMUL_A_INPUT = {"Gemm": 0, "MatMul": 0, "MatMulInteger": 0, "QLinearMatMul": 0}
INTEGER_OPS = {"ConvInteger", "QLinearConv", "MatMulInteger", "QLinearMatMul"}
MAC_OPS = set(WEIGHT_INPUT) | set(MATMUL_A_INPUT)


@dataclass
class MacCount:
    """The MACs of one graph at one batch size."""

    total: int
    int8: int
    float: int
    by_op: dict[str, int]
    nodes: int  # MAC-carrying nodes
    other_nodes: int  # every other node (not counted)
    batch: int
    per_node: list[tuple[str, str, int, bool]] = field(default_factory=list)  # name, op, macs, int8

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "int8": self.int8,
            "float": self.float,
            "by_op": dict(self.by_op),
            "mac_nodes": self.nodes,
            "other_nodes": self.other_nodes,
            "batch": self.batch,
        }


def _load(model: Any) -> Any:
    import onnx

    if isinstance(model, str | Path):
        return onnx.load(str(model))
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _fix_batch(model: Any, batch: int) -> None:
    """Set every symbolic dimension of the graph's non-initializer inputs to ``batch``, and drop the
    declared shapes of its outputs and intermediate values (shape inference fills them in again)."""
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.ClearField("dim_param")
                dim.dim_value = batch
    for value in model.graph.output:
        if value.type.HasField("tensor_type"):
            value.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]


def _shapes(model: Any) -> dict[str, tuple[int, ...] | None]:
    """Every tensor's shape where shape inference knows all of it (None where not)."""
    shapes: dict[str, tuple[int, ...] | None] = {}
    for t in model.graph.initializer:
        shapes[t.name] = tuple(int(d) for d in t.dims)
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        if value.name in shapes or not value.type.HasField("tensor_type"):
            continue
        tt = value.type.tensor_type
        if not tt.HasField("shape"):
            shapes[value.name] = None
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        shapes[value.name] = None if any(d is None or d < 0 for d in dims) else tuple(dims)  # type: ignore[misc]
    for node in model.graph.node:  # Constant nodes: their value's dims
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t is not None:
                    shapes[node.output[0]] = tuple(int(d) for d in attr.t.dims)
    return shapes


def count_macs(model: Any, batch: int = 1) -> MacCount:
    """The MACs of ``model`` (an ``onnx.ModelProto`` or a path) with its dynamic inputs at ``batch``."""
    import onnx

    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    proto = _load(model)
    _fix_batch(proto, batch)
    inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    shapes = _shapes(inferred)
    producer = {out: node for node in inferred.graph.node for out in node.output}
    by_op: Counter[str] = Counter()
    per_node: list[tuple[str, str, int, bool]] = []
    total = int8 = other = 0
    for node in inferred.graph.node:
        op = node.op_type
        if op not in MAC_OPS:
            other += 1
            continue
        name = node.name or f"{op} -> {node.output[0]}"

        def shape(index: int, what: str, node: Any = node, name: str = name) -> tuple[int, ...]:
            tensor = node.input[index] if index < len(node.input) else ""
            found = shapes.get(tensor)
            if found is None:
                raise ValueError(
                    f"node {name!r} ({node.op_type}): the shape of its {what} {tensor!r} is unknown after "
                    "shape inference; give the graph fixed input sizes"
                )
            return found

        out = shapes.get(node.output[0])
        if out is None:
            raise ValueError(
                f"node {name!r} ({op}): the shape of its output {node.output[0]!r} is unknown after "
                "shape inference; give the graph fixed input sizes"
            )
        if op in WEIGHT_INPUT:
            weight = shape(WEIGHT_INPUT[op], "weight")
            if op == "ConvTranspose":
                macs = math.prod(shape(0, "input")) * math.prod(weight[1:])
            else:
                macs = math.prod(out) * math.prod(weight[1:])
        else:
            a = shape(MATMUL_A_INPUT[op], "input A")
            if op == "Gemm":
                trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
                k = a[0] if trans_a else a[-1]
            else:
                k = a[-1]
            macs = math.prod(out) * k
        data = producer.get(node.input[0])
        is_int8 = op in INTEGER_OPS or (data is not None and data.op_type == "DequantizeLinear")
        total += macs
        int8 += macs if is_int8 else 0
        by_op[op] += macs
        per_node.append((name, op, macs, is_int8))
    return MacCount(
        total=total,
        int8=int8,
        float=total - int8,
        by_op=dict(by_op),
        nodes=len(per_node),
        other_nodes=other,
        batch=batch,
        per_node=per_node,
    )
