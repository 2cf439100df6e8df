"""Presence detection: a part lying still on the turntable, told from the frames."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from edge.errors import ImageError
from edge.presence import PresenceDetector
from edge.segment import create_segmenter
from edge.settings import PresenceSettings

#: For the drawn grey turntable of the presence tests: low saturation is background.
GREY_HSV = {
    "type": "hsv",
    "background_lower": [0, 0, 0],
    "background_upper": [179, 60, 255],
    "min_area_px": 20,
}


def _disc(shape: tuple[int, int] = (120, 160)) -> np.ndarray:
    """A grey turntable on a dark surround, like the sim's."""
    image = np.full((*shape, 3), 50, np.uint8)
    cv2.circle(image, (shape[1] // 2, shape[0] // 2), 55, (200, 200, 196), -1)
    return image


def _with_part(image: np.ndarray, x: int, y: int, colour: tuple[int, int, int] = (200, 30, 30)) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, (x, y), (x + 14, y + 10), colour, -1)
    return out


def _detector(segmenter: dict[str, Any] | None = None, **settings: Any) -> PresenceDetector:
    seg = create_segmenter(segmenter or GREY_HSV)
    return PresenceDetector(seg, PresenceSettings(**{"min_area_px": 60, "stable_frames": 3, **settings}))


def test_presence_needs_a_part_lying_still_for_n_frames() -> None:
    detector = _detector()
    empty = _disc()
    detector.set_empty(empty)
    readings = [detector.update(empty) for _ in range(3)]
    assert [r.present for r in readings] == [False] * 3
    assert [r.stable for r in readings] == [False, False, True]  # empty, and sure of it
    part = _with_part(empty, 70, 50)
    readings = [detector.update(part) for _ in range(3)]
    assert all(r.present and r.objects == 1 and 120 <= r.area <= 15 * 11 for r in readings)
    assert [r.stable for r in readings] == [False, False, True]


def test_a_moving_part_is_not_stable() -> None:
    detector = _detector(stable_iou=0.8)
    detector.set_empty(_disc())
    readings = [detector.update(_with_part(_disc(), 50 + 8 * i, 50)) for i in range(6)]
    assert all(r.present for r in readings) and not any(r.stable for r in readings)
    still = [detector.update(_with_part(_disc(), 90, 50)) for _ in range(3)]
    assert still[-1].stable


def test_the_empty_turntables_own_mask_does_not_count() -> None:
    # The surround is darker than the HSV range's floor here, so the segmenter marks it as "part";
    # subtracting the empty turntable's mask keeps it from looking like a part.
    detector = _detector({**GREY_HSV, "background_lower": [0, 0, 120], "keep": "all"})
    empty = _disc()
    detector.set_empty(empty)
    assert not detector.update(empty).present
    assert detector.update(_with_part(empty, 70, 50)).present


def test_two_parts_are_counted() -> None:
    detector = _detector()
    detector.set_empty(_disc())
    reading = detector.update(_with_part(_with_part(_disc(), 50, 45), 95, 65, (30, 30, 200)))
    assert reading.present and reading.objects == 2


def test_difference_method_for_the_none_segmenter() -> None:
    detector = _detector({"type": "none"}, stable_frames=1)
    assert detector.method == "difference"  # a full-frame mask cannot tell a part from the disc
    detector.set_empty(_disc())
    assert not detector.update(_disc()).present
    assert detector.update(_with_part(_disc(), 70, 50, (120, 120, 120))).present  # even a grey part


def test_presence_refuses_frames_of_another_size() -> None:
    detector = _detector()
    with pytest.raises(RuntimeError, match="set_empty"):
        detector.update(_disc())
    detector.set_empty(_disc())
    with pytest.raises(ImageError, match="changed resolution"):
        detector.update(_disc((100, 160)))
