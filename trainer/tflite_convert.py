"""TFLite files of a model set, converted by onnx2tf (with onnxsim) offline, for ``trainer quantize``.

onnx2tf converts a batch-1 copy of the ONNX graph (NHWC input); the int8 file is full-integer with
int8 input and outputs. TFLite names its outputs generically, so each file entry records the
output order found by matching every TFLite output against fp32 outputs on calibration images.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.engines import backend_class
from edge.errors import ConfigError, MissingDependencyError, ModelError
from edge.manifest import Manifest, make_file_entry
from edge.manifest_entries import FileEntry, QuantParams

#: onnx2tf looks for this file in its working folder and downloads it when absent.
ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
ONNX2TF_TIMEOUT_S = 3600


def need(module: str, package: str, purpose: str) -> None:
    """Raise :class:`~edge.errors.MissingDependencyError` (the ``convert`` extra) when ``module``
    cannot be imported."""
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(package, "convert", purpose)


def _static_copy(src: Path, dst: Path, manifest: Manifest) -> None:
    """``src`` with batch 1 fixed: onnx2tf mis-transposes residual Adds of a dynamic-batch graph."""
    import onnx
    from onnx.tools import update_model_dims

    model = onnx.load(str(src))
    h, w = manifest.input.size
    widths = manifest.output_widths()
    outputs = {name: [1, widths[role]] for role, name in manifest.outputs.roles().items()}
    inputs = {model.graph.input[0].name: [1, 3, h, w]}
    onnx.save(update_model_dims.update_inputs_outputs_dims(model, inputs, outputs), str(dst))


def run_onnx2tf(
    src: Path, manifest: Manifest, calib_nhwc: np.ndarray, int8: bool, work: Path
) -> dict[str, Path]:
    """Convert ``src`` in the folder ``work`` (offline); returns ``{"fp16": path, "int8": path}``."""
    need("onnx2tf", "onnx2tf", "TFLite conversion")
    need("tensorflow", "tensorflow-cpu", "TFLite conversion")
    bin_dir = str(Path(sys.executable).parent)
    if shutil.which("onnxsim", path=os.pathsep.join([bin_dir, os.environ.get("PATH", "")])) is None:
        # Without it onnx2tf converts an unsimplified graph and mis-transposes MobileNet-style blocks.
        raise MissingDependencyError("onnxsim", "convert", "simplifying the graph before TFLite conversion")
    if manifest.input.layout != "NCHW":
        raise ConfigError(
            f"TFLite conversion expects the NCHW ONNX file of trainer export, not {manifest.input.layout}"
        )
    static = work / "model.onnx"
    _static_copy(src, static, manifest)
    np.save(work / "calib.npy", calib_nhwc.astype(np.float32))
    # onnx2tf fetches sample images from the internet unless this file exists: our own images, 0..1.
    spec = manifest.input
    raw = (calib_nhwc * np.asarray(spec.std, np.float32) + np.asarray(spec.mean, np.float32)) / spec.scale
    pixels = np.clip(raw / 255.0, 0.0, 1.0).astype(np.float32)
    sample = np.stack([cv2.resize(pixels[i % len(pixels)], (128, 128)) for i in range(20)])
    np.save(work / ONNX2TF_SAMPLE, sample.astype(np.float32))
    cmd = [sys.executable, "-m", "onnx2tf", "-i", str(static), "-o", str(work / "out"), "-v", "error"]
    if int8:  # calibration data is already normalised: mean 0, std 1
        zeros, ones = "[[[[0.0,0.0,0.0]]]]", "[[[[1.0,1.0,1.0]]]]"
        cmd += ["-oiqt", "-qt", "per-channel", "-iqd", "int8", "-oqd", "int8"]
        cmd += ["-cind", manifest_input_name(static), str(work / "calib.npy"), zeros, ones]
    env = dict(os.environ)
    # onnx2tf runs the `onnxsim` command; it must find the one installed beside this interpreter.
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = subprocess.run(
        cmd, cwd=work, env=env, capture_output=True, text=True, timeout=ONNX2TF_TIMEOUT_S, check=False
    )
    found = {
        "fp16": work / "out" / "model_float16.tflite",
        "int8": work / "out" / "model_full_integer_quant.tflite",
    }
    wanted = {k: v for k, v in found.items() if k == "fp16" or int8}
    if result.returncode != 0 or not all(p.is_file() for p in wanted.values()):
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ModelError(f"onnx2tf failed to convert {str(src)!r} (exit {result.returncode}):\n{tail}")
    return wanted


def manifest_input_name(path: Path) -> str:
    """The single graph input name of an ONNX file."""
    import onnx

    return str(onnx.load(str(path), load_external_data=False).graph.input[0].name)


def tflite_entry(
    folder: Path,
    name: str,
    precision: str,
    manifest: Manifest,
    calib: np.ndarray,
    ref: Mapping[Any, np.ndarray],
) -> FileEntry:
    """The file entry of a converted .tflite: NHWC layout, input quantisation and output order.

    ``calib`` (manifest layout) and ``ref`` (its fp32 outputs by role) identify each TFLite output:
    roles are assigned to outputs of the same width so that the total relative error is smallest.
    """
    backend = backend_class("litert")(folder / name, 1)
    try:
        info = backend.input
        quant = info.quant
        integer = np.issubdtype(info.dtype, np.integer)
        outs: list[list[np.ndarray]] = [[] for _ in backend.outputs]
        for x in calib:
            xi = x.transpose(1, 2, 0)[None] if manifest.input.layout == "NCHW" else x[None]
            if integer:
                assert quant is not None, "an integer TFLite input always carries its quantisation"
                lim = np.iinfo(info.dtype)
                xi = np.clip(np.rint(xi / quant[0]) + quant[1], lim.min, lim.max).astype(info.dtype)
            for i, value in enumerate(backend.run_raw(np.ascontiguousarray(xi))):
                q = backend.outputs[i].quant
                real = value.astype(np.float32)
                outs[i].append((real - q[1]) * q[0] if q is not None else real)
        values = [np.concatenate(v) for v in outs]
        order = _match_outputs(values, ref)
        fields: dict[str, Any] = {"layout": "NHWC", "output_order": order, "input_name": info.name}
        if integer:
            assert quant is not None
            fields["input_dtype"] = str(info.dtype)
            fields["input_quant"] = QuantParams(scale=quant[0], zero_point=quant[1])
            out_q = {
                role: QuantParams(scale=o.quant[0], zero_point=o.quant[1])
                for role, o in zip(order, backend.outputs, strict=True)
                if role is not None and o.quant is not None
            }
            fields["output_quant"] = out_q or None
    finally:
        backend.close()
    return make_file_entry(folder, name, "litert", precision, **fields)  # type: ignore[arg-type]


def _match_outputs(values: list[np.ndarray], ref: Mapping[Any, np.ndarray]) -> list[Any]:
    roles = list(ref)
    best: tuple[float, tuple[Any, ...]] | None = None
    slots = roles + [None] * max(0, len(values) - len(roles))
    for perm in set(itertools.permutations(slots, len(values))):
        cost = 0.0
        for value, role in zip(values, perm, strict=True):
            if role is None:
                continue
            r = ref[role]
            if value.shape != r.shape:
                cost = np.inf
                break
            cost += float(np.abs(value - r).mean() / (np.abs(r).mean() + 1e-9))
        if best is None or cost < best[0]:
            best = (cost, perm)
    if best is None or not np.isfinite(best[0]) or set(roles) - set(best[1]):
        shapes = [v.shape for v in values]
        raise ModelError(f"cannot match the TFLite outputs {shapes!r} to the roles {roles!r}")
    return list(best[1])
