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

Check = tuple[str, str, str]  # (OK | WARN | FAIL, what, detail)


def _attempt(out: list[Check], what: str, fn: Any) -> Any:
    """Run one check step; a failure becomes a FAIL line (never a traceback) and returns None."""
    try:
        return fn()
    except Exception as exc:  # a diagnostic tool reports every failure as a line
        text = str(exc) if isinstance(exc, EdgeError) else f"{type(exc).__name__}: {exc}"
        out.append(("FAIL", what, text))
        return None


def _check_corrections(cfg: Any, out: list[Check]) -> None:
    """The colour and drift corrections the config turns on load from its calibration file."""
    from edge.color_correction import ColorCorrection, DriftCorrection

    for setting, kind in (("color_correction", ColorCorrection), ("drift_correction", DriftCorrection)):
        if not getattr(cfg, setting):
            continue
        if cfg.calibration is None:
            out.append(("FAIL", setting, f"{setting} is true but the config names no calibration file"))
            continue
        loaded = _attempt(out, setting, lambda kind=kind: kind.from_calibration(cfg.calibration))
        if loaded is not None:
            out.append(("OK", setting, f"from {cfg.calibration}"))


def _check_index_graph(out: list[Check], folder: Path, entry: Any) -> None:
    """The index's saved graph matches its checksum; WARN when none is listed (loading rebuilds it)."""
    from edge.manifest import sha256_file

    if entry.graph is None:
        out.append(
            (
                "WARN",
                "index graph",
                "none listed: the daemon rebuilds the graph from the vectors at start (seconds for a "
                f"large index); write it with `trainer index --graph-only --model-set {folder}`",
            )
        )
        return
    graph = folder / entry.graph
    if not graph.is_file():
        out.append(("FAIL", "index graph", f"{graph} is listed in the manifest but missing"))
    elif sha256_file(graph) != entry.graph_sha256:
        out.append(("FAIL", "index graph", f"{graph} does not match its sha256 in the manifest"))
    else:
        out.append(("OK", "index graph", f"{graph} sha256 matches"))


def run_checks(path: Path, *, sim: bool = False) -> list[Check]:
    """Every check of ``edge check`` as (level, what, detail) lines; stops early only on a bad config."""
    from edge.calibration_file import check_calibration
    from edge.enroll import engine_model_key
    from edge.manifest import open_manifest
    from edge.settings import load_edge_config

    out: list[Check] = []
    cfg = _attempt(out, "config", lambda: load_edge_config(path))
    if cfg is None:
        return out
    if sim:
        cfg = cfg.model_copy(update={"rig": cfg.rig.model_copy(update={"pins": "mock"})})
    out.append(
        ("OK", "config", f"{path} (camera {cfg.camera.type}, segmenter {cfg.segmenter.type}, "
         f"{cfg.engine.runtime}/{cfg.engine.precision}, {cfg.capture.views} views)")
    )  # fmt: skip
    folder = Path(cfg.engine.model_set)
    manifest = _attempt(out, "model set", lambda: open_manifest(folder))
    engine = None
    if manifest is not None:
        engine = _check_model(out, cfg, folder, manifest)
        _check_recognition(out, cfg, folder, manifest)
        _check_sorting(out, cfg, manifest)
    if cfg.calibration is not None:
        out += check_calibration(
            cfg.calibration,
            steps_per_turn=cfg.rig.turntable.steps_per_turn,
            model_key=engine_model_key(cfg.engine),
        )
    _check_corrections(cfg, out)
    segmenter = _check_devices(out, cfg)
    if manifest is not None:
        _check_memory(out, cfg, manifest)
    for thing in (engine, segmenter):
        if thing is not None:
            thing.close()
    _check_record(out, cfg)
    return out


def _check_model(out: list[Check], cfg: Any, folder: Path, manifest: Any) -> Any:
    """The configured model file's checksum and a session on it; returns the engine (or None)."""
    from edge.engines import create_engine
    from edge.manifest import verify_file

    entry = _attempt(out, "model file", lambda: manifest.select(cfg.engine.runtime, cfg.engine.precision))
    if entry is None or not _attempt(out, "model file", lambda: verify_file(folder, entry)):
        return None
    out.append(("OK", "model file", f"{folder / entry.path} sha256 matches the manifest ({entry.key})"))
    engine = _attempt(
        out,
        "model load",
        lambda: create_engine(
            cfg.engine.runtime, folder, manifest, precision=cfg.engine.precision, threads=cfg.engine.threads
        ),
    )
    if engine is not None:
        out.append(("OK", "model load", f"{len(manifest.parts)} parts, {len(manifest.colors)} colours"))
    return engine


