"""Logo studs: the LDraw reader draws stud.dat as stud-logo4.dat (and its family) when asked to."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from studio.ldraw import LOGO_STUDS, LDrawLibrary
from studio.poses import stable_poses


def _write(root: Path, rel: str, *lines: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["0 BFC CERTIFY CCW", *lines]) + "\n")


def _library(root: Path) -> Path:
    _write(root, "p/stud.dat", "3 16 0 0 0 1 0 0 0 0 1")  # 1 triangle
    _write(root, "p/stud-logo4.dat", "3 16 0 0 0 1 0 0 0 0 1", "4 16 0 -1 0 1 -1 0 1 -1 1 0 -1 1")  # 3
    _write(root, "p/48/stud.dat", "3 16 0 0 0 1 0 0 0 0 1")
    _write(root, "p/48/stud-logo4.dat", "3 16 0 0 0 1 0 0 0 0 1", "3 16 0 0 0 2 0 0 0 0 2")  # 2
    _write(root, "p/stud2.dat", "3 16 0 0 0 1 0 0 0 0 1")  # no logo version in this library
    _write(
        root,
        "parts/x.dat",
        "0 Test part",
        "1 16 0 0 0 1 0 0 0 1 0 0 0 1 stud.dat",
        "1 4 20 0 0 1 0 0 0 1 0 0 0 1 STUD.DAT",
        r"1 16 40 0 0 1 0 0 0 1 0 0 0 1 48\stud.dat",
        "1 16 60 0 0 1 0 0 0 1 0 0 0 1 stud2.dat",
    )
    return root


def test_logo_studs_replace_plain_studs_where_the_logo_file_exists(tmp_path: Path) -> None:
    root = _library(tmp_path)
    plain = LDrawLibrary(root).part_mesh("x")
    logo = LDrawLibrary(root, logo_studs=True).part_mesh("x")
    assert len(plain.triangles) == 4
    assert len(logo.triangles) == 3 + 3 + 2 + 1  # stud, STUD (any case), 48\stud, stud2 kept plain
    assert sorted(set(logo.colors.tolist())) == [4, 16]  # the reference's colour still applies
    assert "stud.dat" in LOGO_STUDS and LOGO_STUDS["stud2.dat"] == "stud2-logo4.dat"


def test_demo_parts_without_logo_files_are_unchanged(demo_library: Path) -> None:
    for part in ("demo-3001", "demo-3023"):
        a = LDrawLibrary(demo_library).part_mesh(part)
        b = LDrawLibrary(demo_library, logo_studs=True).part_mesh(part)
        assert np.array_equal(a.triangles, b.triangles)


def test_logo_studs_keep_the_part_resting_on_the_plane(shared_ldraw: Path) -> None:
    """Thousands of tiny logo faces defeated the small quickhull; poses must still rest on y = 0."""
    from studio.poses import placement

    mesh = LDrawLibrary(shared_ldraw, logo_studs=True).part_mesh("3023")
    assert len(mesh.triangles) > 2 * len(LDrawLibrary(shared_ldraw).part_mesh("3023").triangles)
    for pose in stable_poses(mesh):
        _, hi = mesh.transformed(placement(pose, 0.0)).bounds
        assert hi[1] < 0.05
