"""``trainer export``: a training checkpoint becomes a model set (``model_fp32.onnx`` + ``manifest.json``).

The network is traced to ONNX (opset 17 by default) with one input ``image`` (N, 3, H, W) and the
outputs ``part_logits``, ``color_logits`` (absent without colour classes) and ``embedding``, the
batch dimension dynamic. Before anything is written, the ONNX file is run through edge's own engine
on real images of the data (read and prepared with :func:`edge.preprocess.prepare`, exactly as on the
Pi) and compared with torch: the largest absolute difference of every output and the part/colour
top-1 agreement are measured, enforced (``--max-diff``, ``--min-agreement``) and recorded in the
manifest's ``evaluation.export_parity``.

The model-set plumbing the later stages share (``trainer quantize``, ``trainer index``, ``trainer
evaluate``) lives in :mod:`trainer.model_set`: reading samples the way training split them,
preparing images, running an engine over samples, and recording build information. torch is
imported only inside the functions that trace and run the network.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.engines import Engine, create_engine
from edge.errors import ConfigError, DataFileError, ModelError
from edge.manifest import MANIFEST_NAME, Manifest, make_file_entry, write_manifest
from edge.manifest_entries import OutputNames
from trainer.data import Sample
from trainer.ensemble import combine, shared_validation
from trainer.model_set import (
    DataProtocol,
    build_record,
    load_samples,
    prepare_samples,
    run_engine,
    split_like_training,
    spread,
)

log = logging.getLogger(__name__)

FP32_NAME = "model_fp32.onnx"
INPUT_NAME = "image"


# ---- temperature scaling ------------------------------------------------------------------------


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Temperature scaling: the T in [0.05, 20] whose softmax(logits / T) has the least negative
    log-likelihood of ``labels`` (a grid search: one parameter, no gradient needed).

    Returns ``(T, NLL at T = 1, NLL at T)``. T changes no argmax, only how sure the model says it
    is, so a threshold on the probability then means what it says.
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.int64)
    if z.ndim != 2 or len(z) != len(y) or len(y) == 0:
        raise ValueError(f"logits {z.shape!r} and labels {y.shape!r} must be (N, K) and (N,), N > 0")

    def nll(t: float) -> float:
        x = z / t
        x = x - x.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(x).sum(axis=1)) - x[np.arange(len(y)), y]))

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))
    scores = [nll(float(t)) for t in grid]
    best = int(np.argmin(scores))
    return float(grid[best]), nll(1.0), float(scores[best])


def calibrate_temperatures(
    engine: Engine, manifest: Manifest, samples: Sequence[Sample]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Temperatures of the part and colour logits fitted on ``samples`` (training's validation
    split), and figures for the manifest."""
    known = [s for s in samples if s.part_num in set(manifest.parts)]
    if not known:
        return {}, {"images": 0, "note": "no validation images of the model's parts"}
    out = run_engine(engine, known)
    part_index = {p: i for i, p in enumerate(manifest.parts)}
    temps: dict[str, float] = {}
    figures: dict[str, Any] = {"images": len(known)}
    t, before, after = fit_temperature(out["part_logits"], np.array([part_index[s.part_num] for s in known]))
    temps["part_logits"] = t
    figures["part_logits"] = {"temperature": t, "nll_at_1": before, "nll": after}
    colour_index = {c: i for i, c in enumerate(manifest.colors)}
    rows = [i for i, s in enumerate(known) if s.color_id in colour_index]
    if "color_logits" in out and rows:
        labels = np.array([colour_index[known[i].color_id] for i in rows])
        t, before, after = fit_temperature(out["color_logits"][rows], labels)
        temps["color_logits"] = t
        figures["color_logits"] = {"temperature": t, "nll_at_1": before, "nll": after, "images": len(rows)}
    return temps, figures


# ---- export --------------------------------------------------------------------------------------


def parity_figures(reference: Mapping[Any, np.ndarray], exported: Mapping[Any, np.ndarray]) -> dict[str, Any]:
    """Largest absolute difference per output and top-1 agreement of the logits, exported vs reference."""
    figures: dict[str, Any] = {"images": len(reference["part_logits"]), "max_abs_diff": {}}
    for role, ref in reference.items():
        if role not in exported:
            raise ModelError(f"the exported model lacks the output {role!r} the network has")
        figures["max_abs_diff"][role] = float(np.abs(exported[role] - ref).max())
        if role.endswith("_logits"):
            agree = np.mean(exported[role].argmax(1) == ref.argmax(1))
            figures[f"{role.removesuffix('_logits')}_top1_agreement"] = float(agree)
    return figures