def _check_recognition(out: list[Check], cfg: Any, folder: Path, manifest: Any) -> None:
    """The index and recognizer exactly as `edge run` loads them (not only the index's hash)."""
    from edge.pipeline import load_indexes, make_recognizer

    index, rig = None, None
    if cfg.recognition.mode == "classifier":
        if manifest.index is not None:
            where = folder / manifest.index.path
            out.append(("OK", "index", f"{where} not loaded (recognition.mode 'classifier')"))
    else:
        index, rig = _attempt(out, "index", lambda: load_indexes(cfg, manifest)) or (None, None)
        if index is not None:
            out.append(
                ("OK", "index", f"{folder / manifest.index.path}: {len(index)} vectors of {index.dim} "
                 f"dimensions loaded ({index.space}, {index.backend} search), sha256 and build matching "
                 "the manifest")
            )  # fmt: skip
    if manifest.index is not None and cfg.recognition.mode != "classifier":
        _check_index_graph(out, folder, manifest.index)  # classifier mode never loads the index
    if cfg.recognition.mode != "classifier" and index is None:
        return
    recognizer = _attempt(out, "recognition", lambda: make_recognizer(cfg, manifest, index, rig))
    if recognizer is not None:
        rec = cfg.recognition
        notes = _recognition_notes(out, cfg, manifest, recognizer, rig)
        out.append(("OK", "recognition", f"{rec.mode}, threshold {rec.threshold:g}, k {rec.k}{notes}"))


def _recognition_notes(out: list[Check], cfg: Any, manifest: Any, recognizer: Any, rig: Any) -> str:
    """What the recognition line says of the rig threshold, the size prior and the part prior (a
    WARN goes to ``out`` when the saved rig threshold was fitted to other enrolled views)."""
    from edge.pipeline import calibrated_scale, saved_fit, stale_fit_note
    from edge.size import missing_table_hint, tilt_table

    rec = cfg.recognition
    rig_note = ""
    if rig is not None:
        if rec.rig_threshold is not None:
            where = "from the config"
        elif (fit := saved_fit(cfg, warn=False)) is not None:  # the one make_recognizer took
            where = "fitted, from the calibration file"
            stale = stale_fit_note(cfg, len(rig), len(set(rig.labels)), fit=fit)
            if stale:
                out.append(("WARN", "rig threshold", stale))
        else:
            where = "unset: vector_threshold"
        rig_note = f", rig_threshold {recognizer.rig_threshold:g} ({where})"
    size = recognizer.size
    scale = calibrated_scale(cfg)
    tilt = scale.tilt_deg if scale is not None else 0.0
    if size is not None:
        seen = "from above" if tilt == 0 else f"camera tilted {tilt:g} degrees"
        size_note = (
            f", size prior on ({size.px_per_mm:g} px/mm, {seen}, footprints of "
            f"{size.covered} of {len(size.parts)} parts, sigma {size.sigma:g})"
        )
    elif not rec.size_prior:
        size_note = ", size prior off (recognition.size_prior: false)"
    elif not tilt_table(manifest, tilt):
        size_note = f", size prior off ({missing_table_hint(manifest, tilt)})"
    else:
        size_note = ", size prior off (no scale calibrated: edge calibrate scale)"
    prior = recognizer.prior
    if prior is not None:
        prior_note = f", part prior on ({prior.source}; {prior.covered} of {len(prior.parts)} listed)"
    elif rec.part_prior == "none":
        prior_note = ", part prior off (recognition.part_prior: none)"
    else:
        prior_note = ", part prior off (no part ranks in the model set: trainer popularity)"
    return f"{rig_note}{size_note}{prior_note}"


