"""The rasteriser's light: a directional key light with ambient light, and the two terms that
darken what a photo shows dark: the part's own shadow from the key light (a shadow map, the part
z-buffered once more as seen from the light) and screen-space ambient occlusion (a brick's hollow
underside and the gaps between studs get less light).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from studio.camera import Camera, look_at_part, vec3
from studio.errors import RenderError
from studio.mesh import Mesh
from studio.raster import clip_near, edge_functions, rasterize


def _occlusion_kernel(count: int) -> np.ndarray:
    """(count, 3) sample offsets in the unit ball, spread evenly in direction (a Fibonacci sphere)
    and denser near the centre (lengths rising from 0.25 to 1), so near geometry counts most."""
    k = np.arange(count) + 0.5
    polar = np.arccos(1.0 - 2.0 * k / count)
    azimuth = np.pi * (1.0 + 5.0**0.5) * k
    dirs = np.stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], 1)
    lengths = 0.25 + 0.75 * ((k * 0.618034) % 1.0) ** 2
    return (dirs * lengths[:, None]).astype(np.float32)


#: Occlusion samples per pixel (turned per pixel of a 4 x 4 tile, so 16 x 16 directions in all).
OCCLUSION_SAMPLES = 16
_OCCLUSION_KERNEL = _occlusion_kernel(OCCLUSION_SAMPLES)
#: Turns of the kernel about the line of sight, one per pixel of a 4 x 4 tile (a fixed shuffle).
_TILE_ANGLES = (np.array([0, 8, 2, 10, 12, 4, 14, 6, 3, 11, 1, 9, 15, 7, 13, 5]) * (np.pi / 8)).astype(
    np.float32
)


@dataclass(frozen=True, eq=False)
class Lighting:
    """A directional key light plus ambient light (linear RGB)."""

    direction: np.ndarray  # (3,) from the scene towards the key light; normalised on creation
    color: np.ndarray = field(default_factory=lambda: np.ones(3))
    ambient: float = 0.35
    specular: float = 0.25
    shininess: float = 24.0
    #: Screen-space ambient occlusion: a fully enclosed pixel keeps 1 - occlusion of its light (0: off).
    occlusion: float = 0.0
    #: How far (LDU) geometry still shades a point; about half a stud pitch reaches into a brick's hollow.
    occlusion_radius: float = 12.0
    #: Share of the key light (diffuse and specular) a point in the part's own shadow loses (0: off).
    shadow: float = 0.0

    def __post_init__(self) -> None:
        d = vec3(self.direction, "Lighting.direction")
        if np.linalg.norm(d) < 1e-9:
            raise RenderError("Lighting.direction must not be the zero vector; point it towards the light")
        object.__setattr__(self, "direction", d / np.linalg.norm(d))
        object.__setattr__(self, "color", vec3(self.color, "Lighting.color"))
        if self.color.min() < 0:
            raise RenderError(f"Lighting.color must be >= 0, got {self.color!r}")
        for name, lo, hi in (
            ("ambient", 0.0, 4.0),
            ("specular", 0.0, 4.0),
            ("shininess", 1.0, 4096.0),
            ("occlusion", 0.0, 1.0),
            ("occlusion_radius", 0.5, 200.0),
            ("shadow", 0.0, 1.0),
        ):
            if not lo <= getattr(self, name) <= hi:
                raise RenderError(f"Lighting.{name} must be in [{lo}, {hi}], got {getattr(self, name)!r}")


#: Side of the shadow map in texels; 3 x 3 of them are averaged per lookup (soft edges).
SHADOW_MAP_PX = 256


def self_shadow(
    mesh: Mesh,
    tris: np.ndarray,
    idx: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    surf_z: np.ndarray,
    cam: Camera,
    lighting: Lighting,
) -> np.ndarray:
    """Share of each covered pixel's key light that the part itself blocks (0 lit .. 1 shadowed).

    A shadow map: the part is z-buffered from a distant narrow camera in the light's direction
    (nearly parallel rays, as from the directional key light), both faces of every triangle
    counting as occluders. A pixel's point is in shadow where the map holds a surface nearer to the
    light than it by more than a bias of a few texels; 3 x 3 texels are averaged for soft edges.
    """
    size = SHADOW_MAP_PX
    light = look_at_part(mesh, size, size, direction=tuple(lighting.direction), fov_deg=2.0, margin=1.05)
    lrot = light.rotation()
    verts, _ = clip_near((tris - light.position) @ lrot.T, light.near)
    z = verts[:, :, 2]
    x = verts[:, :, 0] / z * light.focal + size / 2
    y = verts[:, :, 1] / z * light.focal + size / 2
    area2 = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    keep = area2 != 0
    if not keep.any():
        return np.zeros(len(idx), np.float32)
    buf = rasterize(edge_functions(x[keep], y[keep]), y[keep], 1.0 / z[keep], size, size, "shadow")
    depth = np.full(size * size, np.inf, np.float32)
    hit = buf != 0
    depth[hit] = 1.0 / (buf[hit] >> 32).astype(np.int32).view(np.float32)
    f32 = np.float32
    # camera space -> the light's camera space in one affine map (float32: the map's own precision)
    to_light = lrot @ cam.rotation().T
    shift = (lrot @ (cam.position - light.position)).astype(f32)
    z = surf_z[idx]
    cx, cy = (
        (px - f32(cam.width / 2)) * (z / f32(cam.focal)),
        (py - f32(cam.height / 2)) * (z / f32(cam.focal)),
    )
    m = to_light.astype(f32)
    lc = [m[r, 0] * cx + m[r, 1] * cy + m[r, 2] * z + shift[r] for r in range(3)]
    scale = f32(light.focal) / lc[2]
    ix0 = np.floor(lc[0] * scale + f32(size / 2)).astype(np.int32)
    iy0 = np.floor(lc[1] * scale + f32(size / 2)).astype(np.int32)
    texel = float(lc[2].mean()) / light.focal  # LDU per texel at the part
    bias = f32(3.0 * texel)
    padded = np.pad(depth.reshape(size, size), 1, constant_values=np.inf).reshape(-1)
    np.clip(ix0, -1, size, out=ix0)
    np.clip(iy0, -1, size, out=iy0)
    base = (iy0 + 1) * (size + 2) + (ix0 + 1)  # a lookup just off the map reads the inf border
    reach = lc[2] - bias
    shadowed = np.zeros(len(idx), np.float32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            taps = np.clip(base + (dy * (size + 2) + dx), 0, len(padded) - 1)
            shadowed += reach > padded[taps]
    return shadowed / f32(9.0)


def ambient_occlusion(
    idx: np.ndarray,
    ids: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    planes: np.ndarray,
    surf_z: np.ndarray,
    cam: Camera,
    radius: float,
) -> np.ndarray:
    """Share of each covered pixel's surroundings that is blocked (0 open .. 1 enclosed).

    Screen-space ambient occlusion from the depth buffer: each pixel's camera-space point gets the
    kernel's samples within ``radius`` LDU, flipped into the hemisphere its normal faces; a sample
    is blocked where the depth buffer at its projection is nearer than it by more than a small bias
    (numerical slack) and by less than ``radius`` (a surface far in front does not shade it). The
    map is then averaged over each pixel's 4 x 4 covered neighbours.
    """
    f32 = np.float32
    w, h, f = cam.width, cam.height, f32(cam.focal)
    cx, cy = f32(w / 2), f32(h / 2)
    z = surf_z[idx]
    pts = ((px - cx) / f * z, (py - cy) / f * z, z)
    pl = np.take(planes, ids, axis=1)
    nrm = [pl[3 * c] * px + pl[3 * c + 1] * py + pl[3 * c + 2] for c in range(3)]
    inv = f32(1.0) / np.sqrt(nrm[0] * nrm[0] + nrm[1] * nrm[1] + nrm[2] * nrm[2] + f32(1e-30))
    rad = f32(radius)
    bias = z * f32(0.002) + rad * f32(0.05)
    blocked = np.zeros(len(idx), np.float32)
    # The kernel turned about the line of sight by one of 16 angles in a 4 x 4 tile of pixels, so
    # its few directions leave fine noise, which the 4 x 4 average below removes, instead of bands.
    row, col = np.divmod(idx, w)
    turn = _TILE_ANGLES[(row % 4) * 4 + col % 4]
    cos_t, sin_t = np.cos(turn), np.sin(turn)
    for d in _OCCLUSION_KERNEL:
        dx, dy, dz = d[0] * cos_t - d[1] * sin_t, d[0] * sin_t + d[1] * cos_t, d[2]
        side = np.where((nrm[0] * dx + nrm[1] * dy + nrm[2] * dz) * inv < 0, f32(-rad), rad)
        sx, sy, sz = (pts[c] + side * dc for c, dc in enumerate((dx, dy, dz)))
        sz = np.maximum(sz, f32(cam.near))
        ix = np.floor(sx / sz * f + cx).astype(np.int64)
        iy = np.floor(sy / sz * f + cy).astype(np.int64)
        inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        front = np.where(inside, surf_z[np.where(inside, iy * w + ix, 0)], np.inf)
        gap = sz - front
        blocked += (gap > bias) & (gap < rad)
    blocked /= f32(len(_OCCLUSION_KERNEL))
    grid = np.zeros(h * w, np.float32)
    grid[idx] = blocked
    hit = np.zeros(h * w, np.float32)
    hit[idx] = 1.0
    total = cv2.blur(grid.reshape(h, w), (4, 4), borderType=cv2.BORDER_CONSTANT).reshape(-1)[idx]
    count = cv2.blur(hit.reshape(h, w), (4, 4), borderType=cv2.BORDER_CONSTANT).reshape(-1)[idx]
    return total / np.maximum(count, f32(1e-6))