def check_parity(figures: dict[str, Any], max_diff: float, min_agreement: float) -> None:
    """ModelError when an output differs by over ``max_diff`` or top-1 agrees below ``min_agreement``."""
    problems = [
        f"{role} differs by up to {diff:.3g} (limit {max_diff:g})"
        for role, diff in figures["max_abs_diff"].items()
        if not diff <= max_diff  # NaN fails too
    ]
    problems += [
        f"{key} is {value:.3f} (minimum {min_agreement:g})"
        for key, value in figures.items()
        if key.endswith("_top1_agreement") and value < min_agreement
    ]
    if problems:
        raise ModelError(
            "the ONNX export does not reproduce the torch model on real images: "
            + "; ".join(problems)
            + "; check for training-only layers or unsupported ops (or relax --max-diff/--min-agreement)"
        )


def _data_paths(data: Sequence[str | Path] | None, config: dict[str, Any]) -> list[Path]:
    if data:
        return [Path(p) for p in data]
    paths = [Path(s["path"]) for s in config.get("sources", []) if isinstance(s, dict) and "path" in s]
    existing = [p for p in paths if p.is_dir()]
    if not existing:
        raise DataFileError(
            "the parity check needs real images but the checkpoint's training sources "
            f"{[str(p) for p in paths]!r} are not here; pass --data with a data folder"
        )
    return existing


