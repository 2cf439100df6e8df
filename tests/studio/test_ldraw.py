"""Tests for the LDraw reader: parsing, lookup, aliases, colours, BFC winding and errors."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from studio.errors import DataFileError, LDrawError, MissingPartError
from studio.ldraw import LDrawLibrary
from studio.ldraw_parse import parse_ldraw, parse_line
from studio.mesh import EDGE_COLOR, MAIN_COLOR, Mesh

# A closed cube [-1, 1]^3, each quad counter-clockwise seen from outside (LDraw "CCW").
CUBE_QUADS = [
    "4 16 -1 -1 -1 1 -1 -1 1 -1 1 -1 -1 1",  # y = -1 (top)
    "4 16 -1 1 1 1 1 1 1 1 -1 -1 1 -1",  # y = +1 (bottom)
    "4 16 -1 -1 -1 -1 -1 1 -1 1 1 -1 1 -1",  # x = -1
    "4 16 1 -1 -1 1 1 -1 1 1 1 1 -1 1",  # x = +1
    "4 16 -1 -1 -1 -1 1 -1 1 1 -1 1 -1 -1",  # z = -1
    "4 16 -1 -1 1 1 -1 1 1 1 1 -1 1 1",  # z = +1
]
CUBE = "0 Cube\n0 BFC CERTIFY CCW\n" + "\n".join(CUBE_QUADS) + "\n"
IDENTITY = "1 0 0 0 1 0 0 0 1"


def reverse_polygon(line: str) -> str:
    """The same type-3/4 line with its vertices in the opposite order."""
    kind, colour, *nums = line.split()
    pts = [nums[i : i + 3] for i in range(0, len(nums), 3)][::-1]
    return " ".join([kind, colour, *(c for p in pts for c in p)])


def make_library(root: Path, files: dict[str, str | bytes]) -> LDrawLibrary:
    """Write ``files`` (relative path -> text or bytes) under ``root`` and open it as a library."""
    if not any(rel.lower().startswith("parts/") for rel in files):
        (root / "parts").mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return LDrawLibrary(root)


def outward(mesh: Mesh, centre: tuple[float, float, float], select: np.ndarray | None = None) -> np.ndarray:
    """Per triangle: does its normal point away from ``centre``?"""
    tris = mesh.triangles if select is None else mesh.triangles[select]
    normals = mesh.normals if select is None else mesh.normals[select]
    away = tris.mean(axis=1) - np.asarray(centre, np.float32)
    return np.einsum("ij,ij->i", normals, away) > 0


# -- parsing ------------------------------------------------------------------------------------


def test_parse_line_reads_every_type_and_tolerates_whitespace() -> None:
    assert parse_line("   \t ") is None
    meta = parse_line("0  BFC CERTIFY CCW  ")
    assert meta is not None and meta.kind == 0 and meta.text == "BFC CERTIFY CCW"
    ref = parse_line("1\t4 1 2 3  1 0 0 0 1 0 0 0 1  s\\my part.dat  ")
    assert ref is not None and ref.kind == 1 and ref.colour == 4
    assert ref.values == (1, 2, 3, 1, 0, 0, 0, 1, 0, 0, 0, 1)
    assert ref.name == "s\\my part.dat"  # names may contain spaces
    tri = parse_line("3 16 0 0 0 1 0 0 0 1 0 ")
    assert tri is not None and tri.kind == 3 and len(tri.values) == 9
    cond = parse_line("5 24 0 0 0 1 0 0 0 1 0 0 -1 0")
    assert cond is not None and cond.kind == 5 and len(cond.values) == 12
    direct = parse_line("3 0x2FF0000 0 0 0 1 0 0 0 1 0")
    assert direct is not None and direct.colour == MAIN_COLOR


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("3 16 0 0 0 1 0 0 0 1", "type 3 line needs a colour and 9 numbers"),
        ("4 16 0 0 0 1 0 0 0 1 0 0 0 1 0 5", "type 4 line needs"),
        ("2 24 0 0 0 1 0", "type 2 line needs"),
        ("1 16 0 0 0 1 0 0 0 1 0 0 0 1", "type 1 line needs"),
        ("3 16 0 0 zero 1 0 0 0 1 0", "not a number"),
        ("3 red 0 0 0 1 0 0 0 1 0", "colour 'red'"),
        ("7 16 0 0 0", "unknown line type '7'"),
    ],
)
def test_parse_line_rejects_malformed_lines_with_location(text: str, fragment: str) -> None:
    with pytest.raises(LDrawError) as err:
        parse_line(text, "parts/x.dat", 12)
    assert "parts/x.dat:12" in str(err.value)
    assert fragment in str(err.value)
    assert repr(text) in str(err.value)


def test_crlf_bom_tabs_and_latin1_comments(tmp_path: Path) -> None:
    body = (
        b"\xef\xbb\xbf0 Caf\xe9 Brick\r\n0 Author: Ulrich R\xf6der\r\n\r\n"
        b"0 BFC CERTIFY CCW   \r\n\t3\t16  0 0 0   1 0 0 \t0 0 1   \r\n   \r\n"
        b"2 24 0 0 0 1 0 0\r\n"
    )
    lib = make_library(tmp_path, {"parts/cafe.dat": body})
    assert lib.part_title("cafe") == "Café Brick"
    mesh = lib.part_mesh("cafe")
    np.testing.assert_array_equal(mesh.triangles[0], [[0, 0, 0], [1, 0, 0], [0, 0, 1]])
    assert mesh.colors.tolist() == [MAIN_COLOR] and mesh.two_sided.tolist() == [False]
    assert len(mesh.edges) == 1
    utf8 = make_library(tmp_path / "u", {"parts/cafe.dat": "\ufeff0 Café Brick\r\n".encode()})
    assert utf8.part_title("cafe") == "Café Brick"


def test_quads_become_two_triangles_with_the_same_winding() -> None:
    pf = parse_ldraw("0 BFC CERTIFY CCW\n4 16 0 0 0 2 0 0 2 0 3 0 0 3\n")
    tris = pf.triangles
    assert tris.shape == (2, 3, 3)
    normals = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    quad_normal = np.cross([2, 0, 0], [2, 0, 3])
    assert (normals @ quad_normal > 0).all()
    assert np.abs(normals).sum(axis=1).tolist() == pytest.approx([6, 6])  # each half: area 3
    corners = {tuple(p) for p in tris.reshape(-1, 3).tolist()}
    assert corners == {(0, 0, 0), (2, 0, 0), (2, 0, 3), (0, 0, 3)}


# -- transforms and colours ---------------------------------------------------------------------


def test_subfile_transform_moves_triangles_edges_and_optional_lines(tmp_path: Path) -> None:
    leaf = "0 BFC CERTIFY CCW\n3 16 0 0 0 1 0 0 0 1 0\n2 24 0 0 0 0 0 1\n5 24 1 0 0 0 1 0 0 0 1 1 1 1\n"
    part = "0 BFC CERTIFY CCW\n1 16 10 20 30 0 -1 0 1 0 0 0 0 2 leaf.dat\n"
    lib = make_library(tmp_path, {"p/leaf.dat": leaf, "parts/t.dat": part})
    mesh = lib.part_mesh("t")
    # p -> M p + t with M = [[0,-1,0],[1,0,0],[0,0,2]], t = (10, 20, 30)
    np.testing.assert_allclose(mesh.triangles[0], [[10, 20, 30], [10, 21, 30], [9, 20, 30]])
    np.testing.assert_allclose(mesh.edges[0], [[10, 20, 30], [10, 20, 32]])
    np.testing.assert_allclose(mesh.cond_edges[0], [[10, 21, 30], [9, 20, 30], [10, 20, 32], [9, 21, 32]])
    assert mesh.triangles.dtype == np.float32 and mesh.colors.dtype == np.int32


def test_colour_16_is_inherited_through_two_levels(tmp_path: Path) -> None:
    leaf = (
        "0 BFC CERTIFY CCW\n3 16 0 0 0 1 0 0 0 1 0\n3 2 0 0 0 1 0 0 0 1 0\n"
        "2 24 0 0 0 1 0 0\n2 16 0 0 0 1 0 0\n"
    )
    mid = f"0 BFC CERTIFY CCW\n1 16 0 0 0 {IDENTITY} leaf.dat\n1 4 0 0 0 {IDENTITY} leaf.dat\n"
    part = f"0 BFC CERTIFY CCW\n3 16 0 0 0 1 0 0 0 1 0\n1 14 0 0 0 {IDENTITY} mid.dat\n2 24 0 0 0 0 1 0\n"
    lib = make_library(tmp_path, {"p/leaf.dat": leaf, "parts/s/mid.dat": mid, "parts/top.dat": part})
    mesh = lib.part_mesh("top")
    # own 16 stays symbolic; mid (14) passes 14 to its colour-16 use of leaf; the explicit 4 wins.
    assert mesh.colors.tolist() == [16, 14, 2, 4, 2]
    # edge colour 24 stays 24 at every level; a colour-16 line takes the caller's colour.
    assert mesh.edge_colors.tolist() == [EDGE_COLOR, EDGE_COLOR, 14, EDGE_COLOR, 4]


def test_explicit_edge_colour_on_lines_is_kept(tmp_path: Path) -> None:
    lib = make_library(tmp_path, {"parts/e.dat": "0 E\n2 24 0 0 0 1 0 0\n2 4 0 0 0 0 1 0\n"})
    assert lib.part_mesh("e").edge_colors.tolist() == [24, 4]


# -- lookup -------------------------------------------------------------------------------------


def test_lookup_is_case_insensitive_and_accepts_both_slashes(tmp_path: Path) -> None:
    tri = "0 BFC CERTIFY CCW\n3 16 0 0 0 1 0 0 0 1 0\n"
    lib = make_library(
        tmp_path,
        {
            "PARTS/Top.DAT": (
                f"0 Top\n1 16 0 0 0 {IDENTITY} S\\SubPart.dat\n1 16 5 0 0 {IDENTITY} 48\\RING.dat\n"
            ),
            "PARTS/s/subpart.DAT": tri,
            "P/48/Ring.Dat": tri,
            "models/local.dat": tri,
        },
    )
    assert lib.find("s\\SUBPART.dat").name == "subpart.DAT"
    assert lib.find("S/subpart.dat") == lib.find("s\\SubPart.DAT")
    assert lib.find("48/ring.dat").parent.name == "48"
    assert lib.find("SubPart.dat").name == "subpart.DAT"  # bare names are found in parts/s/ too
    assert lib.has_part("TOP") and lib.has_part("top.dat")
    assert len(lib.part_mesh("top").triangles) == 2
    model = tmp_path / "models" / "model.ldr"
    assert lib.find("LOCAL.dat", relative_to=model) == tmp_path / "models" / "local.dat"
    with pytest.raises(MissingPartError):
        lib.find("local.dat")


def test_library_root_needs_a_parts_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no parts/ folder"):
        LDrawLibrary(tmp_path / "nowhere")
    (tmp_path / "p").mkdir()
    with pytest.raises(DataFileError, match=re.escape(repr(str(tmp_path)))):
        LDrawLibrary(tmp_path)


def test_moved_to_aliases_are_followed(tmp_path: Path) -> None:
    lib = make_library(
        tmp_path,
        {
            "parts/a.dat": f"0 ~Moved to b\n0 BFC CERTIFY CCW\n1 16 0 0 0 {IDENTITY} b.dat\n",
            "parts/b.dat": f"0 ~Moved To C\n0 BFC CERTIFY CCW\n1 16 0 0 0 {IDENTITY} c.dat\n",
            "parts/c.dat": "0 Brick  1 x  1\n0 BFC CERTIFY CCW\n3 16 0 0 0 1 0 0 0 1 0\n",
        },
    )
    assert lib.resolve_part("a") == "c" and lib.resolve_part("B.dat") == "c" and lib.resolve_part("c") == "c"
    assert lib.part_mesh("a") is lib.part_mesh("c")
    assert lib.part_title("a") == "Brick  1 x  1"
    assert lib.has_part("a") and not lib.has_part("zzz")
    with pytest.raises(MissingPartError, match="'zzz'"):
        lib.resolve_part("zzz")


def test_alias_cycle_is_reported(tmp_path: Path) -> None:
    lib = make_library(
        tmp_path,
        {
            "parts/x.dat": f"0 ~Moved to y\n1 16 0 0 0 {IDENTITY} y.dat\n",
            "parts/y.dat": f"0 ~Moved to x\n1 16 0 0 0 {IDENTITY} x.dat\n",
        },
    )
    with pytest.raises(LDrawError, match="x -> y -> x"):
        lib.resolve_part("x")
    with pytest.raises(LDrawError, match="cycle"):
        lib.part_mesh("y")


def test_part_title_and_category(tmp_path: Path) -> None:
    lib = make_library(
        tmp_path,
        {
            "parts/3001.dat": "0 Brick  2 x  4\n0 Name: 3001.dat\n",
            "parts/32000.dat": "0 Technic Brick  1 x  2 with Holes\n0 !CATEGORY Technic Brick\n",
            "parts/old.dat": "0 ~Moved to 3001\n",
            "parts/blank.dat": "\n",
        },
    )
    assert lib.part_title("3001") == "Brick  2 x  4" and lib.part_category("3001") == "Brick"
    assert lib.part_category("32000") == "Technic Brick"
    assert lib.part_title("old") == "Brick  2 x  4" and lib.part_category("old") == "Brick"
    assert lib.part_title("blank") == "" and lib.part_category("blank") is None
    with pytest.raises(LDrawError, match="empty"):
        lib.part_mesh(" ")


# -- errors -------------------------------------------------------------------------------------


def test_missing_subfile_names_file_line_and_search_path(tmp_path: Path) -> None:
    lib = make_library(
        tmp_path,
        {"parts/bad.dat": f"0 Bad\n0 BFC CERTIFY CCW\n1 16 0 0 0 {IDENTITY} s\\nothere.dat\n", "p/x.dat": ""},
    )
    with pytest.raises(MissingPartError) as err:
        lib.part_mesh("bad")
    text = str(err.value)
    assert "'s\\\\nothere.dat'" in text  # repr of the name as written
    assert "parts/bad.dat:3" in text
    assert str(tmp_path / "parts") in text and str(tmp_path / "p") in text
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, LDrawError)


def test_reference_cycle_names_the_chain(tmp_path: Path) -> None:
    lib = make_library(
        tmp_path,
        {
            "parts/a.dat": f"0 A\n1 16 0 0 0 {IDENTITY} s\\b.dat\n",
            "parts/s/b.dat": f"0 B\n1 16 0 0 0 {IDENTITY} a.dat\n",
            "parts/self.dat": f"0 Self\n1 16 0 0 0 {IDENTITY} self.dat\n",
        },
    )
    with pytest.raises(LDrawError, match=re.escape("parts/a.dat -> parts/s/b.dat -> parts/a.dat")):
        lib.part_mesh("a")
    with pytest.raises(LDrawError, match=re.escape("parts/self.dat -> parts/self.dat")):
        lib.part_mesh("self")


def test_malformed_line_in_a_subfile_fails_only_that_part(tmp_path: Path) -> None:
    lib = make_library(
        tmp_path,
        {
            "p/broken.dat": "0 Broken\n0 BFC CERTIFY CCW\n\n3 16 0 0 0 1 0\n",
            "parts/uses-broken.dat": f"0 Uses Broken\n1 16 0 0 0 {IDENTITY} broken.dat\n",
            "parts/bad-here.dat": "0 Bad Here\n3 16 0 0 0 1 0 0 0 1 0 9\n",
            "parts/fine.dat": "0 Fine\n3 16 0 0 0 1 0 0 0 1 0\n",
        },
    )
    results: dict[str, str] = {}
    for part in ("uses-broken", "bad-here", "fine"):
        try:
            results[part] = f"{len(lib.part_mesh(part).triangles)} triangles"
        except LDrawError as exc:
            results[part] = str(exc)
    assert "p/broken.dat:4" in results["uses-broken"] and "'3 16 0 0 0 1 0'" in results["uses-broken"]
    assert "parts/bad-here.dat:2" in results["bad-here"]
    assert results["fine"] == "1 triangles"
    assert lib.part_title("bad-here") == "Bad Here"  # the header still reads


# -- BFC ----------------------------------------------------------------------------------------


def test_certified_closed_box_normals_point_outwards(tmp_path: Path) -> None:
    cw = "0 Cube CW\n0 BFC CERTIFY CW\n" + "\n".join(reverse_polygon(q) for q in CUBE_QUADS) + "\n"
    lib = make_library(tmp_path, {"parts/cube.dat": CUBE, "parts/cubecw.dat": cw})
    for part in ("cube", "cubecw"):
        mesh = lib.part_mesh(part)
        assert len(mesh.triangles) == 12
        assert outward(mesh, (0, 0, 0)).all()
        assert not mesh.two_sided.any()
    np.testing.assert_allclose(lib.part_mesh("cube").normals, lib.part_mesh("cubecw").normals)


def test_bfc_cw_switch_inside_a_file(tmp_path: Path) -> None:
    tri = "3 16 0 0 0 1 0 0 0 0 1"
    part = f"0 Switch\n0 BFC CERTIFY CCW\n{tri}\n0 BFC CW\n{reverse_polygon(tri)}\n0 BFC CCW\n{tri}\n"
    mesh = make_library(tmp_path, {"parts/sw.dat": part}).part_mesh("sw")
    np.testing.assert_allclose(mesh.normals, [[0, -1, 0]] * 3)


def test_invertnext_applies_to_the_next_reference_only(tmp_path: Path) -> None:
    part = (
        "0 Inverted\n0 BFC CERTIFY CCW\n0 BFC INVERTNEXT\n"
        f"1 16 0 0 0 {IDENTITY} cube.dat\n1 16 10 0 0 {IDENTITY} cube.dat\n"
    )
    mesh = make_library(tmp_path, {"p/cube.dat": CUBE, "parts/inv.dat": part}).part_mesh("inv")
    first = np.arange(len(mesh.triangles)) < 12
    assert (~outward(mesh, (0, 0, 0), first)).all()  # inside out: a cavity
    assert outward(mesh, (10, 0, 0), ~first).all()


@pytest.mark.parametrize(
    ("matrix", "invert"),
    [
        ("-1 0 0 0 1 0 0 0 1", False),
        ("2 0 0 0 -3 0 0 0 1", False),
        ("0 0 1 0 1 0 1 0 0", False),
        ("-1 0 0 0 1 0 0 0 1", True),
    ],
)
def test_mirroring_matrix_keeps_normals_outwards(tmp_path: Path, matrix: str, invert: bool) -> None:
    assert np.linalg.det(np.array(matrix.split(), float).reshape(3, 3)) < 0
    inv = "0 BFC INVERTNEXT\n" if invert else ""
    part = f"0 Mirrored\n0 BFC CERTIFY CCW\n{inv}1 16 5 6 7 {matrix} cube.dat\n"
    mesh = make_library(tmp_path, {"p/cube.dat": CUBE, "parts/m.dat": part}).part_mesh("m")
    assert len(mesh.triangles) == 12
    assert (outward(mesh, (5, 6, 7)) != invert).all()


def test_two_sided_needs_every_ancestor_certified(tmp_path: Path) -> None:
    tri = "3 16 0 0 0 1 0 0 0 0 1"
    files = {
        "p/cube.dat": CUBE,
        "p/uncert.dat": f"0 Uncertified\n{tri}\n",
        "p/nocert.dat": f"0 No\n0 BFC NOCERTIFY\n{tri}\n",
        "p/late.dat": f"0 Late\n{tri}\n0 BFC CERTIFY CCW\n{tri}\n",
        "parts/mixed.dat": (
            f"0 Mixed\n0 BFC CERTIFY CCW\n{tri}\n1 16 0 0 0 {IDENTITY} uncert.dat\n"
            f"1 16 0 0 0 {IDENTITY} cube.dat\n1 16 0 0 0 {IDENTITY} nocert.dat\n"
            f"1 16 0 0 0 {IDENTITY} late.dat\n"
        ),
        "parts/parent.dat": f"0 Uncertified Parent\n1 16 0 0 0 {IDENTITY} cube.dat\n",
        "parts/clip.dat": (
            f"0 Clip\n0 BFC CERTIFY CCW\n{tri}\n0 BFC NOCLIP\n{tri}\n1 16 0 0 0 {IDENTITY} cube.dat\n"
            f"0 BFC CLIP\n{tri}\n"
        ),
    }
    lib = make_library(tmp_path, files)
    mixed = lib.part_mesh("mixed").two_sided.tolist()
    assert mixed == [False] + [True] + [False] * 12 + [True] + [True, True]
    assert lib.part_mesh("parent").two_sided.all()
    assert lib.part_mesh("clip").two_sided.tolist() == [False, True, False] + [True] * 12


# -- caching ------------------------------------------------------------------------------------


def test_each_file_is_parsed_once_and_meshes_are_shared(tmp_path: Path) -> None:
    refs = "".join(f"1 16 {20 * k} 0 0 {IDENTITY} cube.dat\n" for k in range(3))
    lib = make_library(
        tmp_path,
        {"p/cube.dat": CUBE, "parts/one.dat": f"0 One\n{refs}", "parts/two.dat": f"0 Two\n{refs}"},
    )
    one, two = lib.part_mesh("one"), lib.part_mesh("two")
    assert lib.files_parsed == 3
    assert lib.part_mesh("one") is one and lib.files_parsed == 3
    np.testing.assert_array_equal(one.triangles, two.triangles)
    info = lib.cache_info()
    assert info["mesh_misses"] == 3 and info["mesh_hits"] >= 5
    with pytest.raises(ValueError, match="read-only"):
        one.triangles[0, 0, 0] = 99.0


def test_caches_are_bounded(tmp_path: Path) -> None:
    files = {f"parts/t{k}.dat": f"0 T{k}\n3 16 {k} 0 0 1 0 0 0 1 0\n" for k in range(5)}
    make_library(tmp_path, files)
    lib = LDrawLibrary(tmp_path, max_files=2)
    first = lib.part_mesh("t0").triangles.copy()
    for k in range(1, 5):
        lib.part_mesh(f"t{k}")
    info = lib.cache_info()
    assert info["files_cached"] <= 2 and info["meshes_cached"] <= 2
    np.testing.assert_array_equal(lib.part_mesh("t0").triangles, first)  # evicted, rebuilt the same
    small = LDrawLibrary(tmp_path, max_mesh_elements=1)
    for k in range(5):
        small.part_mesh(f"t{k}")
    assert small.cache_info()["meshes_cached"] == 1


# -- the official library (development data) ----------------------------------------------------


def _extent(mesh: Mesh) -> list[float]:
    lo, hi = mesh.bounds
    return (hi - lo).round(3).tolist()


@pytest.mark.shared
def test_official_3001_dimensions_and_top_face(shared_ldraw: Path) -> None:
    lib = LDrawLibrary(shared_ldraw)
    mesh = lib.part_mesh("3001")
    assert _extent(mesh) == [80, 28, 40]  # 24 body + 4 stud
    assert lib.part_title("3001") == "Brick  2 x  4" and lib.part_category("3001") == "Brick"
    assert not mesh.two_sided.any()
    # The large top face lies at y = 0 (studs above it); its normal must point up, to -Y.
    area = (
        np.linalg.norm(
            np.cross(
                mesh.triangles[:, 1] - mesh.triangles[:, 0], mesh.triangles[:, 2] - mesh.triangles[:, 0]
            ),
            axis=1,
        )
        / 2
    )
    on_top = np.abs(mesh.triangles[:, :, 1]).max(axis=1) < 1e-4
    biggest = np.argmax(np.where(on_top, area, 0))
    assert area[biggest] > 1000
    np.testing.assert_allclose(mesh.normals[biggest], [0, -1, 0], atol=1e-6)


@pytest.mark.shared
def test_official_plate_and_tile_heights(shared_ldraw: Path) -> None:
    lib = LDrawLibrary(shared_ldraw)
    assert lib.resolve_part("3023") == "3023b"
    assert _extent(lib.part_mesh("3023"))[1] == 12  # plate 8 + stud 4
    assert _extent(lib.part_mesh("3069b"))[1] == 8  # tile: no studs


@pytest.mark.shared
@pytest.mark.slow
def test_official_200_popular_parts_flatten(shared_ldraw: Path) -> None:
    names = (shared_ldraw / "lists" / "b200c_popular.txt").read_text().split()[:200]
    lib = LDrawLibrary(shared_ldraw)
    start = time.perf_counter()
    failures, inward = {}, []
    for name in names:
        try:
            mesh = lib.part_mesh(name)
        except LDrawError as exc:
            failures[name] = str(exc)
            continue
        if len(mesh.triangles) == 0:
            failures[name] = "empty mesh"
            continue
        # Outward winding encloses a positive signed volume (a sum over the certified triangles).
        t = mesh.triangles[~mesh.two_sided].astype(np.float64)
        if len(t) and np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() <= 0:
            inward.append(name)
    elapsed = time.perf_counter() - start
    print(f"flattened {len(names)} parts in {elapsed:.2f} s, {lib.files_parsed} files parsed")
    assert len(names) == 200 and failures == {}
    assert inward == []
    assert lib.files_parsed == lib.cache_info()["files_cached"]  # nothing parsed twice
