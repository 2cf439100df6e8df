"""A tiny LDraw library authored by this project, for tests and demos without the official one.

The parts are simplified (no tubes underneath, no text on studs) but keep real LEGO dimensions in
LDraw units (LDU): 20 LDU stud pitch, brick body 24 high, plate 8, studs 4 high with radius 6.
Ids start with ``demo-`` so they are never mistaken for official files. Axes are LDraw's: -Y up,
the part's top at y=0 and its bottom at y=24 (bricks) or y=8 (plates, tiles).

Every polygon is written counter-clockwise seen from outside (``_facing`` enforces it), except in
``demo-box.dat``, written ``BFC CERTIFY CW`` on purpose, and ``demo-3005``, which is uncertified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from studio.errors import DataFileError

Point = Sequence[float]

#: LDConfig lines: main (16) and edge (24) colours plus the small palette the demos paint parts with.
DEMO_COLOURS = {
    0: ("Black", "#1B2A34", "#808080"),
    1: ("Blue", "#1E5AA8", "#333333"),
    4: ("Red", "#B40000", "#333333"),
    14: ("Yellow", "#FAC80A", "#333333"),
    15: ("White", "#F4F4F4", "#333333"),
    16: ("Main_Colour", "#FFFF80", "#333333"),
    24: ("Edge_Colour", "#7F7F7F", "#333333"),
    71: ("Light_Bluish_Grey", "#969696", "#333333"),
    72: ("Dark_Bluish_Grey", "#646464", "#333333"),
}

_SEGMENTS = 16  # sides of the cylinders (studs, round brick)
_NOTE = "(simplified, written by lego-edge)"


def _num(x: float) -> str:
    text = f"{x:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _pts(points: Sequence[Point]) -> str:
    return " ".join(_num(c) for p in points for c in p)


def _facing(points: Sequence[Point], outward: Point) -> list[Point]:
    """The polygon ordered so that ``cross(v1 - v0, v2 - v0)`` points along ``outward``."""
    v = np.asarray(points, float)
    normal = np.cross(v[1] - v[0], v[2] - v[0])
    return list(points) if float(np.dot(normal, outward)) > 0 else list(points)[::-1]


def _poly(points: Sequence[Point], outward: Point, colour: int = 16) -> str:
    ordered = _facing(points, outward)
    return f"{len(ordered)} {colour} {_pts(ordered)}"


def _line(a: Point, b: Point) -> str:
    return f"2 24 {_pts([a, b])}"


def _ref(name: str, at: Point = (0, 0, 0), scale: Point = (1, 1, 1), colour: int = 16) -> str:
    sx, sy, sz = scale
    return f"1 {colour} {_pts([at])} {_num(sx)} 0 0 0 {_num(sy)} 0 0 0 {_num(sz)} {name}"


def _header(title: str, name: str, kind: str, bfc: str | None = "CERTIFY CCW") -> list[str]:
    lines = [
        f"0 {title}",
        f"0 Name: {name}",
        "0 Author: lego-edge (generated)",
        f"0 !LDRAW_ORG Unofficial_{kind}",
        "0 !LICENSE Part of the lego-edge project (MIT licence)",
        "",
    ]
    return [*lines, f"0 BFC {bfc}", ""] if bfc else lines


def _ring(radius: float, y: float, n: int = _SEGMENTS) -> list[tuple[float, float, float]]:
    return [
        (radius * math.cos(2 * math.pi * k / n), y, radius * math.sin(2 * math.pi * k / n)) for k in range(n)
    ]


def _cylinder(radius: float, y_top: float, y_bottom: float, caps: Sequence[str]) -> list[str]:
    """Side quads, optional caps ("top"/"bottom" as triangle fans), rim edges and optional lines."""
    top, bottom = _ring(radius, y_top), _ring(radius, y_bottom)
    n = len(top)
    out = []
    for k in range(n):
        j = (k + 1) % n
        mid = ((top[k][0] + top[j][0]) / 2, 0.0, (top[k][2] + top[j][2]) / 2)
        out.append(_poly([bottom[k], bottom[j], top[j], top[k]], mid))
    for cap, ring, up in (("top", top, -1.0), ("bottom", bottom, 1.0)):
        if cap in caps:
            centre = (0.0, ring[0][1], 0.0)
            out += [_poly([centre, ring[k], ring[(k + 1) % n]], (0, up, 0)) for k in range(n)]
    out += [_line(ring[k], ring[(k + 1) % n]) for ring in (top, bottom) for k in range(n)]
    # Optional silhouette lines down the side: drawn only where both neighbours lie on one side.
    out += [f"5 24 {_pts([bottom[k], top[k], bottom[k - 1], bottom[(k + 1) % n]])}" for k in range(n)]
    return out


def _box_faces(lo: Point, hi: Point, skip: Sequence[str] = ()) -> list[str]:
    """Quads of an axis-aligned box, outward; ``skip`` names faces to leave open (e.g. "+y")."""
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    faces = {
        "-x": ([(x0, y0, z0), (x0, y1, z0), (x0, y1, z1), (x0, y0, z1)], (-1, 0, 0)),
        "+x": ([(x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1)], (1, 0, 0)),
        "-y": ([(x0, y0, z0), (x1, y0, z0), (x1, y0, z1), (x0, y0, z1)], (0, -1, 0)),
        "+y": ([(x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)], (0, 1, 0)),
        "-z": ([(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0)], (0, 0, -1)),
        "+z": ([(x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)], (0, 0, 1)),
    }
    return [_poly(pts, out) for key, (pts, out) in faces.items() if key not in skip]


def _box_edges(lo: Point, hi: Point) -> list[str]:
    corners = [(x, y, z) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    return [
        _line(a, b)
        for i, a in enumerate(corners)
        for b in corners[i + 1 :]
        if sum(ca != cb for ca, cb in zip(a, b, strict=True)) == 1
    ]


def _studs(positions: Sequence[tuple[float, float]]) -> list[str]:
    return [_ref("demo-stud.dat", (x, 0, z)) for x, z in positions]


def _reverse_winding(line: str) -> str:
    """A type-3/4 line with its vertices in the opposite order (for the CW-certified file)."""
    head = line.split()
    colour, nums = head[1], head[2:]
    pts = [nums[i : i + 3] for i in range(0, len(nums), 3)][::-1]
    return " ".join([head[0], colour, *(c for p in pts for c in p)])


def _files() -> dict[str, list[str]]:
    """Relative path -> lines of every file in the demo library."""
    files: dict[str, list[str]] = {}
    files["p/demo-stud.dat"] = [
        *_header("Stud (simplified, written by lego-edge)", "demo-stud.dat", "Primitive"),
        *_cylinder(6, -4, 0, caps=("top",)),
    ]
    unit_lo, unit_hi = (-1, 0, -1), (1, 1, 1)
    files["p/demo-box5.dat"] = [
        *_header("Box with 5 Faces, open at +y " + _NOTE, "demo-box5.dat", "Primitive"),
        *_box_faces(unit_lo, unit_hi, skip=("+y",)),
        *_box_edges(unit_lo, unit_hi),
    ]
    files["p/demo-box.dat"] = [
        *_header("Box with 6 Faces " + _NOTE, "demo-box.dat", "Primitive", bfc="CERTIFY CW"),
        *(_reverse_winding(q) for q in _box_faces((-1, -1, -1), (1, 1, 1))),
        *_box_edges((-1, -1, -1), (1, 1, 1)),
    ]
    # Brick 2 x 4: shell minus an inverted inner box (as the official 3001 does), bottom rim, studs.
    ring = [
        [(-40, 24, -20), (40, 24, -20), (36, 24, -16), (-36, 24, -16)],
        [(40, 24, -20), (40, 24, 20), (36, 24, 16), (36, 24, -16)],
        [(40, 24, 20), (-40, 24, 20), (-36, 24, 16), (36, 24, 16)],
        [(-40, 24, 20), (-40, 24, -20), (-36, 24, -16), (-36, 24, 16)],
    ]
    files["parts/s/demo-3001s01.dat"] = [
        *_header("~Brick  2 x  4 Body " + _NOTE, r"s\demo-3001s01.dat", "Subpart"),
        _ref("demo-box5.dat", (0, 0, 0), (40, 24, 20)),
        "0 BFC INVERTNEXT",
        _ref("demo-box5.dat", (0, 4, 0), (36, 20, 16)),
        *(_poly(q, (0, 1, 0)) for q in ring),
    ]
    files["parts/demo-3001.dat"] = [
        *_header("Brick  2 x  4 " + _NOTE, "demo-3001.dat", "Part"),
        _ref(r"s\demo-3001s01.dat"),
        *_studs([(x, z) for x in (-30, -10, 10, 30) for z in (-10, 10)]),
    ]
    # Plate 1 x 2 (solid): the box is placed with a negative y scale, a mirroring transform.
    files["parts/demo-3023.dat"] = [
        *_header("Plate  1 x  2 " + _NOTE, "demo-3023.dat", "Part"),
        _ref("demo-box.dat", (0, 4, 0), (20, -4, 10)),
        *_studs([(-10, 0), (10, 0)]),
    ]
    files["parts/demo-3068b.dat"] = [
        *_header("Tile  2 x  2 " + _NOTE, "demo-3068b.dat", "Part"),
        _ref("demo-box.dat", (0, 4, 0), (20, 4, 20)),
    ]
    files["parts/demo-3068.dat"] = [
        *_header("~Moved to demo-3068b", "demo-3068.dat", "Part_Alias"),
        _ref("demo-3068b.dat"),
    ]
    files["parts/demo-3062b.dat"] = [
        *_header("Brick  1 x  1 Round " + _NOTE, "demo-3062b.dat", "Part"),
        "0 !CATEGORY Brick",
        *_cylinder(10, 0, 24, caps=("top", "bottom")),
        *_studs([(0, 0)]),
    ]
    # Slope 45 2 x 2: a prism along x; its profile (z, y) runs round the base, back, top strip,
    # the 45 degree slope down to the front, and a 4 LDU front lip.
    profile = [(-20, 24), (20, 24), (20, 0), (0, 0), (-20, 20)]
    left = [(-20, y, z) for z, y in profile]
    right = [(20, y, z) for z, y in profile]
    wedge = []
    for k in range(len(profile)):
        j = (k + 1) % len(profile)
        (za, ya), (zb, yb) = profile[k], profile[j]
        outward = (0, zb - za, -(yb - ya))  # the profile runs clockwise seen from +x
        wedge.append(_poly([left[k], left[j], right[j], right[k]], outward))
    for side, sign in ((left, -1), (right, 1)):
        wedge += [_poly([side[0], side[k], side[k + 1]], (sign, 0, 0)) for k in range(1, len(side) - 1)]
        wedge += [_line(side[k], side[(k + 1) % len(side)]) for k in range(len(side))]
    wedge += [_line(a, b) for a, b in zip(left, right, strict=True)]
    files["parts/demo-3039.dat"] = [
        *_header("Slope Brick 45  2 x  2 " + _NOTE, "demo-3039.dat", "Part"),
        *wedge,
        *_studs([(-10, 10), (10, 10)]),
    ]
    # Brick 1 x 1 without BFC: windings deliberately mixed, so every polygon must be two-sided.
    faces = _box_faces((-10, 0, -10), (10, 24, 10))
    files["parts/demo-3005.dat"] = [
        *_header("Brick  1 x  1 (uncertified) " + _NOTE, "demo-3005.dat", "Part", bfc="NOCERTIFY"),
        *(q if k % 2 else _reverse_winding(q) for k, q in enumerate(faces)),
        *_box_edges((-10, 0, -10), (10, 24, 10)),
        *_studs([(0, 0)]),
    ]
    files["LDConfig.ldr"] = [
        "0 LDraw colour table (only the colours the lego-edge demo library uses)",
        "0 Name: LDConfig.ldr",
        "0 Author: lego-edge (generated; values as in the official LDConfig.ldr)",
        "",
        *(
            f"0 !COLOUR {name:<20} CODE {code:>3}   VALUE {value}   EDGE {edge}"
            for code, (name, value, edge) in DEMO_COLOURS.items()
        ),
    ]
    return files


#: Part ids ``write_demo_library`` writes to ``parts/`` (the alias ``demo-3068`` last).
DEMO_PARTS = ["demo-3001", "demo-3023", "demo-3068b", "demo-3062b", "demo-3039", "demo-3005", "demo-3068"]


def write_demo_library(root: Path) -> list[str]:
    """Write the demo library under ``root`` (created if needed) and return the part ids written.

    Existing demo files are overwritten; other files in ``root`` are left alone.
    """
    root = Path(root)
    try:
        for rel, lines in _files().items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise DataFileError(
            f"cannot write the demo LDraw library under {str(root)!r}: {exc.strerror}; pass a writable folder"
        ) from None
    return list(DEMO_PARTS)
