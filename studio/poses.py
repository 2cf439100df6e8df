"""Stable resting poses of a part dropped on a flat turntable.

A rigid part at rest on a plane touches it with a face of its convex hull, and it stays there only
if its centre of mass lies above the inside of that face (the contact polygon). This module finds
those faces with a small 3D convex hull (scipy is not available on the Pi), keeps the stable ones
and weights them by the quasi-static drop model: a part dropped in a random orientation settles on
the face whose *solid angle seen from the centre of mass* contains the downward direction. An
unstable face's solid angle goes to the stable pose whose down direction is nearest (the part tips
over onto it).

Decisions worth knowing:

* Centre of mass: the area-weighted centroid of the surface triangles. LEGO parts are thin-walled
  ABS shells, so the shell centroid is closer to the real mass centre than the solid-volume one,
  and it needs no closed, consistently wound mesh (LDraw meshes are neither).
* Round parts: a tessellated cylinder lying on its side touches the plane with one thin facet, and
  every facet of the ring is (barely) stable. The part really rolls along that ring until friction
  stops it, so neighbouring facets less than 25 degrees apart are merged into ONE pose (neutral
  equilibrium on the side) carrying the ring's whole probability. A 1x1 round brick thus has three
  poses: on its bottom, on its studs, and on its side.
* Knife edges: a face is kept only if tipping it over its contact polygon's edges lifts the centre
  of mass by a minimum amount, so sliver contacts (a 1x1 brick balanced on a stud's rim and a
  corner, an artefact of polygonal studs) are not poses; see :func:`stable_poses`.
* Probability: solid angle, as above; it is known to favour edge-standing poses of flat parts a
  little compared with real drops (no bouncing, no energy term).
* Axes: LDraw's, with -Y up. A posed part rests on the plane y = 0 with every vertex at y <= 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from studio.errors import RenderError
from studio.mesh import Mesh

#: World "down" in LDraw axes (+Y).
DOWN = np.array([0.0, 1.0, 0.0])


@dataclass(frozen=True)
class Pose:
    """One way a part rests on the turntable.

    Attributes:
        rotation: (3, 3) proper rotation (det +1) turning the part's mesh so its support face faces
            down (+Y).
        probability: chance that a dropped part lands in this pose (solid-angle weight; all poses
            returned by :func:`stable_poses` sum to 1).
        support_area: area of the contact polygon, in LDU^2.
        shift: (3,) translation applied after ``rotation`` that puts the support plane at y = 0 and
            the centre of mass above the origin (x = z = 0).
        down: (3,) unit vector in the mesh's own frame that points down in this pose.
    """

    rotation: np.ndarray
    probability: float
    support_area: float
    shift: np.ndarray
    down: np.ndarray


def surface_centroid(mesh: Mesh) -> np.ndarray:
    """Area-weighted centroid of the mesh's triangles (the mass centre of a thin shell)."""
    tris = mesh.triangles.astype(np.float64)
    area = 0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)
    if len(tris) == 0 or area.sum() <= 0:
        raise RenderError("the mesh has no triangles with area; cannot find its centre of mass")
    return (tris.mean(axis=1) * area[:, None]).sum(axis=0) / area.sum()


def convex_hull_planes(points: np.ndarray, eps: float) -> list[tuple[np.ndarray, float]]:
    """Supporting planes ``(unit outward normal n, offset d)`` of the convex hull, ``n.p <= d``.

    A small quickhull. Points within ``eps`` of a face count as on it, so coplanar points (LEGO
    meshes are full of them) never create sliver faces; coplanar triangles are merged into one plane.
    Many tiny, nearly coplanar features (logo studs) can defeat it: a hull that does not hold every
    point is computed again with scipy's Qhull (PC only; the Pi never needs it).
    """
    pts = np.unique(np.round(np.asarray(points, np.float64) / eps) * eps, axis=0)
    try:
        planes = _quickhull(pts, eps)
    except KeyError:  # its horizon broke on near-degenerate input
        planes = []
    if planes:
        normals = np.array([n for n, _ in planes])
        offsets = np.array([d for _, d in planes])
        if float((pts @ normals.T - offsets).max()) <= 1000 * eps:
            return planes
    try:
        from scipy.spatial import ConvexHull
    except ImportError:
        raise RenderError(
            "this mesh's convex hull needs scipy (near-degenerate geometry, e.g. logo studs): "
            "pip install scipy"
        ) from None
    eq = ConvexHull(pts).equations
    return _merge_planes(eq[:, :3], -eq[:, 3], eps)


