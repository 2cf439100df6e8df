"""What a larger backbone costs the Pi: EfficientNet-Lite0, 1 and 2 as the daemon would run them.

    python benchmarks/backbone_cost.py [--size 224] [--views 4] [--rounds 100] [--threads 2] \\
        [--variants 0,1,2] [--work /tmp/backbone_cost] [--json FILE] [--markdown FILE]

For each registered Lite backbone (:data:`trainer.models.LITE_VARIANTS`, or ``--variants``) the
script builds the project's network (200 parts, 30 colours, a 128-d embedding, ImageNet weights),
exports it to ONNX as ``trainer export`` does and quantises it to int8 as ``trainer quantize``
does (static QDQ, calibrated here on random inputs: the timing does not depend on what the weights
learnt). Per backbone: the int8 file's size, its multiply-accumulates for one part (``--views``
views in one batch; :mod:`benchmarks.onnx_macs`), the median x86 milliseconds of ONNX Runtime
running that batch (``--rounds`` runs after a warm-up, the backbones taking turns, ``--threads``
threads), and the Pi 5 milliseconds projected from the MACs by the published rates of
:func:`benchmarks.pi5_rates.pi5_rates` (fast and slow ends). Every figure is also given as a
ratio to the first backbone's (Lite0's by default) from the same run.
Nothing here ran on a Pi.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_line, write_results
from benchmarks.onnx_macs import count_macs
from benchmarks.pi5_rates import pi5_rates
from benchmarks.pi5_stages import _nn_ms


def build_int8(name: str, size: int, work: Path) -> Path:
    """The project's network of backbone ``name`` exported and quantised to int8 in ``work``."""
    from trainer.export import INPUT_NAME, _trace_to_onnx
    from trainer.models import ExportWrapper, create_model
    from trainer.quantize import quantize_onnx_int8

    model = create_model(name, num_parts=200, num_colors=30, pretrained=True).eval()
    fp32, int8 = work / f"{name}_fp32.onnx", work / f"{name}_int8.onnx"
    _trace_to_onnx(model, fp32, (size, size), 17, ExportWrapper(model).output_names)
    calib = np.random.default_rng(0).uniform(-1, 1, size=(16, 3, size, size)).astype(np.float32)
    quantize_onnx_int8(fp32, int8, calib, INPUT_NAME)
    return int8


def time_ms(paths: dict[str, Path], size: int, views: int, rounds: int, threads: int) -> dict[str, float]:
    """Median milliseconds of one batch of ``views`` inputs through ONNX Runtime set up as the
    engines are (:func:`edge.engines.onnx.ort_session`), per file; the files take turns run by run,
    so a slower stretch of a shared machine hits them all alike."""
    from edge.engines.onnx import ort_session

    # the daemon's session setup (idle threads sleep: a spinning one would slow the next session)
    sessions = {
        name: ort_session(path, threads, what="model file", fix="run the benchmark again")
        for name, path in paths.items()
    }
    feed = np.zeros((views, 3, size, size), np.float32)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for r in range(rounds + 3):  # the first three warm up
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: feed})
            if r >= 3:
                times[name].append(1000 * (time.perf_counter() - start))
    return {name: statistics.median(t) for name, t in times.items()}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every Lite backbone's size, MACs, x86 time and Pi 5 projection, with ratios to the first
    (Lite0 by default)."""
    import onnx

    args.work.mkdir(parents=True, exist_ok=True)
    rates = pi5_rates()
    rows: dict[str, dict[str, Any]] = {}
    paths = {
        f"efficientnet_lite{v}": build_int8(f"efficientnet_lite{v}", args.size, args.work)
        for v in args.variants
    }
    x86 = time_ms(paths, args.size, args.views, args.rounds, args.threads)
    for name, path in paths.items():
        macs = count_macs(onnx.load(str(path)), batch=args.views)
        fast, slow = _nn_ms(macs.total, macs.int8, rates["onnxruntime/fp32"], rates["onnxruntime/int8"])
        rows[name] = {
            "int8_mb": round(path.stat().st_size / 1e6, 2),
            "gmacs": round(macs.total / 1e9, 3),
            "int8_share": round(macs.int8 / macs.total, 3),
            "x86_ms": round(x86[name], 2),
            "pi5_ms": {
                "fast": round(fast, 1),
                "slow": round(slow, 1),
                "mid": round(math.sqrt(fast * slow), 1),
            },
        }
    base = rows[next(iter(rows))]
    for row in rows.values():
        row["ratio_to_first"] = {
            "int8_mb": round(row["int8_mb"] / base["int8_mb"], 2),
            "gmacs": round(row["gmacs"] / base["gmacs"], 2),
            "x86_ms": round(row["x86_ms"] / base["x86_ms"], 2),
        }
    return {
        "machine": machine_line(args.note),
        "input": f"{args.size}x{args.size}",
        "views_per_part": args.views,
        "threads": args.threads,
        "rounds": args.rounds,
        "backbones": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    """The results file's table."""
    first = next(iter(result["backbones"]))
    lines = [
        "# What a larger backbone costs (ONNX Runtime int8, one part's views in one batch)",
        "",
        "```sh",
        "python benchmarks/backbone_cost.py --json benchmarks/results/backbone_cost.json \\",
        "    --markdown benchmarks/results/backbone_cost.md",
        "```",
        "",
        f"Machine: {result['machine']}. Input {result['input']}, {result['views_per_part']} views a part, "
        f"{result['threads']} threads, median of {result['rounds']} runs. The Pi 5 columns are projected "
        "from the MACs by published rates (benchmarks/pi5_projection.py), not measured on a Pi.",
        "",
        "| backbone | int8 file MB | GMACs a part | x86 ms a part | Pi 5 ms a part (fast-slow) "
        f"| ratio to {first}: MB / MACs / x86 ms |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in result["backbones"].items():
        ratio = r["ratio_to_first"]
        lines.append(
            f"| {name} | {r['int8_mb']} | {r['gmacs']} | {r['x86_ms']} | {r['pi5_ms']['fast']}-"
            f"{r['pi5_ms']['slow']} | {ratio['int8_mb']} / {ratio['gmacs']} / {ratio['x86_ms']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224, help="network input side (224)")
    parser.add_argument("--views", type=int, default=4, help="views of one part, run as one batch (4)")
    parser.add_argument("--rounds", type=int, default=100, help="timed runs per backbone (100)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (2)")
    parser.add_argument(
        "--variants",
        type=lambda text: [int(v) for v in text.split(",")],
        default=None,
        help="Lite variants to compare, the first the baseline (default: every registered one, 0,1,2)",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/backbone_cost"), help="folder for the files")
    parser.add_argument("--note", default="", help="appended to the machine line")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    args = parser.parse_args(argv)
    if args.variants is None:
        from trainer.models import LITE_VARIANTS

        args.variants = list(LITE_VARIANTS)
    write_results(measure(args), args.json, args.markdown, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
