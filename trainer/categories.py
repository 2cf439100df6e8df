"""``trainer categories``: each part's category, from the LDraw library, into a model set's manifest.

A part's category is its LDraw file's ``0 !CATEGORY`` meta line when it has one, else the first word
of its description (``0 Plate  1 x  2`` -> ``Plate``), without LDraw's prefixes (``~`` sub-part or
obsolete, ``=`` alias, ``_`` mirror, ``|`` ...). A moved part (``0 ~Moved to 3023b``) takes the
category of the file it moved to. The manifest's ``categories`` then lets sorting rules such as
``{category: [Plate], bin: plates}`` match without a categories file. Only ``manifest.json`` is
rewritten (atomically); no model file changes, so their checksums still hold.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from trainer.manifest_tables import add_ldraw_parser, write_part_table

log = logging.getLogger(__name__)

#: Header lines read from a part file (its meta lines come before the geometry).
HEADER_LINES = 60
#: Moves followed at most (a chain longer than this is a broken library).
MAX_MOVES = 4
_MOVED = re.compile(r"^~?moved\s+to\s+(\S+)", re.IGNORECASE)
_PREFIXES = "~=_|"


def _part_file(ldraw: Path, part: str) -> Path | None:
    """``ldraw/parts/{part}.dat``, found case-insensitively (LDraw names are case-blind)."""
    for name in (f"{part}.dat", f"{part.lower()}.dat"):
        path = ldraw / "parts" / name
        if path.is_file():
            return path
    return None


def _header(path: Path) -> list[str]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        lines = []
        for _, line in zip(range(HEADER_LINES), fh, strict=False):
            lines.append(line.strip())
    return lines


def ldraw_category(ldraw: str | Path, part: str) -> str | None:
    """The category of ``part`` in the LDraw library at ``ldraw`` (see the module docstring);
    None when the part has no file or its description is empty."""
    ldraw = Path(ldraw)
    for _ in range(MAX_MOVES + 1):
        path = _part_file(ldraw, part)
        if path is None:
            return None
        lines = _header(path)
        for line in lines:
            fields = line.split(None, 2)
            if len(fields) == 3 and fields[0] == "0" and fields[1] == "!CATEGORY":
                return fields[2].strip()
        first = lines[0] if lines else ""
        description = first[1:].strip() if first.startswith("0") else ""
        moved = _MOVED.match(description)
        if moved:
            part = moved.group(1).removesuffix(".dat")
            continue
        word = description.lstrip(_PREFIXES).split(None, 1)
        return word[0] if word else None
    return None


def part_categories(ldraw: str | Path, parts: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """(part -> category for the parts found, the parts without one)."""
    table: dict[str, str] = {}
    missing: list[str] = []
    for part in parts:
        category = ldraw_category(ldraw, part)
        if category is None:
            missing.append(part)
        else:
            table[part] = category
    return table, missing


def write_categories(model_set: str | Path, ldraw: str | Path) -> tuple[dict[str, str], list[str]]:
    """Write the categories of the model set's parts into its manifest; return (table, missing)."""
    return write_part_table(model_set, ldraw, "categories", part_categories)


def add_parser(sub: argparse._SubParsersAction) -> None:
    add_ldraw_parser(
        sub,
        "categories",
        "write each part's category (from the LDraw files) into a model set's manifest",
        __doc__,
        main,
    )


def main(args: argparse.Namespace) -> int:
    table, missing = write_categories(args.model_set, args.ldraw)
    counts = Counter(table.values()).most_common()
    print(f"{len(table)} part(s) categorised: " + ", ".join(f"{c} {n}" for c, n in counts))
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        print(f"{len(missing)} part(s) not found in {str(args.ldraw)!r}: {shown}")
    return 0
