"""What ``edge check`` checks: config, model checksums, camera, pins, memory and the record.

:func:`run_checks` returns every check as an ``(OK | WARN | FAIL, what, detail)`` line; a failing
step becomes a FAIL line, never a traceback, and only a config that does not load stops it early.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edge.errors import EdgeError

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
    from edge.recognition_setup import load_indexes, make_recognizer

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
    from edge.recognition_setup import calibrated_scale, saved_fit, stale_fit_note
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
    from edge.record_file import inspect_record
    from edge.record_lock import RecordLock

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
