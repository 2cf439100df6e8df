"""Adaptive views: choosing the threshold, and parts per minute against a fixed 4 views.

    python benchmarks/adaptive_views.py choose --data WORK/render-test [--json F]
    python benchmarks/adaptive_views.py run --parts 240 --threshold T --min-views M [--json F]

``choose``: every view of every capture in ``--data`` (a ``trainer render --layout real`` folder,
here the default model set's independent test render) goes once through the pipeline of
``config/sim.yaml`` (HSV segmenter, onnxruntime int8), one view at a time
(:meth:`Pipeline.process_view`), and the engine outputs are kept. The captures are split in two:
those the sim rig replays (``edge/data/sim``, the report set) and the rest (the selection set).
For each ``min_views`` and threshold of a grid, the adaptive rule (:func:`edge.views.confident`)
is replayed on each capture from each of its views as the first (the turntable may stop anywhere),
turning in angle order: views used and exact recognition (part and colour). The chosen setting is
the one with the fewest mean views on the **selection set** whose exact recognition is at least
that of all 4 views on the same set (ties: the higher threshold); its figures on the report set are
printed beside it, not used to choose.

``run``: ``edge run --sim`` in-process on the replay (``config/sim.yaml``), once per mode: ``fixed``
(4 views, one engine batch: today's daemon), ``overlap`` (4 views, each recognised while the
turntable turns) and ``adaptive`` (``--threshold``, ``--min-views``, with overlap). The mock motor
steps at once (no sleeping; 360 steps a turn so its Python pin writes cost next to nothing), so the
run measures the compute, captures, record and presence polling; the motor's time is added from the
real motor's figures, taken from ``config/edge.yaml`` (the Pi): a simulated clock. Per part:

- fixed: ``(views - 1) * T`` (the turns wait; the batch runs after the last view, measured);
- overlap/adaptive: ``sum over views i < last of max(0, T - c_i)`` (the turn to view i+1 runs
  while view i, ``c_i`` ms, is recognised; ``c_i`` is measured) plus one step delay when adaptive
  cancels a turn already started;
- each turn's ``capture.settle_s``, and per part the chute's ``settle_s`` and the clearing sweep
  (``clearing.sweep_deg``) at the same step rate.

``T`` = (half steps of a quarter turn + 1 for energising) x ``step_delay``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edge.camera.folder import read_manifest  # noqa: E402
from edge.camera.sim import DEFAULT_FRAMES, group_captures  # noqa: E402
from edge.cli import SIM_CONFIG  # noqa: E402
from edge.settings import AdaptiveViews, load_edge_config  # noqa: E402
from edge.views import confident  # noqa: E402

PI_CONFIG = REPO / "config" / "edge.yaml"
THRESHOLDS = (
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.85,
    0.9,
    0.925,
    0.95,
    0.96,
    0.97,
    0.98,
    0.99,
    0.995,
    0.999,
)
MIN_VIEWS = (1, 2)


# --- choose ------------------------------------------------------------------------------------


def _outputs(data: Path, cache: Path) -> dict[str, Any]:
    """Per-view engine outputs of every capture in ``data`` (cached in ``cache``)."""
    from edge.imagefile import read_image
    from edge.pipeline import Pipeline

    if cache.is_file():
        return json.loads(cache.read_text())
    captures = group_captures(data, read_manifest(data))
    pipeline = Pipeline.from_config(load_edge_config(SIM_CONFIG), with_camera=False)
    rows = []
    try:
        for n, cap in enumerate(captures):
            views = sorted(cap.views)
            outs = [pipeline.process_view(read_image(path)).outputs for _, path in views]
            rows.append(
                {
                    "truth": cap.truth,
                    "paths": [str(p.relative_to(data)) for _, p in views],
                    "outputs": {r: np.concatenate([o[r] for o in outs]).tolist() for r in outs[0]},
                }
            )
            if n % 50 == 0:
                print(f"  {n}/{len(captures)} captures", file=sys.stderr, flush=True)
    finally:
        pipeline.close()
    cache.parent.mkdir(parents=True, exist_ok=True)
    result = {"data": str(data), "captures": rows}
    cache.write_text(json.dumps(result))
    return result


def _replay(recognizer: Any, rows: list[dict[str, Any]], rule: AdaptiveViews | None) -> dict[str, float]:
    """Exact recognition, wrong sorts and mean views of ``rule`` (None: all views) from every
    starting view. A wrong sort is a part named (status sorted) with the wrong part or colour."""
    correct = wrong = views = samples = 0
    for row in rows:
        outs = {r: np.asarray(v, np.float32) for r, v in row["outputs"].items()}
        count = len(next(iter(outs.values())))
        truth = row["truth"]
        for start in range(count):  # all views too, so every rule weighs the captures alike
            order = [(start + i) % count for i in range(count)]
            for k in range(1, count + 1):
                decision = recognizer.decide({r: a[order[:k]] for r, a in outs.items()})
                if k == count or (
                    rule is not None and k >= rule.min_views and confident(decision, rule.threshold)
                ):
                    break
            samples += 1
            views += k
            right = decision.part_num == truth["part_num"] and decision.color_id == truth["color_id"]
            correct += right
            wrong += decision.status == "sorted" and not right
    return {
        "exact": correct / samples,
        "wrong": wrong / samples,
        "mean_views": views / samples,
        "samples": samples,
    }


def choose(args: argparse.Namespace) -> dict[str, Any]:
    from edge.manifest import open_manifest
    from edge.recognition_setup import make_recognizer

    data = Path(args.data).resolve()
    result = _outputs(data, Path(args.cache))
    sim_paths = set(read_manifest(DEFAULT_FRAMES))
    sets: dict[str, list[dict[str, Any]]] = {"selection": [], "report": []}
    for row in result["captures"]:
        sets["report" if any(p in sim_paths for p in row["paths"]) else "selection"].append(row)
    cfg = load_edge_config(SIM_CONFIG)
    recognizer = make_recognizer(cfg, open_manifest(cfg.engine.model_set), None)
    table = []
    fixed = {name: _replay(recognizer, rows, None) for name, rows in sets.items()}
    print(f"captures: selection {len(sets['selection'])}, report {len(sets['report'])}")
    print(f"all views: {fixed}")
    for min_views in MIN_VIEWS:
        for threshold in THRESHOLDS:
            rule = AdaptiveViews(min_views=min_views, threshold=threshold)
            row = {"min_views": min_views, "threshold": threshold}
            row |= {name: _replay(recognizer, rows, rule) for name, rows in sets.items()}
            table.append(row)
            sel, rep = row["selection"], row["report"]
            print(
                f"min_views {min_views} threshold {threshold:<6}: selection exact {sel['exact']:.4f} "
                f"wrong {sel['wrong']:.4f} views {sel['mean_views']:.3f} | report exact "
                f"{rep['exact']:.4f} wrong {rep['wrong']:.4f} views {rep['mean_views']:.3f}",
                flush=True,
            )
    base = fixed["selection"]

    def fewest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        return min(rows, key=lambda r: (r["selection"]["mean_views"], -r["threshold"])) if rows else None

    equal_exact = fewest([r for r in table if r["selection"]["exact"] >= base["exact"]])
    chosen = fewest(
        [
            r
            for r in table
            if r["selection"]["exact"] >= base["exact"] and r["selection"]["wrong"] <= base["wrong"]
        ]
    )
    print(f"fewest views at exact >= all views': {equal_exact}")
    print(f"chosen (also wrong sorts <= all views'): {chosen}")
    return {
        "data": str(data),
        "all_views": fixed,
        "grid": table,
        "equal_exact": equal_exact,
        "chosen": chosen,
    }


# --- run ---------------------------------------------------------------------------------------


def _motor(step_delay: float | None = None) -> dict[str, float]:
    """The real rig's motor and waits, from the Pi config (``step_delay``: another step rate)."""
    cfg = load_edge_config(PI_CONFIG)
    t = cfg.rig.turntable
    delay = t.step_delay if step_delay is None else step_delay
    return {
        "steps_per_turn": t.steps_per_turn,
        "step_delay_s": delay,
        "turn_s": (t.steps_per_turn / cfg.capture.views + 1) * delay,  # + the energising pause
        "settle_s": cfg.capture.settle_s,
        "chute_settle_s": cfg.rig.chute.settle_s,
        "sweep_s": (t.steps_per_turn * cfg.clearing.sweep_deg / 360 + 1) * delay,
    }


