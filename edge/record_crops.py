"""The crops a decision record keeps, written as PNGs for :class:`~edge.record.DecisionRecord`.

Each crop is written atomically as ``<crops_dir>/<day>/<part id>_<view>.png`` and the folders are
fsynced, before the row that names it commits. While crops cannot be written (disk full) the
decision is recorded without them: one warning (log line and event) at first, then at most every
:data:`CROP_WARNING_INTERVAL_S`, counting the parts in between; a log line says when they are
saved again.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

import numpy as np

from edge.errors import ImageError
from edge.fileio import write_atomic
from edge.record_file import utc_now

log = logging.getLogger("edge.record")  # the record's logger: its crop warnings keep their name

#: While crops cannot be written, one warning (log line and event) at most this often, in seconds.
CROP_WARNING_INTERVAL_S = 600.0


def check_crops(crops: list[np.ndarray | None]) -> None:
    """ImageError unless each crop given (None: no crop) is an RGB uint8 array of shape (H, W, 3)."""
    for i, crop in enumerate(crops):
        if crop is not None and not (
            crop.dtype == np.uint8 and crop.ndim == 3 and crop.shape[2] == 3 and crop.size > 0
        ):
            raise ImageError(
                f"crop for view {i} must be an RGB uint8 array of shape (H, W, 3), "
                f"got dtype {crop.dtype}, shape {crop.shape}"
            )


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)  # makes the renames durable before the row that names them commits
    finally:
        os.close(fd)


class CropWriter:
    """Writes a record's kept crops under ``crops_dir`` and tracks when writing them fails."""

    def __init__(self, crops_dir: Path) -> None:
        self.crops_dir = crops_dir
        self._crops_failing = 0  # parts in a row whose crops could not be written
        self._crops_unreported = 0  # of those, parts not yet in a warning
        self._crops_warned_at: float | None = None

    def save(
        self, part_id: int, day: str, crops: list[np.ndarray | None], events: list[tuple[str, str, str, str]]
    ) -> list[str | None]:
        """Write crops as PNGs; on an OS error (disk full) stop there and warn (rate-limited)."""
        import cv2  # core dependency, loaded only when a crop is actually kept

        paths: list[str | None] = [None] * len(crops)
        folder = self.crops_dir / day
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for i, crop in enumerate(crops):
                if crop is None:
                    continue
                ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2BGR))
                if not ok:
                    raise ImageError(f"OpenCV could not encode the crop of view {i} as PNG")
                rel = f"{day}/{part_id}_{i}.png"
                write_atomic(self.crops_dir / rel, png.tobytes())
                paths[i] = rel
            _fsync_dir(folder)
            _fsync_dir(self.crops_dir)  # the day folder may be new
        except OSError as exc:
            self._failed(part_id, folder, exc, events)
            return paths  # the crops written before the failure are kept
        if self._crops_failing:
            log.info("crops are saved again, after %d part(s) without", self._crops_failing)
            self._crops_failing, self._crops_unreported, self._crops_warned_at = 0, 0, None
        return paths

    def _failed(
        self, part_id: int, folder: Path, exc: OSError, events: list[tuple[str, str, str, str]]
    ) -> None:
        """Warn (log and event) about the first failure, then at most every CROP_WARNING_INTERVAL_S."""
        self._crops_failing += 1
        now = time.monotonic()
        if self._crops_warned_at is not None and now - self._crops_warned_at < CROP_WARNING_INTERVAL_S:
            self._crops_unreported += 1
            log.debug("part %d: crops not saved under %s: %s", part_id, folder, exc)
            return
        why = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        since = ""
        if self._crops_unreported:
            since = f"; {self._crops_unreported} more part(s) without crops since the last warning"
        msg = (
            f"part {part_id}: crops not saved under {str(folder)!r} ({why}); the decision is recorded "
            f"without them. Free disk space or set keep_crops='none'{since}. While this lasts further "
            f"failures are counted and reported every {CROP_WARNING_INTERVAL_S / 60:g} min"
        )
        log.warning(msg)
        events.append((utc_now(), "warning", "crop_write_failed", msg))
        self._crops_warned_at, self._crops_unreported = now, 0
