"""Where the rig's camera looks: the turntable plane's pixels, cast shadows, framing a part.

Pure geometry for :mod:`studio.scene` (LDraw units and axes, -Y up; the turntable's top is y = 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from studio.camera import Camera
from studio.errors import RenderError
from studio.mesh import Mesh
from studio.poses import yaw_matrix

__all__ = [
    "crop_camera",
    "disc_coverage",
    "fit_in_frame",
    "footprint",
    "ground_shadows",
    "motion_direction",
    "plane_hits",
]


def plane_hits(cam: Camera, plane_y: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World (x, z) where each pixel's ray meets the plane y = plane_y, and where it does (t > 0)."""
    f = cam.focal
    px = (np.arange(cam.width) + 0.5 - cam.width / 2) / f
    py = (np.arange(cam.height) + 0.5 - cam.height / 2) / f
    rot = cam.rotation()  # rows: right, down, forward
    dirs = px[None, :, None] * rot[0] + py[:, None, None] * rot[1] + rot[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (plane_y - cam.position[1]) / dirs[:, :, 1]
    ok = np.isfinite(t) & (t > 0)
    t = np.where(ok, t, 0.0)
    return cam.position[0] + t * dirs[:, :, 0], cam.position[2] + t * dirs[:, :, 2], ok


def footprint(r: np.ndarray, where: np.ndarray) -> float:
    """Typical pixel size (LDU) on the plane, from how fast the radius changes across pixels."""
    gy, gx = np.gradient(r)
    g = np.hypot(gx, gy)[where]
    return float(np.median(g)) if g.size else 1.0


def disc_coverage(r: np.ndarray, radius: float, ok: np.ndarray) -> np.ndarray:
    """Antialiased coverage of the disc of ``radius`` given each pixel's radius on the plane."""
    gy, gx = np.gradient(np.where(ok, r, 0.0))
    step = np.maximum(np.hypot(gx, gy), 1e-6)
    return np.where(ok, np.clip((radius - r) / step + 0.5, 0.0, 1.0), 0.0).astype(np.float32)


def ground_shadows(cam: Camera, part: Mesh, to_light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Soft cast shadow (along the light) and contact occlusion (straight down) on the plane y = 0."""
    tris = part.triangles.astype(np.float64)
    seen = cam.project(part.triangles.reshape(-1, 3))[0]
    size_px = float(np.max(seen.max(axis=0) - seen.min(axis=0)))
    maps = []
    for direction, blur, strength in ((to_light, 0.02, 0.95), (np.array([0.0, -1.0, 0.0]), 0.1, 1.0)):
        d = np.asarray(direction, np.float64)
        if d[1] > -0.05:  # light at or below the horizon casts no shadow on the disc
            maps.append(np.zeros((cam.height, cam.width), np.float32))
            continue
        flat = tris - (tris[:, :, 1:2] / d[1]) * d  # slide each vertex along d onto y = 0
        xy, depth = cam.project(flat.reshape(-1, 3))
        polys = np.round(xy.reshape(-1, 3, 2) * 16).astype(np.int32)[(depth.reshape(-1, 3) > 0).all(1)]
        canvas = np.zeros((cam.height, cam.width), np.uint8)
        for poly in polys:  # one by one: fillPoly would treat overlaps as holes (even-odd rule)
            cv2.fillConvexPoly(canvas, poly, 255, cv2.LINE_8, 4)
        soft = cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), max(0.6, blur * size_px))
        maps.append(np.clip(soft * strength, 0, 1))
    return maps[0], maps[1]


def fit_in_frame(
    cam: Camera, base: Mesh, offset: np.ndarray, angles: Sequence[float], name: str, *, strict: bool = True
) -> np.ndarray:
    """``offset`` (LDU), pulled towards the centre until every view of ``cam`` holds the part.

    ``strict`` False (crops: a narrow camera frames the part wherever it lies) puts a part that no
    view of ``cam`` holds whole at the centre instead of failing: a long part seen from straight
    above can overflow the rig's frame and still make a crop."""
    pts = base.triangles.reshape(-1, 3).astype(np.float64)
    for attempt in range(8):
        trial = offset * (0.5**attempt if attempt < 7 else 0.0)
        ok = True
        for angle in angles:
            rot = yaw_matrix(float(angle))[:3, :3]
            xy, depth = cam.project((pts + np.array([trial[0], 0.0, trial[1]])) @ rot.T)
            inside = (xy >= 1) & (xy <= [cam.width - 1, cam.height - 1])
            if (depth <= cam.near).any() or not inside.all():
                ok = False
                break
        if ok:
            return trial
    if not strict:
        return np.zeros_like(offset)
    raise RenderError(
        f"part {name!r} does not fit in the rig camera's view even at the turntable's centre; "
        "raise camera_height_mm or fov_deg in the rig geometry"
    )


def crop_camera(full: Camera, part: Mesh, width: int, height: int, margin: float) -> Camera:
    """A narrow camera at the rig camera's position, aimed so the part is centred and framed."""
    pts = part.triangles.reshape(-1, 3).astype(np.float64)
    target = (pts.min(0) + pts.max(0)) / 2
    cam = Camera(full.position, target, width, height, full.fov_deg, full.up)
    for _ in range(2):  # re-aim at the centre of the projected box (perspective shifts it)
        xy, _ = cam.project(pts)
        tan = (xy - [width / 2, height / 2]) / cam.focal
        mid = (tan.min(0) + tan.max(0)) / 2
        rot = cam.rotation()
        ray = rot[2] + mid[0] * rot[0] + mid[1] * rot[1]
        cam = Camera(
            full.position,
            full.position + ray * np.linalg.norm(target - full.position),
            width,
            height,
            cam.fov_deg,
            full.up,
        )
    xy, _ = cam.project(pts)
    half = (xy.max(0) - xy.min(0)) / 2 / cam.focal  # half extents as tangents
    tan_v = max(half[1], half[0] * height / width) * (1 + 2 * margin)
    fov = math.degrees(2 * math.atan(max(tan_v, 1e-4)))
    return Camera(cam.position, cam.target, width, height, min(fov, 170.0), full.up)


def motion_direction(cam: Camera, part: Mesh, rng: np.random.Generator) -> float:
    """Image direction (degrees) in which the part's centre moves as the turntable turns."""
    centre = part.triangles.reshape(-1, 3).astype(np.float64).mean(0)
    step = yaw_matrix(1.0)[:3, :3] @ centre
    (a, b), _ = cam.project(np.stack([centre, step]))
    d = b - a
    if np.hypot(*d) < 1e-6:  # at the axis: the part only spins in place
        return float(rng.uniform(0, 180))
    return float(math.degrees(math.atan2(d[1], d[0])))
