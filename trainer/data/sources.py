"""Training data sources: B200C, the legacy renders, the rig's real captures and ``trainer render`` output.

Every source becomes a list of :class:`Sample` records (plain data, no images loaded). Layouts:

- ``b200c``: one folder per part number of 64x64 images, no colour. ``*_mask.png`` files are masks of
  the image beside them, not samples. Files named ``{part}_{capture:04d}_{view}`` (``trainer render
  --layout b200c``) are grouped into captures; otherwise each file is its own capture.
- ``legacy``: 224x224 renders listed in ``manifest.csv`` (:data:`LEGACY_REQUIRED` columns, plus
  optional ``mask_path`` and ``angle``).
- ``real``: the rig's layout, ``manifest.csv`` (:data:`REAL_REQUIRED` columns) with images under
  ``raw/{part}/{colour}/{part}_{colour}_{angle}[_{k}].jpg``; a mask is ``{stem}_mask.png`` beside the
  image. The views of one physical capture share part, colour and repeat suffix ``k``.

A ``trainer render`` output folder names its layout in ``render_report.json`` (``job.layout``).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from edge.errors import ConfigError, DataFileError, ImageError, UnknownColorError

log = logging.getLogger(__name__)

KINDS = ("b200c", "legacy", "real")
SourceKind = Literal["auto", "b200c", "legacy", "real"]
IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
LEGACY_REQUIRED = ("image_path", "part_num", "color_id", "capture", "view")
REAL_REQUIRED = ("image_path", "part_num", "color_id", "angle")
#: How many bad rows an error message quotes before summarising the rest.
MAX_REPORTED = 5
# The project's own b200c naming (trainer.render_worker._names): {part}_{capture:04d}_{view}.
_B200C_STEM = re.compile(r"^(?P<capture>.+_\d{4})_(?P<view>\d+)$")


@dataclass(frozen=True)
class Sample:
    """One labelled image.

    Attributes:
        image_path: absolute path of the image.
        mask_path: absolute path of its mask (white = part), or None when the source has none.
        part_num: the part number (the part label).
        color_id: Rebrickable colour id, or None for a source without colour labels (B200C).
        capture_id: identifies one physical placement of the part; all views of it share the id.
            Unique within one source only: split and group on ``(source, capture_id)``.
        view: index of the view within its capture (0-based).
        angle: turntable angle in degrees, or None when unknown.
        source: the name of the source this sample came from (its kind unless named otherwise).
    """

    image_path: Path
    mask_path: Path | None
    part_num: str
    color_id: int | None
    capture_id: str
    view: int
    angle: float | None
    source: str


def load_source(
    path: str | Path, kind: SourceKind = "auto", *, strict: bool = True, name: str | None = None
) -> list[Sample]:
    """Read one data source folder into samples.

    Args:
        path: the folder (it holds ``manifest.csv``, ``render_report.json`` or one folder per part).
        kind: ``"auto"`` detects the layout (see :func:`detect_kind`), or force one of :data:`KINDS`.
        strict: when True, rows pointing at missing files are an error; when False they are skipped
            with a warning.
        name: the ``source`` field of every sample (default: the kind). Give two folders of the same
            kind different names when they are used together, so their capture ids cannot collide.

    Raises:
        DataFileError: the folder, its manifest or (with ``strict``) files its rows name are missing.
        ConfigError: an unknown ``kind``, a manifest lacking columns, or rows with bad values or
            unknown colour ids (each reported with its line number).
    """
    root = Path(path).resolve()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataFileError(f"data source {str(root)!r} {what}; pass the folder that holds the data set")
    if kind == "auto":
        kind = detect_kind(root)  # type: ignore[assignment]
    if kind not in KINDS:
        raise ConfigError(f"data source kind {kind!r} is unknown; use 'auto' or one of {', '.join(KINDS)}")
    source = name or kind
    samples = _load_b200c(root, source) if kind == "b200c" else _load_manifest(root, kind, source, strict)
    if not samples:
        raise DataFileError(f"data source {str(root)!r} ({kind}) holds no images; check the folder")
    parts = len({s.part_num for s in samples})
    log.info("%s: %d images of %d parts from %s", source, len(samples), parts, root)
    return samples


def detect_kind(root: Path) -> str:
    """The layout of a data source folder.

    ``render_report.json`` (written by ``trainer render``) names it; otherwise a ``manifest.csv`` with
    ``capture`` and ``view`` columns is legacy and one with ``angle`` is real; a folder of part
    folders holding images is B200C.

    Raises:
        ConfigError: the render report is unreadable or names an unknown layout.
        DataFileError: nothing recognisable is in the folder.
    """
    report = root / "render_report.json"
    if report.is_file():
        try:
            layout = json.loads(report.read_text(encoding="utf-8"))["job"]["layout"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"render report {str(report)!r} is unreadable ({type(exc).__name__}: {exc}); re-run "
                "trainer render, or pass kind= explicitly"
            ) from None
        if layout not in KINDS:
            raise ConfigError(
                f"render report {str(report)!r} names layout {layout!r}; expected one of {', '.join(KINDS)}"
            )
        return str(layout)
    manifest = root / "manifest.csv"
    if manifest.is_file():
        header = set(_read_header(manifest))
        if {"capture", "view"} <= header:
            return "legacy"
        if "angle" in header:
            return "real"
        raise ConfigError(
            f"manifest {str(manifest)!r} has neither the legacy columns (capture, view) nor the real "
            f"ones (angle, timestamp); its columns are {sorted(header)}; pass kind= explicitly"
        )
    if any(_images(d) for d in _part_dirs(root)):
        return "b200c"
    unfinished = (root / ".progress").is_dir()
    progress = " (a .progress/ folder is here: the render may be unfinished)" if unfinished else ""
    raise DataFileError(
        f"data source {str(root)!r} has no render_report.json, no manifest.csv and no part folders of "
        f"images{progress}; pass a B200C, legacy, real or trainer render folder"
    )


# ---- B200C -----------------------------------------------------------------------------------------


def _part_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    """Image files in a folder, masks and hidden (temporary) files excluded, sorted by name."""
    return sorted(
        f
        for f in folder.iterdir()
        if f.suffix.lower() in IMAGE_EXTS
        and not f.name.startswith(".")
        and not f.stem.endswith("_mask")
        and f.is_file()
    )


def _load_b200c(root: Path, source: str) -> list[Sample]:
    samples: list[Sample] = []
    for folder in _part_dirs(root):
        files = _images(folder)
        matches = [_B200C_STEM.match(f.stem) for f in files]
        # The capture grouping applies only when the whole folder follows the project's naming.
        grouped = bool(files) and all(m is not None for m in matches)
        for f, m in zip(files, matches, strict=True):
            mask = f.with_name(f"{f.stem}_mask.png")
            capture, view = (m["capture"], int(m["view"])) if grouped and m else (f.stem, 0)
            samples.append(
                Sample(
                    image_path=f,
                    mask_path=mask if mask.is_file() else None,
                    part_num=folder.name,
                    color_id=None,
                    capture_id=f"{folder.name}/{capture}",
                    view=view,
                    angle=None,
                    source=source,
                )
            )
    return samples


# ---- manifests (legacy, real) ------------------------------------------------------------------------


def _read_header(manifest: Path) -> list[str]:
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            return [c.strip() for c in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"manifest {str(manifest)!r} cannot be read: {exc}") from None


def _read_rows(manifest: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a manifest, after checking its columns."""
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in required if c not in header]
            if missing:
                raise ConfigError(
                    f"manifest {str(manifest)!r} lacks the column(s) {', '.join(missing)}; it has "
                    f"{', '.join(header) or 'no header'}; required: {', '.join(required)}"
                )
            reader.fieldnames = header
            return [
                (reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None})
                for row in reader
            ]
    except FileNotFoundError:
        raise DataFileError(
            f"manifest {str(manifest)!r} does not exist; a trainer render writes it when the run ends, "
            "so re-run an interrupted render to finish it"
        ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataFileError(f"manifest {str(manifest)!r} cannot be read: {exc}") from None


class _Problems:
    """Bad rows collected over a whole manifest, reported together (the first few quoted)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, line: int, text: str) -> None:
        self.items.append(f"line {line}: {text}")

    def summary(self) -> str:
        shown = "; ".join(self.items[:MAX_REPORTED])
        more = len(self.items) - MAX_REPORTED
        return shown + (f"; and {more} more" if more > 0 else "")


def _path(root: Path, text: str) -> Path:
    p = Path(text)
    return p if p.is_absolute() else root / p  # root is already absolute: no per-row resolve()


def _int(value: str, column: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{column} {value!r} is not a whole number") from None


def _float(value: str, column: str) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{column} {value!r} is not a number") from None


def _color(value: str, cache: dict[int, None]) -> int | None:
    """A checked Rebrickable colour id; blank means "no colour label"."""
    if not value:
        return None
    color_id = _int(value, "color_id")
    if color_id not in cache:
        from edge.colors import get_color

        try:
            get_color(color_id)
        except UnknownColorError as exc:
            raise ValueError(str(exc)) from None
        cache[color_id] = None
    return color_id


def _load_manifest(root: Path, kind: str, source: str, strict: bool) -> list[Sample]:
    manifest = root / "manifest.csv"
    rows = _read_rows(manifest, LEGACY_REQUIRED if kind == "legacy" else REAL_REQUIRED)
    bad, missing = _Problems(), _Problems()
    parsed: list[tuple[int, dict[str, Any]]] = []
    seen: dict[Path, int] = {}
    colors: dict[int, None] = {}
    for line, row in rows:
        try:
            if not row.get("image_path") or not row.get("part_num"):
                raise ValueError("image_path and part_num must not be blank")
            image = _path(root, row["image_path"])
            rec: dict[str, Any] = {
                "image": image,
                "part": row["part_num"],
                "color": _color(row["color_id"], colors),
                "angle": _float(row.get("angle", ""), "angle"),
            }
            if kind == "legacy":
                rec["capture"] = _int(row["capture"], "capture")
                rec["view"] = _int(row["view"], "view")
                rec["mask"] = _path(root, row["mask_path"]) if row.get("mask_path") else None
            else:
                rec["timestamp"] = row.get("timestamp", "")
        except ValueError as exc:
            bad.add(line, str(exc))
            continue
        if image in seen:
            bad.add(line, f"repeats image_path {row['image_path']!r} of line {seen[image]}")
            continue
        seen[image] = line
        absent = [p for p in (image, rec.get("mask")) if p is not None and not p.is_file()]
        if absent:
            missing.add(line, ", ".join(repr(str(p)) for p in absent) + " not found")
            continue
        parsed.append((line, rec))
    if bad.items:
        raise ConfigError(
            f"manifest {str(manifest)!r}: {len(bad.items)} bad row(s): {bad.summary()}; fix or remove them"
        )
    if missing.items:
        count = len(missing.items)
        text = f"manifest {str(manifest)!r}: {count} row(s) name missing files: {missing.summary()}"
        if strict:
            raise DataFileError(f"{text}; restore the files, or load with strict=False to skip those rows")
        log.warning("%s; skipping them", text)
    if kind == "legacy":
        return [_legacy_sample(rec, source) for _, rec in parsed]
    return _real_samples(parsed, source)


def _legacy_sample(rec: dict[str, Any], source: str) -> Sample:
    return Sample(
        image_path=rec["image"],
        mask_path=rec["mask"],
        part_num=rec["part"],
        color_id=rec["color"],
        capture_id=f"{rec['part']}/{rec['color']}/{rec['capture']}",
        view=rec["view"],
        angle=rec["angle"],
        source=source,
    )


def _repeat_suffix(stem: str, part: str, color: int | None, angle: float | None) -> str | None:
    """The ``k`` of ``{part}_{colour}_{angle}_{k}`` ('0' without a suffix), or None off the naming."""
    if angle is None:
        return None
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in part)  # as render_worker._safe
    base = f"{safe}_{color}_{round(angle) % 360}"
    if stem == base:
        return "0"
    rest = stem[len(base) + 1 :] if stem.startswith(base + "_") else ""
    return rest if rest.isdigit() else None


def _real_samples(parsed: list[tuple[int, dict[str, Any]]], source: str) -> list[Sample]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, rec in parsed:
        image: Path = rec["image"]
        k = _repeat_suffix(image.stem, rec["part"], rec["color"], rec["angle"])
        # Off the rig's naming nothing says which views belong together: each image is a capture.
        key = f"{rec['part']}/{rec['color']}/{k if k is not None else image.stem}"
        groups[key].append(rec)
    samples: list[Sample] = []
    for key, recs in groups.items():
        _check_timestamps(key, recs)
        for view, rec in enumerate(recs):
            mask = rec["image"].with_name(f"{rec['image'].stem}_mask.png")
            samples.append(
                Sample(
                    image_path=rec["image"],
                    mask_path=mask if mask.is_file() else None,
                    part_num=rec["part"],
                    color_id=rec["color"],
                    capture_id=key,
                    view=view,
                    angle=rec["angle"],
                    source=source,
                )
            )
    return samples


def _check_timestamps(key: str, recs: list[dict[str, Any]]) -> None:
    """Warn when the views grouped as one capture were taken more than a minute apart."""
    from datetime import datetime

    try:
        times = [datetime.fromisoformat(r["timestamp"]) for r in recs if r["timestamp"]]
        span = (max(times) - min(times)).total_seconds() if len(times) > 1 else 0.0
    except (ValueError, TypeError):  # unparsable or mixed naive/aware stamps: nothing to check
        return
    if span > 60:
        log.warning(
            "capture %r: its %d views span %.0f s (one capture normally takes under a minute); the same "
            "part and colour may have been captured twice without a repeat suffix",
            key,
            len(recs),
            span,
        )


def read_sample(sample: Sample) -> tuple[np.ndarray, np.ndarray | None]:
    """``(RGB uint8 image, bool mask or None)`` of a sample, read with OpenCV.

    Raises:
        ImageError: the image or mask is missing, unreadable, or of another size than the image.
    """
    bgr = cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(
            f"image {str(sample.image_path)!r} cannot be read (missing or corrupt); re-render or "
            "re-capture it, or remove it from the manifest"
        )
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if sample.mask_path is None:
        return image, None
    mask = cv2.imread(str(sample.mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ImageError(f"mask {str(sample.mask_path)!r} cannot be read (missing or corrupt); re-create it")
    if mask.shape != image.shape[:2]:
        raise ImageError(
            f"mask {str(sample.mask_path)!r} is {mask.shape[1]}x{mask.shape[0]} but its image is "
            f"{image.shape[1]}x{image.shape[0]}; they must match"
        )
    return image, mask > 127
