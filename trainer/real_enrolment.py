"""The enrolment figures of ``trainer evaluate-real`` (:mod:`trainer.evaluate_real`): the first
photos of each part enrolled as the rig's own views, the others decided as :mod:`edge.recognize`
decides (those views searched first) at the default, swept and fitted ``rig_threshold``; and a rig
taught all its parts but one."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.config import validate_config
from edge.enroll import fit_rig_threshold
from edge.index import EmbeddingIndex
from edge.index_search import Backend
from edge.manifest import Manifest
from edge.prior import PartPrior
from edge.recognize import Recognizer
from edge.settings import RecognitionSettings
from edge.size import SizePrior
from trainer.photo_set import Photo, mould
from trainer.stats import paired_change

#: The k of enrolment figures: photos enrolled per part.
ENROLL_DEFAULT = (1, 5)


def recognition_settings(rig_threshold: float | None = None) -> dict[str, Any]:
    """The daemon's default recognition thresholds (``recognition`` of :func:`evaluate_real`), with
    ``rig_threshold`` checked as the daemon's config checks it."""
    settings = validate_config(RecognitionSettings, {"rig_threshold": rig_threshold}, "--rig-threshold")
    return settings.model_dump(include={"threshold", "vector_threshold", "rig_threshold"})


#: Rig thresholds swept for the enrolment trade-off (a rig's own views taken first at each).
RIG_SWEEP: tuple[float, ...] = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))


