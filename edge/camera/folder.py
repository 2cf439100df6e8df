"""``type: folder``: replays the images of a folder as camera frames (sorted, optionally looping).

With a ``manifest.csv`` in the rig's capture layout (columns :data:`MANIFEST_COLUMNS`, image paths
relative to the folder) each frame's ``meta`` carries its ground truth: ``part_num``,
``color_id``, ``color_name``, ``part_name``, ``angle`` and ``recorded_at`` (the manifest's
timestamp). ``*_mask.png`` files are masks, not frames; a frame's mask path is in ``meta`` when
present. Corrupt files, and images over ``max_megapixels`` (refused from their header before
decoding: :func:`edge.imagefile.read_image`), raise :class:`ImageError` naming the file, or are
skipped and logged (``skip_corrupt``).
"""

from __future__ import annotations

import csv
import fnmatch
import logging
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from edge.camera.base import CameraSource, EndOfStream, register_camera
from edge.config import StrictModel
from edge.errors import DataFileError, HardwareError, ImageError
from edge.imagefile import DEFAULT_MAX_MEGAPIXELS, read_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
MANIFEST_NAME = "manifest.csv"
#: The rig's capture manifest (``trainer render --layout real`` writes the same columns).
MANIFEST_COLUMNS = ("image_path", "part_num", "color_id", "color_name", "part_name", "angle", "timestamp")
#: Optional columns of a packed replay set: the image is the part's window of a full frame, with
#: its top-left corner at (window_x, window_y); the rest of the frame is the folder's empty.png.
WINDOW_COLUMNS = ("window_x", "window_y")


