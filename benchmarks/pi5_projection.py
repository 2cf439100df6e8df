"""A Raspberry Pi 5 projection of the daemon's compute per part, until a Pi measures it.

    python benchmarks/pi5_projection.py [--results benchmarks/results] [--config config/sim.yaml] \\
        [--model-set models/default] [--parts 12] [--work /tmp/pi5_projection] [--sysbench] \\
        [--json FILE] [--markdown FILE] [--note TEXT]

    python benchmarks/pi5_projection.py --measured PI_BENCH.json \\
        [--projection benchmarks/results/pi5_projection.json] [--segmenter hsv] \\
        [--json FILE] [--markdown FILE]

Nothing here ran on a Pi. Per stage of one part (the config's views of 640x480 frames) the script puts
side by side:

- **operation counts** it computes: multiply-accumulates of the networks from their ONNX graphs
  (:mod:`benchmarks.onnx_macs`: the default model set's int8 file at a batch of the part's views;
  the plan's U-2-Net at 320 px exported by :mod:`benchmarks.u2net`; torchvision's EfficientNet-B0
  features at 224 px), and for the image work the pixels each OpenCV/numpy call of HSV keying and
  cropping passes over, measured on the sim rig's replay frames (the sizes of the shrunk search
  frame, the box keyed at full size and the crop square, per view);
- **x86 milliseconds** read from the recorded results (``edge_bench_sim.json``: ``edge bench`` on the
  sim rig, the ``hsv`` row, p50 per part; ``plan_pipeline.json``: both pipelines per view, one thread
  each), never re-measured here;
- **Pi 5 scale factors** from published figures (:data:`benchmarks.pi5_rates.SOURCES`, each with its
  address and the exact figure). For a network the Pi 5 time is its MACs over a published Pi 5 rate
  for the same runtime and precision (MACs / latency of a published model), so the x86 time cancels:
  the factor shown is that time over the x86 one. Image work has no published Pi 5 figure for these
  calls, so its factor is a range between per-core proxies (see
  :func:`benchmarks.pi5_rates.generic_factors`);
- the **projected Pi 5 milliseconds**, low and high, and their geometric mean; the parts per minute
  the compute alone allows (capture, turning and the chute are not compute); and the projected ratio
  of the plan's pipeline to the project's.

``--measured FILE`` reads an ``edge bench --json`` file from a Pi (``edge bench --json FILE`` on the
Pi, the default sim config or the rig's own) and the projection's JSON, and writes measured against
projected per stage: the measurement that replaces the projection.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from benchmarks.machine import cpu_model  # noqa: E402
from benchmarks.onnx_macs import count_macs  # noqa: E402
from benchmarks.pi5_markdown import markdown  # noqa: E402
from benchmarks.pi5_measured import bench_row, compare, compare_markdown, load_bench  # noqa: E402
from benchmarks.pi5_rates import SOURCES, generic_factors, gmacs_per_s, pi5_rates, run_sysbench  # noqa: E402

# --- operation counts ------------------------------------------------------------------------------


def _manifest_model(model_set: Path) -> tuple[Path, Any]:
    from edge.manifest import load_manifest

    manifest = load_manifest(model_set)
    entry = next((f for f in manifest.files if f.runtime == "onnxruntime" and f.precision == "int8"), None)
    if entry is None:
        raise SystemExit(f"{model_set}: the model set has no onnxruntime int8 file to count")
    return model_set / entry.path, manifest


def plan_models(work: Path) -> dict[str, Path]:
    """The plan's networks as ONNX files in ``work`` (exported once, random weights; torch needed)."""
    work.mkdir(parents=True, exist_ok=True)
    u2net = work / "u2net_320.onnx"
    if not u2net.is_file():
        from benchmarks.u2net import export_onnx

        export_onnx("u2net", u2net, 320)
    effnet = work / "efficientnet_b0_features_224.onnx"
    if not effnet.is_file():
        import torch
        import torchvision

        net = torchvision.models.efficientnet_b0(weights=None).eval()
        # What plan_pipeline runs: features, average pool, flatten (the 1280-d embedding).
        model = torch.nn.Sequential(net.features, net.avgpool, torch.nn.Flatten(1)).eval()
        with torch.inference_mode():
            torch.onnx.export(
                model, (torch.zeros(1, 3, 224, 224),), str(effnet), dynamo=False, opset_version=17
            )
    return {"u2net_320": u2net, "efficientnet_b0_224": effnet}


