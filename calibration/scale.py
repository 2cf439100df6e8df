"""``edge calibrate scale``: pixels per millimetre on the stage, from views of a part of known size.

The user shows the camera a reference part the model set has footprints for (``trainer
footprints``; a 2x4 brick, 3001, is a good one: large, and common). Each view is cut out by the
configured segmenter, its footprint measured (:func:`edge.size.measure`), and the scale that makes
the views' footprints most likely under the part's resting poses is written to the calibration
file's ``scale`` section (:func:`edge.size.fit_scale`). Views in several resting poses and places
on the stage average out the segmenter's and the lens's errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.calibration_file import update_calibration
from edge.errors import ImageError
from edge.manifest import Manifest
from edge.segment import Segmenter
from edge.size import fit_scale, measure, reference_footprints


@dataclass
class ScaleFit:
    """The fitted scale and what it was fitted from."""

    px_per_mm: float
    part: str
    footprints_px: list[tuple[float, float]]
    expected_mm: list[tuple[float, float, float]]
    empty_views: int

    def lines(self) -> list[str]:
        """A short human-readable summary: the scale and each view's footprint in millimetres."""
        poses = ", ".join(f"{a:g} x {b:g} mm ({p:.0%})" for a, b, p in self.expected_mm[:4])
        out = [
            f"scale: {self.px_per_mm:.3f} px/mm from {len(self.footprints_px)} view(s) of {self.part} "
            f"(its resting footprints: {poses})"
        ]
        for i, (a, b) in enumerate(self.footprints_px, 1):
            out.append(
                f"  view {i}: {a / self.px_per_mm:.1f} x {b / self.px_per_mm:.1f} mm ({a:.0f} x {b:.0f} px)"
            )
        if self.empty_views:
            out.append(f"  {self.empty_views} view(s) had an empty mask and were left out")
        return out


def measure_views(
    images: Sequence[np.ndarray], segmenter: Segmenter
) -> tuple[list[tuple[float, float]], int]:
    """The footprints (px) of the views the segmenter found a part in, and how many it did not."""
    measured = [measure(segmenter.mask(image)) for image in images]
    found = [m for m in measured if m is not None]
    return found, len(measured) - len(found)


def calibrate_scale(
    images: Sequence[np.ndarray],
    segmenter: Segmenter,
    manifest: Manifest,
    part: str,
    path: str | Path,
    sigma: float = 0.15,
    tilt_deg: float = 0.0,
) -> ScaleFit:
    """Fit the scale from ``images`` of ``part`` seen by a camera tilted ``tilt_deg`` from vertical
    and write the calibration file's ``scale`` section."""
    expected = reference_footprints(manifest, part, tilt_deg)
    if not images:
        raise ImageError(f"no views of {part} to measure; capture or pass a few images of it")
    found, empty = measure_views(images, segmenter)
    if not found:
        raise ImageError(
            f"the segmenter found no part in any of the {len(images)} view(s) of {part}; "
            "check the segmenter (edge calibrate background) and that the part is in view"
        )
    px_per_mm = fit_scale(found, expected, sigma)
    update_calibration(
        path,
        scale={"px_per_mm": round(px_per_mm, 4), "part": part, "views": len(found), "tilt_deg": tilt_deg},
    )
    return ScaleFit(px_per_mm, part, found, expected, empty)
