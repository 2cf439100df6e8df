"""``edge bench``: per-stage latency of the pipeline for each background-removal option.

The same captured parts (by default the sim camera's replayed or rendered frames) go through the
pipeline once per segmenter: ``none`` and ``hsv`` always, ``u2net``/``mobileseg`` when a model file
is present (the configured one, or ``<model sets>/segment/u2net*.onnx`` / ``mobileseg*.onnx``).
Each stage (capture, segment, preprocess, infer, search, fuse) and the total are reported as p50
and p95 in ms, with the resident memory after the option ran and each option's total p50 relative
to ``none`` measured in the same run. One untimed warm-up part per option absorbs first-run costs.

The pipeline's ``overhead`` is its work beyond the model's inference and the camera: segment,
preprocess, search and fuse, summed per part. ``overhead_pct_of_infer`` is its p50 as a percentage
of the infer p50 of the same run (a ratio of two figures from one run, so it carries across machines
better than either figure).

The result also says where it ran (``machine``: architecture, the board's name where the system
gives one, e.g. "Raspberry Pi 5 Model B Rev 1.0", CPU, cores, Python, library versions), so a
``--json`` file from a Pi can replace the projection in ``benchmarks/pi5_projection.py --measured``.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge.camera import EndOfStream, Frame
from edge.config import StrictModel
from edge.errors import ConfigError, ModelError
from edge.feeder import SimulatedRig
from edge.manifest import load_manifest
from edge.memory import resident_mb
from edge.part import STAGES
from edge.pipeline import Pipeline
from edge.segment import create_segmenter, parse_segmenter_config
from edge.settings import EdgeConfig

log = logging.getLogger(__name__)

#: The stages summed into the pipeline's overhead: all but the camera and the model's inference.
OVERHEAD_STAGES: tuple[str, ...] = tuple(s for s in STAGES if s not in ("capture", "infer"))

#: The HSV option when the config's segmenter is not HSV: keys out the grey disc and dark surround.
DEFAULT_HSV: dict[str, Any] = {
    "type": "hsv",
    "background_lower": [0, 0, 0],
    "background_upper": [179, 60, 255],
}
MODEL_SEGMENTERS = ("u2net", "mobileseg")


def _found_model(cfg: EdgeConfig, key: str) -> Path | None:
    """A model file for segmenter ``key``: the configured one, else (mobileseg) the first the model
    set's manifest lists, else one in ``<model sets>/segment/``."""
    if cfg.segmenter.type == key:
        model = Path(cfg.segmenter.model)  # type: ignore[union-attr]
        return model if model.is_file() else None
    if key == "mobileseg":
        try:
            shipped = load_manifest(cfg.engine.model_set).segmenters
        except ModelError:
            shipped = []  # no model set here: the other places may still hold a model
        if shipped:
            return Path(cfg.engine.model_set) / shipped[0].path
    folder = Path(cfg.engine.model_set).parent / "segment"
    hits = sorted(folder.glob(f"{key}*.onnx")) if folder.is_dir() else []
    return hits[0] if hits else None


def segmenter_options(cfg: EdgeConfig, names: list[str] | None = None) -> list[tuple[str, StrictModel]]:
    """(label, config) of each option to bench; ``names`` like ``["none", "hsv", "u2net=PATH"]``."""
    options: list[tuple[str, StrictModel]] = []
    wanted = names if names is not None else ["none", "hsv", *MODEL_SEGMENTERS]
    for item in wanted:
        key, _, path = item.strip().partition("=")
        if key == "none":
            options.append(("none", parse_segmenter_config({"type": "none"})))
        elif key == "hsv":
            options.append(
                ("hsv", cfg.segmenter if cfg.segmenter.type == "hsv" else parse_segmenter_config(DEFAULT_HSV))
            )
        elif key in MODEL_SEGMENTERS:
            model = Path(path) if path else _found_model(cfg, key)
            if model is None or not model.is_file():
                if names is None:
                    continue  # by default, only the options with a model present
                where = path or f"segmenter.model or {Path(cfg.engine.model_set).parent / 'segment'}"
                raise ConfigError(f"no {key} model found at {where!r}; give one as {key}=PATH.onnx")
            base = cfg.segmenter.model_dump() if cfg.segmenter.type == key else {"type": key}
            # The same option twice (e.g. a model's fp32 and int8 files) is told apart by file name.
            label = key if all(k != key for k, _ in options) else f"{key}:{model.stem}"
            options.append((label, parse_segmenter_config({**base, "model": str(model)}, f"bench {label}")))
        else:
            raise ConfigError(
                f"--segmenters entry {item!r} is unknown; use none, hsv, u2net[=MODEL] or mobileseg[=MODEL]"
            )
    return options


