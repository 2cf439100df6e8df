"""LiteRT (TensorFlow Lite) backend: ``ai_edge_litert`` or, failing that, ``tflite_runtime``.

TFLite files usually take NHWC input and name their outputs generically
(``StatefulPartitionedCall:0``), so the manifest's file entry records ``layout`` and
``output_order``; the shared :class:`~edge.engines.base.Engine` applies both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.engines.base import Backend, Shape, TensorInfo, register_engine
from edge.errors import MissingDependencyError, ModelError


def interpreter_class() -> Any:
    """The LiteRT ``Interpreter`` class, from ai-edge-litert or the older tflite-runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise MissingDependencyError("ai-edge-litert", "litert", "running .tflite models") from None
    return Interpreter


def _info(detail: dict[str, Any]) -> TensorInfo:
    signature = detail.get("shape_signature")
    dims = signature if signature is not None and len(signature) else detail["shape"]
    shape: Shape = tuple(int(d) if d >= 0 else None for d in dims)
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quant = (float(scale), int(zero_point)) if scale else None  # scale 0 means "not quantised"
    return TensorInfo(detail["name"], shape, np.dtype(detail["dtype"]), quant)


@register_engine("litert")
class LiteRTBackend(Backend):
    """A LiteRT ``Interpreter`` with ``threads`` threads; the input is resized to each batch's size."""

    generic_output_names = True

    def __init__(self, path: Path, threads: int) -> None:
        interpreter = interpreter_class()
        try:
            self._interp: Any = interpreter(model_path=str(path), num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"model file {str(path)!r} cannot be loaded by LiteRT: {exc}; "
                "re-export the model set or run `trainer export` again"
            ) from None
        self._path = path
        inputs = self._interp.get_input_details()
        if len(inputs) != 1:
            raise ModelError(
                f"model file {str(path)!r} has {len(inputs)} inputs {[i['name'] for i in inputs]!r}; "
                "a classifier must take exactly one image tensor"
            )
        self._input_index = int(inputs[0]["index"])
        self._input = _info(inputs[0])
        details = self._interp.get_output_details()
        self._output_indices = [int(d["index"]) for d in details]
        self._outputs = [_info(d) for d in details]
        self._current_shape = tuple(int(d) for d in inputs[0]["shape"])

    def run_raw(self, x: np.ndarray) -> list[np.ndarray]:
        """Resize the input to ``x``'s shape if needed, then one ``invoke``."""
        if x.shape != self._current_shape:
            try:
                self._interp.resize_tensor_input(self._input_index, list(x.shape), strict=True)
                self._interp.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise ModelError(
                    f"model file {str(self._path)!r} cannot take an input of shape {x.shape!r}: {exc}"
                ) from None
            self._current_shape = x.shape
        self._interp.set_tensor(self._input_index, x)
        self._interp.invoke()
        return [self._interp.get_tensor(i).copy() for i in self._output_indices]

    def close(self) -> None:
        """Drop the interpreter so its memory is freed."""
        self._interp = None