def run_mode(mode: str, parts: int, adaptive: AdaptiveViews | None, out: Path) -> dict[str, Any]:
    from edge.daemon import Daemon

    cfg = load_edge_config(SIM_CONFIG)
    capture = cfg.capture.model_copy(
        update={"overlap": mode != "fixed", "adaptive": adaptive if mode == "adaptive" else None}
    )
    turntable = cfg.rig.turntable.model_copy(update={"steps_per_turn": 360, "step_delay": 0.0})
    folder = out / mode
    for name in ("record.db", "record.db-wal", "record.db-shm", "record.db.lock"):
        (folder / name).unlink(missing_ok=True)
    cfg = cfg.model_copy(
        update={
            "capture": capture,
            "rig": cfg.rig.model_copy(update={"turntable": turntable}),
            "data": cfg.data.model_copy(
                update={"db": folder / "record.db", "crops_dir": folder / "crops", "keep_crops": "none"}
            ),
        }
    )
    rows: list[dict[str, Any]] = []

    def on_part(p: Any) -> None:
        rows.append(
            {
                "views": len(p.views),
                "compute_ms": [v.compute_ms for v in p.views],
                "total_ms": p.timings.get("total"),
                "correct": bool(p.correct),
                "wrong": p.status == "sorted" and not p.correct,
                "right_bin": bool(p.right_bin),
            }
        )

    daemon = Daemon(cfg, sim=True, parts=parts, on_part=on_part)
    try:
        daemon.open()
        start = time.perf_counter()
        daemon.loop()
        wall = time.perf_counter() - start
    finally:
        daemon.close()
    return {"mode": mode, "wall_s": wall, "parts": rows}