def _quickhull(pts: np.ndarray, eps: float) -> list[tuple[np.ndarray, float]]:
    if len(pts) < 4:
        raise RenderError(f"the mesh has only {len(pts)} distinct vertices; a solid part needs 4 or more")
    simplex = _initial_simplex(pts, eps)
    if simplex is None:
        raise RenderError("the mesh is flat (all vertices on one plane); it cannot rest on a face")
    inner = pts[simplex].mean(axis=0)
    faces: dict[int, tuple[int, int, int]] = {}
    planes: dict[int, tuple[np.ndarray, float]] = {}
    outside: dict[int, np.ndarray] = {}
    edge_face: dict[tuple[int, int], int] = {}
    next_id = 0

    def add_face(a: int, b: int, c: int) -> int:
        nonlocal next_id
        n = np.cross(pts[b] - pts[a], pts[c] - pts[a])
        n /= np.linalg.norm(n)
        fid = next_id
        next_id += 1
        faces[fid] = (a, b, c)
        planes[fid] = (n, float(n @ pts[a]))
        for e in ((a, b), (b, c), (c, a)):
            edge_face[e] = fid
        return fid

    def assign(candidates: np.ndarray, new_faces: list[int]) -> None:
        if len(candidates) == 0:
            for f in new_faces:
                outside[f] = candidates
            return
        normals = np.array([planes[f][0] for f in new_faces])
        offsets = np.array([planes[f][1] for f in new_faces])
        dist = pts[candidates] @ normals.T - offsets
        best = dist.argmax(axis=1)
        keep = dist[np.arange(len(candidates)), best] > eps
        for k, f in enumerate(new_faces):
            outside[f] = candidates[keep & (best == k)]

    a, b, c, d = simplex
    tet = [(a, b, c), (a, c, d), (a, d, b), (b, d, c)]
    first = []
    for i, j, k in tet:
        n = np.cross(pts[j] - pts[i], pts[k] - pts[i])
        first.append(add_face(i, j, k) if n @ (inner - pts[i]) < 0 else add_face(i, k, j))
    assign(np.setdiff1d(np.arange(len(pts)), simplex), first)

    pending = [f for f in first if len(outside[f])]
    while pending:
        todo = pending.pop()
        if todo not in faces or not len(outside[todo]):
            continue
        n0, d0 = planes[todo]
        far = int(outside[todo][np.argmax(pts[outside[todo]] @ n0 - d0)])
        p = pts[far]
        visible = {todo}
        stack = [todo]
        while stack:  # flood over the faces the new point sees
            f = stack.pop()
            i, j, k = faces[f]
            for e in ((j, i), (k, j), (i, k)):
                g = edge_face[e]
                if g not in visible and planes[g][0] @ p - planes[g][1] > eps:
                    visible.add(g)
                    stack.append(g)
        horizon = [
            e
            for f in visible
            for e in ((faces[f][0], faces[f][1]), (faces[f][1], faces[f][2]), (faces[f][2], faces[f][0]))
            if edge_face[(e[1], e[0])] not in visible
        ]
        orphans = np.concatenate([outside.pop(f) for f in visible])
        for f in visible:
            i, j, k = faces.pop(f)
            planes.pop(f)
            for e in ((i, j), (j, k), (k, i)):
                if edge_face.get(e) == f:
                    del edge_face[e]
        new_faces = [add_face(i, j, far) for i, j in horizon]
        assign(orphans[orphans != far], new_faces)
        pending.extend(f for f in new_faces if len(outside[f]))

    # Merge coplanar triangles: sort by (quantised) plane so repeats sit next to each other, then
    # keep a plane only if none of the few planes kept just before it is the same.
    normals = np.array([n for n, _ in planes.values()])
    offsets = np.array([d for _, d in planes.values()])
    return _merge_planes(normals, offsets, eps)


