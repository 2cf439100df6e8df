"""Tests for the colour table (edge/colors.py, edge/data/colors.csv) and its generator."""

from __future__ import annotations

import csv
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import edge.colors as colors_mod
from edge.colors import (
    Color,
    all_colors,
    color_by_ldraw_code,
    color_by_name,
    common_colors,
    get_color,
    ldraw_to_rebrickable,
    parse_color_list,
    rebrickable_to_ldraw,
)
from edge.errors import ConfigError, DataFileError, EdgeError, UnknownColorError
from studio.ldconfig import read_ldconfig

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("LEGO_SHARED", REPO.parent / "shared"))
REBRICKABLE_CSV = SHARED / "colors" / "rebrickable_colors.csv"
LDCONFIG = SHARED / "ldraw" / "LDConfig.ldr"
needs_shared = pytest.mark.skipif(
    not (REBRICKABLE_CSV.is_file() and LDCONFIG.is_file()), reason=f"development data not found in {SHARED}"
)


def _load_generator() -> ModuleType:
    """tools/ is not a package: load the script as a module (registered, as dataclasses need)."""
    name = "make_color_table"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / "make_color_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _table_rows() -> list[dict[str, str]]:
    lines = colors_mod.TABLE_PATH.read_text(encoding="utf-8").splitlines()
    return list(csv.DictReader(line for line in lines if not line.startswith("#")))


# --- the committed table ---------------------------------------------------------------------


def test_table_size_and_uniqueness() -> None:
    table = all_colors()
    assert sum(not c.is_trans for c in table) >= 40
    assert sum(c.is_trans for c in table) >= 10
    assert len({c.id for c in table}) == len(table)
    assert len({c.name.lower() for c in table}) == len(table)
    codes = [c.ldraw_code for c in table if c.ldraw_code is not None]
    assert len(set(codes)) == len(codes)
    assert [c.rank for c in table] == list(range(1, len(table) + 1))


def test_header_comment_names_sources_and_generator() -> None:
    first = colors_mod.TABLE_PATH.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#")
    assert "Rebrickable" in first and "LDConfig.ldr" in first and "tools/make_color_table.py" in first


@pytest.mark.parametrize(
    ("cid", "name", "hex_", "trans"),
    [
        (0, "Black", "#05131D", False),  # Rebrickable's black, not LDraw's #1B2A34
        (4, "Red", "#C91A09", False),
        (14, "Yellow", "#F2CD37", False),
        (15, "White", "#FFFFFF", False),
        (71, "Light Bluish Gray", "#A0A5A9", False),
        (72, "Dark Bluish Gray", "#6C6E68", False),
        (85, "Dark Purple", "#3F3691", False),
        (47, "Trans-Clear", "#FCFCFC", True),
        (41, "Trans-Light Blue", "#AEEFEC", True),
    ],
)
def test_known_rebrickable_facts(cid: int, name: str, hex_: str, trans: bool) -> None:
    color = get_color(cid)
    assert (color.name, color.hex, color.is_trans) == (name, hex_, trans)


def test_black_rgb_tuple() -> None:
    assert get_color(0).rgb == (0x05, 0x13, 0x1D)


@pytest.mark.parametrize(
    ("rebrickable", "ldraw"),
    [
        (0, 0),
        (15, 15),
        (71, 71),  # Light Bluish Gray <-> Light_Bluish_Grey
        (72, 72),
        (4, 4),
        (14, 14),
        (47, 47),
        # Same number, different names: Rebrickable/BrickLink "Dark Purple" is LEGO 268 Medium
        # Lilac, LDraw 85 Medium_Lilac (checked against LDConfig.ldr's LEGOID comment).
        (85, 85),
        # Different numbers: these are where a naive "same id" assumption goes wrong.
        (41, 43),  # Trans-Light Blue; LDraw 41 is Trans_Medium_Blue
        (182, 57),  # Trans-Orange; Rebrickable 57 is Trans-Neon Orange
        (57, 38),  # Trans-Neon Orange
        (45, 37),  # Trans-Dark Pink; LDraw 45 is Trans_Pink
        (326, 330),  # Olive Green; LDraw 326 is Yellowish_Green
        (158, 326),  # Yellowish Green; LDraw 158 is Trans_Neon_Red
        (1103, 87),  # Pearl Titanium <-> Metallic_Dark_Grey
    ],
)
def test_explicit_ldraw_mapping(rebrickable: int, ldraw: int) -> None:
    assert rebrickable_to_ldraw(rebrickable) == ldraw
    assert ldraw_to_rebrickable(ldraw) == rebrickable


