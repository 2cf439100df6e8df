"""Real photo sets: folders of labelled photos (``{part}/*`` or ``{part}/{color_id}/*``), the mould
part ids are compared on, and the background model fitted from a set's empty frames."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import DataFileError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_SUFFIX = re.compile(r"(?<=\d)[a-z]$")


def mould(part: str) -> str:
    """The mould of a part id: lower case, a single letter after the final digits dropped (3040b -> 3040)."""
    return _SUFFIX.sub("", part.strip().lower())


@dataclass(frozen=True)
class Photo:
    """One labelled real photo."""

    path: Path
    part: str
    color_id: int | None


def read_photo_set(root: str | Path) -> list[Photo]:
    """The photos under ``root`` (``{part}/*`` or ``{part}/{color_id}/*``), sorted by part and file name."""
    root = Path(root)
    if not root.is_dir():
        raise DataFileError(f"photo folder {str(root)!r} does not exist; pass a folder of {{part}}/*.jpg")
    photos = []
    for part_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] not in "_."):
        for path in sorted(part_dir.rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            rel = path.relative_to(part_dir).parts
            color = int(rel[0]) if len(rel) == 2 and rel[0].isdigit() else None
            photos.append(Photo(path, part_dir.name, color))
    if not photos:
        raise DataFileError(f"no photos under {str(root)!r}; expected {{part}}/*.jpg|png")
    return photos


def fit_background(empty: Path, out: Path) -> tuple[Path, dict[str, Any]]:
    """Fit a background model from the frames in ``empty`` and write a calibration file naming it,
    as the rig's background calibration does; returns the file and the fit's summary."""
    from edge.calibration_file import update_calibration
    from edge.segment.bgdiff import describe, fit_background_files

    frames = sorted(p for p in empty.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    model = fit_background_files(frames)
    model.save(out / "background.npz")
    calibration = out / "calibration.json"
    update_calibration(calibration, background={"model": "background.npz", "frames": len(frames)})
    return calibration, describe(model)