def _merge_planes(normals: np.ndarray, offsets: np.ndarray, eps: float) -> list[tuple[np.ndarray, float]]:
    keys = np.round(np.column_stack([normals * 1e4, offsets / (100 * eps)])).astype(np.int64)
    merged: list[tuple[np.ndarray, float]] = []
    for k in np.lexsort(keys.T[::-1]):
        n, off = normals[k], float(offsets[k])
        if not any(m @ n > 1 - 1e-9 and abs(o - off) < 4 * eps for m, o in merged[-8:]):
            merged.append((n, off))
    return merged


def _initial_simplex(pts: np.ndarray, eps: float) -> list[int] | None:
    """Four affinely independent points spanning a large tetrahedron, or None when flat."""
    i0 = int(np.argmin(pts[:, 0]))
    i1 = int(np.argmax(np.linalg.norm(pts - pts[i0], axis=1)))
    line = pts[i1] - pts[i0]
    if np.linalg.norm(line) <= eps:
        return None
    line /= np.linalg.norm(line)
    rel = pts - pts[i0]
    perp = rel - np.outer(rel @ line, line)
    i2 = int(np.argmax(np.linalg.norm(perp, axis=1)))
    if np.linalg.norm(perp[i2]) <= eps:
        return None
    n = np.cross(line, pts[i2] - pts[i0])
    n /= np.linalg.norm(n)
    height = rel @ n
    i3 = int(np.argmax(np.abs(height)))
    if abs(height[i3]) <= eps:
        return None
    return [i0, i1, i2, i3]


def rotation_to_down(down: np.ndarray) -> np.ndarray:
    """The smallest proper rotation taking unit vector ``down`` onto +Y."""
    v = np.asarray(down, np.float64) / np.linalg.norm(down)
    axis = np.cross(v, DOWN)
    s, c = np.linalg.norm(axis), float(v @ DOWN)
    if s < 1e-12:
        # Already down, or straight up: turn half a revolution about X.
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * (kx @ kx)


def _polygon_solid_angle(poly: np.ndarray, apex: np.ndarray) -> float:
    """Solid angle of a convex planar polygon (K,3) seen from ``apex`` (Van Oosterom-Strackee)."""
    r = poly - apex
    total = 0.0
    for k in range(1, len(r) - 1):
        a, b, c = r[0], r[k], r[k + 1]
        la, lb, lc = np.linalg.norm(a), np.linalg.norm(b), np.linalg.norm(c)
        num = abs(a @ np.cross(b, c))
        den = la * lb * lc + (a @ b) * lc + (a @ c) * lb + (b @ c) * la
        total += 2.0 * math.atan2(num, den)
    return total


@dataclass
class _Face:
    down: np.ndarray  # unit outward normal of the hull face = the down direction when resting on it
    contact: set[int]  # indices of mesh vertices on the support plane
    polygon: np.ndarray  # (K,3) contact hull polygon in mesh coordinates
    hinges: list[tuple[int, int]]  # the polygon's edges as pairs of vertex indices
    hinge_margin: np.ndarray  # (K,) distance from the projected centre of mass to each edge's line
    area: float
    solid_angle: float
    inside: float  # signed distance of the projected centre of mass to the polygon's boundary
    height: float  # height of the centre of mass above the support plane


