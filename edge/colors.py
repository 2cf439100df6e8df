"""The project's colours: the single source of truth for colour ids, names, RGB and LDraw codes.

Rebrickable colour ids are canonical everywhere (labels, configs, the sorter's bins). LDraw colour
codes are a different numbering (LDraw 85 and Rebrickable 85 happen to agree, but Rebrickable 326
is Olive Green while LDraw 326 is Yellowish_Green), so crossing over always goes through
:func:`ldraw_to_rebrickable` / :func:`rebrickable_to_ldraw`. The table is ``edge/data/colors.csv``,
made by ``tools/make_color_table.py`` and loaded once on first use.
"""

from __future__ import annotations

import csv
import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from edge.errors import ConfigError, DataFileError, UnknownColorError

TABLE_PATH = Path(__file__).with_name("data") / "colors.csv"
_TABLE_NAME = "edge/data/colors.csv"  # how messages name it
_COLUMNS = ["id", "name", "rgb", "is_trans", "ldraw_code", "ldraw_name", "rank"]
#: Opaque colours with a metallic finish whose names do not say so.
_METALLIC_NAMES = frozenset({"flat silver"})


@dataclass(frozen=True)
class Color:
    """One LEGO colour.

    Attributes:
        id: Rebrickable colour id, the project's canonical colour id.
        name: Rebrickable's name, e.g. ``"Light Bluish Gray"``.
        rgb: sRGB 0..255, Rebrickable's value (LDraw's differ; see :mod:`studio.ldconfig`).
        is_trans: True for transparent colours.
        ldraw_code: the matching LDraw colour code, or None when LDraw has none.
        rank: popularity rank in the table, 1 = used in the most parts.
    """

    id: int
    name: str
    rgb: tuple[int, int, int]
    is_trans: bool
    ldraw_code: int | None
    rank: int

    @property
    def hex(self) -> str:
        """The RGB as ``"#RRGGBB"`` (upper case)."""
        return "#{:02X}{:02X}{:02X}".format(*self.rgb)

    @property
    def material(self) -> str:
        """'trans', 'chrome', 'pearl', 'metallic' or 'solid', from the name (and transparency)."""
        words = _normalise(self.name).split()
        if self.is_trans:
            return "trans"
        if "chrome" in words:
            return "chrome"
        if "pearl" in words:
            return "pearl"
        if "metallic" in words or " ".join(words) in _METALLIC_NAMES:
            return "metallic"
        return "solid"


def _normalise(name: str) -> str:
    """Lower case, '_'/'-'/runs of spaces as one space, Grey -> Gray: the key for name look-ups."""
    text = re.sub(r"[_\-\s]+", " ", name.strip().lower())
    return re.sub(r"\bgrey\b", "gray", text)


@dataclass(frozen=True)
class _Table:
    by_rank: tuple[Color, ...]
    by_id: dict[int, Color]
    by_name: dict[str, Color]
    by_ldraw: dict[int, Color]


def _bad_row(lineno: int, problem: str) -> DataFileError:
    return DataFileError(
        f"colour table {str(TABLE_PATH)!r} line {lineno}: {problem}; regenerate it with "
        "tools/make_color_table.py"
    )


