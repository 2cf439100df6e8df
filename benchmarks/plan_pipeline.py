"""The original plan's pipeline against the project's, per view, on the same frames in one process.

    python benchmarks/plan_pipeline.py [--views 8] [--rounds 3] [--u2net u2net|u2netp]
        [--count 94000] [--config config/sim.yaml] [--threads N] [--engine-threads N]
        [--markdown FILE] [--json FILE] [--quick]

The plan (as first written for the rig), built here from random weights, since only its cost is
measured:

- background removal as rembg does it: the frame resized to 320x320 (Lanczos), scaled by its
  maximum and ImageNet-normalised, U-2-Net (``benchmarks/u2net.py``: the authors' layer structure,
  44.0 M parameters) exported to ONNX and run by ONNX Runtime fp32 (every core, or ``--threads``),
  its first output min-max scaled and resized back to the frame (Lanczos), the frame cut out;
- PyTorch EfficientNet-B0 fp32 (torchvision, ``weights=None``; ``--threads``) at 224x224 on the
  cut-out's box, its 1280-d pooled features as the embedding;
- brute-force cosine search of that embedding over ``--count`` x 1280 float32 unit vectors
  (numpy matrix-vector product, top 5).

The project's side: ``edge.pipeline.Pipeline`` built from ``--config`` (default the sim rig: HSV
keying, the default model set's ONNX int8 model, classifier recognition), ``process()`` on the same
views, one engine batch per part of ``capture.views`` views, as the daemon runs it.

Both sides get the same frames from the config's camera (the sim rig's replay frames by default).
One untimed warm-up each, then ``--rounds`` rounds, each timing the plan on every view and then
the project on every part; each side's figure is the median over rounds of its milliseconds per
view, by wall clock and by process CPU time, and the ratio is plan / project. On a shared machine
run one thread a side (``--threads 1 --engine-threads 1``) and read the CPU time. ``--quick``
shrinks everything (U-2-Netp at 64 px, EfficientNet-B0 at 64 px, 2,000 vectors, one part) to check
that the script runs; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.machine import cpu_model  # noqa: E402

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
EMBEDDING_DIM = 1280  # EfficientNet-B0's pooled features
PLAN_STAGES = ("segment", "preprocess", "infer", "search")


@dataclass
class Sizes:
    """What the plan's pipeline is built at (the full plan, or ``--quick``'s toy)."""

    u2net: str = "u2net"
    seg_size: int = 320
    cls_size: int = 224
    count: int = 94_000


@dataclass
class PlanPipeline:
    """rembg-style U-2-Net cut-out, EfficientNet-B0 embedding, brute-force cosine search."""

    sizes: Sizes
    work: Path
    threads: int = os.cpu_count() or 1
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import onnxruntime as ort
        import torch
        import torchvision

        from benchmarks.u2net import export_onnx

        path = export_onnx(self.sizes.u2net, self.work / f"{self.sizes.u2net}.onnx", self.sizes.seg_size)
        # rembg's session: default options (every core), CPU provider; --threads caps it.
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.torch = torch
        # Every core, as the plan's PC-style code would run (OMP_NUM_THREADS=1 would otherwise
        # leave PyTorch one thread while the project's engine gets its configured threads).
        torch.set_num_threads(self.threads)
        self.net = torchvision.models.efficientnet_b0(weights=None).eval()
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((self.sizes.count, EMBEDDING_DIM), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        self.index = vectors

    def segment(self, frame: np.ndarray) -> np.ndarray:
        """rembg's ``remove``: the U-2-Net mask at the model's size, resized back, and the cut-out."""
        size = self.sizes.seg_size
        small = cv2.resize(frame, (size, size), interpolation=cv2.INTER_LANCZOS4).astype(np.float32)
        small /= max(float(small.max()), 1e-6)
        x = ((small - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)[None].astype(np.float32)
        pred = self.session.run(None, {self.input_name: x})[0][0, 0]
        lo, hi = float(pred.min()), float(pred.max())
        pred = (pred - lo) / max(hi - lo, 1e-12)
        alpha = cv2.resize(
            (pred * 255).astype(np.uint8), frame.shape[1::-1], interpolation=cv2.INTER_LANCZOS4
        )
        return (frame.astype(np.float32) * (alpha[..., None] / np.float32(255))).astype(np.uint8), alpha

    def preprocess(self, cutout: np.ndarray, alpha: np.ndarray) -> Any:
        """The cut-out's box (alpha > half), resized to the classifier's input, ImageNet-normalised."""
        ys, xs = np.nonzero(alpha > 127)
        box = cutout[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if ys.size else cutout
        size = self.sizes.cls_size
        img = cv2.resize(box, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
        x = ((img - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)[None]
        return self.torch.from_numpy(np.ascontiguousarray(x))

    def infer(self, x: Any) -> np.ndarray:
        with self.torch.inference_mode():
            feats = self.net.avgpool(self.net.features(x)).flatten(1)
        return feats[0].numpy()

    def search(self, embedding: np.ndarray, k: int = 5) -> np.ndarray:
        query = embedding / max(float(np.linalg.norm(embedding)), 1e-12)
        scores = self.index @ query
        top = np.argpartition(-scores, k)[:k]
        return top[np.argsort(-scores[top])]

    def run_view(self, frame: np.ndarray) -> None:
        """One view through the plan, adding each stage's milliseconds to :attr:`timings`."""
        steps: list[tuple[str, Callable[..., Any]]] = [
            ("segment", self.segment),
            ("preprocess", self.preprocess),
            ("infer", self.infer),
            ("search", self.search),
        ]
        value: Any = (frame,)
        for name, step in steps:
            start = time.perf_counter()
            value = step(*value) if isinstance(value, tuple) else step(value)
            self.timings[name] = self.timings.get(name, 0.0) + (time.perf_counter() - start) * 1000


