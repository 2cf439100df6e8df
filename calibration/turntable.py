"""``edge calibrate turntable``: how many steps really make one turn of the platter.

A part lies off-centre on the turntable. The reference is its mask at the start; the turntable
then steps through a window around the nominal turn (``1 +- search`` turns) and each view's mask is
compared with the reference (IoU). A coarse pass finds the best match, a fine pass of single steps
around it the peak; each takes the middle of the positions within ``plateau`` of its peak IoU (one
step moves the picture by less than a pixel on a 4096-step turntable, so the peak is a plateau).
Before the fine pass the turntable backs up past the window and comes forward again, so gear
backlash is taken up the same way in every view. The window excludes half and quarter turns, where
a symmetric part would match too. Replayed frames (a few views per part, the nearest one shown)
cannot be measured this way: the simulated rig must render live.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import ImageError


@dataclass(frozen=True)
class TurntableFit:
    """The measured turn."""

    steps_per_turn: int
    nominal: int
    peak_iou: float
    captures: int

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        return [
            f"steps per turn: {self.steps_per_turn} measured, {self.nominal} configured "
            f"(peak mask IoU {self.peak_iou:.3f}, {self.captures} captures)"
        ]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b)) / union if union else 0.0


def measure_steps_per_turn(
    turntable: Any,
    capture: Callable[[], np.ndarray],
    segmenter: Any,
    *,
    search: float = 0.2,
    coarse_views: int = 48,
    plateau: float = 0.005,
) -> TurntableFit:
    """Measure the steps of one turn (see the module docstring). Leaves the turntable near a turn on."""
    if not 0.0 < search < 0.25:
        raise ValueError(f"search {search!r} must be within (0, 0.25): a wider window meets a 3/4 turn")
    nominal = int(turntable.steps_per_turn)
    start = int(turntable.position)
    captures = 0

    def mask_here() -> np.ndarray:
        nonlocal captures
        captures += 1
        return np.asarray(segmenter.mask(capture())) > 0

    def go(position: int) -> None:
        turntable.step(start + position - int(turntable.position))

    reference = mask_here()
    if np.count_nonzero(reference) == 0:
        raise ImageError(
            "the segmenter finds no part on the turntable; place an asymmetric part off-centre "
            "(calibrate the background first)"
        )
    lo, hi = int(nominal * (1 - search)), math.ceil(nominal * (1 + search))
    coarse = max(1, (hi - lo) // coarse_views)
    scores = {}
    for position in range(lo, hi + 1, coarse):
        go(position)
        scores[position] = _iou(reference, mask_here())
    top = max(scores.values())
    best = round(float(np.mean([p for p, s in scores.items() if s >= top - plateau])))  # plateau middle
    go(best - 2 * coarse)  # back past the fine window, then forward: backlash taken up alike
    fine = {}
    for position in range(best - coarse, best + coarse + 1):
        go(position)
        fine[position] = _iou(reference, mask_here())
    peak = max(fine.values())
    near = [p for p, s in fine.items() if s >= peak - plateau]
    return TurntableFit(round(float(np.mean(near))), nominal, peak, captures)
