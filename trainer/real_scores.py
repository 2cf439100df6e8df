"""The figures of ``trainer evaluate-real`` (:mod:`trainer.evaluate_real`) from one photo set's engine
outputs: the classifier's top-1/top-5 per part, the size and part priors, and colours (enrolment's
figures are in :mod:`trainer.real_enrolment`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.colors import get_color
from edge.manifest import Manifest
from edge.prior import PartPrior
from edge.recognize import Recognizer
from edge.size import SizePrior, fit_scale, reference_footprints
from trainer.photo_set import Photo, mould
from trainer.stats import paired_change, wilson_interval

TOP_CONFUSED = 8


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


def frame_edge_scores(
    photos: Sequence[Photo], hits: Sequence[bool], leaves: Sequence[bool]
) -> dict[str, Any] | None:
    """Top-1 of the photos whose crop leaves the frame (``leaves``) against the others', overall and
    per part, from each photo's top-1 hit (:func:`classifier_scores`'s ``hits``): a close camera
    frames parts at its edge, and the Pi pads their crops. None when no crop leaves the frame."""
    if not any(leaves):
        return None

    def share(rows: list[int]) -> dict[str, Any]:
        return {
            "photos": len(rows),
            "top1": round(float(np.mean([hits[i] for i in rows])), 4) if rows else None,
        }

    at_edge = [i for i, leaving in enumerate(leaves) if leaving]
    inside = [i for i, leaving in enumerate(leaves) if not leaving]
    per_part = {
        part: {
            "edge": share([i for i in at_edge if photos[i].part == part]),
            "inside": share([i for i in inside if photos[i].part == part]),
        }
        for part in sorted({p.part for p in photos})
    }
    return {"edge": share(at_edge), "inside": share(inside), "per_part": per_part}


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
    photos: Sequence[Photo],
    logits: np.ndarray,
    manifest: Manifest,
    prior: PartPrior,
    decided: np.ndarray | None = None,
) -> dict[str, Any]:
    """Figures of the photos (of known parts) with and without the part prior (:mod:`edge.prior`),
    decided as the daemon does (temperatures), one view per photo. ``decided``: the
    :func:`decided_log_probs` with the prior, where the caller has them already."""
    out: dict[str, Any] = {"source": prior.source, "photos": len(photos)}
    out["without"] = decided_scores(Recognizer(manifest), photos, logits, [None] * len(photos))
    if decided is None:
        decided = decided_log_probs(Recognizer(manifest, prior=prior), logits, [None] * len(photos))
    out["with"] = classifier_scores(photos, decided, manifest, None, keep_hits=True)
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
    log_probs = decided_log_probs(recognizer, logits, footprints)
    return classifier_scores(photos, log_probs, recognizer.manifest, None, keep_hits=True)


def decided_log_probs(
    recognizer: Recognizer, logits: np.ndarray, footprints: Sequence[tuple[float, float] | None]
) -> np.ndarray:
    """Log of the fused part probabilities ``recognizer`` decides each photo from (one view each)."""
    probs = []
    for row, footprint in zip(logits, footprints, strict=True):
        distribution = recognizer.decide({"part_logits": row[None]}, [footprint]).distribution
        assert distribution is not None  # classifier mode always fuses the classifier
        probs.append(distribution.part_probs)
    return np.log(np.clip(np.stack(probs), 1e-300, None))


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