def capture(config: Path, views: int, threads: int | None = None) -> tuple[Any, list[list[Any]], int]:
    """The project's pipeline from ``config``, ``views`` frames in parts of ``capture.views``, and
    its engine's threads."""
    from edge.bench import capture_parts
    from edge.pipeline import Pipeline
    from edge.settings import load_edge_config

    cfg = load_edge_config(config)
    if threads is not None:
        cfg = cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"threads": threads})})
    pipeline = Pipeline.from_config(cfg)
    per_part = cfg.capture.views
    groups = capture_parts(pipeline, max(1, views // per_part), per_part, cfg.capture.step_deg)
    return pipeline, [frames for frames, _ in groups], cfg.engine.threads


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build both pipelines, time them in alternating rounds; the JSON-ready result."""
    sizes = Sizes(u2net=args.u2net, count=args.count)
    views = args.views
    if args.quick:
        sizes, views = Sizes(u2net="u2netp", seg_size=64, cls_size=64, count=2_000), 1
    pipeline, parts, threads = capture(args.config, views, args.engine_threads)
    frames = [f.image for part in parts for f in part]
    with tempfile.TemporaryDirectory() as work:
        plan = PlanPipeline(sizes, Path(work), threads=args.threads)
        plan.run_view(frames[0])  # warm-up, untimed
        pipeline.process(parts[0])
        plan_ms: list[float] = []
        project_ms: list[float] = []
        plan_cpu: list[float] = []
        project_cpu: list[float] = []
        plan_stages: list[dict[str, float]] = []
        project_stages: list[dict[str, float]] = []
        for _ in range(args.rounds):
            plan.timings = {}
            start, cpu = time.perf_counter(), time.process_time()
            for frame in frames:
                plan.run_view(frame)
            plan_ms.append((time.perf_counter() - start) * 1000 / len(frames))
            plan_cpu.append((time.process_time() - cpu) * 1000 / len(frames))
            plan_stages.append({s: plan.timings[s] / len(frames) for s in PLAN_STAGES})
            sums: dict[str, float] = {}
            start, cpu = time.perf_counter(), time.process_time()
            for part in parts:
                timings = pipeline.process(part).timings
                for stage in ("segment", "preprocess", "infer", "search", "fuse"):
                    sums[stage] = sums.get(stage, 0.0) + timings[stage]
            project_ms.append((time.perf_counter() - start) * 1000 / len(frames))
            project_cpu.append((time.process_time() - cpu) * 1000 / len(frames))
            project_stages.append({s: v / len(frames) for s, v in sums.items()})
        pipeline.close()
    plan_med, project_med = statistics.median(plan_ms), statistics.median(project_ms)
    engine = pipeline.engine
    return {
        "quick": bool(args.quick),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}",
        "config": str(args.config),
        "model": f"{getattr(getattr(engine, 'entry', None), 'key', '?')} {getattr(engine, 'path', '')}",
        "plan": {
            "u2net": sizes.u2net,
            "seg_size": sizes.seg_size,
            "cls_size": sizes.cls_size,
            "count": sizes.count,
        },
        "plan_threads": plan.threads,
        "project_threads": threads,
        "views": len(frames),
        "rounds": args.rounds,
        "plan_ms_per_view": plan_ms,
        "project_ms_per_view": project_ms,
        "plan_stages": _median_stages(plan_stages),
        "project_stages": _median_stages(project_stages),
        "plan_median": plan_med,
        "project_median": project_med,
        "ratio": plan_med / max(project_med, 1e-9),
        "plan_cpu_ms_per_view": plan_cpu,
        "project_cpu_ms_per_view": project_cpu,
        "cpu_ratio": statistics.median(plan_cpu) / max(statistics.median(project_cpu), 1e-9),
    }


def _median_stages(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {s: statistics.median(r[s] for r in rounds) for s in rounds[0]}


def markdown(result: dict[str, Any], command: str) -> str:
    """The results page: command, machine, the per-view table and its caveats."""
    p, q = result["plan_stages"], result["project_stages"]
    plan = result["plan"]
    rows = [
        (
            "background removal",
            f"U-2-Net ({plan['u2net']}) {plan['seg_size']} px, ONNX Runtime fp32",
            p["segment"],
            "HSV keying",
            q["segment"],
        ),
        ("crop + input", "box, resize, normalise", p["preprocess"], "edge.preprocess", q["preprocess"]),
        (
            "model",
            f"EfficientNet-B0 {plan['cls_size']} px, PyTorch fp32",
            p["infer"],
            "ONNX int8 (one batch per part)",
            q["infer"],
        ),
        (
            "search / decide",
            f"brute-force cosine, {plan['count']:,} x {EMBEDDING_DIM} fp32",
            p["search"],
            "classifier + fusion",
            q["search"] + q["fuse"],
        ),
    ]
    lines = [
        "# The original plan's pipeline against the project's",
        "",
        "Milliseconds per view, each the median of "
        f"{result['rounds']} alternating rounds over the same {result['views']} frames in one process.",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Machine: {result['machine']}. Project model: {result['model']}.",
        "",
        "| stage | plan | ms/view | project | ms/view | plan / project |",
        "|---|---|---:|---|---:|---:|",
    ]
    for stage, plan_what, plan_ms, ours_what, ours_ms in rows:
        ratio = f"{plan_ms / ours_ms:,.0f}x" if ours_ms > 0 else "-"
        lines.append(f"| {stage} | {plan_what} | {plan_ms:,.2f} | {ours_what} | {ours_ms:,.3f} | {ratio} |")
    lines.append(
        f"| **total** (wall clock) | | **{result['plan_median']:,.1f}** | "
        f"| **{result['project_median']:,.2f}** | **{result['ratio']:,.0f}x** |"
    )
    plan_cpu = statistics.median(result["plan_cpu_ms_per_view"])
    project_cpu = statistics.median(result["project_cpu_ms_per_view"])
    lines.append(
        f"| **total** (process CPU time) | | **{plan_cpu:,.1f}** | | **{project_cpu:,.2f}** "
        f"| **{result['cpu_ratio']:,.0f}x** |"
    )
    lines += [
        "",
        "Per-round totals (ms/view): plan "
        + ", ".join(f"{v:,.1f}" for v in result["plan_ms_per_view"])
        + "; project "
        + ", ".join(f"{v:,.2f}" for v in result["project_ms_per_view"])
        + "; CPU time plan "
        + ", ".join(f"{v:,.1f}" for v in result["plan_cpu_ms_per_view"])
        + "; project "
        + ", ".join(f"{v:,.2f}" for v in result["project_cpu_ms_per_view"])
        + ".",
    ]
    lines += [
        "",
        "Caveats:",
        "",
        "- Random weights on both of the plan's networks: a forward pass costs the same whatever the",
        "  weights, so the times stand, but the plan's masks and answers mean nothing.",
        "- The plan runs each view on its own (as it was written); the project runs a part's views as",
        "  one engine batch. Both start from the same decoded frames; capture is not timed.",
        f"- Threads: the plan's PyTorch and ONNX Runtime {result['plan_threads']}, numpy's BLAS "
        f"whatever the environment gives; the project's engine {result['project_threads']}. Process "
        "CPU time adds up every thread (and any spinning); with one thread a side it is the work "
        "done, little disturbed by other processes on a shared machine, where wall clock is not.",
        "- rembg resizes with PIL's Lanczos filter; this uses OpenCV's INTER_LANCZOS4. U-2-Net is "
        "exported here by PyTorch's TorchScript exporter (opset 17), not taken from rembg's file: "
        "same layers, possibly a different graph layout.",
        "- Not a Raspberry Pi 5: the ratio is the portable figure, the milliseconds are this machine's.",
    ]
    if result["quick"]:
        lines += ["", "**`--quick` run: toy sizes, the figures mean nothing.**"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", type=Path, default=REPO / "config" / "sim.yaml", help="the project's config"
    )
    parser.add_argument("--views", type=int, default=8, help="frames to time per round (whole parts)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    parser.add_argument("--u2net", choices=["u2net", "u2netp"], default="u2net", help="rembg's model")
    parser.add_argument("--count", type=int, default=94_000, help="vectors searched by brute force")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="the plan's PyTorch and ONNX Runtime threads (default: every core)",
    )
    parser.add_argument(
        "--engine-threads", type=int, help="the project's engine threads (default: its config)"
    )
    parser.add_argument("--quick", action="store_true", help="toy sizes: check that the script runs")
    parser.add_argument("--markdown", type=Path, help="write the results page here")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    result = run(args)
    command = "python benchmarks/plan_pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:])
    page = markdown(result, command.strip())
    print(page)
    if args.markdown:
        args.markdown.write_text(page, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
