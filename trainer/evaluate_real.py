"""``trainer evaluate-real``: a model set scored on real photos, exactly as the Pi would run it.

Each photo goes through the segmenter a config names, edge's preprocessing and each artifact's engine
(ONNX Runtime or LiteRT, whatever the manifest lists), one view at a time. Photos are laid out as
``{part}/*.jpg|png`` or ``{part}/{color_id}/*.jpg|png`` (folders starting with ``_`` or ``.`` are skipped).

Figures per photo set and artifact: single-view part top-1 and top-5, colour top-1 where colours are
labelled (by folder, or by colour family with ``--colors NAME=FILE``: :mod:`trainer.color_families`),
per part, the most frequent confusions, and the known parts' top-1 where the crop leaves the frame
(the part at the frame's edge, its crop padded as on the Pi) against the rest. Part ids are
compared on the mould: a trailing letter after the digits is dropped on both sides (3040a ~ 3040b,
3062b ~ 3062), case ignored; prints and patterns (``pr``, ``pat`` suffixes) are not merged.

Parts of the photos the model set does not know are scored by enrolment: for each k of ``--enroll``,
the first k photos of each unknown part (by file name) are enrolled as the rig's own views, and
every other photo is decided as the daemon decides in ``hybrid`` mode (the rig's views searched
first, taken at ``rig_threshold``; see :mod:`edge.recognize`): the enrolled parts' decision top-1,
and how often a known part's photo is taken for an enrolled part. Beside it: the nearest neighbour
in one search over a copy of the shipped index with the enrolled views added (vector top-1), the
decisions of that merged search alone, and a sweep of ``rig_threshold`` (drawn as
``rig_threshold.png``). ``--enroll-every-part`` also enrols the first k photos of every part, known
ones too (a rig taught every part on its own stage), and scores each part on its other photos.
``--enroll-partial`` leaves each part out in turn and enrols the first k photos of every other one
(a rig taught all but one of its parts): the photos not enrolled are decided at the default and at
the fitted ``rig_threshold``, with the left-out part's photos taken for an enrolled one.

A folder of frames of the empty stage after a set's segmenter (``--set NAME=PHOTOS:SEGMENTER:EMPTY``)
fits a background model (for segmenters with ``calibration: true``), as a rig's background
calibration would.

The output folder gets ``real.json``, ``real.md``, ``real.png`` (bars per set, artifact and part,
with the majority and constant guesses marked) and ``predictions.csv`` (each photo's answers, for
``trainer compare-real``: two sets on the same photos, paired); ``--report FILE`` puts the markdown
section into FILE and the drawings beside it as ``real_photos.png`` and ``real_rig_threshold.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edge.bench import machine_info
from edge.engines import create_engine
from edge.errors import ConfigError
from edge.fileio import write_atomic
from edge.imagefile import read_image
from edge.index_search import BACKENDS, Backend
from edge.manifest import Manifest, load_manifest
from edge.manifest_entries import FileEntry
from edge.preprocess import crop_for, leaves_frame, prepare_crop
from edge.prior import DEFAULT_STRENGTH, PartPrior, load_part_prior
from edge.recognize import Recognizer
from edge.segment import Segmenter, create_segmenter
from edge.settings import RecognitionSettings
from edge.size import measure, reference_footprints
from trainer.color_families import family_scores, read_color_labels
from trainer.evaluate import add_part_prior_arguments, load_segmenter_config, select_artifacts
from trainer.photo_set import Photo, fit_background, mould, read_photo_set
from trainer.real_compare import PREDICTIONS, photo_rows, with_color_columns, write_predictions
from trainer.real_enrolment import (
    ENROLL_DEFAULT,
    enrolment_scores,
    partial_enrolment_scores,
    recognition_settings,
)
from trainer.real_goals import Goal, check_goals, goal_summary, measure_goals, parse_goal
from trainer.real_report import (
    pct,
    plot_figures,
    plot_sweep,
    render_markdown,
    update_report,
)
from trainer.real_scores import (
    classifier_scores,
    decided_log_probs,
    fit_photo_scale,
    frame_edge_scores,
    prior_scores,
    size_scores,
)

#: The size prior's spread in ``--scale-from`` figures: the daemon's default.
SIZE_SIGMA = RecognitionSettings().size_sigma
#: The drawing of the figures: in ``--out``, and beside the ``--report`` file under the second name.
PLOT, REPORT_PLOT = "real.png", "real_photos.png"
SWEEP_PLOT, REPORT_SWEEP_PLOT = "rig_threshold.png", "real_rig_threshold.png"


# ---- running ---------------------------------------------------------------------------------------


def prepare_inputs(
    photos: Sequence[Photo], segmenter: Segmenter, manifest: Manifest
) -> tuple[np.ndarray, dict, list[tuple[float, float] | None], list[bool]]:
    """Network inputs of every photo (segmented, cropped as on the Pi), segmentation figures, each
    mask's footprint in pixels (:func:`edge.size.measure`) and whether each crop leaves the frame
    (:func:`edge.preprocess.leaves_frame`)."""
    inputs, areas, footprints, edges, empty = [], [], [], [], 0
    for photo in tqdm(photos, desc="segment", unit="photo", leave=False):
        image = read_image(photo.path)
        mask = segmenter.mask(image)
        share = float(np.count_nonzero(mask)) / mask.size
        empty += share == 0
        areas.append(share)
        footprints.append(measure(mask))
        crop = crop_for(image, mask, manifest.input)
        edges.append(not crop.empty and leaves_frame(crop, image.shape))
        inputs.append(prepare_crop(crop, manifest.input))
    stats = {
        "empty_masks": int(empty),
        "median_mask_share": round(float(np.median(areas)), 4),
        "crops_leaving_frame": int(sum(edges)),
    }
    return np.stack(inputs), stats, footprints, edges


def run_batches(engine: Any, x: np.ndarray, batch: int = 32) -> dict[str, np.ndarray]:
    """``{role: (N, K)}`` of an engine over prepared inputs."""
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for i in range(0, len(x), batch):
        for role, value in engine.run(x[i : i + batch]).items():
            parts[role].append(np.asarray(value))
    return {role: np.concatenate(v) for role, v in parts.items()}


def evaluate_photo_set(
    name: str,
    photos: Sequence[Photo],
    segmenter: Segmenter,
    model_set: Path,
    manifest: Manifest,
    entries: Sequence[FileEntry],
    enroll: Iterable[int],
    recognition: dict[str, Any],
    enroll_every_part: bool = False,
    scale_from: tuple[str, int] | None = None,
    enroll_turns: bool = False,
    prior: PartPrior | None = None,
    enroll_partial: bool = False,
    index_backend: Backend = "auto",
    folder: Path | None = None,
    color_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Every figure of one photo set for each artifact; under ``"predictions"`` the per-photo rows of
    :func:`trainer.real_compare.photo_rows` (photo paths relative to ``folder`` where given).
    ``color_labels`` (:func:`trainer.color_families.read_color_labels`, paths relative to
    ``folder``): the colour head scored on every labelled photo, known part or not."""
    start = time.perf_counter()
    x, seg_stats, footprints, edges = prepare_inputs(photos, segmenter, manifest)
    scale = None
    if scale_from is not None:
        scale = fit_photo_scale(photos, footprints, manifest, scale_from, SIZE_SIGMA)
    known = {mould(p) for p in manifest.parts}
    known_rows = [i for i, p in enumerate(photos) if mould(p.part) in known]
    result: dict[str, Any] = {
        "photos": len(photos),
        "parts": dict(sorted(Counter(p.part for p in photos).items())),
        "unknown_parts": sorted({p.part for p in photos if mould(p.part) not in known}),
        "segmentation": seg_stats,
        "artifacts": {},
        "predictions": [],
    }
    for entry in entries:
        with create_engine(
            entry.runtime, model_set, manifest, precision=entry.precision, threads=os.cpu_count() or 1
        ) as engine:
            outputs = run_batches(engine, x)
            turned = []
            if enroll_turns and "embedding" in outputs:
                axes = (2, 3) if manifest.input.layout == "NCHW" else (1, 2)
                turned = [
                    run_batches(engine, np.ascontiguousarray(np.rot90(x, r, axes=axes)))["embedding"]
                    for r in (1, 2, 3)
                ]
        figures: dict[str, Any] = {}
        rows: list[dict[str, str]] = []
        if known_rows:
            kp = [photos[i] for i in known_rows]
            known_logits = outputs["part_logits"][known_rows]
            colors = outputs.get("color_logits")
            figures["known"] = classifier_scores(
                kp,
                known_logits,
                manifest,
                None if colors is None else colors[known_rows],
                keep_hits=True,
            )
            figures["known"]["majority_baseline"] = round(
                max(Counter(p.part for p in kp).values()) / len(kp), 4
            )
            figures["known"]["frame_edge"] = frame_edge_scores(
                kp, figures["known"].pop("hits"), [edges[i] for i in known_rows]
            )
            decided = None  # the part prior's decisions, shared by its figures and the rows
            if prior is not None:
                decided = decided_log_probs(Recognizer(manifest, prior=prior), known_logits, [None] * len(kp))
                figures["prior"] = prior_scores(kp, known_logits, manifest, prior, decided)
            rows = photo_rows(name, entry.key, kp, folder, known_logits, manifest, decided)
            if scale is not None:
                figures["size"] = size_scores(
                    photos, outputs["part_logits"], footprints, manifest, scale, prior
                )
        if folder is not None and "color_logits" in outputs:
            relative = [p.path.relative_to(folder).as_posix() for p in photos]
            colors = outputs["color_logits"]
            if color_labels:
                figures["color_family"] = family_scores(relative, colors, manifest.colors, color_labels)
            rows = with_color_columns(
                rows, name, entry.key, photos, relative, colors, manifest.colors, color_labels or {}
            )
        result["predictions"] += rows
        if manifest.index is not None and "embedding" in outputs:
            index_path = model_set / manifest.index.path
            modes = (
                ((False, "enroll_"), (True, "enroll_all_")) if enroll_every_part else ((False, "enroll_"),)
            )
            for k in enroll:
                for every_part, prefix in modes:
                    scores = enrolment_scores(
                        photos,
                        outputs,
                        manifest,
                        index_path,
                        k,
                        recognition,
                        every_part=every_part,
                        turned=turned,
                        size=None if scale is None else scale.prior,
                        prior=prior,
                        footprints=footprints,
                        index_backend=index_backend,
                    )
                    if scores is not None:
                        figures[f"{prefix}{k}"] = scores
                if enroll_partial:
                    partial = partial_enrolment_scores(
                        photos,
                        outputs,
                        manifest,
                        index_path,
                        k,
                        recognition,
                        size=None if scale is None else scale.prior,
                        prior=prior,
                        footprints=footprints,
                        index_backend=index_backend,
                    )
                    if partial is not None:
                        figures[f"partial_enroll_{k}"] = partial
        result["artifacts"][entry.key] = figures
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def evaluate_real(
    model_set: Path,
    photo_sets: Sequence[tuple[str, Path, Path, Path | None]],
    out: Path,
    *,
    artifacts: str = "all",
    enroll: Sequence[int] = ENROLL_DEFAULT,
    recognition: dict[str, Any] | None = None,
    enroll_every_part: bool = False,
    scale_from: tuple[str, int] | None = None,
    enroll_turns: bool = False,
    part_prior: str | Path = "none",
    part_prior_strength: float = DEFAULT_STRENGTH,
    enroll_partial: bool = False,
    index_backend: Backend = "auto",
    color_labels: dict[str, Path] | None = None,
    goals: Sequence[Goal] = (),
    tried: str | None = None,
) -> dict[str, Any]:
    """Score ``model_set`` on each ``(name, photos, segmenter yaml, empty frames or None)``; write
    reports. ``part_prior`` (and its strength): as ``recognition.part_prior`` (figures with and
    without it). ``index_backend``: how the enrolment figures search (``exact``: deterministic, as
    a Pi without hnswlib searches). ``color_labels``: set name -> a colour labels file
    (:mod:`trainer.color_families`), read before anything runs. ``goals``: figures that should reach
    a share (:mod:`trainer.real_goals`), checked before anything runs and reported met or missed;
    ``tried``: the report's line on what was tried toward a missed goal."""
    names = [name for name, *_ in photo_sets]
    check_goals(goals, names, enroll)
    unknown = sorted(set(color_labels or {}) - set(names))
    if unknown:
        raise ConfigError(
            f"--colors names {', '.join(unknown)}, which no --set names (sets: {', '.join(names)})"
        )
    labels = {name: read_color_labels(path) for name, path in (color_labels or {}).items()}
    manifest = load_manifest(model_set)
    entries = select_artifacts(manifest, artifacts)
    prior = load_part_prior(part_prior, manifest, part_prior_strength)
    if scale_from is not None:
        reference_footprints(manifest, scale_from[0])  # fails early, saying how to get footprints
    recognition = recognition or recognition_settings()
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"model_set": str(model_set), "sets": {}}
    predictions: list[dict[str, str]] = []
    if index_backend != "auto":
        report["index_backend"] = index_backend
    for name, folder, seg_path, empty in photo_sets:
        calibration, fit = None, None
        seg_cfg = load_segmenter_config(seg_path)
        if empty is not None:
            calibration, fit = fit_background(empty, out / name)
        photos = read_photo_set(folder)
        with create_segmenter(seg_cfg, calibration=calibration) as segmenter:
            figures = evaluate_photo_set(
                name,
                photos,
                segmenter,
                model_set,
                manifest,
                entries,
                enroll,
                recognition,
                enroll_every_part,
                scale_from,
                enroll_turns,
                prior,
                enroll_partial,
                index_backend,
                folder=folder,
                color_labels=labels.get(name),
            )
        predictions += figures.pop("predictions")
        figures.update(folder=str(folder), segmenter=seg_cfg, segmenter_file=str(seg_path))
        if fit is not None:
            figures["background_fit"] = fit
        report["sets"][name] = figures
    report["machine"] = machine_info()
    if goals:
        report["goals"] = measure_goals(goals, report)
        if tried:
            report["goals_tried"] = tried
    write_atomic(out / "real.json", json.dumps(report, indent=2, default=str))
    write_predictions(out / PREDICTIONS, predictions)
    drawn = plot_figures(report, out / PLOT)
    swept = plot_sweep(report, out / SWEEP_PLOT)
    write_atomic(
        out / "real.md",
        render_markdown(report, plot=PLOT if drawn else None, sweep=SWEEP_PLOT if swept else None),
    )
    return report