@dataclass
class _RigDecisions:
    """The scored photos of one enrolment: their truth, each one's best enrolled view, and the
    classifier's (or the merged search's) answers; the daemon's decision at a ``rig_threshold``
    and the figures per part."""

    rows: list[int]  # the scored photos' places in the set
    truth: list[str]
    rig_label: np.ndarray  # (photos, 1) each photo's nearest enrolled view
    rig_score: np.ndarray
    enrolled_parts: set[str]
    answers: list[str]  # taken where no enrolled view reaches the threshold

    def decide(self, threshold: float, answers: list[str] | None = None) -> list[str]:
        """What Recognizer does with rig_index: a single view's fused rig score is its best neighbour's."""
        return [
            str(self.rig_label[i, 0]) if self.rig_score[i, 0] >= threshold else answer
            for i, answer in zip(self.rows, self.answers if answers is None else answers, strict=True)
        ]

    def per_part(self, answers: list[str]) -> tuple[dict[str, float], dict[str, float], float, float | None]:
        """(top-1 per part, known parts' photos named as an enrolled part per part, the enrolled
        parts' top-1, the known parts' photos taken for an enrolled part; None without any)."""
        new = {mould(p) for p in self.enrolled_parts}
        hits: dict[str, list[bool]] = defaultdict(list)
        taken: dict[str, list[bool]] = defaultdict(list)
        for part, answer in zip(self.truth, answers, strict=True):
            hits[part].append(mould(answer) == mould(part))
            if part not in self.enrolled_parts:
                taken[part].append(mould(answer) in new)
        enrolled_hits = [h for p in self.enrolled_parts for h in hits[p]]
        known_taken = [x for t in taken.values() for x in t]
        return (
            {p: round(float(np.mean(h)), 4) for p, h in sorted(hits.items())},
            {p: round(float(np.mean(t)), 4) for p, t in sorted(taken.items())},
            round(float(np.mean(enrolled_hits)), 4),
            round(float(np.mean(known_taken)), 4) if known_taken else None,
        )


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
    index_backend: Backend = "auto",
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
    classifier's answers weighed by the priors where given). ``index_backend``: how the shipped
    index and the enrolled views are searched (:class:`edge.index.EmbeddingIndex`; ``auto``
    rebuilds hnswlib's graph on every core, which can move a decision between runs; ``exact`` is
    deterministic, and is what a Pi without hnswlib runs).
    """
    if enrol_parts is None:
        known = set() if every_part else {mould(p) for p in manifest.parts}
        enrol_parts = {p.part for p in photos if mould(p.part) not in known}
    enrolment = _enrol(
        photos, outputs["embedding"], turned, manifest, index_path, enroll, enrol_parts, index_backend
    )
    if enrolment is None:
        return None
    index, rig, usable, enrolled, queries = enrolment
    labels, _ = index.search(outputs["embedding"][queries], k=1)
    vector_hits = [
        mould(str(lab[0])) == mould(photos[i].part) for lab, i in zip(labels, queries, strict=True)
    ]
    merged = Recognizer(manifest, mode="hybrid", index=index, **recognition)  # one merged search
    rig_threshold = merged.rig_threshold  # unset: vector_threshold, as the daemon resolves it
    rig_label, rig_score = rig.search(outputs["embedding"], k=1)
    weighed = None  # the same merged search, the classifier's answers weighed by the priors
    if size is not None or prior is not None:
        weighed = Recognizer(manifest, mode="hybrid", index=index, size=size, prior=prior, **recognition)
    rows, truth, merged_answers, weighed_answers = _decide_photos(
        photos, outputs, enrolled, merged, weighed, footprints
    )
    scored = _RigDecisions(rows, truth, rig_label, rig_score, set(usable), merged_answers)
    decide, per_part = scored.decide, scored.per_part

    hybrid, taken, decision_top1, _ = per_part(decide(rig_threshold))
    merged_hybrid, merged_taken, merged_top1, _ = per_part(merged_answers)
    fit = fit_rig_threshold(rig.vectors(), list(rig.labels))  # from the enrolled views alone
    if fit is not None:
        fit["top1_per_part"], _, fit["decision_top1"], fit["known_taken"] = per_part(decide(fit["threshold"]))
    with_priors = None
    if weighed is not None:
        with_priors = _with_priors(scored, rig_threshold, fit, weighed_answers)
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


def _enrol(
    photos: Sequence[Photo],
    emb: np.ndarray,
    turned: Sequence[np.ndarray],
    manifest: Manifest,
    index_path: Path,
    enroll: int,
    enrol_parts: Collection[str],
    backend: Backend = "auto",
) -> tuple[EmbeddingIndex, EmbeddingIndex, dict[str, list[int]], set[int], list[int]] | None:
    """The shipped index with the first ``enroll`` photos of each part to enrol added, the rig's own
    index of those photos alone, the parts with photos beyond them, the enrolled photos and the
    queries (every other photo of those parts); None when no part has more than ``enroll``."""
    by_part: dict[str, list[int]] = defaultdict(list)
    for i, photo in enumerate(photos):
        if photo.part in enrol_parts:
            by_part[photo.part].append(i)
    usable = {p: rows for p, rows in by_part.items() if len(rows) > enroll}
    if not usable:
        return None
    index = EmbeddingIndex.load(index_path, expect=manifest.index, backend=backend)
    rig = EmbeddingIndex(index.dim, space=index.space, threads=1, backend=backend)
    enrolled = {i for rows in usable.values() for i in rows[:enroll]}
    for part, rows in usable.items():
        for views in (emb, *turned):
            index.add(views[rows[:enroll]], [part] * enroll)
            rig.add(views[rows[:enroll]], [part] * enroll)
    queries = [i for rows in usable.values() for i in rows[enroll:]]
    return index, rig, usable, enrolled, queries


def _decide_photos(
    photos: Sequence[Photo],
    outputs: dict[str, np.ndarray],
    enrolled: set[int],
    merged: Recognizer,
    weighed: Recognizer | None,
    footprints: Sequence[tuple[float, float] | None],
) -> tuple[list[int], list[str], list[str], list[str]]:
    """Every photo not enrolled, decided by one merged search, and (``weighed``) with the priors:
    (rows, truth, merged answers, weighed answers)."""
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
    return rows, truth, merged_answers, weighed_answers


def _with_priors(
    scored: _RigDecisions, rig_threshold: float, fit: dict[str, Any] | None, weighed_answers: list[str]
) -> dict[str, Any]:
    """The rig's decisions with the classifier's answers weighed by the priors, at ``rig_threshold``
    and at the fitted threshold."""
    top1_per_part, _, top1, _ = scored.per_part(scored.decide(rig_threshold, weighed_answers))
    out: dict[str, Any] = {"decision_top1": top1, "top1_per_part": top1_per_part}
    if fit is not None:
        fitted_per_part, _, fitted_top1, _ = scored.per_part(scored.decide(fit["threshold"], weighed_answers))
        out |= {"fitted_decision_top1": fitted_top1, "fitted_top1_per_part": fitted_per_part}
    return out


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
    ``size``, ``prior``, ``footprints`` and ``index_backend`` as for :func:`enrolment_scores`. None
    with fewer than 3 parts that have more than ``enroll`` photos (a fit needs 2 parts enrolled)."""
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