def read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """Ground truth per image from ``folder/manifest.csv``, keyed by the posix path relative to ``folder``.

    Only ``image_path`` is required; ``color_id`` becomes an int and ``angle`` a float, and
    ``timestamp`` is kept as text under ``recorded_at``. Raises DataFileError naming the row.
    """
    path = folder / MANIFEST_NAME
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            if "image_path" not in columns:
                raise DataFileError(
                    f"manifest {str(path)!r} has no 'image_path' column (columns: {columns!r}); expected "
                    f"the rig's layout: {', '.join(MANIFEST_COLUMNS)}"
                )
            rows = list(reader)
    except OSError as exc:
        raise DataFileError(f"manifest {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataFileError(f"manifest {str(path)!r} is not valid UTF-8 CSV: {exc}") from None
    truth: dict[str, dict[str, Any]] = {}
    for line, row in enumerate(rows, start=2):
        where = f"manifest {str(path)!r} line {line}"
        key = Path((row.get("image_path") or "").strip()).as_posix()
        if key in ("", "."):
            raise DataFileError(f"{where}: empty image_path; fix or delete the row")
        truth[key] = _row_truth(row, where)
    return truth


def _row_truth(row: dict[str, str | None], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in ("part_num", "color_name", "part_name"):
        if row.get(column):
            out[column] = str(row[column]).strip()
    for column, kind in (("color_id", int), ("angle", float)):
        text = (row.get(column) or "").strip()
        if text:
            try:
                out[column] = kind(text)
            except ValueError:
                raise DataFileError(f"{where}: {column} {text!r} is not a number; fix the row") from None
    if row.get("timestamp"):
        out["recorded_at"] = str(row["timestamp"]).strip()
    window = [(row.get(c) or "").strip() for c in WINDOW_COLUMNS]
    if any(window):
        try:
            x, y = (int(v) for v in window)
        except ValueError:
            raise DataFileError(
                f"{where}: window_x/window_y {window!r} must both be whole pixel numbers; fix the row"
            ) from None
        if x < 0 or y < 0:
            raise DataFileError(f"{where}: window ({x}, {y}) lies left of or above the frame; fix the row")
        out["window"] = (x, y)
    return out


class FolderConfig(StrictModel):
    """Settings of the folder replay camera."""

    type: Literal["folder"] = Field("folder", description="'folder': replay the images of a folder")
    path: str = Field(min_length=1, description="folder holding the images (and optionally manifest.csv)")
    pattern: str = Field(
        "**/*", min_length=1, description="glob of the images relative to path; '**/' includes subfolders"
    )
    exclude: list[str] = Field(
        ["*_mask.png"], description="file-name globs left out (masks written beside the images)"
    )
    loop: bool = Field(False, description="true: start again after the last image; false: stop there")
    skip_corrupt: bool = Field(False, description="true: log and skip unreadable images instead of failing")
    manifest: bool = Field(True, description="true: attach ground truth from manifest.csv when present")
    max_megapixels: float = Field(
        DEFAULT_MAX_MEGAPIXELS,
        gt=0.0,
        le=1000.0,
        description="largest image read, in megapixels (checked from the file's header before decoding; "
        "about 12 bytes of memory a pixel)",
    )


@register_camera("folder")
class FolderSource(CameraSource):
    """Images of a folder in sorted order, with ground truth from its manifest when there is one."""

    config_model = FolderConfig
    config: FolderConfig

    def __init__(self, config: FolderConfig) -> None:
        super().__init__(config)
        self.files: list[Path] = []
        self.truth: dict[str, dict[str, Any]] = {}
        self._root = Path(config.path)
        self._next = 0

    @property
    def name(self) -> str:
        """E.g. ``"folder camera '/data/captures'"``."""
        return f"folder camera {self.config.path!r}"

    def _open(self) -> None:
        root = Path(self.config.path).expanduser()
        if not root.is_dir():
            raise HardwareError(f"{self.name}: the folder does not exist; check camera.path")
        self.files = list_images(root, self.config.pattern, self.config.exclude)
        if not self.files:
            raise HardwareError(
                f"{self.name} holds no images matching {self.config.pattern!r} "
                f"(suffixes {', '.join(sorted(IMAGE_SUFFIXES))}); check camera.path and camera.pattern"
            )
        use_manifest = self.config.manifest and (root / MANIFEST_NAME).is_file()
        self.truth = read_manifest(root) if use_manifest else {}
        if use_manifest:
            missing = sum(1 for f in self.files if f.relative_to(root).as_posix() not in self.truth)
            if missing:
                log.warning("%s: %d image(s) have no row in %s", self.name, missing, MANIFEST_NAME)
        self._root = root
        self._next = 0

    def _close(self) -> None:
        self.files = []

    def rewind(self) -> None:
        """Start again from the first image."""
        self._next = 0

    def _grab(self) -> tuple[np.ndarray, dict[str, Any]]:
        failures = 0
        while True:
            if self._next >= len(self.files):
                if not self.config.loop:
                    raise EndOfStream(f"{self.name}: all {len(self.files)} images replayed; set loop: true")
                self._next = 0
            path = self.files[self._next]
            self._next += 1
            try:
                image = read_image(
                    path, max_megapixels=self.config.max_megapixels, setting="camera.max_megapixels"
                )
            except ImageError as exc:
                failures += 1
                if not self.config.skip_corrupt:
                    raise
                if failures >= len(self.files):
                    raise ImageError(f"{self.name}: no image can be read; last error: {exc}") from None
                log.warning("%s: skipping %s", self.name, exc)
                continue
            return image, self._meta(path)

    def _meta(self, path: Path) -> dict[str, Any]:
        rel = path.relative_to(self._root).as_posix()
        meta: dict[str, Any] = {"path": str(path), **self.truth.get(rel, {})}
        mask = path.with_name(f"{path.stem}_mask.png")
        if mask.is_file():
            meta["mask_path"] = str(mask)
        return meta


def list_images(root: Path, pattern: str = "**/*", exclude: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """Image files under ``root`` matching ``pattern``, minus ``exclude`` name globs.

    Sorted naturally by relative path (``view_60`` before ``view_120``), as a rig captures them.
    """
    found = (
        p
        for p in root.glob(pattern)
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(fnmatch.fnmatch(p.name, x) for x in exclude)
        and p.is_file()
    )
    return sorted(found, key=lambda p: _natural_key(p.relative_to(root).as_posix()))


def _natural_key(text: str) -> list[tuple[int, int | str]]:
    # (0, number) sorts digit runs by value, (1, text) the rest by text; the tags keep types apart.
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", text) if t]