@lru_cache(maxsize=1)
def _table() -> _Table:
    """Read and check ``edge/data/colors.csv`` (once)."""
    try:
        lines = TABLE_PATH.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataFileError(
            f"colour table {str(TABLE_PATH)!r} cannot be read ({exc.strerror}); reinstall the package "
            "or regenerate it with tools/make_color_table.py"
        ) from None
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip() and line[0] != "#"]
    rows = list(csv.reader(line for _, line in numbered))
    if not rows or rows[0] != _COLUMNS:
        raise _bad_row(numbered[0][0] if numbered else 1, f"header must be {','.join(_COLUMNS)}")
    colors = []
    for (lineno, _), row in zip(numbered[1:], rows[1:], strict=False):
        if len(row) != len(_COLUMNS):
            raise _bad_row(lineno, f"expected {len(_COLUMNS)} fields, got {len(row)}: {row!r}")
        cid, name, rgb, trans, code, _ldraw_name, rank = row
        try:
            value = int(rgb, 16)
            if len(rgb) != 6:
                raise ValueError(rgb)
            color = Color(
                id=int(cid),
                name=name,
                rgb=((value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF),
                is_trans={"true": True, "false": False}[trans],
                ldraw_code=int(code) if code else None,
                rank=int(rank),
            )
        except (ValueError, KeyError):
            raise _bad_row(lineno, f"unreadable row {row!r}") from None
        colors.append(color)
    colors.sort(key=lambda c: c.rank)
    by_id = {c.id: c for c in colors}
    by_name = {_normalise(c.name): c for c in colors}
    by_ldraw = {c.ldraw_code: c for c in colors if c.ldraw_code is not None}
    if len(by_id) != len(colors) or len(by_name) != len(colors):
        raise _bad_row(1, "duplicate colour ids or names")
    if len(by_ldraw) != sum(c.ldraw_code is not None for c in colors):
        raise _bad_row(1, "an LDraw code is given to more than one colour")
    return _Table(tuple(colors), by_id, by_name, by_ldraw)


def get_color(color_id: int) -> Color:
    """The colour with this Rebrickable id.

    Raises:
        UnknownColorError: the id is not in the table; the message lists the nearest known ids.
    """
    table = _table()
    if isinstance(color_id, int) and not isinstance(color_id, bool) and color_id in table.by_id:
        return table.by_id[color_id]
    hint = ""
    if isinstance(color_id, int) and color_id in table.by_ldraw:
        hint = (
            f" (LDraw code {color_id} is {table.by_ldraw[color_id].name!r}; for LDraw codes use "
            "color_by_ldraw_code)"
        )
    near = ""
    if isinstance(color_id, int) and not isinstance(color_id, bool):
        closest = sorted(table.by_id, key=lambda i: (abs(i - color_id), i))[:5]
        near = "; nearest known ids: " + ", ".join(f"{i} ({table.by_id[i].name})" for i in closest)
    raise UnknownColorError(
        f"colour id {color_id!r} is not in the colour table{hint}{near}; use a Rebrickable colour id "
        f"listed in {_TABLE_NAME}"
    )


def color_by_name(name: str) -> Color:
    """The colour with this name; case, spaces/'_'/'-' and Grey/Gray do not matter.

    Raises:
        UnknownColorError: no such name; the message suggests close names.
    """
    table = _table()
    key = _normalise(name) if isinstance(name, str) else ""
    if key in table.by_name:
        return table.by_name[key]
    raise UnknownColorError(
        f"colour name {name!r} is not in the colour table{_close_names(key)}; use a Rebrickable "
        f"colour name listed in {_TABLE_NAME}"
    )


def _close_names(key: str) -> str:
    """' (did you mean 'A' or 'B')' for names near a normalised key, or ''."""
    table = _table()
    close = difflib.get_close_matches(key, list(table.by_name), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(table.by_name[k].name) for k in close) + ")"


def color_by_ldraw_code(code: int) -> Color:
    """The colour that LDraw colour code ``code`` stands for.

    Raises:
        UnknownColorError: the code has no colour in the table (e.g. 16/24, LDraw's main and
            edge placeholders, or a colour too rare to be listed).
    """
    table = _table()
    if isinstance(code, int) and not isinstance(code, bool) and code in table.by_ldraw:
        return table.by_ldraw[code]
    raise UnknownColorError(
        f"LDraw colour code {code!r} is not mapped to a colour in the table; LDraw codes are not "
        f"Rebrickable ids; add the colour to {_TABLE_NAME} via tools/make_color_table.py if needed"
    )


def ldraw_to_rebrickable(code: int) -> int:
    """The Rebrickable id for an LDraw colour code (UnknownColorError when unmapped)."""
    return color_by_ldraw_code(code).id


def rebrickable_to_ldraw(color_id: int) -> int:
    """The LDraw colour code for a Rebrickable id.

    Raises:
        UnknownColorError: the id is unknown, or the colour has no LDraw counterpart.
    """
    color = get_color(color_id)
    if color.ldraw_code is None:
        raise UnknownColorError(
            f"colour {color.id} ({color.name!r}) has no LDraw colour code; it cannot be rendered from "
            "LDraw parts, pick another colour"
        )
    return color.ldraw_code


def all_colors() -> list[Color]:
    """Every colour in the table, most used first."""
    return list(_table().by_rank)


def common_colors(n: int, *, transparent: bool = False) -> list[Color]:
    """The ``n`` most used opaque colours (including pearl/metallic), or transparent ones.

    Raises:
        ValueError: ``n`` is below 1 or more than the table holds.
    """
    pool = [c for c in _table().by_rank if c.is_trans == transparent]
    kind = "transparent" if transparent else "opaque"
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(pool):
        raise ValueError(f"n={n!r} {kind} colours requested; the colour table holds 1..{len(pool)}")
    return pool[:n]


def parse_color_list(spec: str | int) -> list[Color]:
    """Colours from a CLI/config value.

    ``30`` or ``"30"`` means the 30 most used opaque colours; ``"0,4,15,71"`` lists Rebrickable ids;
    ``"Red,Light Bluish Gray"`` lists names; ids and names may be mixed. A single colour is given
    by name (a lone number is a count).

    Raises:
        ConfigError: an empty spec, a count out of range, unknown entries (all named at once) or
            a colour listed twice.
    """
    fix = f"give a count (e.g. 30) or comma-separated Rebrickable colour ids/names from {_TABLE_NAME}"
    if isinstance(spec, bool) or not isinstance(spec, int | str):
        raise ConfigError(f"colour list {spec!r} has the wrong type; {fix}")
    text = str(spec).strip()
    if not text:
        raise ConfigError(f"colour list {spec!r} is empty; {fix}")
    if "," not in text and re.fullmatch(r"[+-]?\d+", text):
        try:
            return common_colors(int(text))
        except ValueError as exc:
            raise ConfigError(f"colour list {spec!r}: {exc}; {fix}") from None
    colors: list[Color] = []
    problems: list[str] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            problems.append("an empty entry (doubled or trailing comma)")
            continue
        table = _table()
        if re.fullmatch(r"[+-]?\d+", entry):
            found = table.by_id.get(int(entry))
            miss = f"unknown colour id {entry!r}"
        else:
            found = table.by_name.get(_normalise(entry))
            miss = f"unknown colour name {entry!r}{_close_names(_normalise(entry))}"
        if found is None:
            problems.append(miss)
            continue
        color = found
        if color in colors:
            problems.append(f"{entry!r} repeats colour {color.id} ({color.name})")
            continue
        colors.append(color)
    if problems:
        raise ConfigError(f"colour list {spec!r}: " + "; ".join(problems) + f"; {fix}")
    return colors