def efficientnet_b0_check(features_macs: int) -> dict[str, Any]:
    """The counter against torchvision's published size of EfficientNet-B0 (its ``_ops``)."""
    import torchvision

    ops = float(torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1.meta["_ops"])
    classifier = 1280 * 1000  # the Linear layer the plan leaves out
    counted = (features_macs + classifier) / 1e9
    return {
        "torchvision_ops": ops,
        "counted_gmacs_with_classifier": counted,
        "ratio": counted / ops,
        "source": "torchvision EfficientNet_B0_Weights.IMAGENET1K_V1.meta['_ops'] (installed torchvision "
        f"{torchvision.__version__})",
    }


def measure_views(config: Path, parts: int) -> dict[str, Any]:
    """Sizes the HSV path and the crop work on, per view, over ``parts`` parts of the config's camera."""
    import numpy as np

    from edge.camera import create_camera
    from edge.preprocess import _square_around
    from edge.segment import create_segmenter
    from edge.settings import load_edge_config

    cfg = load_edge_config(config)
    if cfg.segmenter.type != "hsv":
        raise SystemExit(
            f"{config}: the projection counts HSV keying; the config's segmenter is {cfg.segmenter.type!r}"
        )
    segmenter = create_segmenter(cfg.segmenter, calibration=cfg.calibration)
    hcfg = segmenter.hsv_config  # type: ignore[attr-defined]
    boxes: list[int] = []
    inner = segmenter._raw_mask  # type: ignore[attr-defined]

    def recording(frame: np.ndarray) -> np.ndarray:
        boxes.append(int(frame.shape[0] * frame.shape[1]))
        return inner(frame)

    segmenter._raw_mask = recording  # type: ignore[attr-defined]
    camera = create_camera(cfg.camera, calibration=cfg.calibration)
    views, step = cfg.capture.views, cfg.capture.step_deg
    margin = None
    per_view: list[dict[str, int]] = []
    try:
        from edge.manifest import load_manifest

        margin = load_manifest(Path(cfg.engine.model_set)).input.crop_margin
    except Exception:
        margin = 0.1
    with camera:
        for _ in range(parts):
            camera.next_part()  # type: ignore[attr-defined]
            for v in range(views):
                camera.set_angle(v * step)  # type: ignore[attr-defined]
                frame = camera.capture().image
                before = len(boxes)
                _mask, _count, box = segmenter.mask_count_box(frame)
                h, w = frame.shape[:2]
                fine = boxes[-1] if len(boxes) > before else h * w  # whole-frame path: keyed whole
                side = _square_around(box, margin)[2] if box is not None else min(h, w)
                part_box = (box[2] - box[0]) * (box[3] - box[1]) if box is not None else 0
                per_view.append(
                    {
                        "frame_px": h * w,
                        "coarse_px": (h // hcfg.search_scale) * (w // hcfg.search_scale),
                        "fine_px": fine,
                        "part_box_px": part_box,
                        "crop_side": int(side),
                    }
                )
            camera.remove_part()  # type: ignore[attr-defined]
    segmenter.close()
    med = {k: int(statistics.median(v[k] for v in per_view)) for k in per_view[0]}
    return {
        "parts": parts,
        "views": views,
        "views_measured": len(per_view),
        "search_scale": hcfg.search_scale,
        "crop_margin": margin,
        "median_per_view": med,
        "max_fine_px": max(v["fine_px"] for v in per_view),
    }


def hsv_pixel_steps(v: dict[str, int]) -> int:
    """Pixels passed through the HSV path's OpenCV/numpy calls for one view (``edge/segment/hsv.py``,
    ``regions.py``): on the shrunk frame resize, RGB->HSV, inRange, not, findContours (5 passes); on the
    box keyed at full size blur, RGB->HSV, inRange, not, binarise, opening (erode + dilate), closing
    (erode + dilate), labelling (9 passes); the zeroed output mask (1 pass of the frame); on the part's
    box the bounding box, pixel count, hole filling and copy-out (4 passes)."""
    return 5 * v["coarse_px"] + 9 * v["fine_px"] + v["frame_px"] + 4 * v["part_box_px"]


def crop_pixel_steps(v: dict[str, int], size: tuple[int, int]) -> int:
    """Pixels through ``edge.preprocess`` for one view: the crop square copied and read by the resize
    (2 passes of side^2), then the network input split and normalised by look-up (2 passes)."""
    return 2 * v["crop_side"] ** 2 + 2 * size[0] * size[1]


# --- x86 figures from the recorded results ---------------------------------------------------------


def load_plan(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"{path}: cannot read the plan pipeline's results: {exc}") from None
    need = ("plan_stages", "project_stages", "plan", "views", "ratio", "cpu_ratio", "plan_threads")
    missing = [k for k in need if k not in data]
    if missing or data.get("quick"):
        raise SystemExit(
            f"{path}: not a full run of benchmarks/plan_pipeline.py (missing {missing or 'quick run'})"
        )
    return data


# --- the projection --------------------------------------------------------------------------------


def _row(
    stage: str,
    ops: dict[str, Any],
    x86_ms: float,
    x86_source: str,
    pi_low: float,
    pi_high: float,
    factor_source: str,
) -> dict[str, Any]:
    return {
        "stage": stage,
        "ops": ops,
        "x86_ms": x86_ms,
        "x86_source": x86_source,
        "factor": {
            "low": pi_low / x86_ms if x86_ms > 0 else None,
            "high": pi_high / x86_ms if x86_ms > 0 else None,
            "source": factor_source,
        },
        "pi5_ms": {"low": pi_low, "high": pi_high, "mid": math.sqrt(pi_low * pi_high)},
    }


def _nn_ms(
    macs: int, int8_macs: int, fp_rate: dict[str, Any], int8_rate: dict[str, Any] | None
) -> tuple[float, float]:
    """Milliseconds (fast, slow) for ``macs`` of which ``int8_macs`` run in int8."""
    float_g, int8_g = (macs - int8_macs) / 1e9, int8_macs / 1e9
    if int8_rate is None:
        float_g, int8_g = macs / 1e9, 0.0
        int8_rate = fp_rate
    fast = 1000 * (float_g / fp_rate["high"] + int8_g / int8_rate["high"])
    slow = 1000 * (float_g / fp_rate["low"] + int8_g / int8_rate["low"])
    return fast, slow


def _sum_rows(rows: list[dict[str, Any]]) -> dict[str, float]:
    low = sum(r["pi5_ms"]["low"] for r in rows)
    high = sum(r["pi5_ms"]["high"] for r in rows)
    return {"low": low, "high": high, "mid": math.sqrt(low * high), "x86": sum(r["x86_ms"] for r in rows)}


def _ops(value: int | None, unit: str, detail: str) -> dict[str, Any]:
    """A row's operation count: how many of what (None: not counted), and how it was counted."""
    return {"value": value, "unit": unit, "detail": detail}


def _generic_row(
    stage: str, ops: dict[str, Any], x86_ms: float, x86_source: str, gen: dict[str, Any]
) -> dict[str, Any]:
    """A row of image work: its x86 time scaled by the generic per-core factors' range."""
    source = "per-core proxies (generic): " + ", ".join(
        f"{k} {val:.2f}x" for k, val in gen["candidates"].items()
    )
    return _row(stage, ops, x86_ms, x86_source, x86_ms * gen["low"], x86_ms * gen["high"], source)


def _project_rows(
    bench: dict[str, Any],
    bench_path: Path,
    v: dict[str, int],
    manifest: Any,
    macs: Any,
    rates: dict[str, Any],
    gen: dict[str, Any],
) -> list[dict[str, Any]]:
    """The project's stages per part: ``edge bench``'s hsv row (p50) scaled to a Pi 5."""
    hsv = bench_row(bench, "hsv", bench_path)["stages"]
    views = int(bench["views"])
    size = tuple(manifest.input.size)
    src = f"{bench_path.name}: hsv row, p50 per part ({bench['threads']} threads)"

    seg_px, crop_px = hsv_pixel_steps(v), crop_pixel_steps(v, size)
    fast, slow = _nn_ms(macs.total, macs.int8, rates["onnxruntime/fp32"], rates["onnxruntime/int8"])
    parts, colors = len(manifest.parts), len(manifest.colors)
    rows = [
        _generic_row(
            "segment (HSV keying)",
            _ops(views * seg_px, "pixel-steps", f"{views} views x {seg_px:,}"),
            hsv["segment"]["p50"],
            src,
            gen,
        ),
        _generic_row(
            "preprocess (crop, resize, normalise)",
            _ops(views * crop_px, "pixel-steps", f"{views} views x {crop_px:,}"),
            hsv["preprocess"]["p50"],
            src,
            gen,
        ),
        _row(
            f"infer (EfficientNet-Lite0 int8, {size[0]} px, one batch)",
            _ops(macs.total, "MACs", f"{macs.int8:,} int8 + {macs.float:,} float"),
            hsv["infer"]["p50"],
            src,
            fast,
            slow,
            "MACs / Pi 5 ONNX Runtime rates: float MACs at fp32, int8 MACs at int8 (rates table)",
        ),
        _generic_row(
            "fuse (classifier + fusion)",
            _ops(views * (parts + colors), "logits", f"{views} views x ({parts} parts + {colors} colours)"),
            hsv["fuse"]["p50"],
            src,
            gen,
        ),
    ]
    if hsv["search"]["p50"] > 0:
        ops = _ops(None, "index queries", "not counted")
        rows.append(_generic_row("search", ops, hsv["search"]["p50"], src, gen))
    return rows


def _plan_rows(
    plan: dict[str, Any],
    views: int,
    v: dict[str, int],
    u2: Any,
    eff: Any,
    rates: dict[str, Any],
    gen: dict[str, Any],
) -> list[dict[str, Any]]:
    """The plan's stages per part: plan_pipeline.json's per-view milliseconds x the part's views."""
    ps = plan["plan_stages"]  # ms per view, one thread
    src = f"plan_pipeline.json: plan_stages x {views} views (1 thread)"
    count = int(plan["plan"]["count"])
    dim = 1280
    search_bytes = count * dim * 4
    bw = SOURCES["tinymembench_pi5"]["values_mb_s"]
    u2_fast, u2_slow = _nn_ms(views * u2.total, 0, rates["onnxruntime/fp32"], None)
    eff_fast, eff_slow = _nn_ms(views * eff.total, 0, rates["pytorch/fp32"], None)
    return [
        _row(
            "segment (U-2-Net 320 px, ONNX Runtime fp32)",
            _ops(views * u2.total, "MACs", f"{views} x {u2.total:,}"),
            views * ps["segment"],
            src,
            u2_fast,
            u2_slow,
            "MACs / Pi 5 ONNX Runtime fp32 rate (rates table)",
        ),
        _generic_row(
            "preprocess (box, resize, normalise)",
            _ops(
                views * (2 * v["frame_px"] + v["part_box_px"] + 2 * 224 * 224),
                "pixel-steps",
                "alpha threshold + nonzero over the frame, the box resized, 224 px normalised",
            ),
            views * ps["preprocess"],
            src,
            gen,
        ),
        _row(
            "infer (EfficientNet-B0 224 px, PyTorch fp32)",
            _ops(views * eff.total, "MACs", f"{views} x {eff.total:,}"),
            views * ps["infer"],
            src,
            eff_fast,
            eff_slow,
            "MACs / Pi 5 PyTorch fp32 rate (rates table)",
        ),
        _row(
            f"search (brute force, {count:,} x {dim} fp32)",
            _ops(
                views * search_bytes,
                "bytes read",
                f"{views} x {search_bytes:,} ({views * count * dim:,} MACs)",
            ),
            views * ps["search"],
            src,
            1000 * views * search_bytes / (bw["scan64_4gb"] * 1e6),
            1000 * views * search_bytes / (bw["copy_8gb"] * 1e6),
            "bytes / Pi 5 memory bandwidth, tinymembench scan 64 .. copy (tinymembench_pi5)",
        ),
    ]


def project(args: argparse.Namespace) -> dict[str, Any]:
    """The projection (the JSON :func:`markdown` draws): operation counts, x86 milliseconds and
    Pi 5 factors per stage of the project's pipeline and of the plan's, their totals and ratio."""
    results = Path(args.results)
    bench_path = results / "edge_bench_sim.json"
    bench = load_bench(bench_path)
    plan = load_plan(results / "plan_pipeline.json")
    views = int(bench["views"])
    model_path, manifest = _manifest_model(Path(args.model_set))
    macs = count_macs(model_path, batch=views)
    print(
        f"project model: {macs.total / 1e9:.3f} GMACs for {views} views ({macs.int8 / macs.total:.0%} int8)",
        flush=True,
    )
    plan_files = plan_models(Path(args.work))
    u2 = count_macs(plan_files["u2net_320"])
    eff = count_macs(plan_files["efficientnet_b0_224"])
    print(
        f"plan: U-2-Net 320 {u2.total / 1e9:.2f} GMACs, EfficientNet-B0 224 {eff.total / 1e9:.3f} GMACs",
        flush=True,
    )
    measured = measure_views(Path(args.config), args.parts)
    v = measured["median_per_view"]
    print(f"views: {json.dumps(measured['median_per_view'])}", flush=True)
    rates = pi5_rates()
    x86_u2_rate = gmacs_per_s(u2.total / 1e9, plan["plan_stages"]["segment"])
    sysbench = run_sysbench() if args.sysbench else None
    gen = generic_factors(x86_u2_rate, rates, sysbench)
    project_rows = _project_rows(bench, bench_path, v, manifest, macs, rates, gen)
    plan_rows = _plan_rows(plan, views, v, u2, eff, rates, gen)
    proj_total, plan_total = _sum_rows(project_rows), _sum_rows(plan_rows)
    ratio = {
        "low": plan_total["low"] / proj_total["high"],
        "high": plan_total["high"] / proj_total["low"],
        "mid": plan_total["mid"] / proj_total["mid"],
        "x86_per_part_from_plan_pipeline": plan["ratio"],
        "x86_cpu_time_from_plan_pipeline": plan["cpu_ratio"],
    }
    per_minute = {k: 60000.0 / proj_total[k] for k in ("low", "high", "mid")}
    plan_per_minute = {k: 60000.0 / plan_total[k] for k in ("low", "high", "mid")}
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), "
        f"Python {platform.python_version()}" + (f"; {args.note}" if args.note else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "git": git.stdout.strip(),
        "views": views,
        "model": str(model_path.relative_to(REPO) if model_path.is_relative_to(REPO) else model_path),
        "macs": {
            "project_part": macs.as_dict(),
            "project_view": count_macs(model_path, batch=1).as_dict(),
            "u2net_320_view": u2.as_dict(),
            "efficientnet_b0_224_view": eff.as_dict(),
            "efficientnet_b0_check": efficientnet_b0_check(eff.total),
        },
        "views_measured": measured,
        "x86_sources": {
            "edge_bench_sim.json": {
                "camera": bench.get("camera"),
                "model": bench.get("model"),
                "threads": bench.get("threads"),
                "parts": bench.get("parts"),
            },
            "plan_pipeline.json": {
                "plan_threads": plan["plan_threads"],
                "project_threads": plan.get("project_threads"),
                "machine": plan.get("machine"),
            },
        },
        "pi5_rates_gmacs_per_s": rates,
        "generic_factor": gen,
        "project": {"rows": project_rows, "total": proj_total, "parts_per_minute": per_minute},
        "plan": {"rows": plan_rows, "total": plan_total, "parts_per_minute": plan_per_minute},
        "ratio_plan_over_project": ratio,
        "sources": SOURCES,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "sim.yaml")
    parser.add_argument("--model-set", type=Path, default=REPO / "models" / "default")
    parser.add_argument(
        "--parts", type=int, default=12, help="sim parts whose views are measured for pixel counts"
    )
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/pi5_projection"), help="cache of exported ONNX files"
    )
    parser.add_argument(
        "--sysbench",
        action="store_true",
        help="also run sysbench's one-thread CPU test here (10 s) for the image-work factor; run at the "
        "priority the recorded x86 results had",
    )
    parser.add_argument(
        "--measured", type=Path, help="an `edge bench --json` file from a Pi: compare, do not project"
    )
    parser.add_argument(
        "--projection",
        type=Path,
        default=REPO / "benchmarks" / "results" / "pi5_projection.json",
        help="the projection's JSON that --measured compares against",
    )
    parser.add_argument(
        "--segmenter", default="hsv", help="the `edge bench` row --measured compares (default hsv)"
    )
    parser.add_argument("--note", default="", help="added to the machine line")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    if args.measured is not None:
        bench = load_bench(args.measured)
        try:
            projection = json.loads(args.projection.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SystemExit(
                f"{args.projection}: no projection JSON; run pi5_projection.py --json FILE first"
            ) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"{args.projection}: cannot read the projection: {exc}") from None
        result = compare(projection, bench, args.segmenter, args.measured)
        text = compare_markdown(result)
    else:
        if args.parts < 1:
            raise SystemExit("--parts must be at least 1")
        result = project(args)
        text = markdown(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
