"""Tiny real ONNX graphs standing in for segmentation models (built with onnx.helper, no torch).

Both fake models compute ``w . x + b`` per pixel with a 1x1 convolution on the normalised input.
With ``RED_WEIGHTS`` (r - g) the score is high where the frame is red and low on grey, so a
known frame yields a known mask, and tests can recompute the expected output with numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: 1x1 conv weights over (r, g, b) of the normalised input: red minus green.
RED_WEIGHTS = (1.0, -1.0, 0.0)
OPSET = 13
IR_VERSION = 8  # old enough for any onnxruntime >= 1.17


def _conv(weights: tuple[float, float, float], bias: float) -> list[onnx.TensorProto]:
    w = np.array(weights, np.float32).reshape(1, 3, 1, 1)
    return [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array([bias], np.float32), "B")]


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_u2net(
    path: Path,
    *,
    size: int = 320,
    batch: int | str = 1,
    weights: tuple[float, float, float] = RED_WEIGHTS,
    bias: float = 0.0,
) -> Path:
    """A U-2-Net look-alike: input (batch, 3, size, size), seven outputs d0..d6 of (batch, 1, size, size).

    d0 = sigmoid(conv1x1(x)) as in U-2-Net; d1..d6 are copies (rembg reads only the first).
    """
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [batch, 3, size, size])
    nodes = [
        helper.make_node("Conv", ["input.1", "W", "B"], ["score"]),
        helper.make_node("Sigmoid", ["score"], ["d0"]),
    ]
    nodes += [helper.make_node("Identity", ["d0"], [f"d{i}"]) for i in range(1, 7)]
    outputs = [
        helper.make_tensor_value_info(f"d{i}", TensorProto.FLOAT, [batch, 1, size, size]) for i in range(7)
    ]
    graph = helper.make_graph(nodes, "fake_u2net", [x], outputs, initializer=_conv(weights, bias))
    return _save(graph, path)


def make_mobileseg(
    path: Path,
    *,
    height: int = 64,
    width: int = 96,
    weights: tuple[float, float, float] = RED_WEIGHTS,
    bias: float = 0.0,
    gain: float = 4.0,
    output: str = "mask_logits",
) -> Path:
    """A mobileseg look-alike: input (N, 3, height, width), output (N, 1, height/2, width/2) logits.

    logits = gain * avgpool2x2(conv1x1(x)); the half-resolution output exercises the resize back.
    """
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, height, width])
    gain_t = numpy_helper.from_array(np.array(gain, np.float32), "gain")
    nodes = [
        helper.make_node("Conv", ["image", "W", "B"], ["score"]),
        helper.make_node("AveragePool", ["score"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Mul", ["pooled", "gain"], [output]),
    ]
    y = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", 1, height // 2, width // 2])
    graph = helper.make_graph(nodes, "fake_mobileseg", [x], [y], initializer=[*_conv(weights, bias), gain_t])
    return _save(graph, path)


def u2net_reference_score(tensor: np.ndarray, weights: tuple[float, float, float], bias: float) -> np.ndarray:
    """What the fake U-2-Net's d0 is for an input tensor (1, 3, h, w), computed with numpy."""
    score = np.tensordot(np.array(weights, np.float64), tensor[0].astype(np.float64), axes=1) + bias
    return (1.0 / (1.0 + np.exp(-score)))[None, None]
