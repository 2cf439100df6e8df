"""``edge calibrate background``: the empty stage's HSV range and per-pixel background model.

From N frames of the empty stage it fits both things the segmenters read from the calibration file:

* an HSV range for ``hsv`` (:func:`fit_hsv_range`): the shortest arc of hues holding all but
  ``outliers`` of the pixels, widened by ``hue_margin``; saturation and value from their low
  quantiles, scaled down by ``shadow`` so a part's shadow and a dimmer lamp still count as background
  (upper bounds open to 255: a brighter background is still background);
* a :class:`~edge.segment.bgdiff.BackgroundModel` for ``bgdiff`` (median image and measured noise),
  saved beside the calibration file.

It reports the share of the empty stage's pixels the range keys out and writes a picture of what it
keys (background dimmed, unkeyed pixels red) to a report folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.calibration_file import HsvThresholds, now_utc, update_calibration
from edge.errors import ImageError
from edge.fileio import write_atomic
from edge.segment.bgdiff import BackgroundModel

MODEL_NAME = "background.npz"
MASK_PICTURE = "background_mask.png"


@dataclass(frozen=True)
class BackgroundReport:
    """What ``edge calibrate background`` fitted and measured."""

    hsv: HsvThresholds
    keyed_share: float  # of the empty frames' pixels, inside the HSV range
    model_path: Path
    frames: int
    picture: Path | None

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        out = [
            f"{self.frames} frame(s) of the empty stage",
            f"HSV range: lower {list(self.hsv.lower)}, upper {list(self.hsv.upper)}",
            f"background pixels keyed: {self.keyed_share:.2%}",
            f"background model: {self.model_path}",
        ]
        if self.picture is not None:
            out.append(f"mask picture: {self.picture}")
        return out


def _hsv_pixels(frames: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(
        [cv2.cvtColor(np.asarray(f, np.uint8), cv2.COLOR_RGB2HSV).reshape(-1, 3) for f in frames]
    )


def shortest_hue_arc(hues: np.ndarray, keep: float) -> tuple[int, int]:
    """(lower, upper) OpenCV hues of the shortest circular arc holding ``keep`` of ``hues``.

    Where the arc wraps around red, lower > upper (as :class:`HsvThresholds` reads it).
    """
    counts = np.bincount(hues.astype(np.int64), minlength=180)[:180].astype(np.float64)
    need = keep * counts.sum()
    doubled = np.concatenate([counts, counts])
    cum = np.concatenate([[0.0], np.cumsum(doubled)])
    best = (0, 179)
    for width in range(1, 181):
        sums = cum[width : width + 180] - cum[:180]
        start = int(np.argmax(sums))
        if sums[start] >= need:
            best = (start, (start + width - 1) % 180)
            break
    return best


def fit_hsv_range(
    frames: Sequence[np.ndarray],
    *,
    outliers: float = 0.002,
    hue_margin: int = 10,
    shadow: float = 0.5,
) -> HsvThresholds:
    """The HSV range of the empty stage from its frames' statistics (see the module docstring)."""
    if not frames:
        raise ImageError("calibrating the background needs at least one frame of the empty stage")
    pixels = _hsv_pixels(frames)
    lo, hi = shortest_hue_arc(pixels[:, 0], 1.0 - outliers)
    if (hi - lo) % 180 + 2 * hue_margin >= 179:
        lower_h, upper_h = 0, 179
    else:
        lower_h, upper_h = (lo - hue_margin) % 180, (hi + hue_margin) % 180
    inside = HsvThresholds(lower=(lower_h, 0, 0), upper=(upper_h, 255, 255)).in_range(pixels[None])[0] > 0
    chosen = pixels[inside]
    s_low, v_low = (np.quantile(chosen[:, c], outliers) for c in (1, 2))
    return HsvThresholds(
        lower=(lower_h, int(s_low * shadow), int(v_low * shadow)),
        upper=(upper_h, 255, 255),
    )


def keyed_share(frames: Sequence[np.ndarray], hsv: HsvThresholds) -> float:
    """Share of the frames' pixels inside the range (of an empty stage: what the range keys out)."""
    pixels = _hsv_pixels(frames)
    return float(np.count_nonzero(hsv.in_range(pixels[None]))) / len(pixels)


def mask_picture(frame: np.ndarray, hsv: HsvThresholds) -> np.ndarray:
    """RGB picture: keyed background dimmed to a third, pixels the range misses painted red."""
    keyed = hsv.in_range(cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)) > 0
    out = frame.copy()
    out[keyed] = (frame[keyed] // 3).astype(np.uint8)
    out[~keyed] = (255, 0, 0)
    return out


def calibrate_background(
    frames: Sequence[np.ndarray], calibration: Path, report_dir: Path | None = None
) -> BackgroundReport:
    """Fit the HSV range and background model, write both into ``calibration`` (and the report)."""
    frames = [np.asarray(f, np.uint8) for f in frames]
    hsv = fit_hsv_range(frames)
    share = keyed_share(frames, hsv)
    model = BackgroundModel.fit(frames)
    model_path = calibration.parent / MODEL_NAME
    calibration.parent.mkdir(parents=True, exist_ok=True)
    model.save(model_path)
    picture = None
    if report_dir is not None:
        picture = report_dir / MASK_PICTURE
        ok, png = cv2.imencode(".png", cv2.cvtColor(mask_picture(frames[-1], hsv), cv2.COLOR_RGB2BGR))
        if not ok:  # pragma: no cover - OpenCV always encodes an RGB uint8 image
            raise ImageError("the mask picture could not be encoded")
        write_atomic(picture, png.tobytes())
    update_calibration(
        calibration,
        background={
            "hsv": hsv.model_dump(mode="json"),
            "model": MODEL_NAME,
            "frames": len(frames),
            "keyed_share": round(share, 6),
            "timestamp": now_utc().isoformat(),
        },
    )
    return BackgroundReport(hsv, share, model_path, len(frames), picture)
