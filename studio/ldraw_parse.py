"""LDraw file parser: one ``.dat`` file's text to an :class:`LDrawFile` (header facts, its own
geometry, its sub-file references), used by :class:`~studio.ldraw.LDrawLibrary`.

Reads line types 0-5, type-1 references with their 3x3 matrices, the ``~Moved to`` alias title and the
BFC (back face culling) meta commands. Polygons are stored CCW in LDraw's own axes (``CW`` ones are
reversed here); :mod:`studio.ldraw` applies mirroring matrices and ``INVERTNEXT`` when it flattens.
Malformed lines do not stop a file's parse: the first one's error is kept in :attr:`LDrawFile.error`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from studio.errors import DataFileError, LDrawError
from studio.mesh import MAIN_COLOR

log = logging.getLogger(__name__)

_MOVED_RE = re.compile(r"^~\s*moved\s+to\s+(\S+)", re.IGNORECASE)
#: Codes from 0x2000000 up are "direct colours" (0x2RRGGBB and the dithered 0x3-0x6 forms).
_DIRECT_COLOUR_MIN = 0x2000000
#: Tokens per line type (type, colour, numbers); type 1 has a file name after its 14 tokens.
_TOKENS = {2: 8, 3: 11, 4: 14, 5: 14}
_BFC_WORDS = {"CERTIFY", "NOCERTIFY", "CW", "CCW", "CLIP", "NOCLIP", "INVERTNEXT"}


class LDrawLine(NamedTuple):
    """One parsed line: ``kind`` 0-5, its colour, its numbers, a type-1 file name, a type-0 text."""

    kind: int
    colour: int
    values: tuple[float, ...]
    name: str
    text: str


def _parse_colour(token: str, where: str) -> int:
    try:
        code = int(token, 16) if token.lower().startswith("0x") else int(token)
    except ValueError:
        raise LDrawError(f"{where}: colour {token!r} is not an LDraw colour code; use an integer") from None
    if code >= _DIRECT_COLOUR_MIN:
        # The Mesh holds LDraw codes only; a direct RGB colour falls back to the part's colour.
        log.debug("%s: direct colour %s mapped to %d (main colour)", where, token, MAIN_COLOR)
        return MAIN_COLOR
    return code


def parse_line(text: str, source: str = "<string>", line_no: int = 0) -> LDrawLine | None:
    """Parse one LDraw line; ``None`` for a blank one. Raises :class:`LDrawError` if malformed.

    ``source`` and ``line_no`` only label the error message (``source:line_no: ...``).
    """
    stripped = text.strip().lstrip("\ufeff")
    if not stripped:
        return None
    where = f"{source}:{line_no}"
    head = stripped.split(None, 1)[0]
    if head == "0":
        return LDrawLine(0, 0, (), "", stripped[1:].strip())
    if head == "1":
        tokens = stripped.split(None, 14)
        if len(tokens) < 15:
            raise LDrawError(
                f"{where}: {stripped!r}: a type 1 line needs a colour, 12 numbers and a file name "
                f"(got {len(tokens) - 1} fields); fix or remove the line"
            )
        name = tokens[14].strip()
    elif head in ("2", "3", "4", "5"):
        tokens = stripped.split()
        want = _TOKENS[int(head)]
        if len(tokens) != want:
            raise LDrawError(
                f"{where}: {stripped!r}: a type {head} line needs a colour and {want - 2} numbers "
                f"(got {len(tokens) - 1} fields); fix or remove the line"
            )
        name = ""
    else:
        raise LDrawError(f"{where}: {stripped!r}: unknown line type {head!r}; LDraw lines start with 0 to 5")
    colour = _parse_colour(tokens[1], f"{where}: {stripped!r}")
    try:
        values = tuple(map(float, tokens[2:14])) if head == "1" else tuple(map(float, tokens[2:]))
    except ValueError:
        raise LDrawError(f"{where}: {stripped!r}: a coordinate is not a number; fix the line") from None
    return LDrawLine(int(head), colour, values, name, "")


@dataclass
class SubFileRef:
    """A type-1 line: ``p -> matrix @ p + offset`` applied to file ``name``."""

    line_no: int
    colour: int
    matrix: np.ndarray
    offset: np.ndarray
    name: str
    invert: bool  # a `0 BFC INVERTNEXT` preceded it (certified files only)
    clip: bool  # False while `0 BFC NOCLIP` was in force: the whole sub-tree is two-sided


@dataclass
class LDrawFile:
    """One parsed file: header facts, its own geometry (winding made CCW) and its references."""

    source: str
    title: str = ""
    name: str | None = None
    category: str | None = None
    moved_to: str | None = None
    certified: bool = False
    triangles: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3), np.float32))
    tri_colors: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    tri_clip: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 3), np.float32))
    edge_colors: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    cond_edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 3), np.float32))
    refs: list[SubFileRef] = field(default_factory=list)
    #: The first malformed line's error; raised when the geometry is needed, so titles still read.
    error: LDrawError | None = None


def decode_ldraw(data: bytes) -> str:
    """Bytes to text: drop a UTF-8 BOM, read UTF-8, fall back to latin-1 (old comments use it)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_ldraw(text: str, source: str = "<string>") -> LDrawFile:
    """Parse a whole file's text. Malformed lines do not raise here: see ``LDrawFile.error``."""
    out = LDrawFile(source=source)
    tris: list[tuple[float, ...]] = []
    tri_colors: list[int] = []
    tri_clip: list[bool] = []
    edges: list[tuple[float, ...]] = []
    edge_colors: list[int] = []
    conds: list[tuple[float, ...]] = []
    certify: bool | None = None
    ccw, clip, invert_next, seen_geometry, first = True, True, False, False, True
    for line_no, raw in enumerate(text.splitlines(), start=1):
        try:
            line = parse_line(raw, source, line_no)
        except LDrawError as exc:
            out.error = out.error or exc
            continue
        if line is None:
            continue
        if line.kind == 0:
            if first:
                out.title = line.text
                moved = _MOVED_RE.match(line.text)
                out.moved_to = moved.group(1).removesuffix(".dat").lower() if moved else None
            words = line.text.split()
            key = words[0].upper() if words else ""
            if key == "NAME:" and len(words) > 1:
                out.name = line.text.split(None, 1)[1].strip()
            elif key == "!CATEGORY" and len(words) > 1:
                out.category = line.text.split(None, 1)[1].strip()
            elif key == "BFC":
                for word in (w.upper() for w in words[1:]):
                    if word == "CERTIFY" and not seen_geometry and certify is None:
                        certify = True
                    elif word == "NOCERTIFY":
                        certify = False
                    elif word in ("CW", "CCW"):
                        ccw = word == "CCW"
                    elif word in ("CLIP", "NOCLIP"):
                        clip = word == "CLIP"
                    elif word == "INVERTNEXT":
                        invert_next = True
                    elif word not in _BFC_WORDS:
                        log.debug("%s:%d: unknown BFC word %r ignored", source, line_no, word)
            first = False
            continue
        first, seen_geometry = False, True
        v = line.values
        if line.kind == 1:
            matrix = np.array(v[3:12], np.float64).reshape(3, 3)
            out.refs.append(
                SubFileRef(line_no, line.colour, matrix, np.array(v[:3]), line.name, invert_next, clip)
            )
        elif line.kind == 2:
            edges.append(v)
            edge_colors.append(line.colour)
        elif line.kind == 5:
            conds.append(v)
        else:
            pts = [v[i : i + 3] for i in range(0, len(v), 3)]
            if not ccw:
                pts.reverse()
            polys = [pts] if line.kind == 3 else [pts[:3], [pts[0], pts[2], pts[3]]]
            for poly in polys:
                tris.append(tuple(c for p in poly for c in p))
                tri_colors.append(line.colour)
                tri_clip.append(clip)
        invert_next = False  # applies to the very next type-1 line only
    out.certified = bool(certify)
    if tris:
        out.triangles = np.array(tris, np.float32).reshape(-1, 3, 3)
        out.tri_colors = np.array(tri_colors, np.int32)
        out.tri_clip = np.array(tri_clip, bool)
    if edges:
        out.edges = np.array(edges, np.float32).reshape(-1, 2, 3)
        out.edge_colors = np.array(edge_colors, np.int32)
    if conds:
        out.cond_edges = np.array(conds, np.float32).reshape(-1, 4, 3)
    return out


def read_ldraw(path: str | Path, source: str | None = None) -> LDrawFile:
    """Read and parse one file (``source`` labels messages; default: the path).

    Raises :class:`DataFileError` if the file cannot be read.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFileError(f"LDraw file {str(path)!r} cannot be read: {exc.strerror}") from None
    return parse_ldraw(decode_ldraw(data), source or str(path))
