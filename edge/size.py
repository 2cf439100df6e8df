"""A part's size on the stage, as evidence of which part it is.

A camera looking down on the stage sees the part's footprint: the smallest rectangle around its
mask (:func:`measure`, OpenCV's ``minAreaRect``). The network sees a crop scaled to fill its input,
so it cannot tell a 1x2 plate from a 2x4 brick whose tops look alike; the footprint can, once the
rig knows how many pixels a millimetre is (``edge calibrate scale``: a few views of a reference part
of known size, :func:`fit_scale`).

Each part's expected footprints come with the model set (the manifest's ``footprints``, written by
``trainer footprints``): for each stable resting pose of the part (its LDraw geometry), the long and
short side in millimetres of the rectangle around its outline seen from straight above, and the
chance it lands that way. A view's measured footprint scores each part by a mixture over its poses
of log-normal densities with the relative spread ``sigma`` (the same for both sides):

    log L(part) = log sum_pose p_pose * exp(-|log(measured) - log(pose)|^2 / (2 sigma^2))

The views' log-likelihoods are averaged (as the views' log-probabilities are) and added to the
classifier's fused log-probabilities: a Bayes update of the network's belief by the size.

Decisions worth knowing:

* The footprint is measured on the whole mask, the same pixels the crop is cut around; a mask that
  holds the part's shadow or a stray blob measures larger.
* A tilted camera foreshortens one side and shows a tall part's walls, and what it sees depends
  on which way the part faces. The scale section's ``tilt_deg`` (``edge calibrate scale --tilt``)
  picks the manifest's table for that tilt (``trainer footprints --tilt``: each pose turned
  through half a turn, seen along the camera's axis); tilt 0, the default, is the top-down
  outline. ``sigma`` absorbs the rest (perspective, the part's place on the stage). Views whose
  mask is empty carry no size evidence.
* Parts without a footprint (not in the manifest's table) score the median of the parts that have
  one: neither favoured nor ruled out by a size they cannot be checked against.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from edge.errors import ConfigError
from edge.manifest import Manifest, tilt_key
from edge.prior import reweigh

#: One resting pose's footprint: long side (mm), short side (mm), probability of the pose.
Footprint = tuple[float, float, float]
#: The range of scales :func:`fit_scale` searches, in pixels per millimetre.
SCALE_RANGE = (0.05, 200.0)


def measure(mask: np.ndarray) -> tuple[float, float] | None:
    """(long, short) side in pixels of the smallest rotated rectangle around the mask's non-zero
    pixels; None when the mask is empty."""
    # The outer contours' points have the same convex hull as all the mask's pixels, and are few.
    contours, _ = cv2.findContours(
        np.ascontiguousarray(np.asarray(mask) != 0, dtype=np.uint8),
        cv2.RETR_EXTERNAL,
        cv2.CHAIN_APPROX_SIMPLE,
    )
    if not contours:
        return None
    (_, _), (a, b), _ = cv2.minAreaRect(np.concatenate(contours))
    # a one-pixel-wide line has a zero side: a pixel is the least a side can measure
    return max(a, b, 1.0), max(min(a, b), 1.0)


def _check_sigma(sigma: float) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not 0.01 <= sigma <= 2.0:
        raise ConfigError(
            f"size sigma {sigma!r} must be a number in [0.01, 2] (a relative spread, e.g. 0.15)"
        )
    return float(sigma)


def _log_sides(sides: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """(N, 2) log of each row's (long, short) side, whatever order the row gives them in."""
    return np.log(np.sort(np.asarray(sides, np.float64).reshape(-1, 2), axis=1)[:, ::-1])


def _pose_terms(footprints: Sequence[Footprint]) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(footprints, np.float64).reshape(-1, 3)
    if not (np.isfinite(rows).all() and (rows > 0).all()):
        raise ConfigError(f"footprints {footprints!r} must be positive (long mm, short mm, probability) rows")
    return _log_sides(rows[:, :2]), np.log(rows[:, 2] / rows[:, 2].sum())


def _log_mixture(log_dims: np.ndarray, mu: np.ndarray, log_w: np.ndarray, sigma: float) -> np.ndarray:
    """(V, K): log sum_pose w exp(-|x - mu|^2 / 2 sigma^2) of each view ``log_dims`` (V, 2) under
    each part's poses ``mu`` (K, P, 2) weighted by ``log_w`` (K, P; -inf pads a part's missing
    poses, and a part with none at all scores NaN)."""
    d2 = ((log_dims[:, None, None, :] - mu[None]) ** 2).sum(-1) / (2.0 * sigma * sigma)
    terms = log_w[None] - d2
    top = terms.max(axis=2, keepdims=True)
    with np.errstate(invalid="ignore"):
        return (top + np.log(np.exp(terms - top).sum(axis=2, keepdims=True)))[..., 0]


