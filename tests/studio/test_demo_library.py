"""Tests for the project's own demo LDraw library: contents, real LEGO dimensions, winding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from studio.demo_library import DEMO_COLOURS, DEMO_PARTS, write_demo_library
from studio.errors import DataFileError
from studio.ldconfig import read_ldconfig
from studio.ldraw import LDrawLibrary
from studio.ldraw_parse import read_ldraw
from studio.mesh import EDGE_COLOR, MAIN_COLOR, Mesh


@pytest.fixture(scope="module")
def lib(demo_library: Path) -> LDrawLibrary:
    return LDrawLibrary(demo_library)


def extent(mesh: Mesh) -> list[float]:
    lo, hi = mesh.bounds
    return (hi - lo).round(4).tolist()


def signed_volume(mesh: Mesh) -> float:
    """Volume enclosed by the triangles: positive when their normals point outwards."""
    t = mesh.triangles.astype(np.float64)
    return float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6)


def test_writes_the_promised_parts_and_folders(demo_library: Path, tmp_path: Path) -> None:
    ids = write_demo_library(tmp_path / "lib")
    assert ids == DEMO_PARTS
    assert all(i.startswith("demo-") for i in ids)
    for part in ids:
        assert (tmp_path / "lib" / "parts" / f"{part}.dat").is_file()
    assert (tmp_path / "lib" / "parts" / "s" / "demo-3001s01.dat").is_file()
    assert (tmp_path / "lib" / "p" / "demo-stud.dat").is_file()
    # Writing again over an existing library gives the same files.
    before = {p: p.read_bytes() for p in (tmp_path / "lib").rglob("*") if p.is_file()}
    assert write_demo_library(tmp_path / "lib") == ids
    assert before == {p: p.read_bytes() for p in (tmp_path / "lib").rglob("*") if p.is_file()}
    assert len(before) == len(list(demo_library.rglob("*.dat"))) + 1  # + LDConfig.ldr


def test_titles_say_they_are_simplified(lib: LDrawLibrary) -> None:
    for part in DEMO_PARTS:
        title = lib.part_title(part)
        assert title.endswith("(simplified, written by lego-edge)"), title
    assert lib.part_category("demo-3001") == "Brick"
    assert lib.part_category("demo-3023") == "Plate"
    assert lib.part_category("demo-3039") == "Slope"


def test_alias_resolves_to_the_tile(lib: LDrawLibrary) -> None:
    assert lib.resolve_part("demo-3068") == "demo-3068b"
    assert lib.part_mesh("demo-3068") is lib.part_mesh("demo-3068b")


@pytest.mark.parametrize(
    ("part", "size"),
    [
        ("demo-3001", [80, 28, 40]),  # 2 x 4 studs at 20 LDU, 24 body + 4 stud
        ("demo-3023", [40, 12, 20]),  # plate: 8 + 4
        ("demo-3068b", [40, 8, 40]),  # tile: no studs
        ("demo-3062b", [20, 28, 20]),
        ("demo-3039", [40, 28, 40]),
        ("demo-3005", [20, 28, 20]),
    ],
)
def test_dimensions_match_real_lego(lib: LDrawLibrary, part: str, size: list[float]) -> None:
    mesh = lib.part_mesh(part)
    assert extent(mesh) == size
    assert mesh.bounds[0][1] == (0 if part == "demo-3068b" else -4)  # studs rise 4 LDU above the top at y = 0
    assert len(mesh.edges) > 0 and set(mesh.edge_colors.tolist()) == {EDGE_COLOR}
    assert set(mesh.colors.tolist()) == {MAIN_COLOR}


def test_studs_have_radius_6_on_a_20_ldu_pitch(lib: LDrawLibrary) -> None:
    mesh = lib.part_mesh("demo-3001")
    pts = mesh.triangles.reshape(-1, 3)
    stud = pts[pts[:, 1] < 0]  # only studs lie above the top face
    assert stud[:, 1].min() == -4
    centres = np.array([(x, z) for x in (-30, -10, 10, 30) for z in (-10, 10)], np.float32)
    dist = np.linalg.norm(stud[:, None, [0, 2]] - centres[None], axis=2).min(axis=1)
    assert dist.max() == pytest.approx(6, abs=1e-4)


def test_certified_parts_are_closed_and_wound_outwards(lib: LDrawLibrary) -> None:
    def prism(radius: float, height: float) -> float:  # the 16-sided cylinders of the demo parts
        return 8 * radius**2 * np.sin(2 * np.pi / 16) * height

    stud = prism(6, 4)  # open at its foot, which lies in the plane y = 0 and adds no volume
    expected = {
        "demo-3068b": 40 * 8 * 40,
        "demo-3023": 40 * 8 * 20 + 2 * stud,
        "demo-3001": 80 * 24 * 40 - 72 * 20 * 32 + 8 * stud,  # shell minus the inverted inner box
        "demo-3039": (40 * 24 - 20 * 20 / 2) * 40 + 2 * stud,
        "demo-3062b": prism(10, 24) + stud,
    }
    for part, volume in expected.items():
        mesh = lib.part_mesh(part)
        assert not mesh.two_sided.any(), part
        assert signed_volume(mesh) == pytest.approx(volume, rel=1e-5), part


def test_top_faces_point_up(lib: LDrawLibrary) -> None:
    for part in ("demo-3001", "demo-3068b", "demo-3023"):
        mesh = lib.part_mesh(part)
        at_top = np.abs(mesh.triangles[:, :, 1]).max(axis=1) < 1e-4
        flat = np.abs(mesh.normals[:, 1]) > 0.999
        assert (at_top & flat).any(), part
        assert (mesh.normals[at_top & flat, 1] < 0).all(), part


def test_uncertified_part_is_all_two_sided(lib: LDrawLibrary) -> None:
    pf = read_ldraw(lib.find("demo-3005.dat"))
    assert not pf.certified
    assert lib.part_mesh("demo-3005").two_sided.all()  # its certified stud too: the parent is not
    assert read_ldraw(lib.find("demo-box.dat")).certified  # written as BFC CERTIFY CW


def test_every_file_is_parsed_once(demo_library: Path) -> None:
    fresh = LDrawLibrary(demo_library)
    for part in DEMO_PARTS:
        fresh.part_mesh(part)
    assert fresh.files_parsed == len(list(demo_library.rglob("*.dat")))


def test_ldconfig_holds_the_demo_colours(demo_library: Path) -> None:
    colours = read_ldconfig(demo_library / "LDConfig.ldr")
    assert set(colours) == set(DEMO_COLOURS)
    assert {MAIN_COLOR, EDGE_COLOR} <= set(colours)
    assert colours[4].name == "Red" and colours[4].rgb == (0xB4, 0, 0)


def test_unwritable_root_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataFileError, match="writable folder"):
        write_demo_library(blocker)