def capture_parts(
    pipeline: Pipeline, parts: int, views: int, step_deg: float, rig: SimulatedRig | None = None
) -> list[tuple[list[Frame], float]]:
    """Capture ``parts`` groups of ``views`` frames.

    With the simulated ``rig`` (default: the pipeline's camera when it is the sim camera) a new part
    is fed per group and the turntable turned ``step_deg`` between views; any other camera's frames
    are taken as they come.
    """
    camera = pipeline.camera
    if camera is None:
        raise ConfigError("edge bench needs a camera in the config")
    if rig is None and isinstance(camera, SimulatedRig):
        rig = camera
    sim = rig

    def turn(i: int) -> None:
        if sim is not None:
            sim.set_angle(i * step_deg)

    groups = []
    with camera:
        for _ in range(parts):
            try:
                if rig is not None:
                    rig.next_part()
                    rig.set_angle(0.0)
                groups.append(pipeline.capture_views(views, turn if rig is not None else None))
            except EndOfStream:
                break
            if rig is not None:
                rig.remove_part()
    if not groups:
        raise ConfigError(f"{camera.name} gave no frames to bench")
    return groups


def machine_info() -> dict[str, Any]:
    """What the bench ran on: architecture, board (a Raspberry Pi names itself), CPU, cores, Python
    and the versions of the numeric libraries loaded, so a result file says where it came from."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    board = fields.get("Model", "")
    if not board:
        try:  # Raspberry Pi OS and other device-tree systems
            board = Path("/proc/device-tree/model").read_text(errors="replace").strip("\x00 \n")
        except OSError:
            board = ""
    packages = {}
    for name in ("numpy", "cv2", "onnxruntime", "ai_edge_litert", "tflite_runtime"):
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module is not None else None
        if version:
            packages[name] = str(version)
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {
        "arch": platform.machine(),
        "board": board or None,
        "cpu": fields.get("model name") or fields.get("Hardware") or platform.processor() or None,
        "cores": os.cpu_count(),
        "int8_dot": int8_dot_product(flags),
        "python": platform.python_version(),
        "packages": packages,
    }


def machine_text(info: Mapping[str, Any]) -> str:
    """One sentence naming where figures were measured (from :func:`machine_info`): a model set's
    int8 figures depend on the CPU's int8 instructions."""
    packages = ", ".join(f"{k} {v}" for k, v in info.get("packages", {}).items() if k != "numpy")
    where = info.get("board") or info.get("cpu")
    return (
        f"Measured on {info.get('arch')}, {info.get('cores')} cores ({where}); "
        f"int8 dot product: {info.get('int8_dot')}" + (f"; {packages}" if packages else "") + "."
    )


def int8_dot_product(flags: set[str]) -> str:
    """Which 8-bit dot-product instructions a CPU's ``/proc/cpuinfo`` flags (x86 ``flags``, Arm
    ``Features``) name: what int8 inference runs on. Without them an x86 CPU multiplies int8 in
    16-bit pairs (AVX2 ``vpmaddubsw``), which can saturate, so ONNX Runtime's int8 figures may
    differ between such a machine, one with VNNI and an Arm CPU with ``asimddp`` (the Pi 5)."""
    if "avx512_vnni" in flags:
        return "AVX-512 VNNI"
    if "avx_vnni" in flags:
        return "AVX-VNNI"
    if "asimddp" in flags:
        return "Arm dot product (asimddp)"
    if "avx2" in flags:
        return "none (AVX2 only: 16-bit pairs, may saturate)"
    return "none"


