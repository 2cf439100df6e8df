"""ONNX Runtime backend (CPUExecutionProvider): loads a ``.onnx`` file and runs raw tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.engines.base import Backend, Shape, TensorInfo, register_engine
from edge.errors import MissingDependencyError, ModelError

# ONNX Runtime reports element types as strings.
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


def _info(node: Any, path: Path) -> TensorInfo:
    if node.type not in _DTYPES:
        raise ModelError(f"model file {str(path)!r}: tensor {node.name!r} has unsupported type {node.type!r}")
    # Symbolic ('batch'), unknown (None) and -1 dimensions are all dynamic.
    shape: Shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (node.shape or []))
    return TensorInfo(node.name, shape, np.dtype(_DTYPES[node.type]))


def ort_session(path: Path, threads: int, *, what: str, fix: str, arena: bool = True) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU: the one session setup of the engines and segmenters.

    ``threads`` intra-op threads (0: onnxruntime decides), one graph at a time, full graph
    optimisation, errors-only logging, idle threads sleeping. ``arena=False`` turns ONNX Runtime's
    CPU memory arena off, for the segmenters, whose large activations the arena would keep: a U2-Netp
    session was measured at 497 MiB with the arena and 127 MiB without. A file ORT
    cannot load is a :class:`ModelError` naming ``what`` and ``fix``.
    """
    try:
        import onnxruntime as ort  # a core dependency, but only needed once an ONNX model is loaded
    except ImportError:
        raise MissingDependencyError("onnxruntime", "pi", f"ONNX models ({what})") from None

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1  # one graph at a time: parallelism comes from intra-op threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = arena
    opts.log_severity_level = 3  # errors only; ORT's warnings are noise on the Pi's journal
    # Idle worker threads sleep instead of spinning: the segmenter and preprocessing run on the
    # same cores between inferences and would otherwise wait for spinning threads.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own pybind exception types (InvalidProtobuf, Fail, ...)
        raise ModelError(f"{what} {str(path)!r} cannot be loaded by ONNX Runtime: {exc}; {fix}") from None


@register_engine("onnxruntime")
class OnnxBackend(Backend):
    """An ``onnxruntime.InferenceSession`` with ``threads`` intra-op threads and full graph optimisation."""

    def __init__(self, path: Path, threads: int) -> None:
        self._session: Any = ort_session(
            path, threads, what="model file", fix="re-export the model set or run `trainer export` again"
        )
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(
                f"model file {str(path)!r} has {len(inputs)} inputs {[i.name for i in inputs]!r}; "
                "a classifier must take exactly one image tensor"
            )
        self._input = _info(inputs[0], path)
        self._outputs = [_info(o, path) for o in self._session.get_outputs()]

    def run_raw(self, x: np.ndarray) -> list[np.ndarray]:
        """One ``session.run`` over the whole batch."""
        return list(self._session.run(None, {self._input.name: x}))

    def close(self) -> None:
        """Drop the session so its memory is freed."""
        self._session = None
