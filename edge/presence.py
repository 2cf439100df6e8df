"""Is a part lying still on the turntable? Told from the frames alone, not from a timer.

:class:`PresenceDetector` compares each frame with the empty turntable (the segmenter's mask less
the empty turntable's, or a plain difference) and calls a verdict :class:`Presence` ``stable`` once
enough frames agree and the part has stopped moving. The daemon waits on it before capturing a
part's views and after clearing one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.errors import ImageError
from edge.segment import Segmenter, clean_mask, count_objects
from edge.settings import PresenceSettings

log = logging.getLogger(__name__)


@dataclass
class Presence:
    """One frame's verdict: is a part there, has the verdict held for long enough, how big, how many."""

    present: bool
    stable: bool
    area: int
    objects: int
    mask: np.ndarray = field(repr=False)


class PresenceDetector:
    """Tells a part on the turntable from the empty turntable, frame by frame.

    ``mask`` method: the segmenter's mask minus (a dilation of) the empty turntable's mask, so marks
    on the disc or surroundings the segmenter keeps do not count. ``difference`` method: pixels that
    differ from the empty frame by more than ``diff_level``. A verdict is ``stable`` once
    ``stable_frames`` consecutive frames agree (and, for a part, its masks overlap by at least
    ``stable_iou``: the part has stopped moving).
    """

    def __init__(self, segmenter: Segmenter, settings: PresenceSettings) -> None:
        self.segmenter = segmenter
        self.settings = settings
        method = settings.method
        if method == "auto":
            method = "difference" if getattr(segmenter, "key", "") == "none" else "mask"
        self.method = method
        self._empty_image: np.ndarray | None = None
        self._empty_mask: np.ndarray | None = None
        self._empty_objects = 0
        self._last: Presence | None = None
        self._run = 0

    @property
    def calibrated(self) -> bool:
        """Whether :meth:`set_empty` has been given the empty turntable."""
        return self._empty_image is not None

    def set_empty(self, image: np.ndarray) -> None:
        """Remember ``image`` as the empty turntable (call at start-up, with nothing on it)."""
        self._empty_image = np.array(image, copy=True)
        if self.method == "mask":
            mask, self._empty_objects = self.segmenter.mask_and_count(image)
            self._empty_mask = cv2.dilate(mask, np.ones((7, 7), np.uint8)) > 0
            share = float(np.count_nonzero(mask)) / mask.size
            if share > 0.05:
                log.warning(
                    "the segmenter marks %.0f%% of the empty turntable as part; adjust its background "
                    "range (or calibrate) so that parts are found reliably",
                    100 * share,
                )
        self.reset()

    def reset(self) -> None:
        """Forget the running verdict (after the turntable moved or a part was removed)."""
        self._last, self._run = None, 0

    def _part_mask(self, image: np.ndarray) -> tuple[np.ndarray, int | None]:
        """The part mask, and the segmenter's region count less the empty turntable's (None: count it)."""
        assert self._empty_image is not None
        if self._empty_image.shape != image.shape:
            raise ImageError(
                f"frame is {image.shape!r} but the empty turntable was {self._empty_image.shape!r}; "
                "the camera changed resolution: restart to take a new empty frame"
            )
        if self.method == "difference":
            diff = np.abs(image.astype(np.int16) - self._empty_image.astype(np.int16)).max(axis=2)
            raw = (diff > self.settings.diff_level).astype(np.uint8) * 255
            return clean_mask(raw, 3, 5, "all", self.settings.min_area_px), None
        # The segmenter counts regions before its clean-up keeps the largest, so two parts show in
        # the count even when the mask holds one; regions of the empty turntable do not count.
        mask, count = self.segmenter.mask_and_count(image)
        assert self._empty_mask is not None
        part = ((mask > 0) & ~self._empty_mask).astype(np.uint8) * 255
        return part, count - self._empty_objects

    def update(self, image: np.ndarray) -> Presence:
        """Judge one frame; see the class docstring."""
        if not self.calibrated:
            raise RuntimeError("PresenceDetector.set_empty() must be given the empty turntable first")
        mask, counted = self._part_mask(image)
        on = mask > 0
        area = int(np.count_nonzero(on))
        s = self.settings
        present = area >= s.min_area_px
        if not present:
            objects = 0
        else:
            objects = max(counted if counted is not None else count_objects(mask, s.min_area_px), 1)
        last = self._last
        same = last is not None and last.present == present
        if same and present and last is not None:
            union = np.count_nonzero(on | (last.mask > 0))
            same = bool(union > 0 and np.count_nonzero(on & (last.mask > 0)) / union >= s.stable_iou)
        self._run = self._run + 1 if same else 1
        reading = Presence(present, self._run >= s.stable_frames, area, objects, mask)
        self._last = reading
        return reading
