"""Reader for LDraw's colour table, ``LDConfig.ldr``.

Each colour is one meta line::

    0 !COLOUR name CODE n VALUE #RRGGBB EDGE #RRGGBB|code [ALPHA a] [LUMINANCE l]
        [CHROME | PEARLESCENT | RUBBER | MATTE_METALLIC | METAL | MATERIAL type ...]

Only the renderer needs this (LDraw codes and LDraw RGB values); the project's canonical colour ids
are Rebrickable's, see :mod:`edge.colors`. When no LDraw library is available,
:func:`default_edge_rgb` gives a plausible edge-line colour for a body colour.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

from studio.errors import DataFileError, LDrawError

RGB = tuple[int, int, int]

#: Finish keywords that stand alone on a !COLOUR line, and the material name they give.
_FINISH_KEYWORDS = {
    "CHROME": "chrome",
    "PEARLESCENT": "pearlescent",
    "RUBBER": "rubber",
    "MATTE_METALLIC": "matte_metallic",
    "METAL": "metal",
}
#: Types after ``MATERIAL`` (the LDraw colour spec defines GLITTER, SPECKLE and FABRIC).
_MATERIAL_TYPES = {"GLITTER": "glitter", "SPECKLE": "speckle", "FABRIC": "fabric"}
_SYNTAX = "0 !COLOUR name CODE n VALUE #RRGGBB EDGE #RRGGBB|code [ALPHA a] [LUMINANCE l] [finish]"


@dataclass(frozen=True)
class LDrawColour:
    """One colour of an LDraw library.

    Attributes:
        code: LDraw colour code (not a Rebrickable id; see :mod:`edge.colors` for the mapping).
        name: LDraw's name, e.g. ``"Light_Bluish_Grey"``.
        rgb: body colour, sRGB 0..255.
        edge_rgb: colour of the part's edge lines (an ``EDGE`` code reference already resolved).
        alpha: opacity 0..255; 255 when the line has no ``ALPHA``.
        luminance: ``LUMINANCE`` (glow-in-the-dark brightness, 0..255) or None.
        material: one of 'solid', 'chrome', 'pearlescent', 'metal', 'rubber', 'matte_metallic',
            'glitter', 'speckle', 'fabric'.
    """

    code: int
    name: str
    rgb: RGB
    edge_rgb: RGB
    alpha: int = 255
    luminance: int | None = None
    material: str = "solid"

    @property
    def is_trans(self) -> bool:
        """True for see-through colours (alpha below 255)."""
        return self.alpha < 255


def _parse_hex(text: str) -> RGB | None:
    """``#RRGGBB`` as an RGB tuple, else None."""
    digits = text[1:]
    if not text.startswith("#") or len(digits) != 6:
        return None
    try:
        value = int(digits, 16)
    except ValueError:
        return None
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def _parse_line(tokens: list[str], where: str, line: str) -> tuple[LDrawColour, int | None]:
    """One !COLOUR line's tokens (after ``0 !COLOUR``) -> colour, plus its EDGE code if by code."""

    def bad(reason: str) -> LDrawError:
        return LDrawError(f"{where}: malformed !COLOUR line ({reason}): {line.strip()!r}; expected {_SYNTAX}")

    if not tokens:
        raise bad("no colour name")
    name, rest = tokens[0], tokens[1:]
    fields: dict[str, str] = {}
    material = "solid"
    i = 0
    while i < len(rest):
        key = rest[i].upper()
        if key in ("CODE", "VALUE", "EDGE", "ALPHA", "LUMINANCE"):
            if i + 1 >= len(rest):
                raise bad(f"{rest[i]} has no value")
            fields[key] = rest[i + 1]
            i += 2
        elif key in _FINISH_KEYWORDS:
            material = _FINISH_KEYWORDS[key]
            i += 1
        elif key == "MATERIAL":
            # Everything after MATERIAL (its own VALUE, FRACTION, SIZE...) describes the
            # glitter/speckle grains, not the body colour: stop reading body fields here.
            kind = rest[i + 1].upper() if i + 1 < len(rest) else ""
            material = _MATERIAL_TYPES.get(kind, material)
            break
        else:
            i += 1  # unknown keyword: newer LDConfig files add some; ignore them
    for required in ("CODE", "VALUE", "EDGE"):
        if required not in fields:
            raise bad(f"no {required}")
    try:
        code = int(fields["CODE"])
    except ValueError:
        raise bad(f"CODE {fields['CODE']!r} is not an integer") from None
    rgb = _parse_hex(fields["VALUE"])
    if rgb is None:
        raise bad(f"VALUE {fields['VALUE']!r} is not #RRGGBB")
    edge_code: int | None = None
    edge_rgb = _parse_hex(fields["EDGE"])
    if edge_rgb is None:
        try:
            edge_code = int(fields["EDGE"])
        except ValueError:
            raise bad(f"EDGE {fields['EDGE']!r} is neither #RRGGBB nor a colour code") from None
        edge_rgb = rgb  # placeholder until the referenced code is resolved
    numbers: dict[str, int | None] = {"ALPHA": 255, "LUMINANCE": None}
    for key in numbers:
        if key in fields:
            try:
                value = int(fields[key])
            except ValueError:
                raise bad(f"{key} {fields[key]!r} is not an integer") from None
            if not 0 <= value <= 255:
                raise bad(f"{key} {value} is outside 0..255")
            numbers[key] = value
    alpha = numbers["ALPHA"]
    assert alpha is not None
    colour = LDrawColour(code, name, rgb, edge_rgb, alpha, numbers["LUMINANCE"], material)
    return colour, edge_code