def test_ldraw_codes_that_mean_another_colour_than_the_same_rebrickable_id() -> None:
    assert color_by_ldraw_code(326).name == "Yellowish Green"
    assert get_color(326).name == "Olive Green"
    assert color_by_ldraw_code(57).name == "Trans-Orange"
    assert get_color(57).name == "Trans-Neon Orange"


def test_round_trip_for_every_mapped_colour() -> None:
    mapped = [c for c in all_colors() if c.ldraw_code is not None]
    assert len(mapped) >= 50
    for color in mapped:
        assert color_by_ldraw_code(rebrickable_to_ldraw(color.id)) == color
        assert get_color(ldraw_to_rebrickable(color.ldraw_code)) == color


@pytest.mark.parametrize(
    ("cid", "material"),
    [(0, "solid"), (297, "pearl"), (1103, "pearl"), (80, "metallic"), (179, "metallic"), (47, "trans")],
)
def test_material(cid: int, material: str) -> None:
    assert get_color(cid).material == material


# --- look-ups and their errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Light Bluish Gray", "light bluish grey", "LIGHT_BLUISH_GREY", "  Light  Bluish-Gray "]
)
def test_color_by_name_is_forgiving(name: str) -> None:
    assert color_by_name(name).id == 71


def test_color_by_name_trans_spellings() -> None:
    assert color_by_name("Trans_Clear").id == 47
    assert color_by_name("trans clear").id == 47


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(UnknownColorError, match=r"'Light Blush Gray'.*did you mean 'Light Bluish Gray'"):
        color_by_name("Light Blush Gray")


def test_unknown_id_lists_nearest_ids() -> None:
    with pytest.raises(UnknownColorError) as info:
        get_color(86)
    message = str(info.value)
    assert "86" in message and "85 (Dark Purple)" in message and "84 (Medium Nougat)" in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, EdgeError)


def test_unknown_id_that_is_an_ldraw_code_says_so() -> None:
    with pytest.raises(UnknownColorError, match=r"LDraw code 38 is 'Trans-Neon Orange'.*color_by_ldraw_code"):
        get_color(38)


def test_unmapped_ldraw_code() -> None:
    with pytest.raises(UnknownColorError, match="LDraw colour code 16"):
        color_by_ldraw_code(16)  # LDraw's "main colour" placeholder
    with pytest.raises(UnknownColorError):
        ldraw_to_rebrickable(99999)
    with pytest.raises(UnknownColorError, match="colour id 99999"):
        rebrickable_to_ldraw(99999)


def test_common_colors() -> None:
    top = common_colors(40)
    assert len(top) == 40 and not any(c.is_trans for c in top)
    assert [c.rank for c in top] == sorted(c.rank for c in top)
    assert [c.id for c in top[:4]] == [0, 15, 71, 72]
    trans = common_colors(10, transparent=True)
    assert len(trans) == 10 and all(c.is_trans for c in trans)
    assert trans[0].id == 47
    n_solid = sum(not c.is_trans for c in all_colors())
    assert len(common_colors(n_solid)) == n_solid
    for bad in (0, -3, n_solid + 1):
        with pytest.raises(ValueError, match=f"n={bad}"):
            common_colors(bad)


# --- parse_color_list -------------------------------------------------------------------------


def test_parse_count() -> None:
    assert parse_color_list(30) == common_colors(30)
    assert parse_color_list(" 30 ") == common_colors(30)