def _check_sorting(out: list[Check], cfg: Any, manifest: Any) -> None:
    """The sorting rules against the model set's parts and categories."""
    from edge.sorting import Sorter, load_categories

    sorter = _attempt(
        out,
        "sorting",
        lambda: Sorter(cfg.sorting, cfg.bin_names, load_categories(manifest, cfg.sorting.categories_file)),
    )
    if sorter is not None:
        warnings = sorter.warnings(manifest.parts)
        out += [("WARN", "sorting", w) for w in warnings]
        if not warnings:
            out.append(
                ("OK", "sorting", f"{len(cfg.sorting.rules)} rule(s), bins {', '.join(cfg.bin_names)}")
            )


def _check_devices(out: list[Check], cfg: Any) -> Any:
    """The segmenter, one camera frame and the rig's pins; returns the segmenter (or None)."""
    from edge.camera import create_camera
    from edge.rig import Rig
    from edge.segment import create_segmenter

    segmenter = _attempt(
        out, "segmenter", lambda: create_segmenter(cfg.segmenter, calibration=cfg.calibration)
    )
    if segmenter is not None:
        shipped = getattr(segmenter, "shipped", None)  # mobileseg: its model set's manifest entry
        detail = (
            "" if shipped is None else f" ({shipped.path}, {shipped.precision}, sha256 matches the manifest)"
        )
        out.append(("OK", "segmenter", cfg.segmenter.type + detail))

    def camera_check() -> str:
        with create_camera(cfg.camera, calibration=cfg.calibration) as camera:
            frame = camera.capture()
            return f"{camera.name}: {frame.image.shape[1]}x{frame.image.shape[0]} frame"

    text = _attempt(out, "camera", camera_check)
    if text is not None:
        out.append(("OK", "camera", text))

    def pins_check() -> str:
        rig = Rig.from_config(cfg.rig, calibration=cfg.calibration)
        try:
            factory = type(rig.pin_factory).__name__
            steps = rig.turntable.steps_per_turn
            return (
                f"rig.pins {cfg.rig.pins!r}: {factory}, {len(cfg.rig.pin_uses())} pins claimed; "
                f"turntable {steps} steps per turn"
            )
        finally:
            rig.close()

    text = _attempt(out, "pins", pins_check)
    if text is not None:
        out.append(("OK", "pins", text))
    from edge.rig.wiring import wiring

    for wire in wiring(cfg.rig):  # a pin with a second job (HAT EEPROM, serial console, I2C pull-up)
        for note in wire.notes:
            out.append(("WARN", "pins", f"BCM {wire.bcm} (header pin {wire.header_pin}, {wire.use}): {note}"))
    return segmenter


def _check_memory(out: list[Check], cfg: Any, manifest: Any) -> None:
    """The estimated memory against the budget, and what this process holds with the model loaded."""
    from edge.memory import check_resident, estimate_memory

    report = _attempt(out, "memory", lambda: estimate_memory(cfg, manifest))
    if report is not None:
        out.append(("FAIL" if report.over else "OK", "memory estimate", "; ".join(report.lines())))
        rss = _attempt(out, "memory resident", lambda: check_resident(cfg.memory_budget_mb, report))
        if rss is not None:
            out.append(("OK", "memory resident", f"{rss:.0f} MB with the model loaded"))


def _check_record(out: list[Check], cfg: Any) -> None:
    """The decision record: writable, readable as the daemon's start-up reads it, and not in use."""
    from edge.record import RecordLock, inspect_record

    db = Path(cfg.data.db)
    parent = next((p for p in (db.parent, *db.parent.parents) if p.exists()), Path("/"))
    if not os.access(parent, os.W_OK):
        out.append(
            ("FAIL", "record", f"{str(parent)!r} is not writable; the record {str(db)!r} cannot be kept")
        )
        return
    state = _attempt(out, "record", lambda: inspect_record(db))  # what the daemon's start-up checks
    if state is not None:
        holder = RecordLock(db).holder()
        if holder is not None:
            out.append(
                ("WARN", "record", f"{db} ({state}) is in use by a running daemon ({holder}): another "
                 "`edge run` on it is refused until that one stops")
            )  # fmt: skip
        else:
            out.append(("OK", "record", f"{db} ({state})"))


def _check(args: argparse.Namespace) -> int:
    """Check config, model checksums, camera, pins and memory; exit 1 if anything FAILs."""
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
    from edge.cli_review import add_review_commands  # review, relabel, counts
    from edge.cli_rig import add_rig_commands  # calibrate, enroll, enrolled, reindex

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