def _torch_outputs(model: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    outs: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for start in range(0, len(x), 32):
            for role, value in model(torch.from_numpy(x[start : start + 32])).items():
                outs.setdefault(role, []).append(value.numpy())
    return {role: np.concatenate(v) for role, v in outs.items()}


def _trace_to_onnx(model: Any, path: Path, size: tuple[int, int], opset: int, names: list[str]) -> None:
    import torch

    from trainer.models import ExportWrapper

    wrapper = ExportWrapper(model).eval()
    dummy = torch.zeros(2, 3, *size)  # batch 2: nothing may specialise on a batch of one
    axes = {INPUT_NAME: {0: "batch"}} | {n: {0: "batch"} for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about the fixed input size are expected
        kwargs: dict[str, Any] = dict(
            input_names=[INPUT_NAME], output_names=names, dynamic_axes=axes, opset_version=opset
        )
        try:
            torch.onnx.export(wrapper, (dummy,), str(path), dynamo=False, **kwargs)
        except TypeError:  # torch < 2.5 has no dynamo switch and only the TorchScript exporter
            torch.onnx.export(wrapper, (dummy,), str(path), **kwargs)
    model.eval()  # export restores the wrapper's train() flag, which would reach the model


def _protocol(meta: Any) -> DataProtocol:
    """How the run of a checkpoint's meta split its data."""
    config = meta.config or {}
    return DataProtocol(
        fractions=tuple(config.get("split", (0.8, 0.1, 0.1))),  # type: ignore[arg-type]
        seed=int(config.get("seed", 0)),
        holdout=tuple(meta.extra.get("holdout_parts", ())),
        sources=tuple(
            {**s, "path": str(Path(s["path"]).resolve())} for s in config.get("sources", []) if "path" in s
        ),
    )


def export_checkpoint(
    checkpoint: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    data: Sequence[str | Path] | None = None,
    opset: int = 17,
    parity_images: int = 64,
    calibration_images: int = 2000,
    max_diff: float = 1e-3,
    min_agreement: float = 0.99,
    force: bool = False,
    command: str | None = None,
) -> Manifest:
    """Export a checkpoint folder to ``out/model_fp32.onnx`` + ``out/manifest.json`` after a parity check.

    ``checkpoint``: one folder, or several: the runs exported as one ensemble (:mod:`trainer.ensemble`;
    the split recorded in the manifest is the first run's, temperatures are fitted on validation
    images no run trained on). ``data``: data folders for the parity images (default: the first
    checkpoint's training sources).

    Raises:
        ConfigError: bad numbers, or ``out`` already holds a model set and ``force`` is False.
        ModelError: the ONNX model does not reproduce the torch model (nothing is written).
    """
    from trainer.checkpoint import load_checkpoint

    if not 7 <= opset <= 30 or parity_images < 1 or max_diff <= 0 or not 0 <= min_agreement <= 1:
        raise ConfigError(
            f"opset {opset!r} must be 7..30, parity images {parity_images!r} >= 1, max diff {max_diff!r} > 0 "
            f"and min agreement {min_agreement!r} within 0..1"
        )
    out = Path(out)
    if (out / MANIFEST_NAME).is_file() and not force:
        raise ConfigError(f"{str(out)!r} already holds a model set; pass --force to replace it")
    paths = [checkpoint] if isinstance(checkpoint, str | Path) else list(checkpoint)
    members = [load_checkpoint(p) for p in paths]
    protocols = [_protocol(meta) for _, meta in members]
    model, meta = members[0] if len(members) == 1 else combine(members, paths)
    spec = meta.input_spec
    if spec.layout != "NCHW":
        raise ConfigError(f"checkpoint input layout {spec.layout!r} must be NCHW for a torch network")
    protocol = protocols[0]
    every = load_samples(_data_paths(data, meta.config or {}), protocol)
    samples = spread(every, parity_images)
    x = prepare_samples(samples, spec)

    has_color = meta.num_colors > 0
    names = ["part_logits", *(["color_logits"] if has_color else []), "embedding"]
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / FP32_NAME
    tmp = out / f".{FP32_NAME}.tmp"
    _trace_to_onnx(model, tmp, spec.size, opset, names)
    tmp.replace(onnx_path)
    entry = make_file_entry(out, FP32_NAME, "onnxruntime", "fp32", input_name=INPUT_NAME)
    manifest = Manifest(
        architecture=meta.name,
        input=spec,
        outputs=OutputNames(color_logits="color_logits" if has_color else None),
        parts=list(meta.label_map.parts),
        colors=list(meta.label_map.colors),
        embedding_dim=meta.embedding_dim,
        files=[entry],
    )
    with create_engine("onnxruntime", out, manifest, precision="fp32", threads=2) as engine:
        exported = engine.run(x)
        figures = parity_figures(_torch_outputs(model, x), exported)
        figures.update(max_diff_limit=max_diff, min_agreement_limit=min_agreement)
        try:
            check_parity(figures, max_diff, min_agreement)
        except ModelError:
            onnx_path.unlink(missing_ok=True)
            raise
        temps: dict[str, float] = {}
        calibration: dict[str, Any] = {"images": 0}
        if calibration_images > 0:
            splits = [split_like_training(every, p)[0] for p in protocols]
            val = spread(shared_validation(splits), calibration_images)  # one run: its val split
            if val:
                temps, calibration = calibrate_temperatures(engine, manifest, val)
                log.info("temperature scaling on %d validation images: %s", len(val), temps)
            else:
                log.warning("no validation split in the data: probabilities stay uncalibrated (T = 1)")
    build = build_record(command) | {
        "opset": opset,
        "checkpoint": {
            "path": str(Path(paths[0]).resolve()),
            "stage": meta.stage,
            "epoch": meta.epoch,
            "step": meta.step,
            "metrics": {k: v for k, v in meta.metrics.items() if isinstance(v, int | float | str)},
            # a weight average (trainer average): the epochs it is the mean of
            **({"averaged_from": meta.extra["averaged_from"]} if "averaged_from" in meta.extra else {}),
            # an ensemble (several --checkpoint): its members; the fields above are the first's
            **({"ensemble_of": meta.extra["ensemble_of"]} if "ensemble_of" in meta.extra else {}),
        },
        "data": protocol.as_dict(),
        # an ensemble: each member's split (the held-out images no member trained on, for quantize)
        **({"data_members": [p.as_dict() for p in protocols]} if len(protocols) > 1 else {}),
    }
    manifest = manifest.model_copy(
        update={
            "build": build,
            "temperatures": temps,
            "evaluation": {"export_parity": figures, "temperature_scaling": calibration},
        }
    )
    write_manifest(out, manifest)
    log.info(
        "exported %s: max |diff| %s, part top-1 agreement %.3f on %d images",
        onnx_path,
        {k: f"{v:.2g}" for k, v in figures["max_abs_diff"].items()},
        figures["part_top1_agreement"],
        figures["images"],
    )
    return manifest


# ---- command line --------------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trainer export``."""
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX with a parity check (a model set)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        nargs="+",
        type=Path,
        help="checkpoint folder (e.g. <run>/best); several: their runs exported as one ensemble "
        "(trainer.ensemble: the members' answers averaged in one ONNX graph)",
    )
    p.add_argument("--out", required=True, type=Path, help="model set folder to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument(
        "--data", nargs="+", type=Path, help="data folders for the parity images (default: training's)"
    )
    p.add_argument("--parity-images", type=int, default=64, help="real images compared (default 64)")
    p.add_argument(
        "--calibration-images",
        type=int,
        default=2000,
        help="validation images for temperature scaling (default 2000; 0: none)",
    )
    p.add_argument("--max-diff", type=float, default=1e-3, help="largest allowed |onnx - torch| (1e-3)")
    p.add_argument("--min-agreement", type=float, default=0.99, help="minimum top-1 agreement (0.99)")
    p.add_argument("--force", action="store_true", help="replace an existing model set in --out")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run ``trainer export``."""
    manifest = export_checkpoint(
        args.checkpoint,
        args.out,
        data=args.data,
        opset=args.opset,
        parity_images=args.parity_images,
        calibration_images=args.calibration_images,
        max_diff=args.max_diff,
        min_agreement=args.min_agreement,
        force=args.force,
    )
    parity = manifest.evaluation["export_parity"]
    print(
        f"{args.out / FP32_NAME}: {len(manifest.parts)} parts, {len(manifest.colors)} colours, "
        f"embedding {manifest.embedding_dim}; parity on {parity['images']} images: "
        f"max |diff| {max(parity['max_abs_diff'].values()):.2g}, "
        f"part top-1 agreement {parity['part_top1_agreement']:.3f}"
    )
    return 0
