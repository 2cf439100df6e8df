"""``trainer evaluate-real``: a model set scored on real photos, exactly as the Pi would run it.

Each photo goes through the segmenter a config names, edge's preprocessing and each artifact's engine
(ONNX Runtime or LiteRT, whatever the manifest lists), one view at a time. Photos are laid out as
``{part}/*.jpg|png`` or ``{part}/{color_id}/*.jpg|png`` (folders starting with ``_`` or ``.`` are skipped).

Figures per photo set and artifact: single-view part top-1 and top-5, colour top-1 where colours are
labelled, per part, and the most frequent confusions. Part ids are compared on the mould: a trailing
letter after the digits is dropped on both sides (3040a ~ 3040b, 3062b ~ 3062), case ignored; prints
and patterns (``pr``, ``pat`` suffixes) are not merged.

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

The output folder gets ``real.json``, ``real.md`` and ``real.png`` (bars per set, artifact and part,
with the majority and constant guesses marked); ``--report FILE`` puts the markdown section into
FILE and the drawings beside it as ``real_photos.png`` and ``real_rig_threshold.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edge.colors import get_color
from edge.config import validate_config
from edge.engines import create_engine
from edge.enroll import fit_rig_threshold
from edge.errors import ConfigError, DataFileError
from edge.fileio import write_atomic
from edge.imagefile import read_image
from edge.index import EmbeddingIndex
from edge.manifest import FileEntry, Manifest, load_manifest
from edge.preprocess import prepare
from edge.prior import DEFAULT_STRENGTH, PartPrior, load_part_prior
from edge.recognize import Recognizer
from edge.segment import Segmenter, create_segmenter
from edge.settings import RecognitionSettings
from edge.size import SizePrior, fit_scale, measure, reference_footprints
from trainer.evaluate import add_part_prior_arguments, load_segmenter_config, select_artifacts
from trainer.stats import paired_change, paired_text, wilson_interval

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ENROLL_DEFAULT = (1, 5)
TOP_CONFUSED = 8
#: The size prior's spread in ``--scale-from`` figures: the daemon's default.
SIZE_SIGMA = RecognitionSettings().size_sigma
SECTION_START = "<!-- real-photos:start -->"
SECTION_END = "<!-- real-photos:end -->"
#: The drawing of the figures: in ``--out``, and beside the ``--report`` file under the second name.
PLOT, REPORT_PLOT = "real.png", "real_photos.png"
SWEEP_PLOT, REPORT_SWEEP_PLOT = "rig_threshold.png", "real_rig_threshold.png"
_SUFFIX = re.compile(r"(?<=\d)[a-z]$")


def mould(part: str) -> str:
    """The mould of a part id: lower case, a single letter after the final digits dropped (3040b -> 3040)."""
    return _SUFFIX.sub("", part.strip().lower())


@dataclass(frozen=True)
class Photo:
    """One labelled real photo."""

    path: Path
    part: str
    color_id: int | None


def read_photo_set(root: str | Path) -> list[Photo]:
    """The photos under ``root`` (``{part}/*`` or ``{part}/{color_id}/*``), sorted by part and file name."""
    root = Path(root)
    if not root.is_dir():
        raise DataFileError(f"photo folder {str(root)!r} does not exist; pass a folder of {{part}}/*.jpg")
    photos = []
    for part_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] not in "_."):
        for path in sorted(part_dir.rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            rel = path.relative_to(part_dir).parts
            color = int(rel[0]) if len(rel) == 2 and rel[0].isdigit() else None
            photos.append(Photo(path, part_dir.name, color))
    if not photos:
        raise DataFileError(f"no photos under {str(root)!r}; expected {{part}}/*.jpg|png")
    return photos


def fit_background(empty: Path, out: Path) -> tuple[Path, dict[str, Any]]:
    """Fit a background model from the frames in ``empty`` and write a calibration file naming it,
    as the rig's background calibration does; returns the file and the fit's summary."""
    from edge.calibration_file import update_calibration
    from edge.segment.bgdiff import describe, fit_background_files

    frames = sorted(p for p in empty.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    model = fit_background_files(frames)
    model.save(out / "background.npz")
    calibration = out / "calibration.json"
    update_calibration(calibration, background={"model": "background.npz", "frames": len(frames)})
    return calibration, describe(model)


# ---- scoring ---------------------------------------------------------------------------------------


def prepare_inputs(
    photos: Sequence[Photo], segmenter: Segmenter, manifest: Manifest
) -> tuple[np.ndarray, dict, list[tuple[float, float] | None]]:
    """Network inputs of every photo (segmented, cropped as on the Pi), segmentation figures and
    each mask's footprint in pixels (:func:`edge.size.measure`)."""
    inputs, areas, footprints, empty = [], [], [], 0
    for photo in tqdm(photos, desc="segment", unit="photo", leave=False):
        image = read_image(photo.path)
        mask = segmenter.mask(image)
        share = float(np.count_nonzero(mask)) / mask.size
        empty += share == 0
        areas.append(share)
        footprints.append(measure(mask))
        inputs.append(prepare(image, mask, manifest.input))
    stats = {"empty_masks": int(empty), "median_mask_share": round(float(np.median(areas)), 4)}
    return np.stack(inputs), stats, footprints


def run_batches(engine: Any, x: np.ndarray, batch: int = 32) -> dict[str, np.ndarray]:
    """``{role: (N, K)}`` of an engine over prepared inputs."""
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for i in range(0, len(x), batch):
        for role, value in engine.run(x[i : i + batch]).items():
            parts[role].append(np.asarray(value))
    return {role: np.concatenate(v) for role, v in parts.items()}


def classifier_scores(
    photos: Sequence[Photo],
    logits: np.ndarray,
    manifest: Manifest,
    colors: np.ndarray | None,
    keep_hits: bool = False,
) -> dict[str, Any]:
    """Top-1/top-5 on the mould for photos of known parts (top-1 with its 95% Wilson interval), per
    part, confusions, colours; ``keep_hits``: also each photo's top-1 hit (``hits``), for
    :func:`paired_change`."""
    names = [mould(p) for p in manifest.parts]
    top = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    per_part: dict[str, dict[str, Any]] = {}
    hits1, hits5, confused = [], [], Counter()
    best_colors = [None] * len(photos) if colors is None else np.argmax(colors, axis=1)
    for photo, row, color in zip(photos, top, best_colors, strict=True):
        truth = mould(photo.part)
        guesses = [names[i] for i in row]
        entry = per_part.setdefault(
            photo.part, {"photos": 0, "top1": 0, "top5": 0, "predicted": Counter(), "colors": Counter()}
        )
        if color is not None:
            entry["colors"][_color(manifest.colors[color])] += 1
        entry["photos"] += 1
        entry["top1"] += guesses[0] == truth
        entry["top5"] += truth in guesses
        entry["predicted"][manifest.parts[row[0]]] += 1
        hits1.append(guesses[0] == truth)
        hits5.append(truth in guesses)
        if guesses[0] != truth:
            confused[(photo.part, manifest.parts[row[0]])] += 1
    mean_over_parts = float(np.mean([e["top1"] / e["photos"] for e in per_part.values()]))
    for entry in per_part.values():
        n = entry["photos"]
        entry["top1"], entry["top5"] = round(entry["top1"] / n, 4), round(entry["top5"] / n, 4)
        entry["predicted"] = entry["predicted"].most_common(3)
        entry["colors"] = entry["colors"].most_common(2)
    out: dict[str, Any] = {
        "photos": len(photos),
        "part_top1": round(float(np.mean(hits1)), 4),
        "part_top1_ci95": wilson_interval(sum(hits1), len(hits1)),
        "part_top5": round(float(np.mean(hits5)), 4),
        # each part counts once, however many photos it has (a constant guess scores 1 / parts)
        "part_top1_mean_over_parts": round(mean_over_parts, 4),
        "per_part": per_part,
        "confused": [
            {"true": t, "predicted": p, "photos": n} for (t, p), n in confused.most_common(TOP_CONFUSED)
        ],
    }
    if colors is not None:
        out.update(color_figures(photos, colors, manifest))
    if keep_hits:
        out["hits"] = [bool(h) for h in hits1]
    return out


def _pop_paired(out: dict[str, Any], bases: dict[str, str]) -> None:
    """Replace the figures' per-photo ``hits`` by ``out["paired"][name]``: the change of figure
    ``name`` against figure ``bases[name]`` on the same photos."""
    hits = {name: out[name].pop("hits") for name in {*bases, *bases.values()}}
    out["paired"] = {name: paired_change(hits[base], hits[name]) for name, base in bases.items()}


@dataclass
class FittedScale:
    """The size prior of a photo set's scale, fitted from the first photos of a reference part (as
    ``edge calibrate scale`` would); ``rows``: those photos (left out of the size figures)."""

    reference: str
    rows: list[int]
    prior: SizePrior


def fit_photo_scale(
    photos: Sequence[Photo],
    footprints: Sequence[tuple[float, float] | None],
    manifest: Manifest,
    reference: tuple[str, int],
    sigma: float,
) -> FittedScale | None:
    """The scale from the first k photos of the reference part; None when the set has none of it."""
    part, k = reference
    rows = [i for i, p in enumerate(photos) if p.part == part][:k]
    if not rows:
        return None
    measured = [footprints[i] for i in rows if footprints[i] is not None]
    px_per_mm = fit_scale(measured, reference_footprints(manifest, part), sigma)
    return FittedScale(part, rows, SizePrior(manifest.parts, manifest.footprints, px_per_mm, sigma))


def size_scores(
    photos: Sequence[Photo],
    logits: np.ndarray,
    footprints: Sequence[tuple[float, float] | None],
    manifest: Manifest,
    scale: FittedScale,
    prior: PartPrior | None = None,
) -> dict[str, Any]:
    """Known-part figures with and without the size prior (:mod:`edge.size`) of ``scale``, on the
    photos other than its reference photos; with ``prior``, also with the size prior and the part
    prior together (key ``with_prior``)."""
    known = {mould(p) for p in manifest.parts}
    scored = [i for i, p in enumerate(photos) if mould(p.part) in known and i not in scale.rows]
    # the daemon's decision (temperatures, fusion) without and with the prior, one view per photo
    size = scale.prior
    recognizers = {"without": Recognizer(manifest), "with": Recognizer(manifest, size=size)}
    if prior is not None:
        recognizers["with_prior"] = Recognizer(manifest, size=size, prior=prior)
    subset = [photos[i] for i in scored]
    out: dict[str, Any] = {
        "reference": scale.reference,
        "reference_photos": len(scale.rows),
        "px_per_mm": round(size.px_per_mm, 3),
        "sigma": size.sigma,
        "photos": len(scored),
    }
    for name, recognizer in recognizers.items():
        out[name] = decided_scores(recognizer, subset, logits[scored], [footprints[i] for i in scored])
    # the size prior against none; both priors against the size prior alone
    _pop_paired(out, {"with": "without", "with_prior": "with"} if prior is not None else {"with": "without"})
    return out


def prior_scores(
    photos: Sequence[Photo], logits: np.ndarray, manifest: Manifest, prior: PartPrior
) -> dict[str, Any]:
    """Figures of the photos (of known parts) with and without the part prior (:mod:`edge.prior`),
    decided as the daemon does (temperatures), one view per photo."""
    out: dict[str, Any] = {"source": prior.source, "photos": len(photos)}
    for name, recognizer in (("without", Recognizer(manifest)), ("with", Recognizer(manifest, prior=prior))):
        out[name] = decided_scores(recognizer, photos, logits, [None] * len(photos))
    _pop_paired(out, {"with": "without"})
    return out


def decided_scores(
    recognizer: Recognizer,
    photos: Sequence[Photo],
    logits: np.ndarray,
    footprints: Sequence[tuple[float, float] | None],
) -> dict[str, Any]:
    """:func:`classifier_scores` of the fused part probabilities ``recognizer`` decides from, one
    photo (its logits row and footprint) at a time, as the daemon decides a one-view part."""
    probs = []
    for row, footprint in zip(logits, footprints, strict=True):
        distribution = recognizer.decide({"part_logits": row[None]}, [footprint]).distribution
        assert distribution is not None  # classifier mode always fuses the classifier
        probs.append(distribution.part_probs)
    log_probs = np.log(np.clip(np.stack(probs), 1e-300, None))
    return classifier_scores(photos, log_probs, recognizer.manifest, None, keep_hits=True)


def color_figures(photos: Sequence[Photo], colors: np.ndarray, manifest: Manifest) -> dict[str, Any]:
    """Colour top-1 over photos with a colour label the model knows; the predicted colours otherwise."""
    best = [manifest.colors[i] for i in np.argmax(colors, axis=1)]
    labelled = [(p.color_id, b) for p, b in zip(photos, best, strict=True) if p.color_id in manifest.colors]
    out: dict[str, Any] = {"predicted_colors": Counter(_color(b) for b in best).most_common(5)}
    if labelled:
        out["color_photos"] = len(labelled)
        out["color_top1"] = round(float(np.mean([t == b for t, b in labelled])), 4)
    return out


def _color(color_id: int) -> str:
    try:
        return f"{get_color(color_id).name} ({color_id})"
    except KeyError:  # an id outside the colour table still gets reported
        return str(color_id)


def recognition_settings(rig_threshold: float | None = None) -> dict[str, Any]:
    """The daemon's default recognition thresholds (``recognition`` of :func:`evaluate_real`), with
    ``rig_threshold`` checked as the daemon's config checks it."""
    settings = validate_config(RecognitionSettings, {"rig_threshold": rig_threshold}, "--rig-threshold")
    return settings.model_dump(include={"threshold", "vector_threshold", "rig_threshold"})


#: Rig thresholds swept for the enrolment trade-off (a rig's own views taken first at each).
RIG_SWEEP: tuple[float, ...] = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))


def enrolment_scores(
    photos: Sequence[Photo],
    outputs: dict[str, np.ndarray],
    manifest: Manifest,
    index_path: Path,
    enroll: int,
    recognition: dict[str, Any],
    *,
    every_part: bool = False,
    enrol_parts: Collection[str] | None = None,
    turned: Sequence[np.ndarray] = (),
    size: SizePrior | None = None,
    prior: PartPrior | None = None,
    footprints: Sequence[tuple[float, float] | None] = (),
    keep_answers: bool = False,
) -> dict[str, Any] | None:
    """Enrol the first ``enroll`` photos of each unknown part into a copy of the index; score the rest.

    ``turned``: embeddings of every photo's input turned by further quarter turns, enrolled beside
    each enrolled photo's own (a part lands at any yaw; see ``--enroll-turns``).

    ``every_part``: enrol the known parts' first photos too (a rig taught every part on its own
    stage), so every part is scored on the photos after its first ``enroll``. ``enrol_parts``:
    enrol exactly these parts (known or not); every other part's photos are all scored.

    Decisions are the daemon's in hybrid mode: the enrolled photos are the rig's own views, searched
    first (``rig_threshold``, default ``vector_threshold``); ``merged_*`` figures are the decisions
    of one search over the shipped index and the enrolled views together, and ``rig_sweep`` the
    enrolled parts' top-1 and the known parts' photos taken for one at each threshold. ``fitted``:
    the threshold :func:`edge.enroll.fit_rig_threshold` finds from the enrolled photos alone (two
    or more parts enrolled) and the decisions at it. With ``size`` (and each photo's ``footprints``)
    or ``prior``, ``with_priors`` holds the same decisions with the classifier's answers weighed by
    them, at ``rig_threshold`` and at the fitted one. ``keep_answers``: also ``answers``, each
    scored photo's truth and decisions at ``rig_threshold`` and at the fitted one (the
    classifier's answers weighed by the priors where given).
    """
    if enrol_parts is None:
        known = set() if every_part else {mould(p) for p in manifest.parts}
        enrol_parts = {p.part for p in photos if mould(p.part) not in known}
    by_part: dict[str, list[int]] = defaultdict(list)
    for i, photo in enumerate(photos):
        if photo.part in enrol_parts:
            by_part[photo.part].append(i)
    usable = {p: rows for p, rows in by_part.items() if len(rows) > enroll}
    if not usable:
        return None
    index = EmbeddingIndex.load(index_path, expect=manifest.index)
    rig = EmbeddingIndex(index.dim, space=index.space, threads=1)
    emb = outputs["embedding"]
    enrolled = {i for rows in usable.values() for i in rows[:enroll]}
    for part, rows in usable.items():
        for views in (emb, *turned):
            index.add(views[rows[:enroll]], [part] * enroll)
            rig.add(views[rows[:enroll]], [part] * enroll)
    queries = [i for rows in usable.values() for i in rows[enroll:]]
    labels, _ = index.search(emb[queries], k=1)
    vector_hits = [
        mould(str(lab[0])) == mould(photos[i].part) for lab, i in zip(labels, queries, strict=True)
    ]
    merged = Recognizer(manifest, mode="hybrid", index=index, **recognition)  # one merged search
    rig_threshold = merged.rig_threshold  # unset: vector_threshold, as the daemon resolves it
    rig_label, rig_score = rig.search(emb, k=1)
    new = {mould(p) for p in usable}
    weighed = None  # the same merged search, the classifier's answers weighed by the priors
    if size is not None or prior is not None:
        weighed = Recognizer(manifest, mode="hybrid", index=index, size=size, prior=prior, **recognition)
    rows, truth, merged_answers, weighed_answers = [], [], [], []
    for i, photo in enumerate(photos):
        if i in enrolled:
            continue
        one = {role: value[i : i + 1] for role, value in outputs.items()}
        decision = merged.decide(one)
        rows.append(i)
        truth.append(photo.part)
        merged_answers.append(decision.part_topk[0][0] if decision.part_topk else "")
        if weighed is not None:
            decision = weighed.decide(one, [footprints[i]] if footprints else None)
            weighed_answers.append(decision.part_topk[0][0] if decision.part_topk else "")

    def decide(threshold: float, answers: list[str] | None = None) -> list[str]:
        # what Recognizer does with rig_index: a single view's fused rig score is its best neighbour's
        return [
            str(rig_label[i, 0]) if rig_score[i, 0] >= threshold else answer
            for i, answer in zip(rows, merged_answers if answers is None else answers, strict=True)
        ]

    def per_part(answers: list[str]) -> tuple[dict[str, float], dict[str, float], float, float | None]:
        hits: dict[str, list[bool]] = defaultdict(list)
        taken: dict[str, list[bool]] = defaultdict(list)  # known parts' photos named as an enrolled part
        for part, answer in zip(truth, answers, strict=True):
            hits[part].append(mould(answer) == mould(part))
            if part not in usable:
                taken[part].append(mould(answer) in new)
        enrolled_hits = [h for p in usable for h in hits[p]]
        known_taken = [x for t in taken.values() for x in t]
        return (
            {p: round(float(np.mean(h)), 4) for p, h in sorted(hits.items())},
            {p: round(float(np.mean(t)), 4) for p, t in sorted(taken.items())},
            round(float(np.mean(enrolled_hits)), 4),
            round(float(np.mean(known_taken)), 4) if known_taken else None,
        )

    hybrid, taken, decision_top1, _ = per_part(decide(rig_threshold))
    merged_hybrid, merged_taken, merged_top1, _ = per_part(merged_answers)
    fit = fit_rig_threshold(rig.vectors(), list(rig.labels))  # from the enrolled views alone
    if fit is not None:
        fit["top1_per_part"], _, fit["decision_top1"], fit["known_taken"] = per_part(decide(fit["threshold"]))
    with_priors = None
    if weighed is not None:
        top1_per_part, _, top1, _ = per_part(decide(rig_threshold, weighed_answers))
        with_priors = {"decision_top1": top1, "top1_per_part": top1_per_part}
        if fit is not None:
            fitted_per_part, _, fitted_top1, _ = per_part(decide(fit["threshold"], weighed_answers))
            with_priors |= {"fitted_decision_top1": fitted_top1, "fitted_top1_per_part": fitted_per_part}
    answers = None
    if keep_answers:
        base = weighed_answers if weighed is not None else merged_answers
        answers = {
            "truth": truth,
            "default": decide(rig_threshold, base),
            "fitted": decide(fit["threshold"], base) if fit is not None else None,
        }
    sweep = []
    for threshold in RIG_SWEEP:
        _, _, top1, share = per_part(decide(threshold))
        sweep.append({"threshold": threshold, "enrolled_top1": top1, "known_taken": share})
    return {
        "enrolled_per_part": enroll,
        "turns_per_photo": 1 + len(turned),
        "parts": sorted(usable),
        "queries": len(queries),
        "vector_top1": round(float(np.mean(vector_hits)), 4),
        "rig_threshold": rig_threshold,
        "decision_top1": decision_top1,
        "merged_decision_top1": merged_top1,
        "hybrid_top1_per_part": hybrid,
        "known_taken_for_enrolled": taken,
        "merged_hybrid_top1_per_part": merged_hybrid,
        "merged_known_taken_for_enrolled": merged_taken,
        "rig_sweep": sweep,
        "fitted": fit,
        "with_priors": with_priors,
    } | ({"answers": answers} if answers is not None else {})


def _share(hits: Sequence[bool]) -> float:
    return round(float(np.mean(hits)), 4)


def partial_enrolment_scores(
    photos: Sequence[Photo],
    outputs: dict[str, np.ndarray],
    manifest: Manifest,
    index_path: Path,
    enroll: int,
    recognition: dict[str, Any],
    **priors: Any,
) -> dict[str, Any] | None:
    """A rig taught all its parts but one: for each part of the set in turn, the first ``enroll``
    photos of every other part are enrolled and every photo not enrolled is decided (the left-out
    part's all of them), at the default ``rig_threshold`` and at the one fitted to the enrolled
    views. Summed over the subsets: photos decided right at each, the photos the fit gained and
    lost against the default, and the left-out parts' photos taken for an enrolled part. ``priors``:
    ``size``, ``prior`` and ``footprints`` as for :func:`enrolment_scores`. None with fewer than 3
    parts that have more than ``enroll`` photos (a fit needs 2 parts enrolled)."""
    counts = Counter(p.part for p in photos)
    parts = sorted(p for p, n in counts.items() if n > enroll)
    if len(parts) < 3:
        return None
    default: list[bool] = []
    fitted: list[bool] = []
    taken: dict[str, tuple[list[bool], list[bool]]] = {}  # left-out part: (at default, at the fit)
    thresholds: dict[str, float] = {}
    resolved = None
    for left_out in parts:
        scores = enrolment_scores(
            photos,
            outputs,
            manifest,
            index_path,
            enroll,
            recognition,
            enrol_parts=[p for p in parts if p != left_out],
            keep_answers=True,
            **priors,
        )
        if scores is None or scores["fitted"] is None:
            continue
        a, resolved = scores["answers"], scores["rig_threshold"]
        enrolled = {mould(p) for p in scores["parts"]}
        thresholds[left_out] = scores["fitted"]["threshold"]
        taken[left_out] = ([], [])
        for truth, at_default, at_fit in zip(a["truth"], a["default"], a["fitted"], strict=True):
            default.append(mould(at_default) == mould(truth))
            fitted.append(mould(at_fit) == mould(truth))
            if truth == left_out:
                taken[left_out][0].append(mould(at_default) in enrolled)
                taken[left_out][1].append(mould(at_fit) in enrolled)
    if not default:
        return None
    left = tuple([x for t in taken.values() for x in t[side]] for side in (0, 1))
    return {
        "enrolled_per_part": enroll,
        "subsets": len(thresholds),
        "decisions": len(default),
        "rig_threshold": resolved,
        "fitted_thresholds": thresholds,
        "top1_default": _share(default),
        "top1_fitted": _share(fitted),
        "fitted_vs_default": paired_change(default, fitted),
        "left_out_taken_default": _share(left[0]),
        "left_out_taken_fitted": _share(left[1]),
        "left_out_taken_per_part": {p: [_share(d), _share(f)] for p, (d, f) in sorted(taken.items())},
    }


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
) -> dict[str, Any]:
    """Every figure of one photo set for each artifact."""
    start = time.perf_counter()
    x, seg_stats, footprints = prepare_inputs(photos, segmenter, manifest)
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
        if known_rows:
            kp = [photos[i] for i in known_rows]
            colors = outputs.get("color_logits")
            figures["known"] = classifier_scores(
                kp,
                outputs["part_logits"][known_rows],
                manifest,
                None if colors is None else colors[known_rows],
            )
            figures["known"]["majority_baseline"] = round(
                max(Counter(p.part for p in kp).values()) / len(kp), 4
            )
            if prior is not None:
                figures["prior"] = prior_scores(kp, outputs["part_logits"][known_rows], manifest, prior)
            if scale is not None:
                figures["size"] = size_scores(
                    photos, outputs["part_logits"], footprints, manifest, scale, prior
                )
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
) -> dict[str, Any]:
    """Score ``model_set`` on each ``(name, photos, segmenter yaml, empty frames or None)``; write
    reports. ``part_prior`` (and its strength): as ``recognition.part_prior`` (figures with and
    without it)."""
    manifest = load_manifest(model_set)
    entries = select_artifacts(manifest, artifacts)
    prior = load_part_prior(part_prior, manifest, part_prior_strength)
    if scale_from is not None:
        reference_footprints(manifest, scale_from[0])  # fails early, saying how to get footprints
    recognition = recognition or recognition_settings()
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"model_set": str(model_set), "sets": {}}
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
            )
        figures.update(folder=str(folder), segmenter=seg_cfg, segmenter_file=str(seg_path))
        if fit is not None:
            figures["background_fit"] = fit
        report["sets"][name] = figures
    write_atomic(out / "real.json", json.dumps(report, indent=2, default=str))
    drawn = _plot(report, out / PLOT)
    swept = _plot_sweep(report, out / SWEEP_PLOT)
    write_atomic(
        out / "real.md",
        render_markdown(report, plot=PLOT if drawn else None, sweep=SWEEP_PLOT if swept else None),
    )
    return report


def _plot(report: dict[str, Any], path: Path) -> bool:
    """Draw :func:`trainer.report.plot_real` into ``path``; False (and no file) where no set has a
    figure to draw."""
    from trainer.report import plot_real, real_rows

    if not any(real_rows(f) for f in report["sets"].values()):
        return False  # nothing scored: no known part and no enrolment
    return _draw_png(path, lambda tmp: plot_real(report, tmp))


def _plot_sweep(report: dict[str, Any], path: Path) -> bool:
    """Draw :func:`trainer.report.plot_rig_sweep` into ``path``; False where no set was enrolled."""
    from trainer.report import plot_rig_sweep

    return _draw_png(path, lambda tmp: plot_rig_sweep(report, tmp))


def _draw_png(path: Path, draw: Callable[[Path], Path | None]) -> bool:
    """Run ``draw`` into a temporary file beside ``path`` and move it there (no half PNG); False
    when ``draw`` drew nothing."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    if draw(tmp) is None:
        return False
    tmp.replace(path)
    return True


# ---- reports ---------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def render_markdown(
    report: dict[str, Any], command: str | None = None, plot: str | None = None, sweep: str | None = None
) -> str:
    """The report as markdown: one section per photo set, a table per artifact; ``plot``: the file
    name of :func:`trainer.report.plot_real`'s drawing beside the markdown, linked under the command;
    ``sweep``: the same for :func:`trainer.report.plot_rig_sweep`."""
    lines = [SECTION_START, "## Real photos", ""]
    lines += [
        "Single views of real camera photos, through the segmenter named and edge's engines as on the Pi.",
        "Part ids compared on the mould (a final letter after the digits dropped: 3040a ~ 3040b).",
        "",
    ]
    if command:
        lines += ["```sh", command, "```", ""]
    if plot:
        lines += [f"![real-photo top-1 and top-5 per set, artifact and part]({plot})", ""]
    if sweep:
        lines += [
            f"![enrolled parts named and known parts taken for them, per rig_threshold]({sweep})",
            "",
        ]
    for name, figures in report["sets"].items():
        seg = figures["segmenter"]
        lines += [f"### {name} (`{figures['folder']}`)", ""]
        lines.append(
            f"{figures['photos']} photos of {len(figures['parts'])} parts; segmenter `{json.dumps(seg)}`"
            f" ({figures['segmentation']['empty_masks']} empty masks, median mask "
            f"{_pct(figures['segmentation']['median_mask_share'])} of the frame)"
            + (
                f"; background fitted from {figures['background_fit']['frames']} empty frames"
                if "background_fit" in figures
                else ""
            )
            + "."
        )
        lines.append("")
        lines.append(
            "| artifact | known-part photos | part top-1 | part top-5 | majority guess "
            "| top-1 mean over parts | enrolled k=1 | enrolled k=5 |"
        )
        # enrolled columns: the daemon's decision (the rig's own views first), one merged search's
        # nearest neighbour in brackets
        lines += ["|---|---:|---:|---:|---:|---:|---:|---:|"]
        for key, f in figures["artifacts"].items():
            known = f.get("known", {})
            lines.append(
                f"| {key} | {known.get('photos', 0)} | {_pct(known.get('part_top1'))} "
                f"| {_pct(known.get('part_top5'))} | {_pct(known.get('majority_baseline'))} "
                f"| {_pct(known.get('part_top1_mean_over_parts'))} "
                f"| {_enrolled_cell(f.get('enroll_1'))} | {_enrolled_cell(f.get('enroll_5'))} |"
            )
        intervals = ", ".join(
            f"{key} {_pct(f['known']['part_top1_ci95'][0])}-{_pct(f['known']['part_top1_ci95'][1])}"
            for key, f in figures["artifacts"].items()
            if "part_top1_ci95" in f.get("known", {})
        )
        if intervals:
            lines += ["", f"95% intervals (Wilson) of part top-1: {intervals}."]
        first = next(iter(figures["artifacts"].values()), {})
        known = first.get("known")
        if known:
            key = next(iter(figures["artifacts"]))
            lines += [
                "",
                "Enrolled k: the first k photos of each unknown part enrolled as the rig's own views; "
                "top-1 of the daemon's decision on the part's other photos (the rig's views searched "
                "first, taken at a fused similarity >= rig_threshold), and in brackets the nearest "
                "neighbour of one search over the shipped index and the enrolled views together.",
                "",
                "Top-1 mean over parts: each part's top-1 averaged, so a part with many photos counts no "
                f"more than one with few; a constant guess scores 1 / {len(known['per_part'])} = "
                f"{_pct(1 / len(known['per_part']))}.",
                "",
                f"Per part ({key}):",
                "",
                "| part | photos | top-1 | top-5 | most often predicted | predicted colours |",
            ]
            lines += ["|---|---:|---:|---:|---|---|"]
            for part, e in sorted(known["per_part"].items()):
                predicted = ", ".join(f"{p} ({n})" for p, n in e["predicted"])
                colours = ", ".join(f"{c} ({n})" for c, n in e["colors"])
                lines.append(
                    f"| {part} | {e['photos']} | {_pct(e['top1'])} | {_pct(e['top5'])} "
                    f"| {predicted} | {colours} |"
                )
            colours = ", ".join(f"{c} ({n})" for c, n in known.get("predicted_colors", []))
            if colours:
                lines += ["", f"Colours predicted most often (all known-part photos): {colours}."]
        lines += _size_lines(figures["artifacts"])
        lines += _prior_lines(figures["artifacts"])
        for k in ENROLL_DEFAULT:
            e = first.get(f"enroll_{k}")
            if e:
                harmed = _per_part_pct(e["hybrid_top1_per_part"])
                taken = _per_part_pct(e.get("known_taken_for_enrolled", {}))
                lines += [
                    "",
                    f"Enrolled {k} photo(s) of {', '.join(e['parts'])}: {e['queries']} queries; "
                    f"decision top-1 {_pct(e.get('decision_top1'))} at rig_threshold "
                    f"{e.get('rig_threshold', '-')} ({_pct(e.get('merged_decision_top1'))} from one merged "
                    f"search; its nearest neighbour {_pct(e['vector_top1'])}); decisions top-1 per part: "
                    f"{harmed}"
                    + (f"; known parts' photos named as an enrolled part: {taken}" if taken else "")
                    + "."
                    + _with_priors_text(e),
                ]
            e = first.get(f"enroll_all_{k}")
            if e:
                per_part = _per_part_pct(e["hybrid_top1_per_part"])
                lines += [
                    "",
                    f"Every part enrolled from its first {k} photo(s) (a rig taught on its own stage): "
                    f"{e['queries']} queries; decision top-1 {_pct(e.get('decision_top1'))} "
                    f"({_pct(e.get('merged_decision_top1'))} from one merged search; its nearest neighbour "
                    f"{_pct(e['vector_top1'])}); decisions top-1 per part: {per_part}.",
                ]
                fit = e.get("fitted")
                if fit:
                    lines[-1] += (
                        f" With rig_threshold fitted to the enrolled photos alone (`edge enrolled "
                        f"--fit-threshold`: {fit['threshold']}), decision top-1 {_pct(fit['decision_top1'])}"
                        + (
                            f" (per part: {_per_part_pct(fit['top1_per_part'])})"
                            if fit.get("top1_per_part")
                            else ""
                        )
                        + "."
                    )
                lines[-1] += _with_priors_text(e)
            e = first.get(f"partial_enroll_{k}")
            if e:
                lines += ["", _partial_text(e)]
        lines.append("")
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


def _partial_text(e: dict[str, Any]) -> str:
    """The paragraph of :func:`partial_enrolment_scores`' figures."""
    thresholds = list(e["fitted_thresholds"].values())
    change = e["fitted_vs_default"]
    per_part = ", ".join(f"{p} {_pct(d)} -> {_pct(f)}" for p, (d, f) in e["left_out_taken_per_part"].items())
    return (
        f"All parts but one enrolled from their first {e['enrolled_per_part']} photo(s), each part "
        f"left out in turn ({e['subsets']} subsets; a rig taught all but one of its parts): "
        f"{e['decisions']} decisions (the classifier's answers weighed by the priors where given); "
        f"top-1 {_pct(e['top1_default'])} at rig_threshold {e['rig_threshold']}, "
        f"**{_pct(e['top1_fitted'])}** at the threshold fitted to each subset's enrolled photos "
        f"({min(thresholds):.3f}-{max(thresholds):.3f}; "
        f"{change['gained']} photos gained, {change['lost']} lost against the default; McNemar p = "
        f"{change['p']:.2g}); "
        f"the left-out part's photos taken for an enrolled part {_pct(e['left_out_taken_default'])} "
        f"-> {_pct(e['left_out_taken_fitted'])} (per part: {per_part})."
    )


def _size_lines(artifacts: dict[str, Any]) -> list[str]:
    """The size prior's figures (``--scale-from``), one line per artifact."""
    out: list[str] = []
    for key, f in artifacts.items():
        size = f.get("size")
        if not size:
            continue
        before, after = size["without"], size["with"]
        paired = size.get("paired", {})
        per_part = ", ".join(
            f"{p} {_pct(before['per_part'][p]['top1'])} -> {_pct(e['top1'])}"
            for p, e in sorted(after["per_part"].items())
        )
        out += [
            "",
            f"Size prior ({key}; `edge/size.py`): scale {size['px_per_mm']:g} px/mm fitted from the first "
            f"{size['reference_photos']} photos of {size['reference']} (as `edge calibrate scale` does; "
            f"left out), sigma {size['sigma']:g}; on the other {size['photos']} known-part photos part "
            f"top-1 {_pct(before['part_top1'])} -> **{_pct(after['part_top1'])}**"
            f"{paired_text(paired.get('with'))}, top-5 "
            f"{_pct(before['part_top5'])} -> {_pct(after['part_top5'])}; per part {per_part}.",
        ]
        both = size.get("with_prior")
        if both:
            out[-1] += (
                f" With the part prior as well: top-1 **{_pct(both['part_top1'])}**"
                f"{paired_text(paired.get('with_prior'), against=' against the size prior alone')}, top-5 "
                f"{_pct(both['part_top5'])}; per part {_per_part(both)}."
            )
    return out


def _prior_lines(artifacts: dict[str, Any]) -> list[str]:
    """The part prior's figures (``--part-prior``), one line per artifact."""
    out: list[str] = []
    for key, f in artifacts.items():
        prior = f.get("prior")
        if not prior:
            continue
        before, after = prior["without"], prior["with"]
        out += [
            "",
            f"Part prior ({key}; `edge/prior.py`, {prior['source']}): on the {prior['photos']} known-part "
            f"photos part top-1 {_pct(before['part_top1'])} -> **{_pct(after['part_top1'])}**"
            f"{paired_text(prior.get('paired', {}).get('with'))}, top-5 "
            f"{_pct(before['part_top5'])} -> {_pct(after['part_top5'])}; per part {_per_part(after)}.",
        ]
    return out


def _with_priors_text(e: dict[str, Any]) -> str:
    """The enrolment decisions with the classifier's answers weighed by the size and part priors."""
    w = e.get("with_priors")
    if not w:
        return ""
    text = (
        f" With the priors (size and/or part, as above) weighing the classifier's answers: decision "
        f"top-1 {_pct(w['decision_top1'])} (per part: {_per_part_pct(w['top1_per_part'])})"
    )
    if w.get("fitted_decision_top1") is not None:
        text += (
            f"; at the fitted threshold {_pct(w['fitted_decision_top1'])} "
            f"(per part: {_per_part_pct(w['fitted_top1_per_part'])})"
        )
    return text + "."


def _per_part_pct(top1: dict[str, float]) -> str:
    """``part share, ...`` of a per-part figure."""
    return ", ".join(f"{p} {_pct(v)}" for p, v in top1.items())


def _per_part(figures: dict[str, Any]) -> str:
    """The top-1 per part of :func:`classifier_scores`' figures, by part."""
    return _per_part_pct({p: e["top1"] for p, e in sorted(figures["per_part"].items())})


def _enrolled_cell(e: dict[str, Any] | None) -> str:
    if not e:
        return "-"
    return f"{_pct(e.get('decision_top1'))} ({_pct(e['vector_top1'])})"


def update_report(path: Path, section: str) -> None:
    """Put ``section`` into the markdown file at ``path``, replacing an earlier real-photos section."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if SECTION_START in text and SECTION_END in text:
        head, rest = text.split(SECTION_START, 1)
        tail = rest.split(SECTION_END, 1)[1]
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    write_atomic(path, text)


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
    )
    for name, figures in report["sets"].items():
        for key, f in figures["artifacts"].items():
            known = f.get("known", {})
            extra = " ".join(
                f"enrol k={k} {_pct(f[f'enroll_{k}'].get('decision_top1'))}"
                f" (nearest {_pct(f[f'enroll_{k}']['vector_top1'])})"
                for k in enroll
                if f"enroll_{k}" in f
            )
            print(
                f"{name:<10} {key:<18} part top-1 {_pct(known.get('part_top1'))} "
                f"top-5 {_pct(known.get('part_top5'))} {extra}"
            )
    if args.report:
        sets = " ".join(f"--set {n}={f}:{s}" + (f":{e}" if e else "") for n, f, s, e in args.sets)
        command = (
            f"trainer evaluate-real --model-set {args.model_set} --out OUT {sets} --report {args.report}"
            + (" --enroll-every-part" if args.enroll_every_part else "")
            + (" --enroll-turns" if args.enroll_turns else "")
            + (" --enroll-partial" if args.enroll_partial else "")
            + (f" --scale-from {':'.join(map(str, args.scale_from))}" if args.scale_from else "")
            + (f" --rig-threshold {args.rig_threshold:g}" if args.rig_threshold is not None else "")
            + (f" --part-prior {args.part_prior}" if args.part_prior != "none" else "")
            + (f" --part-prior-strength {args.part_prior_strength:g}" if args.part_prior != "none" else "")
            + (" --record" if args.record else "")
        )
        beside, sweep = args.report.with_name(REPORT_PLOT), args.report.with_name(REPORT_SWEEP_PLOT)
        drawn, swept = _plot(report, beside), _plot_sweep(report, sweep)
        update_report(
            args.report,
            render_markdown(
                report, command, plot=beside.name if drawn else None, sweep=sweep.name if swept else None
            ),
        )
    if args.record:
        from trainer.export import record_evaluation

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
            for k in ENROLL_DEFAULT:
                if f"enroll_{k}" in f:
                    row[f"enroll_{k}_vector_top1"] = f[f"enroll_{k}"]["vector_top1"]
                    row[f"enroll_{k}_decision_top1"] = f[f"enroll_{k}"].get("decision_top1")
            out.setdefault(name, {})[key] = row
    return out