class SizePrior:
    """Every part's footprints in the classifier's order, and the rig's scale.

    ``footprints``: part -> its poses' :data:`Footprint` rows (the manifest's table);
    ``px_per_mm``: the calibrated scale; ``sigma``: the relative spread of a measurement.
    """

    def __init__(
        self,
        parts: Sequence[str],
        footprints: Mapping[str, Sequence[Footprint]],
        px_per_mm: float,
        sigma: float,
    ) -> None:
        if not (isinstance(px_per_mm, int | float) and SCALE_RANGE[0] <= px_per_mm <= SCALE_RANGE[1]):
            raise ConfigError(
                f"scale {px_per_mm!r} px/mm is outside {SCALE_RANGE[0]}..{SCALE_RANGE[1]}; "
                "run `edge calibrate scale` again"
            )
        self.sigma = _check_sigma(sigma)
        self.px_per_mm = float(px_per_mm)
        self.parts = list(parts)
        terms = [_pose_terms(footprints[p]) if footprints.get(p) else None for p in self.parts]
        self._has = np.array([t is not None for t in terms])
        self.covered = int(self._has.sum())
        if not self.covered:
            raise ConfigError(
                "none of the model's parts has a footprint; run `trainer footprints` on the model set"
            )
        # Every covered part's rows end to end, so one view is scored against all parts at once
        # (a tilted table has tens of rows for some parts and a few for others: no padding).
        kept = [t for t in terms if t is not None]
        self._mu = np.concatenate([t[0] for t in kept])  # (R, 2)
        self._log_w = np.concatenate([t[1] for t in kept])  # (R,)
        self._rows = np.array([len(t[1]) for t in kept])
        self._starts = np.concatenate([[0], np.cumsum(self._rows)[:-1]])

    def log_likelihood(self, footprints_px: Sequence[tuple[float, float] | None]) -> np.ndarray | None:
        """(K,) mean over the views of each part's log-likelihood of the measured footprints
        (pixels), shifted so the best part scores 0; None when no view measured one."""
        measured = [f for f in footprints_px if f is not None]
        if not measured:
            return None
        log_dims = _log_sides(measured) - math.log(self.px_per_mm)
        d2 = ((log_dims[:, None, :] - self._mu[None]) ** 2).sum(-1) / (2.0 * self.sigma * self.sigma)
        terms = self._log_w[None] - d2  # (V, R)
        top = np.maximum.reduceat(terms, self._starts, axis=1)  # (V, covered): each part's log-sum-exp
        summed = np.add.reduceat(np.exp(terms - np.repeat(top, self._rows, axis=1)), self._starts, axis=1)
        covered = (top + np.log(summed)).mean(axis=0)
        scores = np.full(len(self.parts), np.median(covered))  # parts without poses: the median
        scores[self._has] = covered
        return scores - scores.max()

    def update(self, probs: np.ndarray, footprints_px: Sequence[tuple[float, float] | None]) -> np.ndarray:
        """The fused part probabilities ``probs`` (K,) updated by the views' footprints, renormalised
        (unchanged when no view measured one)."""
        ll = self.log_likelihood(footprints_px)
        return probs if ll is None else reweigh(probs, ll)


def fit_scale(
    footprints_px: Sequence[tuple[float, float]], reference: Sequence[Footprint], sigma: float
) -> float:
    """The scale (pixels per millimetre) that makes the measured footprints of views of one
    reference part most likely under its poses' footprints (maximum likelihood over a log grid,
    refined around the best point)."""
    sigma = _check_sigma(sigma)
    if len(footprints_px) == 0:
        raise ConfigError(
            "no footprint was measured on the reference views; check that the segmenter finds the part"
        )
    mu, log_w = _pose_terms(reference)
    log_px = _log_sides(footprints_px)
    lo, hi = math.log(SCALE_RANGE[0]), math.log(SCALE_RANGE[1])
    best = 0.0
    for steps in (2000, 200):
        grid = np.linspace(lo, hi, steps)
        total = np.array([_log_mixture(log_px - g, mu[None], log_w[None], sigma).sum() for g in grid])
        best = float(grid[int(np.argmax(total))])
        width = (hi - lo) / steps
        lo, hi = best - 2 * width, best + 2 * width
    return math.exp(best)


def tilt_table(manifest: Manifest, tilt_deg: float = 0.0) -> Mapping[str, Sequence[Footprint]]:
    """The manifest's footprints as a camera tilted ``tilt_deg`` from vertical sees them (empty
    when the model set has none for that tilt)."""
    if tilt_deg == 0:
        return manifest.footprints
    return manifest.footprints_tilted.get(tilt_key(tilt_deg), {})


def missing_table_hint(manifest: Manifest, tilt_deg: float = 0.0) -> str:
    """Why the model set has no footprints for ``tilt_deg``, and the command that writes them."""
    if tilt_deg == 0:
        return "the model set has no footprints; run `trainer footprints --model-set ... --ldraw ...`"
    have = ", ".join(sorted(manifest.footprints_tilted, key=float)) or "none"
    return (
        f"the model set has no footprints for a camera tilted {tilt_deg:g} degrees (tilted tables: "
        f"{have}); run `trainer footprints --model-set ... --ldraw ... --tilt {tilt_deg:g}`"
    )


def reference_footprints(
    manifest: Manifest, part: str, tilt_deg: float = 0.0
) -> list[tuple[float, float, float]]:
    """The reference part's footprints from the manifest (as a camera tilted ``tilt_deg`` sees
    them), or an error saying how to get them."""
    table = tilt_table(manifest, tilt_deg)
    if not table:
        raise ConfigError(missing_table_hint(manifest, tilt_deg))
    rows = table.get(part)
    if not rows:
        some = ", ".join(p for p in ("3001", "3003", "3004", "3020") if p in table)
        raise ConfigError(
            f"part {part!r} has no footprint in the model set; use a part it knows"
            + (f" (e.g. {some})" if some else "")
        )
    return [tuple(r) for r in rows]  # type: ignore[misc]
