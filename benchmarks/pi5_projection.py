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
from benchmarks.pi5_measured import compare, compare_markdown, load_bench  # noqa: E402
from benchmarks.pi5_rates import SOURCES, generic_factors, gmacs_per_s, pi5_rates, run_sysbench  # noqa: E402
from benchmarks.pi5_stages import _plan_rows, _project_rows, _sum_rows  # noqa: E402

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