def test_parse_ids_names_and_mixed() -> None:
    assert [c.id for c in parse_color_list("0,4,15,71")] == [0, 4, 15, 71]
    assert [c.id for c in parse_color_list(" 0 , 4 ")] == [0, 4]
    assert [c.id for c in parse_color_list("Red,Light Bluish Gray")] == [4, 71]
    assert [c.id for c in parse_color_list("trans_clear, 72")] == [47, 72]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("0", "n=0"),
        ("1000", "n=1000"),
        ("0,,4", "empty entry"),
        ("0,4,", "empty entry"),
        ("0,Black", "'Black' repeats colour 0"),
        ("4,9999", "unknown colour id '9999'"),
        ("Redd", "unknown colour name 'Redd' (did you mean 'Red'"),
        (True, "wrong type"),
        (3.5, "wrong type"),
    ],
)
def test_parse_errors(spec: object, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_color_list(spec)  # type: ignore[arg-type]
    assert expected in str(info.value)
    assert "give a count" in str(info.value)  # every message says how to fix it


def test_parse_reports_every_bad_entry_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        parse_color_list("Redd,999,0,Bleu")
    message = str(info.value)
    assert "'Redd'" in message and "'999'" in message and "'Bleu'" in message


# --- the loader, on a substitute table ---------------------------------------------------------


@pytest.fixture
def table_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point edge.colors at a temporary CSV; restore the real one afterwards."""
    path = tmp_path / "colors.csv"
    monkeypatch.setattr(colors_mod, "TABLE_PATH", path)
    colors_mod._table.cache_clear()
    yield path
    colors_mod._table.cache_clear()


HEADER = "# test table\nid,name,rgb,is_trans,ldraw_code,ldraw_name,rank\n"


def test_colour_without_ldraw_code(table_file: Path) -> None:
    table_file.write_text(HEADER + "0,Black,05131D,false,0,Black,1\n334,Chrome Gold,BBA53D,false,,,2\n")
    gold = get_color(334)
    assert gold.ldraw_code is None and gold.material == "chrome"
    with pytest.raises(UnknownColorError, match=r"334 \('Chrome Gold'\) has no LDraw colour code"):
        rebrickable_to_ldraw(334)
    assert all_colors() == [get_color(0), gold]
    assert isinstance(gold, Color)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("id,name\n0,Black\n", "header must be"),
        (HEADER + "0,Black,05131D,false,0,Black\n", "line 3: expected 7 fields"),
        (HEADER + "0,Black,05131Z,false,0,Black,1\n", "line 3: unreadable row"),
        (HEADER + "0,Black,05131D,maybe,0,Black,1\n", "line 3: unreadable row"),
        (HEADER + "0,Black,05131D,false,0,Black,1\n0,Noir,05131D,false,,,2\n", "duplicate"),
        (HEADER + "0,Black,05131D,false,0,Black,1\n1,Blue,0055BF,false,0,Blue,2\n", "more than one"),
    ],
)
def test_broken_table_raises_data_file_error(table_file: Path, body: str, expected: str) -> None:
    table_file.write_text(body)
    with pytest.raises(DataFileError, match=expected):
        all_colors()


def test_missing_table(table_file: Path) -> None:
    with pytest.raises(DataFileError, match="cannot be read"):
        get_color(0)


# --- the generator -----------------------------------------------------------------------------


def test_generator_normalises_names() -> None:
    gen = _load_generator()
    assert gen.normalise("Light_Bluish_Grey") == gen.normalise("Light Bluish Gray")
    assert gen.normalise("Trans_Clear") == gen.normalise("Trans-Clear")
    assert gen.normalise("Greyish") == "greyish"  # only the whole word changes


def _write_sources(tmp_path: Path, ldraw_lines: str) -> tuple[Path, Path]:
    rebrickable = tmp_path / "colors.csv"
    rebrickable.write_text(
        "id,name,rgb,is_trans,num_parts,num_sets,y1,y2\n"
        "-1,[Unknown],0033B2,False,99999,1,2000,2000\n"
        "0,Black,05131D,False,500,10,1957,2026\n"
        "71,Light Bluish Gray,A0A5A9,False,400,10,2003,2026\n"
        "1013,Modulex White,F4F4F4,False,300,10,1963,1990\n"
        "47,Trans-Clear,FCFCFC,True,200,10,1960,2026\n"
    )
    ldconfig = tmp_path / "LDConfig.ldr"
    ldconfig.write_text(ldraw_lines)
    return rebrickable, ldconfig


def test_generator_on_small_inputs(tmp_path: Path) -> None:
    gen = _load_generator()
    rebrickable, ldconfig = _write_sources(
        tmp_path,
        "0 !COLOUR Black CODE 0 VALUE #1B2A34 EDGE #808080\n"
        "0 !COLOUR Light_Bluish_Grey CODE 71 VALUE #969696 EDGE #333333\n"
        "0 !COLOUR Trans_Clear CODE 47 VALUE #FCFCFC EDGE #C9C9C9 ALPHA 128\n",
    )
    out = tmp_path / "table.csv"
    sources = ["--rebrickable", str(rebrickable), "--ldconfig", str(ldconfig)]
    gen.main([*sources, "--out", str(out), "--solid", "2", "--trans", "1"])
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# ")
    assert lines[1:] == [
        "id,name,rgb,is_trans,ldraw_code,ldraw_name,rank",
        "0,Black,05131D,false,0,Black,1",
        "71,Light Bluish Gray,A0A5A9,false,71,Light_Bluish_Grey,2",
        "47,Trans-Clear,FCFCFC,true,47,Trans_Clear,3",
    ]  # [Unknown] and Modulex are left out


def test_generator_refuses_unreviewed_pairings(tmp_path: Path) -> None:
    gen = _load_generator()
    args = ["--solid", "2", "--trans", "1", "--out", str(tmp_path / "t.csv")]
    rebrickable, ldconfig = _write_sources(
        tmp_path,
        "0 !COLOUR Black CODE 0 VALUE #1B2A34 EDGE #808080\n"
        "0 !COLOUR Light_Bluish_Grey CODE 72 VALUE #969696 EDGE #333333\n"  # name matches, code differs
        "0 !COLOUR Trans_Clear CODE 47 VALUE #FCFCFC EDGE #C9C9C9 ALPHA 128\n",
    )
    with pytest.raises(SystemExit, match=r"not yet reviewed: 71 'Light Bluish Gray' -> LDraw 72"):
        gen.main(["--rebrickable", str(rebrickable), "--ldconfig", str(ldconfig), *args])
    ldconfig.write_text("0 !COLOUR Black CODE 0 VALUE #1B2A34 EDGE #808080\n")
    with pytest.raises(SystemExit, match=r"no LDraw colour found by name for: 71 'Light Bluish Gray', 47"):
        gen.main(["--rebrickable", str(rebrickable), "--ldconfig", str(ldconfig), *args])


# --- against the real sources (development data) -------------------------------------------------


@pytest.mark.shared
@needs_shared
def test_ldraw_codes_and_names_exist_in_real_ldconfig() -> None:
    ldraw = read_ldconfig(LDCONFIG)
    for row in _table_rows():
        if row["ldraw_code"]:
            code = int(row["ldraw_code"])
            assert code in ldraw, row
            assert ldraw[code].name == row["ldraw_name"], row
            # A transparent colour must map to a transparent LDraw colour and vice versa.
            assert ldraw[code].is_trans == (row["is_trans"] == "true"), row


@pytest.mark.shared
@needs_shared
def test_table_agrees_with_rebrickable() -> None:
    with REBRICKABLE_CSV.open(encoding="utf-8", newline="") as fh:
        source = {int(r["id"]): r for r in csv.DictReader(fh)}
    for color in all_colors():
        row = source[color.id]
        assert color.name == row["name"]
        assert color.hex == "#" + row["rgb"].upper()
        assert color.is_trans == (row["is_trans"] == "True")


@pytest.mark.shared
@needs_shared
def test_committed_table_is_what_the_generator_makes(tmp_path: Path) -> None:
    gen = _load_generator()
    out = tmp_path / "colors.csv"
    gen.main(["--rebrickable", str(REBRICKABLE_CSV), "--ldconfig", str(LDCONFIG), "--out", str(out)])
    committed = colors_mod.TABLE_PATH.read_text(encoding="utf-8").splitlines()
    assert out.read_text(encoding="utf-8").splitlines()[1:] == committed[1:]