def read_ldconfig(path: str | Path) -> dict[int, LDrawColour]:
    """Parse the ``!COLOUR`` lines of an LDConfig.ldr into ``{code: LDrawColour}``.

    An ``EDGE`` given as a colour code is resolved to that colour's body RGB (it may be defined
    later in the file). A code defined twice keeps its last definition, as LDraw tools do.

    Raises:
        DataFileError: the file does not exist or cannot be read.
        LDrawError: a malformed ``!COLOUR`` line (message gives file:line), an EDGE referencing an
            undefined code, or a file with no ``!COLOUR`` lines at all.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise DataFileError(
            f"LDraw colour table {str(path)!r} does not exist; pass the LDConfig.ldr from the root "
            "of an LDraw library"
        ) from None
    except OSError as exc:
        raise DataFileError(f"LDraw colour table {str(path)!r} cannot be read: {exc.strerror}") from None

    colours: dict[int, LDrawColour] = {}
    edge_refs: dict[int, tuple[int, str]] = {}  # code -> (referenced code, "file:line")
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if len(tokens) < 2 or tokens[0] != "0" or tokens[1].upper() != "!COLOUR":
            continue
        where = f"{path}:{lineno}"
        colour, edge_code = _parse_line(tokens[2:], where, line)
        colours[colour.code] = colour
        edge_refs.pop(colour.code, None)
        if edge_code is not None:
            edge_refs[colour.code] = (edge_code, where)
    if not colours:
        raise LDrawError(
            f"{str(path)!r} holds no '0 !COLOUR' lines; pass LDraw's LDConfig.ldr, not a part or model"
        )
    for code, (ref, where) in edge_refs.items():
        if ref not in colours:
            raise LDrawError(
                f"{where}: colour {colours[code].name!r} (code {code}) has EDGE {ref}, a colour code "
                f"not defined in {str(path)!r}; use #RRGGBB or a defined code"
            )
        colours[code] = _replace_edge(colours[code], colours[ref].rgb)
    return colours


def _replace_edge(colour: LDrawColour, edge_rgb: RGB) -> LDrawColour:
    return LDrawColour(
        colour.code, colour.name, colour.rgb, edge_rgb, colour.alpha, colour.luminance, colour.material
    )


def default_edge_rgb(rgb: RGB, *, transparent: bool = False) -> RGB:
    """A plausible edge-line colour for a body colour when no LDConfig.ldr is at hand.

    Follows the rule LDConfig.ldr documents for its own edges: opaque colours get dark grey
    #333333, or mid grey #808080 when the body is itself very dark (HSL lightness below 20%) so the
    lines stay visible; transparent colours get the same hue with lightness lowered by 20 points
    (raised by 20 when below 20%).
    """
    if len(rgb) != 3 or any(not 0 <= int(c) <= 255 for c in rgb):
        raise ValueError(f"rgb {rgb!r} must be three integers 0..255")
    r, g, b = (int(c) / 255.0 for c in rgb)
    hue, lightness, saturation = colorsys.rgb_to_hls(r, g, b)
    if not transparent:
        return (128, 128, 128) if lightness < 0.2 else (51, 51, 51)
    lightness = lightness + 0.2 if lightness < 0.2 else lightness - 0.2
    out = colorsys.hls_to_rgb(hue, lightness, saturation)
    return tuple(round(c * 255) for c in out)  # type: ignore[return-value]