def model_time(result: dict[str, Any], motor: dict[str, float], views: int) -> dict[str, float]:
    """Seconds of the run on the real motor (see the module docstring)."""
    turn, delay = motor["turn_s"], motor["step_delay_s"]
    waits = 0.0
    for p in result["parts"]:
        k = p["views"]
        if result["mode"] == "fixed":
            waits += (k - 1) * turn
        else:
            waits += sum(max(0.0, turn - c / 1000.0) for c in p["compute_ms"][: k - 1])
            waits += delay if k < views else 0.0
        waits += (k - 1) * motor["settle_s"]
    n = len(result["parts"])
    per_part_fixed = motor["chute_settle_s"] + motor["sweep_s"]
    total = result["wall_s"] + waits + n * per_part_fixed
    views_phase = result["wall_s"] + waits
    return {
        "seconds": total,
        "parts_per_min": 60.0 * n / total,
        "views_phase_parts_per_min": 60.0 * n / views_phase,
        "mean_views": sum(p["views"] for p in result["parts"]) / n,
        "exact": sum(p["correct"] for p in result["parts"]) / n,
        "wrong": sum(p["wrong"] for p in result["parts"]) / n,
        "right_bin": sum(p["right_bin"] for p in result["parts"]) / n,
        "wall_s": result["wall_s"],
        "compute_ms_p50": float(np.median([p["total_ms"] for p in result["parts"]])),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    motors = [_motor()] + [_motor(float(d)) for d in args.step_delays.split(",") if d]
    print(f"motor and waits (config/edge.yaml): {motors[0]}")
    adaptive = AdaptiveViews(min_views=args.min_views, threshold=args.threshold)
    out = Path(args.out)
    report: dict[str, Any] = {"motors": motors, "adaptive": adaptive.model_dump(), "modes": {}}
    for n, mode in enumerate(args.modes.split(",")):
        result = run_mode(mode, args.parts, adaptive, out)
        figures = [model_time(result, motor, 4) for motor in motors]
        key = mode if mode not in report["modes"] else f"{mode}#{n}"  # a mode named twice: both kept
        report["modes"][key] = {"figures": figures, "views_histogram": _histogram(result), "raw": result}
        for motor, fig in zip(motors, figures, strict=True):
            print(f"{key} step_delay {motor['step_delay_s']}: {json.dumps(fig)}", flush=True)
        print(f"{key} views {report['modes'][key]['views_histogram']}", flush=True)
    return report


def _histogram(result: dict[str, Any]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for p in result["parts"]:
        counts[p["views"]] = counts.get(p["views"], 0) + 1
    return dict(sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser(
        "choose", help="pick the threshold on the test render's captures the sim does not replay"
    )
    c.add_argument("--data", required=True, help="the test render (trainer render --layout real)")
    c.add_argument("--cache", default=str(REPO / "out" / "adaptive_views" / "outputs.json"))
    c.add_argument("--json", help="write the table here")
    r = sub.add_parser("run", help="edge run --sim per mode, parts per minute on the real motor's timing")
    r.add_argument("--parts", type=int, default=240)
    r.add_argument("--threshold", type=float, required=True)
    r.add_argument("--min-views", type=int, default=1)
    r.add_argument("--modes", default="fixed,overlap,adaptive", help="comma-separated; may repeat")
    r.add_argument("--step-delays", default="0.001,0.002", help="more step delays to model (s per half step)")
    r.add_argument("--out", default=str(REPO / "out" / "adaptive_views"))
    r.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    result = choose(args) if args.command == "choose" else run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