def _analyse_face(n: np.ndarray, offset: float, verts: np.ndarray, com: np.ndarray, tol: float) -> _Face:
    on_plane = np.flatnonzero(verts @ n >= offset - tol)
    # An orthonormal basis (u, w) of the support plane.
    u = np.cross(n, [1.0, 0.0, 0.0] if abs(n[0]) < 0.9 else [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    w = np.cross(n, u)
    flat = np.stack([verts[on_plane] @ u, verts[on_plane] @ w], axis=1)
    order: np.ndarray = np.arange(len(flat))
    if len(flat) >= 3:
        order = cv2.convexHull(flat.astype(np.float32), returnPoints=False).ravel()
    hull2d = flat[order]
    area = abs(float(cv2.contourArea(hull2d.astype(np.float32)))) if len(hull2d) >= 3 else 0.0
    polygon = n * offset + hull2d[:, :1] * u + hull2d[:, 1:] * w
    ids = on_plane[order]
    hinges = [(int(ids[k]), int(ids[(k + 1) % len(ids)])) for k in range(len(ids))]
    c2 = np.array([com @ u, com @ w])
    inside, margin = -1.0, np.full(len(ids), -1.0)
    if area > tol * tol:
        inside = cv2.pointPolygonTest(hull2d.astype(np.float32).reshape(-1, 1, 2), tuple(c2.tolist()), True)
        edge = np.roll(hull2d, -1, axis=0) - hull2d
        rel = c2 - hull2d
        margin = np.abs(edge[:, 0] * rel[:, 1] - edge[:, 1] * rel[:, 0]) / np.linalg.norm(edge, axis=1)
    solid = _polygon_solid_angle(polygon, com) if len(polygon) >= 3 else 0.0
    height = float(offset - com @ n)
    return _Face(n, set(on_plane.tolist()), polygon, hinges, margin, area, solid, float(inside), height)


def _tip_barrier(margin: np.ndarray | float, height: float) -> np.ndarray:
    """How far the centre of mass must rise to tip the part over an edge ``margin`` away."""
    return np.hypot(margin, height) - height


def stable_poses(mesh: Mesh, max_poses: int = 8, *, min_barrier_frac: float = 0.004) -> list[Pose]:
    """The orientations in which ``mesh`` rests on a flat surface, most probable first.

    Resting candidates are the convex hull faces whose contact polygon holds the projected centre
    of mass. Tipping one over a polygon edge lifts the centre of mass by ``hypot(m, h) - h`` (``m``
    the distance to that edge, ``h`` the height); an edge whose lift is below ``min_barrier_frac``
    of the part's largest extent is *soft*. Candidates joined by a soft edge, or neighbours less
    than 25 degrees apart (the facets of a tessellated cylinder's side, along which the part
    rolls), form one basin, shown by its lowest-energy face. A basin is a pose if that face has no
    soft edge leading out of the candidates (else the part tips away). This rejects the sliver
    facets of tessellated studs and cones and turns a cylinder's side into a single pose, while
    keeping tall-but-wide poses and edge-standing plates.

    Args:
        mesh: the part, in LDraw units and axes.
        max_poses: keep at most this many poses (the most probable); probabilities are renormalised.
        min_barrier_frac: the soft-edge threshold above.

    Raises:
        ValueError: ``max_poses`` below 1 or ``min_barrier_frac`` outside [0, 0.1].
        RenderError: the mesh is empty, flat or non-finite.
    """
    if isinstance(max_poses, bool) or not isinstance(max_poses, int) or max_poses < 1:
        raise ValueError(f"max_poses={max_poses!r} must be an integer of at least 1")
    if not 0 <= min_barrier_frac <= 0.1:
        raise ValueError(f"min_barrier_frac={min_barrier_frac!r} must be in [0, 0.1]")
    if len(mesh.triangles) == 0:
        raise RenderError("cannot find resting poses of an empty mesh (no triangles); check the part file")
    verts = np.unique(mesh.triangles.reshape(-1, 3).astype(np.float64), axis=0)
    if not np.isfinite(verts).all():
        raise RenderError("the mesh has NaN or infinite vertex coordinates; check the part file")
    extent = float(np.max(verts.max(axis=0) - verts.min(axis=0)))
    eps = max(extent * 1e-6, 1e-9)
    tol = max(extent * 1e-4, 1e-6)  # how far off the support plane a vertex still touches it
    com = surface_centroid(mesh)
    faces = [_analyse_face(n, off, verts, com, tol) for n, off in convex_hull_planes(verts, eps)]
    groups = _basins(faces, min_barrier_frac * extent, tol)

    weights = np.array([sum(faces[i].solid_angle for i in g) for g in groups])
    downs = np.array([faces[g[0]].down for g in groups])
    members = {i for g in groups for i in g}
    for i, f in enumerate(faces):
        if i not in members:  # the part tips over onto the nearest pose (ties share)
            closeness = downs @ f.down
            nearest = closeness >= closeness.max() - 1e-6
            weights[nearest] += f.solid_angle / nearest.sum()

    order = np.argsort(-weights, kind="stable")[:max_poses]
    total = float(weights[order].sum())
    poses = []
    for i in order:
        face = faces[groups[i][0]]
        rot = rotation_to_down(face.down)
        turned = com @ rot.T
        support = float(face.down @ face.polygon[0])  # the plane's offset along down
        shift = np.array([-turned[0], -support, -turned[2]])
        poses.append(Pose(rot, float(weights[i]) / total, face.area, shift, face.down.copy()))
    return poses


def _basins(faces: list[_Face], threshold: float, tol: float) -> list[list[int]]:
    """Stable basins as lists of face indices, each led by the face the part is shown on."""
    holding = [i for i, f in enumerate(faces) if f.inside > 0]
    if not holding:
        raise RenderError("the part's centre of mass lies outside its convex hull; check the mesh")
    in_h = set(holding)
    by_vertex: dict[int, set[int]] = {}
    for i in holding:
        for v in faces[i].contact:
            by_vertex.setdefault(v, set()).add(i)
    parent = {i: i for i in holding}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    cos_roll = math.cos(math.radians(25))
    leaks = set()
    for i in holding:
        f = faces[i]
        soft = _tip_barrier(f.hinge_margin, f.height) < threshold
        for (a, b), is_soft in zip(f.hinges, soft, strict=True):
            across = (by_vertex.get(a, set()) & by_vertex.get(b, set())) - {i}
            for j in across:
                if is_soft or f.down @ faces[j].down > cos_roll:
                    parent[root(i)] = root(j)
            if is_soft and not across:
                leaks.add(i)
    grouped: dict[int, list[int]] = {}
    for i in holding:
        grouped.setdefault(root(i), []).append(i)
    basins = []
    for members in grouped.values():
        low = min(faces[i].height for i in members)
        bottom = [i for i in members if faces[i].height <= low + tol]
        if any(i in leaks for i in bottom):
            continue
        lead = max(bottom, key=lambda i: (faces[i].area, faces[i].solid_angle))
        basins.append([lead] + [i for i in members if i != lead])
    if not basins:
        # Every basin leaks (a near-sphere): the part still rests somewhere, on the face whose
        # centre of mass sits lowest, which always holds it.
        lead = min(in_h, key=lambda i: faces[i].height)
        basins = [[lead]]
    return basins


def placement(pose: Pose, yaw_deg: float = 0.0, xz_offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """4x4 transform putting a part in ``pose`` on the plane y = 0.

    The part is turned by ``pose.rotation``, lowered onto y = 0 with its centre of mass above the
    origin, turned by ``yaw_deg`` about the vertical axis through that centre (right-handed about
    +Y), then moved by ``xz_offset`` (LDU) along X and Z.
    """
    offset = np.asarray(xz_offset, np.float64)
    if offset.shape != (2,) or not np.isfinite(offset).all():
        raise ValueError(f"xz_offset={xz_offset!r} must be two finite numbers (x, z) in LDU")
    if not math.isfinite(yaw_deg):
        raise ValueError(f"yaw_deg={yaw_deg!r} must be a finite angle in degrees")
    base = np.eye(4)
    base[:3, :3] = pose.rotation
    base[:3, 3] = pose.shift
    return translation(offset[0], 0.0, offset[1]) @ yaw_matrix(yaw_deg) @ base


def yaw_matrix(angle_deg: float) -> np.ndarray:
    """4x4 rotation by ``angle_deg`` about the vertical (Y) axis through the origin."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    m = np.eye(4)
    m[:3, :3] = [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
    return m


def translation(x: float, y: float, z: float) -> np.ndarray:
    """4x4 translation."""
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m
