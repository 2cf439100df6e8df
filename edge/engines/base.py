"""The engine contract, the one wrapper every backend shares, and the backend registry.

Backends (``onnx.py``, ``litert.py``) only load a file and run a raw tensor. :class:`Engine` does the
rest once: layout (NCHW <-> NHWC), dtype (quantising float input to int8/uint8, dequantising integer
outputs), naming outputs by the manifest's roles, batching (looping over a batch-1 model), and
checking the file's shapes against the manifest at load time.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import numpy as np

from edge.errors import ConfigError, ImageError, ModelError
from edge.manifest import Manifest, inside, load_manifest, verify_file
from edge.manifest_entries import FileEntry, OutputRole, QuantParams

#: Runtime key -> module that registers it; modules are imported only when their key is selected.
BACKEND_MODULES: dict[str, str] = {"onnxruntime": "edge.engines.onnx", "litert": "edge.engines.litert"}
_REGISTRY: dict[str, type[Backend]] = {}

Shape = tuple[int | None, ...]  # None marks a dynamic dimension


@dataclass(frozen=True)
class TensorInfo:
    """What a backend knows about one of its model's tensors."""

    name: str
    shape: Shape
    dtype: np.dtype
    quant: tuple[float, int] | None = None  # (scale, zero_point) of an integer tensor, if recorded