def _pct(values: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def run_bench(
    cfg: EdgeConfig,
    *,
    segmenters: list[str] | None = None,
    frames: int = 40,
    pipeline: Pipeline | None = None,
) -> dict[str, Any]:
    """Bench every option on the same captured parts; returns the JSON-ready result."""
    views = cfg.capture.views
    parts = max(1, frames // views)
    options = segmenter_options(cfg, segmenters)
    own = pipeline is None
    pipeline = pipeline or Pipeline.from_config(cfg)
    try:
        groups = capture_parts(pipeline, parts, views, cfg.capture.step_deg)
        results: list[dict[str, Any]] = []
        original = pipeline.segmenter
        for label, seg_cfg in options:
            segmenter = create_segmenter(seg_cfg, calibration=cfg.calibration)
            pipeline.segmenter = segmenter
            try:
                pipeline.process(groups[0][0])  # warm-up, untimed
                samples: dict[str, list[float]] = {s: [] for s in (*STAGES, "total")}
                overhead: list[float] = []
                for group, capture_ms in groups:
                    timings = pipeline.process(group, capture_ms).timings
                    for stage in samples:
                        samples[stage].append(timings[stage])
                    overhead.append(sum(timings[s] for s in OVERHEAD_STAGES))
                stages = {s: _pct(v) for s, v in samples.items()}
                results.append(
                    {
                        "segmenter": label,
                        "stages": stages,
                        "overhead": _pct(overhead),
                        "overhead_pct_of_infer": 100.0
                        * _pct(overhead)["p50"]
                        / max(stages["infer"]["p50"], 1e-9),
                        "rss_mb": resident_mb(),
                    }
                )
            finally:
                segmenter.close()
                pipeline.segmenter = original
        base = next((r for r in results if r["segmenter"] == "none"), results[0])
        for r in results:
            r["ratio_to_none"] = r["stages"]["total"]["p50"] / max(base["stages"]["total"]["p50"], 1e-9)
        engine = pipeline.engine
        return {
            "machine": machine_info(),
            "camera": pipeline.camera.name if pipeline.camera is not None else None,
            "model": f"{getattr(getattr(engine, 'entry', None), 'key', '?')} {getattr(engine, 'path', '')}",
            "threads": cfg.engine.threads,
            "views": views,
            "parts": len(groups),
            "frames": sum(len(g) for g, _ in groups),
            "stages": [*STAGES, "total"],
            "overhead_stages": list(OVERHEAD_STAGES),
            "options": results,
        }
    finally:
        if own:
            pipeline.close()


def format_table(result: Mapping[str, Any]) -> str:
    """A fixed-width table: one row per option, p50/p95 per stage and of the overhead, the overhead's
    p50 as a percentage of infer's, the ratio to ``none``, memory."""
    stages = list(result["stages"])
    head = (
        f"{'segmenter':<10}"
        + "".join(f"{s:>16}" for s in [*stages, "overhead"])
        + f"{'%infer':>8}{'x none':>8}{'RSS MB':>8}"
    )
    summed = "+".join(result.get("overhead_stages", OVERHEAD_STAGES))
    machine = result.get("machine") or {}
    where = ", ".join(str(v) for v in (machine.get("arch"), machine.get("board") or machine.get("cpu")) if v)
    if machine.get("cores"):
        where += f" ({machine['cores']} cores)"
    lines = [
        f"{result['parts']} parts x {result['views']} views from {result['camera']}; "
        f"model {result['model']}, {result['threads']} threads; ms p50/p95; overhead = {summed} "
        "per part, %infer = its p50 over infer's p50" + (f"; machine {where}" if where else ""),
        head,
        "-" * len(head),
    ]
    for r in result["options"]:
        cells = "".join(
            f"{t['p50']:>8.1f}/{t['p95']:<7.1f}" for t in [*(r["stages"][s] for s in stages), r["overhead"]]
        )
        lines.append(
            f"{r['segmenter']:<10}{cells}{r['overhead_pct_of_infer']:>7.0f}%"
            f"{r['ratio_to_none']:>8.2f}{r['rss_mb']:>8.0f}"
        )
    return "\n".join(lines)
