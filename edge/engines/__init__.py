"""Inference engines: one wrapper (:class:`Engine`) over pluggable runtime backends.

``create_engine("onnxruntime", folder)`` loads a model set; a backend module is imported only when
its runtime is selected, so a Pi without LiteRT still runs ONNX models.
"""

from edge.engines.base import (
    BACKEND_MODULES,
    Backend,
    Engine,
    TensorInfo,
    backend_class,
    create_engine,
    register_engine,
)

__all__ = [
    "BACKEND_MODULES",
    "Backend",
    "Engine",
    "TensorInfo",
    "backend_class",
    "create_engine",
    "register_engine",
]