class Backend(ABC):
    """A loaded model file. Subclasses load in ``__init__`` and run raw tensors; nothing else.

    ``__init__`` must set ``_input`` and ``_outputs`` from the loaded model.
    """

    _input: TensorInfo
    _outputs: list[TensorInfo]

    #: True where the runtime's output names are generic (StatefulPartitionedCall:0) and cannot be trusted.
    generic_output_names = False

    @abstractmethod
    def __init__(self, path: Path, threads: int) -> None: ...

    @property
    def input(self) -> TensorInfo:
        """The model's single input, shape in the file's own layout (dynamic dimensions are None)."""
        return self._input

    @property
    def outputs(self) -> list[TensorInfo]:
        """The model's outputs in the runtime's order."""
        return self._outputs

    @abstractmethod
    def run_raw(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one already-converted batch; outputs in :attr:`outputs` order."""

    def close(self) -> None:  # noqa: B027 - optional hook; most runtimes free memory on GC
        """Release the runtime's resources."""


B = TypeVar("B", bound=type[Backend])


def register_engine(key: str) -> Callable[[B], B]:
    """Class decorator registering a :class:`Backend` under a runtime key (e.g. ``"onnxruntime"``)."""

    def decorate(cls: B) -> B:
        _REGISTRY[key] = cls
        return cls

    return decorate


def backend_class(runtime: str) -> type[Backend]:
    """The backend for ``runtime``, importing its module on first use."""
    if runtime not in _REGISTRY and runtime in BACKEND_MODULES:
        importlib.import_module(BACKEND_MODULES[runtime])
    if runtime not in _REGISTRY:
        known = ", ".join(sorted(set(BACKEND_MODULES) | set(_REGISTRY)))
        raise ConfigError(f"unknown inference runtime {runtime!r}; known runtimes: {known}")
    return _REGISTRY[runtime]


def _quantise(x: np.ndarray, q: tuple[float, int], dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    scaled = np.rint(x / np.float32(q[0])) + q[1]
    return np.clip(scaled, info.min, info.max).astype(dtype)


class Engine:
    """A model file ready to run, speaking the manifest's language.

    ``run`` takes float32 batches shaped like :func:`edge.preprocess.prepare_batch` output (the
    manifest's ``input.layout``) and returns ``{role: float32 array}`` for the roles in
    ``manifest.outputs`` (``part_logits``, ``color_logits``, ``embedding``).
    """

    def __init__(self, backend: Backend, manifest: Manifest, entry: FileEntry, path: Path) -> None:
        self.backend = backend
        self.manifest = manifest
        self.entry = entry
        self.path = path
        spec = manifest.input
        self._file_layout = entry.layout or spec.layout
        h, w = spec.size
        #: Per-sample input shape in the manifest's layout (what ``prepare`` returns).
        self.input_shape: tuple[int, int, int] = (3, h, w) if spec.layout == "NCHW" else (h, w, 3)
        self._check_input()
        self._outputs = self._resolve_outputs()
        batch = backend.input.shape[0]
        self.max_batch: int | None = batch if isinstance(batch, int) else None

    def _fail(self, what: str) -> ModelError:
        return ModelError(f"model file {str(self.path)!r} ({self.entry.key}): {what}")

    def _check_input(self) -> None:
        info = self.backend.input
        h, w = self.manifest.input.size
        want: Shape = (None, 3, h, w) if self._file_layout == "NCHW" else (None, h, w, 3)
        ok = len(info.shape) == 4 and all(
            got is None or exp is None or got == exp for got, exp in zip(info.shape, want, strict=True)
        )
        if not ok:
            shown = tuple("N" if d is None else d for d in want)
            raise self._fail(
                f"input {info.name!r} has shape {info.shape!r} but the manifest expects {shown} "
                f"({self._file_layout}); fix input.size or the file entry's layout"
            )
        if self.entry.input_name is not None and info.name != self.entry.input_name:
            raise self._fail(f"input is named {info.name!r}, the manifest expects {self.entry.input_name!r}")
        integer = np.issubdtype(info.dtype, np.integer)
        if integer and info.dtype != np.dtype(self.entry.input_dtype):
            raise self._fail(f"input dtype is {info.dtype}, the manifest says {self.entry.input_dtype}")
        if not integer and self.entry.input_dtype != "float32":
            raise self._fail(f"input dtype is {info.dtype}, the manifest says {self.entry.input_dtype}")
        if integer and info.quant is not None and self.entry.input_quant is not None:
            mine = (self.entry.input_quant.scale, self.entry.input_quant.zero_point)
            if not np.isclose(info.quant[0], mine[0], rtol=1e-5) or info.quant[1] != mine[1]:
                raise self._fail(f"input quantisation is {info.quant!r}, the manifest says {mine!r}")

    def _resolve_outputs(self) -> dict[OutputRole, tuple[int, tuple[float, int] | None]]:
        """Role -> (index in the backend's outputs, dequantisation params or None)."""
        outs = self.backend.outputs
        names = [o.name for o in outs]
        wanted = self.manifest.outputs.roles()
        widths = self.manifest.output_widths()
        index: dict[OutputRole, int] = {}
        if self.entry.output_order is not None:
            if len(self.entry.output_order) != len(outs):
                raise self._fail(
                    f"output_order lists {len(self.entry.output_order)} outputs but the file has "
                    f"{len(outs)} ({names!r})"
                )
            index = {role: i for i, role in enumerate(self.entry.output_order) if role is not None}
        else:
            index = {role: names.index(name) for role, name in wanted.items() if name in names}
            if len(index) < len(wanted) and self.backend.generic_output_names:
                index = self._match_by_width(widths)
        missing = [role for role in wanted if role not in index]
        if missing:
            raise self._fail(
                f"outputs {[wanted[r] for r in missing]!r} not found; the file's outputs are {names!r}; "
                "fix manifest.outputs or the file entry's output_order"
            )
        resolved: dict[OutputRole, tuple[int, tuple[float, int] | None]] = {}
        for role in wanted:
            info = outs[index[role]]
            last = info.shape[-1] if info.shape else None
            if len(info.shape) != 2 or (last is not None and last != widths[role]):
                raise self._fail(
                    f"output {info.name!r} ({role}) has shape {info.shape!r}, expected (N, {widths[role]})"
                )
            resolved[role] = (index[role], self._output_quant(role, info))
        return resolved

    def _match_by_width(self, widths: dict[OutputRole, int]) -> dict[OutputRole, int]:
        """Map roles to outputs by their unique last dimension (for generic names without output_order)."""
        lasts = [o.shape[-1] if o.shape else None for o in self.backend.outputs]
        index: dict[OutputRole, int] = {}
        for role, width in widths.items():
            hits = [i for i, last in enumerate(lasts) if last == width]
            if len(hits) != 1 or list(widths.values()).count(width) != 1:
                raise self._fail(
                    f"cannot tell which output is {role!r} from names or shapes "
                    f"({[o.shape for o in self.backend.outputs]!r}); record output_order in the file entry"
                )
            index[role] = hits[0]
        return index

    def _output_quant(self, role: OutputRole, info: TensorInfo) -> tuple[float, int] | None:
        if not np.issubdtype(info.dtype, np.integer):
            return None
        given: QuantParams | None = (self.entry.output_quant or {}).get(role)
        if given is not None:
            return (given.scale, given.zero_point)
        if info.quant is None:
            raise self._fail(f"integer output {info.name!r} has no quantisation; add it to output_quant")
        return info.quant

    def _to_model_input(self, x: np.ndarray) -> np.ndarray:
        if self._file_layout != self.manifest.input.layout:
            x = x.transpose(0, 2, 3, 1) if self._file_layout == "NHWC" else x.transpose(0, 3, 1, 2)
        dtype = self.backend.input.dtype
        if np.issubdtype(dtype, np.integer):
            q = self.entry.input_quant or self.backend.input.quant
            if q is None:  # a validated FileEntry always has it; a foreign backend might not
                raise self._fail("integer input without quantisation parameters")
            quant = (q.scale, q.zero_point) if isinstance(q, QuantParams) else q
            return np.ascontiguousarray(_quantise(x, quant, dtype))
        return np.ascontiguousarray(x, dtype=dtype)

    def _run_chunk(self, x: np.ndarray) -> list[np.ndarray]:
        """One backend call; a short chunk for a fixed batch > 1 is zero-padded and the padding dropped."""
        fixed = self.max_batch
        if fixed is None or len(x) >= fixed:
            return self.backend.run_raw(x)
        pad = np.zeros((fixed - len(x), *x.shape[1:]), x.dtype)
        return [out[: len(x)] for out in self.backend.run_raw(np.concatenate([x, pad]))]

    def run(self, batch: np.ndarray) -> dict[OutputRole, np.ndarray]:
        """Run a float batch (N, *input_shape); returns ``{role: (N, K) float32}``."""
        if not isinstance(batch, np.ndarray) or not np.issubdtype(batch.dtype, np.floating):
            got = batch.dtype if isinstance(batch, np.ndarray) else type(batch).__name__
            raise ImageError(f"engine input must be a float numpy batch from prepare_batch(), got {got}")
        if batch.ndim != 4 or batch.shape[1:] != self.input_shape or batch.shape[0] == 0:
            want = ", ".join(map(str, self.input_shape))
            raise ImageError(
                f"engine input has shape {batch.shape!r}, expected (N, {want}) with N >= 1 "
                f"({self.manifest.input.layout}); add a batch axis with x[None] for one image"
            )
        x = self._to_model_input(batch.astype(np.float32, copy=False))
        step = self.max_batch or len(x)
        chunks = [self._run_chunk(x[i : i + step]) for i in range(0, len(x), step)]
        result: dict[OutputRole, np.ndarray] = {}
        for role, (i, quant) in self._outputs.items():
            raw = np.concatenate([c[i] for c in chunks]) if len(chunks) > 1 else chunks[0][i]
            if quant is not None:
                raw = (raw.astype(np.float32) - np.float32(quant[1])) * np.float32(quant[0])
            result[role] = np.asarray(raw, dtype=np.float32)
        return result

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def create_engine(
    runtime: str,
    folder: str | Path,
    manifest: Manifest | None = None,
    *,
    precision: str | None = None,
    threads: int = 4,
    verify: bool = True,
) -> Engine:
    """Load the model set in ``folder`` for ``runtime`` (``"onnxruntime"`` or ``"litert"``).

    ``manifest`` defaults to ``folder/manifest.json``; ``precision`` None takes the first file listed
    for the runtime. The file's SHA-256 is checked against the manifest unless ``verify`` is False.
    """
    if not isinstance(threads, int) or not 1 <= threads <= 64:
        raise ConfigError(f"threads {threads!r} must be an integer within 1..64")
    cls = backend_class(runtime)  # unknown keys fail before any file is touched
    folder = Path(folder)
    manifest = manifest if manifest is not None else load_manifest(folder)
    entry = manifest.select(runtime, precision)
    path = verify_file(folder, entry) if verify else inside(folder, entry.path)
    if not path.is_file():
        raise ModelError(
            f"model file {str(path)!r} listed in the manifest is missing; re-export the model set"
        )
    backend = cls(path, threads)
    try:
        return Engine(backend, manifest, entry, path)
    except BaseException:
        backend.close()
        raise
