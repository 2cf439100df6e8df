"""Mask IoU of edge's ``mobileseg`` (as the Pi runs it) and of reference segmenters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainer.segmenter.data import read_pair


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def mask_iou(model: Path, pairs: Sequence[tuple[Path, Path]], *, progress: bool = False) -> dict[str, float]:
    """IoU of edge's ``mobileseg`` segmenter (default clean-up, full frame size) against the masks."""
    from tqdm import tqdm

    from edge.segment import create_segmenter

    segmenter = create_segmenter({"type": "mobileseg", "model": str(model), "threads": 0})
    try:
        ious = []
        for image, mask in tqdm(pairs, desc="segmenter IoU", disable=not progress, unit="image"):
            rgb, truth = read_pair(image, mask)
            ious.append(iou(segmenter.mask(rgb) > 0, truth))
    finally:
        segmenter.close()
    return _summary(ious)


def _summary(ious: Sequence[float]) -> dict[str, float]:
    a = np.asarray(ious)
    return {
        "images": len(a),
        "mean": float(a.mean()),
        "median": float(np.median(a)),
        "share_at_least_0.9": float((a >= 0.9).mean()),
    }


def reference_iou(
    model: Path,
    photos: Path,
    empty: Path,
    work: Path,
    *,
    max_images: int = 400,
    progress: bool = False,
    calibrated: bool = False,
) -> dict[str, float]:
    """IoU of the ``mobileseg`` masks of real photos against the ``bgdiff`` masks of the same photos,
    whose background model is fitted from the frames of the empty stage in ``empty`` (the reference
    holds the part's soft shadow where it darkens the ground, so it is a yardstick, not the truth).
    ``calibrated``: the ``mobileseg`` runs with ``calibration: true`` on that background model too
    (what it finds on the empty stage is dropped)."""
    found = reference_ious(
        model, photos, empty, work, (calibrated,), max_images=max_images, progress=progress
    )
    return found[calibrated]


def reference_ious(
    model: Path,
    photos: Path,
    empty: Path,
    work: Path,
    variants: Sequence[bool] = (False, True),
    *,
    max_images: int = 400,
    progress: bool = False,
) -> dict[bool, dict[str, float]]:
    """:func:`reference_iou` for each ``calibrated`` value of ``variants``, in one pass: the
    background is fitted and each photo read and keyed by ``bgdiff`` once."""
    from contextlib import ExitStack

    from tqdm import tqdm

    from edge.imagefile import read_image
    from edge.segment import create_segmenter
    from trainer.photo_set import fit_background, read_photo_set

    work.mkdir(parents=True, exist_ok=True)
    calibration, _ = fit_background(empty, work)
    chosen = read_photo_set(photos)
    step = max(1, len(chosen) // max_images)
    chosen = chosen[::step][:max_images]
    ious: dict[bool, list[float]] = {v: [] for v in variants}
    shares = []
    with ExitStack() as stack:
        reference = stack.enter_context(
            create_segmenter({"type": "bgdiff", "calibration": True}, calibration=calibration)
        )
        learned = {
            v: stack.enter_context(
                create_segmenter(
                    {"type": "mobileseg", "model": str(model), "threads": 0, "calibration": v},
                    calibration=calibration,
                )
            )
            for v in variants
        }
        for photo in tqdm(chosen, desc=f"IoU on {photos.name}", disable=not progress, unit="photo"):
            image = read_image(photo.path)
            truth = reference.mask(image) > 0
            for v, segmenter in learned.items():
                ious[v].append(iou(segmenter.mask(image) > 0, truth))
            shares.append(float(truth.mean()))
    share = {"reference_median_mask_share": float(np.median(shares))}
    return {v: _summary(values) | share for v, values in ious.items()}
