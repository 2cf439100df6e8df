"""Tests for the LDConfig.ldr reader and the default edge colour."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.errors import EdgeError
from studio.errors import DataFileError, LDrawError
from studio.ldconfig import LDrawColour, default_edge_rgb, read_ldconfig

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("LEGO_SHARED", REPO.parent / "shared"))
REAL_LDCONFIG = SHARED / "ldraw" / "LDConfig.ldr"

SMALL = (
    "0 LDraw.org Configuration File\n"
    "0 // comment lines and other meta commands are ignored\n"
    "0 !COLOUR Black CODE 0 VALUE #1B2A34 EDGE #808080\n"
    "0 !COLOUR Dark_Edge_Ref CODE 900 VALUE #123456 EDGE 72\n"
    "0 !COLOUR Dark_Bluish_Grey CODE 72 VALUE #646464 EDGE #333333\n"
    "0 !COLOUR Trans_Clear CODE 47 VALUE #FCFCFC EDGE #C9C9C9 ALPHA 128\n"
    "0 !COLOUR Chrome_Silver CODE 383 VALUE #CECECE EDGE #9C9C9C CHROME\n"
    "0 !COLOUR Pearl_Gold CODE 297 VALUE #AA7F2E EDGE #333333 PEARLESCENT\n"
    "0 !COLOUR Metallic_Silver CODE 80 VALUE #767676 EDGE #333333 METAL\n"
    "0 !COLOUR Rubber_Black CODE 256 VALUE #1B2A34 EDGE 0 RUBBER\n"
    "0 !COLOUR Matte_Gold CODE 901 VALUE #AB8F46 EDGE #333333 MATTE_METALLIC\n"
    "0 !COLOUR Glow_In_Dark_Opaque CODE 21 VALUE #E0FFB0 EDGE #B8FF4D ALPHA 240 LUMINANCE 15\n"
    "0 !COLOUR Glitter_Trans_Clear   CODE 117   VALUE #EEEEEE   EDGE #BABABA   ALPHA 128"
    "   MATERIAL GLITTER VALUE #FFFFFF FRACTION 0.08 VFRACTION 0.1 SIZE 1\n"
    "0 !COLOUR Speckle_Black_Silver CODE 132 VALUE #000000 EDGE #898788"
    " MATERIAL SPECKLE VALUE #898788 FRACTION 0.4 MINSIZE 1 MAXSIZE 3\n"
    "0 !COLOUR Future_Colour CODE 902 VALUE #010203 EDGE #333333 SHINY_NEW_KEYWORD\n"
)


@pytest.fixture
def small(tmp_path: Path) -> dict[int, LDrawColour]:
    path = tmp_path / "LDConfig.ldr"
    path.write_text(SMALL, encoding="utf-8")
    return read_ldconfig(path)


def test_reads_every_colour_with_its_fields(small: dict[int, LDrawColour]) -> None:
    assert sorted(small) == [0, 21, 47, 72, 80, 117, 132, 256, 297, 383, 900, 901, 902]
    black = small[0]
    assert black == LDrawColour(0, "Black", (0x1B, 0x2A, 0x34), (0x80, 0x80, 0x80), 255, None, "solid")
    assert not black.is_trans
    clear = small[47]
    assert clear.alpha == 128 and clear.is_trans
    glow = small[21]
    assert (glow.alpha, glow.luminance) == (240, 15)


def test_edge_given_as_code_is_resolved_even_when_defined_later(small: dict[int, LDrawColour]) -> None:
    assert small[900].edge_rgb == (0x64, 0x64, 0x64)  # code 72, defined on the next line
    assert small[256].edge_rgb == (0x1B, 0x2A, 0x34)  # code 0 (Black)


@pytest.mark.parametrize(
    ("code", "material"),
    [
        (0, "solid"),
        (47, "solid"),
        (383, "chrome"),
        (297, "pearlescent"),
        (80, "metal"),
        (256, "rubber"),
        (901, "matte_metallic"),
        (117, "glitter"),
        (132, "speckle"),
        (902, "solid"),  # an unknown keyword is ignored
    ],
)
def test_material_from_keywords(small: dict[int, LDrawColour], code: int, material: str) -> None:
    assert small[code].material == material


def test_material_values_do_not_overwrite_the_body_colour(small: dict[int, LDrawColour]) -> None:
    assert small[117].rgb == (0xEE, 0xEE, 0xEE)  # not the glitter grains' #FFFFFF
    assert small[132].rgb == (0, 0, 0)


def test_later_definition_of_a_code_wins(tmp_path: Path) -> None:
    path = tmp_path / "LDConfig.ldr"
    path.write_text(
        "0 !COLOUR Old CODE 5 VALUE #000001 EDGE 6\n"
        "0 !COLOUR Other CODE 6 VALUE #000002 EDGE #333333\n"
        "0 !COLOUR New CODE 5 VALUE #000003 EDGE #444444\n",
        encoding="utf-8",
    )
    colours = read_ldconfig(path)
    assert (colours[5].name, colours[5].rgb, colours[5].edge_rgb) == ("New", (0, 0, 3), (0x44, 0x44, 0x44))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("0 !COLOUR NoCode VALUE #123456 EDGE #333333", "no CODE"),
        ("0 !COLOUR NoValue CODE 5 EDGE #333333", "no VALUE"),
        ("0 !COLOUR NoEdge CODE 5 VALUE #123456", "no EDGE"),
        ("0 !COLOUR BadCode CODE five VALUE #123456 EDGE #333333", "CODE 'five'"),
        ("0 !COLOUR BadValue CODE 5 VALUE #12345 EDGE #333333", "VALUE '#12345'"),
        ("0 !COLOUR BadHex CODE 5 VALUE #12345G EDGE #333333", "VALUE '#12345G'"),
        ("0 !COLOUR BadEdge CODE 5 VALUE #123456 EDGE grey", "EDGE 'grey'"),
        ("0 !COLOUR BadAlpha CODE 5 VALUE #123456 EDGE #333333 ALPHA 300", "ALPHA 300"),
        ("0 !COLOUR Dangling CODE 5 VALUE #123456 EDGE #333333 ALPHA", "ALPHA has no value"),
        ("0 !COLOUR", "no colour name"),
    ],
)
def test_malformed_line_raises_with_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "LDConfig.ldr"
    path.write_text("0 !COLOUR Fine CODE 1 VALUE #0055BF EDGE #333333\n0 // note\n" + line + "\n")
    with pytest.raises(LDrawError) as info:
        read_ldconfig(path)
    message = str(info.value)
    assert f"{path}:3" in message
    assert reason in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, EdgeError)


def test_edge_code_that_is_never_defined(tmp_path: Path) -> None:
    path = tmp_path / "LDConfig.ldr"
    path.write_text("0 !COLOUR Orphan CODE 5 VALUE #123456 EDGE 999\n")
    with pytest.raises(LDrawError, match=r"LDConfig\.ldr:1: .*'Orphan'.*EDGE 999"):
        read_ldconfig(path)


def test_missing_file_and_file_without_colours(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="does not exist") as info:
        read_ldconfig(tmp_path / "nope.ldr")
    assert isinstance(info.value, FileNotFoundError)
    part = tmp_path / "3001.dat"
    part.write_text("0 Brick 2 x 4\n1 16 0 0 0 1 0 0 0 1 0 0 0 1 stud.dat\n")
    with pytest.raises(LDrawError, match="no '0 !COLOUR' lines"):
        read_ldconfig(part)


def test_default_edge_rgb_follows_ldconfig_rule() -> None:
    assert default_edge_rgb((0x1B, 0x2A, 0x34)) == (128, 128, 128)  # very dark body: mid grey
    assert default_edge_rgb((0xB4, 0x00, 0x00)) == (51, 51, 51)  # everything else: #333333
    assert default_edge_rgb((255, 255, 255)) == (51, 51, 51)
    # Transparent: same hue, 20 points darker (LDConfig gives Trans_Red #C91A09 the edge #660D05).
    r, g, b = default_edge_rgb((0xC9, 0x1A, 0x09), transparent=True)
    assert abs(r - 0x66) <= 2 and abs(g - 0x0D) <= 2 and abs(b - 0x05) <= 2
    # A very dark transparent colour gets a lighter edge instead.
    dark = default_edge_rgb((0x10, 0x10, 0x10), transparent=True)
    assert dark[0] > 0x10
    with pytest.raises(ValueError, match=r"0\.\.255"):
        default_edge_rgb((0, 0, 256))


shared = pytest.mark.skipif(not REAL_LDCONFIG.is_file(), reason=f"no LDraw library at {REAL_LDCONFIG}")


@pytest.mark.shared
@shared
def test_real_ldconfig() -> None:
    colours = read_ldconfig(REAL_LDCONFIG)
    assert len(colours) > 150
    assert colours[0].name == "Black" and colours[0].edge_rgb == (128, 128, 128)
    assert colours[71].name == "Light_Bluish_Grey"
    assert colours[85].name == "Medium_Lilac"
    assert colours[47].alpha == 128
    assert colours[383].material == "chrome"
    assert colours[114].material == "glitter" and colours[114].rgb == (0xDF, 0x66, 0x95)
    # The fallback edge rule reproduces LDraw's own edges for nearly every plain colour.
    opaque = [c for c in colours.values() if c.material == "solid" and c.alpha == 255]
    same = sum(default_edge_rgb(c.rgb) == c.edge_rgb for c in opaque)
    assert same >= 0.95 * len(opaque)
    trans = [c for c in colours.values() if c.material == "solid" and c.alpha == 128]
    close = sum(
        max(abs(a - b) for a, b in zip(default_edge_rgb(c.rgb, transparent=True), c.edge_rgb, strict=True))
        <= 4
        for c in trans
    )
    assert close >= 0.9 * len(trans)
