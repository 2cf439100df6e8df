"""The ``edge`` command line: run, classify, check, bench and colors.

Config: ``--config FILE``; else ``--sim`` takes ``config/sim.yaml`` (sim camera, mock pins, HSV
segmenter, int8 model); else ``$EDGE_CONFIG`` or ``/etc/lego-edge/edge.yaml`` (what the systemd
unit passes). ``edge bench`` defaults to the sim config. Errors print one readable line and exit 2;
a full disk under the decision record exits :data:`edge.service.EXIT_DISK_FULL` (74).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edge import __version__
from edge.errors import ConfigError, DiskFullError, EdgeError
from edge.imagefile import DEFAULT_MAX_MEGAPIXELS
from edge.log import setup_logging, stdout_gone
from edge.service import EXIT_DISK_FULL, install_stop_handlers

log = logging.getLogger("edge")

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config"
SIM_CONFIG = REPO_CONFIG / "sim.yaml"
SYSTEM_CONFIG = Path("/etc/lego-edge/edge.yaml")


def config_path(args: argparse.Namespace, *, sim_default: bool = False) -> Path:
    """The config file a command uses (see the module docstring)."""
    if getattr(args, "config", None):
        return Path(args.config)
    if getattr(args, "sim", False) or sim_default:
        return SIM_CONFIG
    path = Path(os.environ.get("EDGE_CONFIG", str(SYSTEM_CONFIG)))
    if not path.exists():
        raise ConfigError(
            f"no --config given and the default config {str(path)!r} does not exist; pass --config FILE, "
            "or --sim for the simulated rig (config/sim.yaml)"
        )
    return path


def _color_name(color_id: int | None) -> str:
    if color_id is None:
        return "-"
    from edge.colors import get_color

    try:
        return f"{get_color(color_id).name} ({color_id})"
    except KeyError:
        return str(color_id)


def _colors(args: argparse.Namespace) -> int:
    """Print the colour table (Rebrickable ids, the ids sorting rules use)."""
    from edge.colors import all_colors

    rows = all_colors()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": c.id,
                        "name": c.name,
                        "rgb": c.hex,
                        "is_trans": c.is_trans,
                        "ldraw_code": c.ldraw_code,
                    }
                    for c in rows
                ],
                indent=2,
            )
        )
        return 0
    print(f"{'id':>5}  {'name':<26} {'rgb':<7}  {'ldraw':>5}  trans")
    for c in rows:
        ldraw = "" if c.ldraw_code is None else str(c.ldraw_code)
        print(f"{c.id:>5}  {c.name:<26} {c.hex:<7}  {ldraw:>5}  {'yes' if c.is_trans else ''}")
    return 0


# --- edge run ----------------------------------------------------------------------------------


def format_outcome(o: Any) -> str:
    """One decision line: part, colour, confidence, bin, truth when known, correct/incorrect."""
    conf = "-" if o.confidence is None else f"{o.confidence:.2f}"
    line = (
        f"part {o.number:>4}  {o.status:<14} {o.part_num or '?':<12} {_color_name(o.color_id):<24} "
        f"conf {conf:>4}  -> bin {o.bin!r}"
    )
    if o.truth:
        verdict = "correct" if o.correct else "incorrect"
        where = "right bin" if o.right_bin else "wrong bin"
        line += (
            f"  | truth {o.truth.get('part_num')} {_color_name(o.truth.get('color_id'))}: {verdict}, {where}"
        )
    if o.status == "error":
        line += f"  ({o.reason})"
    return line


def majority_bin(truth_bins: Sequence[str]) -> tuple[str, int] | None:
    """The bin most true identities belong to and how many: the share a chute fixed on that bin
    would route right (the baseline the right-bin share must beat); None without truths."""
    if not truth_bins:
        return None
    name, count = Counter(truth_bins).most_common(1)[0]
    return name, count


def format_summary(stats: Any, truth_bins: Sequence[str] = ()) -> str:
    """The end-of-run summary: counts, the share recognised exactly, the share routed to the right
    bin beside the majority-bin baseline (``truth_bins``: each decided part's true bin), faults and
    latency p50/p95 per stage."""
    s = stats.by_status
    lines = [
        f"summary: {stats.parts} part(s) decided: {s['sorted']} sorted, {s['unknown']} unknown, "
        f"{s['low_confidence']} low confidence, {s['error']} error; {s['abandoned']} abandoned"
    ]
    if stats.with_truth:
        n = stats.with_truth
        lines.append(f"recognised exactly (part and colour): {stats.correct}/{n} ({stats.correct / n:.0%})")
        line = f"routed to the right bin: {stats.right_bin}/{n} ({stats.right_bin / n:.0%})"
        majority = majority_bin(truth_bins)
        if majority is not None:
            name, count = majority
            total = len(truth_bins)
            line += (
                f"; every part to the most common bin {name!r} would score {count}/{total} "
                f"({count / total:.0%})"
            )
        lines.append(line)
    lines.append(
        f"faults: {stats.bad_frames} bad frame(s), {stats.camera_faults} camera fault(s), "
        f"{stats.two_parts} two-part event(s)"
        + (f", {stats.missed} sim part(s) missed" if stats.missed else "")
    )
    latency = stats.latency()
    if latency:
        lines.append("latency per part, ms (p50 / p95):")
        lines += [f"  {stage:<10} {p50:9.1f} / {p95:9.1f}" for stage, (p50, p95) in latency.items()]
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    """Run the sorting daemon until stopped (SIGTERM, STOP, --parts reached).

    The stop handlers come first, before the heavy imports and the config: a SIGTERM during
    start-up (systemd stopping a service that has just started) then ends it cleanly with status 0
    instead of the default action's 143.
    """
    stoppers: list[Callable[[int], None]] = []  # the daemon's request_stop, once it exists

    def forward(signum: int) -> None:
        for stop in stoppers:
            stop(signum)

    flag = install_stop_handlers(forward)
    try:
        from edge.daemon import Daemon
        from edge.settings import load_edge_config

        cfg = load_edge_config(config_path(args))
        truth_bins: list[str] = []  # each decided part's true bin, for the majority-bin baseline

        def on_part(outcome: Any) -> None:
            if outcome.truth_bin is not None:
                truth_bins.append(outcome.truth_bin)
            print(format_outcome(outcome), flush=True)

        daemon = Daemon(cfg, sim=args.sim, parts=args.parts, on_part=on_part)
        stoppers.append(daemon.request_stop)
        if flag.is_set():
            log.info("stop requested during start-up (signal %s): not starting", flag.signum)
            return 0
        stats = daemon.run()
    finally:
        flag.restore()
    print(format_summary(stats, truth_bins), flush=True)
    return 0


# --- edge classify ------------------------------------------------------------------------------


def _classify(args: argparse.Namespace) -> int:
    """Recognise image files with the configured segmenter and model; exit 1 if any image failed."""
    from edge.pipeline import Pipeline
    from edge.settings import load_edge_config
    from edge.sorting import Sorter, load_categories

    cfg = load_edge_config(config_path(args))
    pipeline = Pipeline.from_config(cfg, with_camera=False)
    try:
        sorter = Sorter(
            cfg.sorting, cfg.bin_names, load_categories(pipeline.manifest, cfg.sorting.categories_file)
        )
        rows: list[dict[str, Any]] = []
        for row in pipeline.classify_images(args.images, fuse=args.fuse, max_megapixels=args.max_megapixels):
            images = [str(p) for p in row.paths]
            if row.result is None:
                rows.append({"images": images, "status": "error", "part_num": None, "error": row.error})
                continue
            d = row.result.decision
            assert d is not None  # process() always decides; failures are rows with an error
            route = sorter.route_decision(d)
            rows.append(
                {
                    "images": images,
                    "status": d.status,
                    "part_num": d.part_num,
                    "color_id": d.color_id,
                    "color_name": _color_name(d.color_id) if d.color_id is not None else None,
                    "confidence": round(d.confidence, 4),
                    "color_confidence": round(d.color_confidence, 4),
                    "source": d.source,
                    "topk": [[p, round(s, 4)] for p, s in d.part_topk],
                    "bin": route.bin,
                    "objects": row.result.objects,
                    "timings_ms": {k: round(v, 3) for k, v in row.result.timings.items()},
                    "error": None,
                }
            )
    finally:
        pipeline.close()
    failed = sum(r["error"] is not None for r in rows)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            if r["error"] is not None:
                print(f"{', '.join(r['images'])}: error: {r['error']}")
                continue
            top = ", ".join(f"{p} {s:.2f}" for p, s in r["topk"][:3])
            print(
                f"{', '.join(r['images'])}: {r['status']} {r['part_num'] or '?'} {r['color_name'] or '-'} "
                f"conf {r['confidence']:.2f} -> bin {r['bin']!r}  (top: {top})"
            )
    if failed:
        log.error("%d of %d image(s) could not be classified (see their rows)", failed, len(args.images))
        return 1
    return 0


# --- edge check ---------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    """Check config, model checksums, camera, pins and memory; exit 1 if anything FAILs."""
    from edge.checks import run_checks

    results = run_checks(config_path(args), sim=args.sim)
    for level, what, text in results:
        print(f"{level:<4} {what}: {text}")
    failed = sum(level == "FAIL" for level, _, _ in results)
    print(f"FAIL: {failed} check(s) failed" if failed else "OK: all checks passed")
    return 1 if failed else 0


# --- edge bench ---------------------------------------------------------------------------------


def _bench(args: argparse.Namespace) -> int:
    """Latency per segmenter and stage (p50/p95) with resident memory."""
    from edge.bench import format_table, run_bench
    from edge.settings import load_edge_config

    cfg = load_edge_config(config_path(args, sim_default=True))
    names = [s for s in args.segmenters.split(",") if s.strip()] if args.segmenters else None
    result = run_bench(cfg, segmenters=names, frames=args.frames)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number above 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``edge`` argument parser."""
    parser = argparse.ArgumentParser(prog="edge", description="LEGO part sorting rig runtime")
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("-q", "--quiet", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("colors", help="list the colour table (Rebrickable ids and their LDraw codes)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_colors)

    def config_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, help="config file (default: /etc/lego-edge/edge.yaml)")
        p.add_argument("--sim", action="store_true", help="simulated rig: config/sim.yaml unless --config")

    p = sub.add_parser("run", help="run the sorting daemon")
    config_args(p)
    p.add_argument("--parts", type=_positive, help="stop after N parts (with --sim: feed N parts)")
    p.set_defaults(func=_run)
    p = sub.add_parser("classify", help="recognise image files (one part per image, or --fuse)")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    config_args(p)
    p.add_argument("--fuse", action="store_true", help="treat all images as views of one part")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--max-megapixels",
        type=_positive_float,
        default=DEFAULT_MAX_MEGAPIXELS,
        help=f"refuse larger images, checked before decoding (default {DEFAULT_MAX_MEGAPIXELS:g})",
    )
    p.set_defaults(func=_classify)
    p = sub.add_parser("check", help="check config, models, camera, pins and memory (exit 1 on failure)")
    config_args(p)
    p.set_defaults(func=_check)
    p = sub.add_parser("bench", help="latency per segmenter and stage (default: the sim config)")
    config_args(p)
    p.add_argument("--segmenters", help="comma list: none,hsv,u2net[=MODEL],mobileseg[=MODEL]")
    p.add_argument("--frames", type=_positive, default=40, help="frames to capture (default 40)")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.set_defaults(func=_bench)
    from edge.cli_calibrate import add_calibrate_commands  # calibrate
    from edge.cli_review import add_review_commands  # review, relabel, counts
    from edge.cli_rig import add_rig_commands  # enroll, enrolled, wiring, reindex

    add_calibrate_commands(sub)
    add_rig_commands(sub)
    add_review_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``edge`` command."""
    args = build_parser().parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose)
    try:
        return int(args.func(args) or 0)
    except DiskFullError as exc:  # the unit does not restart on this status (RestartPreventExitStatus=)
        log.critical("%s", exc)
        return EXIT_DISK_FULL
    except EdgeError as exc:
        log.error("%s", exc)
        return 2
    except BrokenPipeError:  # the reader went away (`edge colors | head`)
        return stdout_gone()


if __name__ == "__main__":
    sys.exit(main())