# ---- command line ----------------------------------------------------------------------------------


def _photo_set(spec: str) -> tuple[str, Path, Path, Path | None]:
    """``NAME=PHOTOS:SEGMENTER_YAML[:EMPTY_DIR]``."""
    name, sep, rest = spec.partition("=")
    fields = rest.split(":")
    if not sep or not name or len(fields) not in (2, 3) or not all(fields):
        raise argparse.ArgumentTypeError(
            f"photo set {spec!r} must be NAME=PHOTOS_DIR:SEGMENTER_YAML[:EMPTY_FRAMES_DIR]"
        )
    return name, Path(fields[0]), Path(fields[1]), Path(fields[2]) if len(fields) == 3 else None


def _color_labels(spec: str) -> tuple[str, Path]:
    """``NAME=LABELS_CSV``."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(
            f"--colors {spec!r}: expected NAME=LABELS_CSV, e.g. belt=config/real/belt_colors.csv"
        )
    return name, Path(path)


def _scale_from(spec: str) -> tuple[str, int]:
    """``PART:K``."""
    part, sep, k = spec.partition(":")
    if not sep or not part or not k.isdigit() or int(k) < 1:
        raise argparse.ArgumentTypeError(f"--scale-from {spec!r} must be PART:K, e.g. 15712:5")
    return part, int(k)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trainer evaluate-real``."""
    p = sub.add_parser(
        "evaluate-real",
        help="score a model set on folders of real photos, through a segmenter and edge's engines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model-set", required=True, type=Path, help="model set folder")
    p.add_argument(
        "--set",
        dest="sets",
        required=True,
        action="append",
        type=_photo_set,
        help="NAME=PHOTOS_DIR:SEGMENTER_YAML[:EMPTY_FRAMES_DIR] (repeatable); see config/real/",
    )
    p.add_argument(
        "--colors",
        dest="color_labels",
        action="append",
        type=_color_labels,
        default=[],
        help="NAME=LABELS_CSV (repeatable): colour families of the set's photos, labelled by eye "
        "(trainer.color_families; e.g. config/real/belt_colors.csv); the colour head is scored on them",
    )
    p.add_argument("--artifacts", default="all", help="'all' or runtime/precision keys, comma separated")
    p.add_argument("--enroll", default="1,5", help="photos enrolled per unknown part, comma separated")
    p.add_argument(
        "--enroll-every-part",
        action="store_true",
        help="also enrol every part's first photos, known parts too, and score all parts on the rest",
    )
    p.add_argument(
        "--rig-threshold",
        type=float,
        help="the daemon's recognition.rig_threshold for the enrolment decisions (default: its default, "
        "vector_threshold)",
    )
    p.add_argument(
        "--enroll-partial",
        action="store_true",
        help="also leave each part out in turn and enrol every other part's first photos: the left-out "
        "part's photos decided at the default and at the fitted rig_threshold (a rig taught all but one)",
    )
    p.add_argument(
        "--enroll-turns",
        action="store_true",
        help="enrol each enrolled photo also turned by 90, 180 and 270 degrees (4 views per photo)",
    )
    p.add_argument(
        "--scale-from",
        type=_scale_from,
        help="PART:K: fit the stage's scale from the first K photos of PART (as `edge calibrate scale` "
        "does; those photos are then not scored) and score the known parts with and without the size "
        "prior, in each set holding PART",
    )
    add_part_prior_arguments(p, "the known parts are scored with and without it (default none)")
    p.add_argument(
        "--index-backend",
        choices=BACKENDS,
        default="auto",
        help="how the enrolment figures search the index: auto (hnswlib where installed; its graph is "
        "rebuilt on every core, which can move a decision or two between runs) or exact "
        "(deterministic; what a Pi without hnswlib runs)",
    )
    p.add_argument(
        "--goal",
        dest="goals",
        action="append",
        type=parse_goal,
        default=[],
        help="SET:FIGURE=PERCENT (repeatable): a figure that should reach a share, reported met or missed "
        "by how many points per artifact; FIGURE: top1, top5 (known parts), family (colour), enrolledK "
        "(unknown parts enrolled from K photos), e.g. belt:top1=80 belt:enrolled5=80",
    )
    p.add_argument(
        "--tried",
        help="with --goal: the report's line on what was tried toward a missed goal (e.g. a link to "
        "the experiments' record)",
    )
    p.add_argument("--out", required=True, type=Path, help="report folder (real.md, real.json, real.png)")
    p.add_argument(
        "--report", type=Path, help="also put the section into this markdown file (e.g. REPORT.md)"
    )
    p.add_argument(
        "--record", action="store_true", help="store the figures in the manifest's evaluation.real"
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run ``trainer evaluate-real``."""
    try:
        enroll = [int(k) for k in args.enroll.split(",") if k.strip()]
    except ValueError:
        raise ConfigError(f"--enroll {args.enroll!r} must be whole numbers separated by commas") from None
    recognition = recognition_settings(args.rig_threshold)
    report = evaluate_real(
        args.model_set,
        args.sets,
        args.out,
        artifacts=args.artifacts,
        enroll=enroll,
        recognition=recognition,
        enroll_every_part=args.enroll_every_part,
        scale_from=args.scale_from,
        enroll_turns=args.enroll_turns,
        enroll_partial=args.enroll_partial,
        part_prior=args.part_prior,
        part_prior_strength=args.part_prior_strength,
        index_backend=args.index_backend,
        color_labels=dict(args.color_labels),
        goals=args.goals,
        tried=args.tried,
    )
    for name, figures in report["sets"].items():
        for key, f in figures["artifacts"].items():
            known = f.get("known", {})
            extra = " ".join(
                f"enrol k={k} {pct(f[f'enroll_{k}'].get('decision_top1'))}"
                f" (nearest {pct(f[f'enroll_{k}']['vector_top1'])})"
                for k in enroll
                if f"enroll_{k}" in f
            )
            family = f.get("color_family")
            if family:
                extra += f" colour family {pct(family['family_top1'])} of {family['photos']}"
            print(
                f"{name:<10} {key:<18} part top-1 {pct(known.get('part_top1'))} "
                f"top-5 {pct(known.get('part_top5'))} {extra}"
            )
    for line in goal_summary(report.get("goals", [])):
        print(line)
    if args.report:
        sets = " ".join(f"--set {n}={f}:{s}" + (f":{e}" if e else "") for n, f, s, e in args.sets)
        command = (
            f"trainer evaluate-real --model-set {args.model_set} --out OUT {sets} --report {args.report}"
            + "".join(f" --colors {n}={f}" for n, f in args.color_labels)
            + (" --enroll-every-part" if args.enroll_every_part else "")
            + (" --enroll-turns" if args.enroll_turns else "")
            + (" --enroll-partial" if args.enroll_partial else "")
            + (f" --scale-from {':'.join(map(str, args.scale_from))}" if args.scale_from else "")
            + (f" --rig-threshold {args.rig_threshold:g}" if args.rig_threshold is not None else "")
            + (f" --part-prior {args.part_prior}" if args.part_prior != "none" else "")
            + (f" --part-prior-strength {args.part_prior_strength:g}" if args.part_prior != "none" else "")
            + "".join(f" --goal {g.set_name}:{g.figure}={100 * g.share:g}" for g in args.goals)
            + (f" --tried {shlex.quote(args.tried)}" if args.tried and args.goals else "")
            + (" --record" if args.record else "")
        )
        beside, sweep = args.report.with_name(REPORT_PLOT), args.report.with_name(REPORT_SWEEP_PLOT)
        drawn, swept = plot_figures(report, beside), plot_sweep(report, sweep)
        update_report(
            args.report,
            render_markdown(
                report, command, plot=beside.name if drawn else None, sweep=sweep.name if swept else None
            ),
        )
    if args.record:
        from trainer.model_set import record_evaluation

        record_evaluation(args.model_set, "real", _summary(report))
    print(f"report: {args.out / 'real.md'}")
    return 0


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures per set and artifact (for the manifest)."""
    out: dict[str, Any] = {}
    for name, figures in report["sets"].items():
        for key, f in figures["artifacts"].items():
            row = {"photos": figures["photos"]}
            if "known" in f:
                row.update(
                    part_top1=f["known"]["part_top1"],
                    part_top5=f["known"]["part_top5"],
                    part_top1_mean_over_parts=f["known"]["part_top1_mean_over_parts"],
                )
            if "size" in f:
                row.update(
                    size_px_per_mm=f["size"]["px_per_mm"],
                    size_photos=f["size"]["photos"],
                    size_part_top1_without=f["size"]["without"]["part_top1"],
                    size_part_top1=f["size"]["with"]["part_top1"],
                )
                if "with_prior" in f["size"]:
                    row["size_and_prior_part_top1"] = f["size"]["with_prior"]["part_top1"]
            if "prior" in f:
                row.update(
                    prior_source=f["prior"]["source"],
                    prior_part_top1_without=f["prior"]["without"]["part_top1"],
                    prior_part_top1=f["prior"]["with"]["part_top1"],
                )
            if "color_family" in f:
                row.update(
                    color_family_top1=f["color_family"]["family_top1"],
                    color_family_photos=f["color_family"]["photos"],
                )
            for k in ENROLL_DEFAULT:
                if f"enroll_{k}" in f:
                    row[f"enroll_{k}_vector_top1"] = f[f"enroll_{k}"]["vector_top1"]
                    row[f"enroll_{k}_decision_top1"] = f[f"enroll_{k}"].get("decision_top1")
            out.setdefault(name, {})[key] = row
    return out
