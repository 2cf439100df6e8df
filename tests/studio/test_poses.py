"""Stable resting poses: hull, stability, probabilities, placement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from studio.errors import RenderError
from studio.ldraw import LDrawLibrary
from studio.mesh import Mesh
from studio.poses import (
    convex_hull_planes,
    placement,
    rotation_to_down,
    stable_poses,
    surface_centroid,
)


def mesh_of(tris: list[np.ndarray] | np.ndarray) -> Mesh:
    t = np.asarray(tris, np.float32)
    n = len(t)
    return Mesh(
        t,
        np.full(n, 16, np.int32),
        np.zeros(n, bool),
        np.zeros((0, 2, 3), np.float32),
        np.zeros(0, np.int32),
        np.zeros((0, 4, 3), np.float32),
    )


def pyramid(height: float = 60.0, half: float = 20.0) -> Mesh:
    """A square pyramid standing on its base (y = 0) with its apex up at y = -height."""
    b = np.array([[-half, 0, -half], [half, 0, -half], [half, 0, half], [-half, 0, half]], float)
    apex = np.array([0.0, -height, 0.0])
    tris = [b[[0, 2, 1]], b[[0, 3, 2]]] + [np.array([b[i], b[(i + 1) % 4], apex]) for i in range(4)]
    return mesh_of(tris)


def box(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> Mesh:
    x0, y0, z0 = lo
    x1, y1, z1 = hi
    v = np.array(
        [[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)],
        float,
    )
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return mesh_of([v[[q[0], q[1], q[2]]] for q in quads] + [v[[q[0], q[2], q[3]]] for q in quads])


@pytest.fixture(scope="module")
def demo(demo_library: Path) -> LDrawLibrary:
    return LDrawLibrary(demo_library)


def downs(poses: list) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in np.round(p.down)) for p in poses}


def test_brick_rests_on_bottom_top_and_sides(demo: LDrawLibrary) -> None:
    poses = stable_poses(demo.part_mesh("demo-3001"))
    # LDraw's +Y is down: (0, 1, 0) = on its bottom (studs up), (0, -1, 0) = on its studs.
    assert downs(poses) == {(0, 1, 0), (0, -1, 0), (1, 0, 0), (-1, 0, 0), (0, 0, 1), (0, 0, -1)}
    by_down = {tuple(int(v) for v in np.round(p.down)): p for p in poses}
    # A 2x4 brick lands on a long side (80 x 24 face) more often than on an end (40 x 24).
    assert by_down[(0, 0, 1)].probability > by_down[(1, 0, 0)].probability
    assert by_down[(0, 1, 0)].support_area == pytest.approx(80 * 40, rel=0.01)
    assert sum(p.probability for p in poses) == pytest.approx(1.0)
    assert [p.probability for p in poses] == sorted((p.probability for p in poses), reverse=True)


def test_pointy_pyramid_never_rests_on_its_apex() -> None:
    poses = stable_poses(pyramid())
    apex_down = np.array([0.0, -1.0, 0.0])  # the apex points to -Y in the mesh
    assert poses, "a pyramid must rest somewhere"
    for p in poses:
        assert p.down @ apex_down < 0.9, "no pose may point the apex down"
        assert p.support_area > 100  # a face, not a point
    assert (0, 1, 0) in downs(poses)  # on its base


def test_round_brick_rests_on_both_ends_and_its_side(demo: LDrawLibrary) -> None:
    # Decision: the side of a cylinder is a pose (a dropped round brick rolls, then lies on its
    # side). Its tessellated facets are merged into ONE pose, so there are exactly three.
    poses = stable_poses(demo.part_mesh("demo-3062b"))
    assert len(poses) == 3
    vertical = sorted(round(float(p.down[1])) for p in poses)
    assert vertical == [-1, 0, 1]
    side = next(p for p in poses if abs(p.down[1]) < 1e-6)
    assert side.probability > 0.3  # a tall cylinder lies on its side most often


def test_tessellated_stud_gives_no_knife_edge_poses(demo: LDrawLibrary) -> None:
    # A 1x1 brick leaning on one stud edge and one corner has a sliver contact that a polygonal
    # stud makes look stable; the tipping-barrier test rejects it.
    poses = stable_poses(demo.part_mesh("demo-3005"))
    for p in poses:
        assert np.isclose(np.abs(p.down).max(), 1.0, atol=1e-6), p.down


def test_rotations_are_proper_and_placement_rests_on_the_plane(demo: LDrawLibrary) -> None:
    for part in ("demo-3001", "demo-3039", "demo-3062b", "demo-3023"):
        mesh = demo.part_mesh(part)
        com = surface_centroid(mesh)
        for pose in stable_poses(mesh):
            r = pose.rotation
            assert np.allclose(r @ r.T, np.eye(3), atol=1e-9)
            assert np.linalg.det(r) == pytest.approx(1.0)
            assert r @ pose.down == pytest.approx([0.0, 1.0, 0.0], abs=1e-9)
            m = placement(pose, yaw_deg=37.0, xz_offset=(5.0, -7.0))
            pts = mesh.transformed(m).triangles.reshape(-1, 3)
            # All vertices on or above the plane y = 0 (-Y is up); the lowest touch it.
            assert pts[:, 1].max() == pytest.approx(0.0, abs=1e-3)
            moved_com = m[:3, :3] @ com + m[:3, 3]
            assert moved_com[[0, 2]] == pytest.approx([5.0, -7.0], abs=1e-3)  # yaw turns about the COM


def test_box_probabilities_follow_face_size() -> None:
    poses = stable_poses(box((0, 0, 0), (60, 10, 30)))
    assert len(poses) == 6
    by_down = {tuple(int(v) for v in np.round(p.down)): p.probability for p in poses}
    assert by_down[(0, 1, 0)] == pytest.approx(by_down[(0, -1, 0)], rel=1e-4)
    assert by_down[(0, 1, 0)] > by_down[(0, 0, 1)] > by_down[(1, 0, 0)]


def test_max_poses_truncates_and_renormalises() -> None:
    poses = stable_poses(box((0, 0, 0), (60, 10, 30)), max_poses=2)
    assert len(poses) == 2
    assert sum(p.probability for p in poses) == pytest.approx(1.0)
    assert downs(poses) == {(0, 1, 0), (0, -1, 0)}


def test_convex_hull_planes_bound_all_points_and_merge_coplanar() -> None:
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(400, 3))
    planes = convex_hull_planes(pts, 1e-9)
    normals = np.array([n for n, _ in planes])
    offsets = np.array([d for _, d in planes])
    dist = pts @ normals.T - offsets
    assert dist.max() < 1e-7
    assert ((np.abs(dist) < 1e-7).sum(axis=0) >= 3).all()  # every plane touches the cloud
    grid = np.stack(np.meshgrid(*[np.arange(4.0)] * 3), -1).reshape(-1, 3)
    assert len(convex_hull_planes(grid, 1e-9)) == 6  # a cube's 6 faces, despite 16 points each


def test_rotation_to_down_handles_both_poles() -> None:
    for v in ([0, 1, 0], [0, -1, 0], [1, 0, 0], [0.3, -0.2, 0.9]):
        r = rotation_to_down(np.asarray(v, float))
        assert r @ (np.asarray(v) / np.linalg.norm(v)) == pytest.approx([0, 1, 0], abs=1e-9)
        assert np.linalg.det(r) == pytest.approx(1.0)


def test_bad_meshes_and_arguments_raise_clear_errors() -> None:
    with pytest.raises(RenderError, match="empty mesh"):
        stable_poses(Mesh.empty())
    flat = mesh_of([[[0, 0, 0], [10, 0, 0], [0, 0, 10]], [[10, 0, 0], [10, 0, 10], [0, 0, 10]]])
    with pytest.raises(RenderError, match="flat"):
        stable_poses(flat)
    bad = pyramid()
    nan = mesh_of(np.where(np.arange(3)[None, None, :] == 0, np.nan, bad.triangles))
    with pytest.raises(RenderError, match="NaN"):
        stable_poses(nan)
    with pytest.raises(ValueError, match="max_poses"):
        stable_poses(bad, max_poses=0)
    with pytest.raises(ValueError, match="xz_offset"):
        placement(stable_poses(bad)[0], 0.0, (1.0, 2.0, 3.0))  # type: ignore[arg-type]
