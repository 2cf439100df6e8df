"""The studio's pinhole camera and how it frames a part (:func:`look_at_part`).

Shared by the rasteriser (:mod:`studio.render`), the path tracer (:mod:`studio.pathtrace`) and the
lens effects (:mod:`studio.lens`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from studio.errors import RenderError
from studio.mesh import Mesh


def vec3(value: object, name: str) -> np.ndarray:
    """``value`` as a float64 (3,) array; RenderError naming ``name`` unless 3 finite numbers."""
    arr = np.array(value, dtype=np.float64)
    if arr.shape != (3,) or not np.isfinite(arr).all():
        raise RenderError(f"{name} must be 3 finite numbers, got {value!r}")
    return arr


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera with square pixels; pixel (i, j) covers [i, i+1) x [j, j+1).

    Camera space: x to the right of the image, y down the image, z (depth) along the line of
    sight. ``near`` (LDU) is the near clipping distance; geometry closer than it is cut away.
    """

    position: np.ndarray
    target: np.ndarray
    width: int
    height: int
    fov_deg: float = 40.0  # vertical field of view
    up: np.ndarray = field(default_factory=lambda: np.array([0.0, -1.0, 0.0]))
    near: float = 1.0

    def __post_init__(self) -> None:
        for name in ("position", "target", "up"):
            object.__setattr__(self, name, vec3(getattr(self, name), f"Camera.{name}"))
        if any(int(v) != v or v < 1 for v in (self.width, self.height)):
            raise RenderError(f"Camera size must be positive integers, got {self.width!r} x {self.height!r}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        if not 0.0 < self.fov_deg < 179.0:
            raise RenderError(f"Camera.fov_deg must be in (0, 179) degrees, got {self.fov_deg!r}")
        if not self.near > 0.0:
            raise RenderError(f"Camera.near must be > 0 LDU, got {self.near!r}")
        forward = self.target - self.position
        if np.linalg.norm(forward) < 1e-9:
            raise RenderError(f"Camera.position equals Camera.target ({self.position!r}); move the camera")
        cross = np.linalg.norm(np.cross(forward / np.linalg.norm(forward), self.up))
        if cross < 1e-6 * np.linalg.norm(self.up) or not cross > 0:
            raise RenderError(f"Camera.up {self.up!r} is zero or parallel to the line of sight; pick another")

    @property
    def focal(self) -> float:
        """Focal length in pixels (from the vertical field of view)."""
        return float(0.5 * self.height / np.tan(np.radians(self.fov_deg) / 2.0))

    def rotation(self) -> np.ndarray:
        """3x3 matrix whose rows are the camera's right, down and forward axes in world space."""
        f = self.target - self.position
        f = f / np.linalg.norm(f)
        r = np.cross(f, self.up)
        r /= np.linalg.norm(r)
        return np.stack([r, np.cross(f, r), f])

    def view_matrix(self) -> np.ndarray:
        """4x4 world -> camera transform."""
        m = np.eye(4)
        m[:3, :3] = rot = self.rotation()
        m[:3, 3] = -rot @ self.position
        return m

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) to pixel coordinates (N, 2) and camera depth (N,).

        Pixel coordinates are meaningless where depth <= 0 (behind the camera).
        """
        cam = (np.asarray(points, np.float64).reshape(-1, 3) - self.position) @ self.rotation().T
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = cam[:, :2] / cam[:, 2:] * self.focal + np.array([self.width, self.height]) / 2.0
        return xy, cam[:, 2]

    def scaled(self, factor: int) -> Camera:
        """The same view at ``factor`` times the resolution."""
        return replace(self, width=self.width * factor, height=self.height * factor)


def look_at_part(
    mesh: Mesh,
    width: int,
    height: int,
    direction: tuple[float, float, float] = (1.0, -1.2, 1.5),
    fov_deg: float = 35,
    margin: float = 1.15,
) -> Camera:
    """A camera aimed at the part's bounding-box centre from ``direction`` (scene -> camera).

    The distance is the smallest at which every vertex lies inside the frame shrunk by ``margin``.
    """
    if len(mesh.triangles) == 0:
        raise RenderError("cannot frame an empty mesh; give look_at_part a mesh with triangles")
    if not margin >= 1.0:
        raise RenderError(f"margin must be >= 1 (1 = touching the frame), got {margin!r}")
    d = vec3(direction, "direction")
    if np.linalg.norm(d) < 1e-9:
        raise RenderError("direction must not be the zero vector")
    d /= np.linalg.norm(d)
    lo, hi = (np.asarray(b, np.float64) for b in mesh.bounds)
    center = (lo + hi) / 2.0
    up = np.array([0.0, -1.0, 0.0]) if abs(d[1]) < 0.999 else np.array([0.0, 0.0, -1.0])
    probe = Camera(center + d, center, width, height, fov_deg, up)
    rel = (np.asarray(mesh.triangles, np.float64).reshape(-1, 3) - center) @ probe.rotation().T
    tan_y = (0.5 * height / probe.focal) / margin
    tan_x = tan_y * width / height
    # A vertex at (x, y, z) relative to the centre fits when |x| <= tan_x * (distance + z), etc.
    closest = float(np.max(-rel[:, 2]))
    dist = max(
        float(np.max(np.abs(rel[:, 0]) / tan_x - rel[:, 2])),
        float(np.max(np.abs(rel[:, 1]) / tan_y - rel[:, 2])),
        closest + 1e-3,
    )
    near = float(np.clip(0.5 * (dist - closest), 1e-4, 1.0))
    return Camera(center + d * dist, center, width, height, fov_deg, up, near)
