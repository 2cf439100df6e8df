"""What edge loads: the ONNX export checked against torch, the int8 copy, shipping into a model set."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError, DataFileError, ModelError
from edge.fileio import atomic_path, write_atomic
from trainer.segmenter.config import (
    INT8_FLOAT_CONVS,
    INT8_NAME,
    INT8_SIDECAR_NAME,
    MODEL_NAME,
    NORMALISATION,
    SIDECAR_NAME,
    SegConfig,
)
from trainer.segmenter.data import mask_path, normalise, read_pair


def export_onnx(model: Any, out: Path, cfg: SegConfig, images: Sequence[Path]) -> float:
    """Write ``seg.onnx`` and ``seg.json``; returns the largest |onnx - torch| logit on ``images``."""
    import onnxruntime as ort
    import torch

    x = torch.from_numpy(
        np.stack(
            [normalise(read_pair(p, mask_path(p))[0], cfg.height, cfg.width, cfg.encoder) for p in images]
        )
    )
    with atomic_path(out / MODEL_NAME) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on fixed sizes and deprecations
        torch.onnx.export(
            model,
            (x[:1],),
            str(tmp),
            input_names=["image"],
            output_names=["mask_logits"],
            dynamic_axes={"image": {0: "batch"}, "mask_logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            ref = model(x).numpy()
        got = session.run(["mask_logits"], {"image": x.numpy()})[0]
        diff = float(np.abs(got - ref).max())
        if diff > 1e-3 * max(1.0, float(np.abs(ref).max())):
            raise ModelError(f"the exported segmenter differs from torch by {diff:.3g}; not written")
    mean, std = NORMALISATION[cfg.encoder]
    sidecar = {
        "input_size": [cfg.height, cfg.width],
        "mean": list(mean),
        "std": list(std),
        "output": "mask_logits",
    }
    write_atomic(out / SIDECAR_NAME, json.dumps(sidecar, indent=2) + "\n")
    return diff


def quantize_segmenter(out: Path, cfg: SegConfig, images: Sequence[Path]) -> Path:
    """``seg_int8.onnx`` (+ its sidecar): static int8 (QDQ, per-channel weights) of ``seg.onnx``,
    activation ranges calibrated on ``images`` as edge feeds them; the stem convolution and the
    final upsampling stay float (:func:`trainer.quantize.quantize_onnx_int8`)."""
    from trainer.quantize import quantize_onnx_int8

    if not images:
        raise DataFileError("no images to calibrate the int8 segmenter on; give --data renders")
    calib = np.stack(
        [normalise(read_pair(p, mask_path(p))[0], cfg.height, cfg.width, cfg.encoder) for p in images]
    )
    with atomic_path(out / INT8_NAME) as tmp:
        quantize_onnx_int8(out / MODEL_NAME, tmp, calib, "image", float_convs=INT8_FLOAT_CONVS)
    write_atomic(out / INT8_SIDECAR_NAME, (out / SIDECAR_NAME).read_text(encoding="utf-8"))
    return out / INT8_NAME


def check_ship_name(name: str | None) -> None:
    """A clear error for a ``--ship-name`` that is not a plain file stem."""
    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise ConfigError(f"--ship-name {name!r} must be letters, digits, '_' and '-' (no suffix, no folder)")


def ship_segmenter(
    run: Path, model_set: Path, precision: str, report: dict[str, Any], name: str | None = None
) -> Any:
    """Copy the run's ``precision`` model and sidecar into ``model_set`` and list them in its manifest
    (replacing an entry of the same file); returns the :class:`edge.manifest_entries.SegmenterEntry`.

    ``name``: ship them as ``NAME.onnx`` and ``NAME.json`` (default: the run's file names), so that a
    model set can hold segmenters for different rigs side by side."""
    import shutil

    from edge.manifest import MANIFEST_NAME, Manifest, load_manifest, sha256_file, write_manifest
    from edge.manifest_entries import SegmenterEntry

    names = {"fp32": (MODEL_NAME, SIDECAR_NAME), "int8": (INT8_NAME, INT8_SIDECAR_NAME)}
    if precision not in names:
        raise ConfigError(f"--ship-precision {precision!r} is not one of {sorted(names)}")
    check_ship_name(name)
    model, sidecar = (run / n for n in names[precision])
    if not model.is_file():
        hint = " (add --int8)" if precision == "int8" else ""
        raise DataFileError(f"{str(model)!r} does not exist: nothing to ship{hint}")
    manifest = load_manifest(model_set)  # a clear ModelError when model_set is not a model set
    dest_model, dest_sidecar = (
        (model.name, sidecar.name) if name is None else (f"{name}.onnx", f"{name}.json")
    )
    key = "iou_int8" if precision == "int8" else "iou"
    entry = SegmenterEntry(
        path=dest_model,
        sidecar=dest_sidecar,
        precision=precision,  # type: ignore[arg-type]
        sha256=sha256_file(model),  # the copies below are byte for byte
        sidecar_sha256=sha256_file(sidecar),
        bytes=model.stat().st_size,
        evaluation={
            "mask_iou": report.get(key, {}),
            "config": report.get("config", {}),
            "data": report.get("data", []),
            "images": report.get("images", {}),
        },
    )
    others = [s for s in manifest.segmenters if s.path != entry.path]
    updated = manifest.model_copy(update={"segmenters": [*others, entry]})
    try:  # before any file is copied: a name must not overwrite the set's other files
        if dest_sidecar == MANIFEST_NAME:
            raise ValueError(f"{dest_sidecar} is the model set's manifest")
        Manifest.model_validate(updated.model_dump())
    except ValueError as exc:
        raise ConfigError(
            f"cannot ship as {dest_model} / {dest_sidecar}: {exc}; pick another --ship-name"
        ) from None
    for src, dest in ((model, dest_model), (sidecar, dest_sidecar)):
        with atomic_path(model_set / dest) as tmp:
            shutil.copyfile(src, tmp)
    write_manifest(model_set, updated)
    return entry
