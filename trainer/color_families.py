"""Colour families: a coarse yardstick for the colour head on real photos.

Real photos seldom say which of LEGO's colours a part is, and a photo of an uncalibrated camera
cannot tell Light Gray from Light Bluish Gray, or Bright Light Blue from Medium Azure, however
well a model reads it. Families group the colours a person names alike at a glance ("light grey",
"light blue"), so photos labelled by eye can score a colour head: a prediction counts where its
colour's family is the photo's.

Labels are a CSV file per photo set (``--colors NAME=FILE`` of ``trainer evaluate-real``): a header
``photo,family``, then one row per labelled photo, its path relative to the set's folder
(``3023/20210501123629.jpg``) and its family; lines starting with ``#`` are comments. Photos whose
family is unclear are left out of the file.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataFileError

#: Family -> the Rebrickable colour ids in it: every colour of ``edge/data/colors.csv``, each in
#: exactly one family (tests/trainer/test_color_families.py checks both).
FAMILIES: dict[str, tuple[int, ...]] = {
    "white": (15, 47, 1055),
    "light-grey": (71, 7, 135, 80, 179),
    "dark-grey": (72, 8, 1103, 40, 1095),
    "black": (0,),
    "red": (4, 36),
    "dark-red": (320,),
    "orange": (25, 182, 57, 484),
    "yellow": (14, 226, 46, 191, 82, 42),
    "green": (2, 10, 27, 158, 34, 35, 326, 378),
    "dark-green": (288,),
    "blue": (1, 33, 379),
    "light-blue": (322, 41, 73, 212, 323, 1053, 3, 321),
    "dark-blue": (272,),
    "tan": (19, 78, 28, 84, 92, 297),
    "brown": (70, 308, 6),
    "pink": (29, 5, 1050, 45, 26),
    "purple": (85, 30, 31, 52),
}
_FAMILY_OF = {color: family for family, colors in FAMILIES.items() for color in colors}


def family_of(color_id: int) -> str | None:
    """The family of a Rebrickable colour id; None for a colour no family holds."""
    return _FAMILY_OF.get(int(color_id))


def guessed_families(colors: np.ndarray, color_ids: Sequence[int]) -> list[str]:
    """The family of each row's best colour of ``colors`` (``(N, C)`` logits over ``color_ids``);
    "other" for a colour no family holds (never a label's family, so always wrong)."""
    return [family_of(color_ids[j]) or "other" for j in np.argmax(colors, axis=1)]


def read_color_labels(path: Path) -> dict[str, str]:
    """``{photo path relative to its set: family}`` from a labels file (see the module docstring)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataFileError(f"colour labels {str(path)!r} cannot be read ({exc.strerror})") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and line[0] != "#"]
    rows = [(n, next(csv.reader([line]))) for n, line in lines]
    if not rows or [c.strip() for c in rows[0][1]] != ["photo", "family"]:
        raise DataFileError(f"colour labels {str(path)!r} must start with the header 'photo,family'")
    labels: dict[str, str] = {}
    for number, row in rows[1:]:
        where = f"colour labels {str(path)!r} line {number}"
        if len(row) != 2:
            raise DataFileError(f"{where}: expected 'photo,family', got {len(row)} fields")
        photo, family = row[0].strip(), row[1].strip()
        if family not in FAMILIES:
            raise DataFileError(f"{where}: {family!r} is no colour family; use one of {', '.join(FAMILIES)}")
        if photo in labels:
            raise DataFileError(f"{where}: {photo!r} is labelled twice")
        labels[photo] = family
    if not labels:
        raise DataFileError(f"colour labels {str(path)!r} label no photo")
    return labels


def family_scores(
    photos: Sequence[str], colors: np.ndarray, color_ids: Sequence[int], labels: dict[str, str]
) -> dict[str, Any]:
    """Colour-family top-1 of ``colors`` (``(N, C)`` logits over ``color_ids``) on the photos
    ``labels`` names (``photos``: each row's path relative to its set), beside the share a guess of
    the commonest family would get, with per-family figures. A label naming no photo of the set
    is refused: a typo would otherwise shrink the yardstick silently."""
    index = {photo: i for i, photo in enumerate(photos)}
    missing = sorted(set(labels) - set(index))
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DataFileError(
            f"colour labels name photos the set does not hold: {', '.join(missing[:3])}{more}; "
            "paths are relative to the set's folder, as {part}/FILE"
        )
    truth = list(labels.values())
    guessed = guessed_families(colors[[index[p] for p in labels]], color_ids)
    per_family: dict[str, dict[str, Any]] = {}
    for t, g in zip(truth, guessed, strict=True):
        entry = per_family.setdefault(t, {"photos": 0, "top1": 0, "predicted": Counter()})
        entry["photos"] += 1
        entry["top1"] += t == g
        entry["predicted"][g] += 1
    for entry in per_family.values():
        entry["top1"] = round(entry["top1"] / entry["photos"], 4)
        entry["predicted"] = entry["predicted"].most_common(3)
    common = Counter(truth).most_common(1)[0]
    return {
        "photos": len(truth),
        "unlabelled": len(photos) - len(truth),
        "family_top1": round(float(np.mean([t == g for t, g in zip(truth, guessed, strict=True)])), 4),
        "majority_family": common[0],
        "majority_baseline": round(common[1] / len(truth), 4),
        "family_top1_mean_over_families": round(float(np.mean([e["top1"] for e in per_family.values()])), 4),
        "per_family": dict(sorted(per_family.items())),
    }
