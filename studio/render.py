"""A pure numpy/OpenCV software renderer for :class:`~studio.mesh.Mesh`.

Vectorised scan conversion: each triangle is cut into per-row pixel spans by its three edge
functions, the spans are expanded into fragments with ``np.repeat``, and the z-buffer is resolved
by one ``np.maximum.at`` over 64-bit keys (float32 bits of 1/z high, triangle index low), which
gives depth and a triangle-id buffer at once. Shading runs once per covered pixel: ambient +
Lambert diffuse + Blinn-Phong specular, with normals smoothed within a crease angle so studs look
round. Two optional terms darken what a photo shows dark: the part's own shadow from the key light
(``Lighting.shadow``: a shadow map, the part z-buffered once more as seen from the light) and
screen-space ambient occlusion (``Lighting.occlusion``): a brick's hollow underside and the gaps
between studs get less light. Edge lines are depth-tested against the buffer. Antialiasing is
supersampling followed by ``cv2.resize(..., INTER_AREA)``. Nothing here is random.
"""

from __future__ import annotations

import weakref
import zlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from studio.camera import Camera
from studio.errors import RenderError
from studio.lighting import Lighting, ambient_occlusion, self_shadow
from studio.mesh import Mesh
from studio.raster import clip_near, edge_functions, rasterize, scratch

#: Default colour of edge lines (linear RGB of sRGB 0x333333, LDraw's usual edge colour).
DEFAULT_EDGE_RGB = (0.033, 0.033, 0.033)
#: Neighbouring faces whose normals differ by less than this are shaded as one smooth surface.
CREASE_ANGLE_DEG = 30.0
_WELD_LDU = 0.01  # corners closer than this (LDU) count as one vertex when smoothing normals
_MAX_FAN = 64  # vertices shared by more corners than this keep flat normals (bounds memory)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values to linear light (inputs clipped to [0, 1]; float32 stays float32)."""
    x = np.clip(np.asarray(x, np.float32 if _is_f32(x) else np.float64), 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(x.dtype)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear-light values to sRGB encoding (inputs clipped to [0, 1]; float32 stays float32)."""
    x = np.clip(np.asarray(x, np.float32 if _is_f32(x) else np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(x.dtype)


def _is_f32(x: object) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == np.float32


@dataclass
class RenderResult:
    """One rendered image (see :func:`render_mesh`)."""

    rgb: np.ndarray  # (H, W, 3) float32 linear RGB in [0, 1], premultiplied by coverage
    coverage: np.ndarray  # (H, W) float32 antialiased alpha (times opacity)
    mask: np.ndarray  # (H, W) uint8 255 where >= half the pixel's subsamples are covered
    depth: np.ndarray  # (H, W) float32 camera depth of the nearest covered subsample, inf if none
    bbox: tuple[int, int, int, int] | None  # x0, y0, x1, y1 (exclusive) of mask; None if empty


def render_mesh(
    mesh: Mesh,
    tri_rgb: np.ndarray,
    camera: Camera,
    lighting: Lighting,
    *,
    tri_alpha: np.ndarray | None = None,
    edge_rgb: np.ndarray | None = None,
    cond_edge_rgb: np.ndarray | None = None,
    supersample: int = 2,
    edge_lines: bool = True,
    edge_width: float = 1.0,
    smooth: bool = True,
) -> RenderResult:
    """Render ``mesh`` as seen by ``camera``.

    Args:
        tri_rgb: (T, 3) linear RGB in [0, 1] per triangle (resolve LDraw colour codes first).
        tri_alpha: (T,) opacity in [0, 1], default 1. The nearest surface wins the z-buffer and its
            opacity scales ``coverage``, so compositing over a background shows it through.
        edge_rgb, cond_edge_rgb: (E, 3) / (C, 3) linear RGB of the type-2 / type-5 lines (default
            dark grey). Lines are opaque and drawn only over the part's own pixels.
        supersample: render at this many times the size per axis, then area-average (1 to 8).
        edge_lines: draw the lines; a conditional line only where both its control points project
            to the same side of it (silhouettes of curved surfaces).
        edge_width: line width in output pixels.
        smooth: interpolate corner normals smoothed within ``CREASE_ANGLE_DEG`` (else flat).

    Raises:
        RenderError: empty mesh, NaN/inf coordinates, bad argument shapes or ranges, or a mesh
            wholly behind the camera or outside its view (one merely facing away renders empty).
    """
    prep = _prepare(mesh)
    count = len(prep.tris)
    base = _colors(tri_rgb, count, "tri_rgb", None)
    alpha = np.ones(count) if tri_alpha is None else np.asarray(tri_alpha, np.float64)
    _check_render_args(alpha, count, supersample, edge_width)
    s = int(supersample)
    cam = camera.scaled(s)
    w, h, rot = cam.width, cam.height, cam.rotation()
    projected = _project_facing(mesh, prep, camera, cam, rot, smooth)
    if projected is None:  # every triangle faces away
        return _resolve(
            scratch("rgba", (4, h * w), np.float32, 0),
            scratch("z", (h * w,), np.float32, np.inf),
            camera,
            s,
        )
    x, y, iz, src, vn = projected
    edges = edge_functions(x, y)
    buf = rasterize(edges, y, iz, w, h)
    idx = np.flatnonzero(buf != 0)
    key = buf[idx]
    ids = (key & 0xFFFFFFFF).astype(np.intp)
    row, col = np.divmod(idx, w)
    # Per-triangle affine screen planes of normal / z, laid out (9, T) for one gather per pixel.
    bary = edges[:3].transpose(2, 1, 0) / edges[3, 0][:, None, None]  # (T, corner, abc) of E / area2
    planes = np.einsum("tkc,tke->cet", vn * iz[:, :, None], bary).reshape(9, -1).astype(np.float32)
    px, py = col.astype(np.float32) + np.float32(0.5), row.astype(np.float32) + np.float32(0.5)
    diffuse, spec = _shade(ids, px, py, planes, cam, rot, lighting)
    surf_z = scratch("z", (h * w,), np.float32, np.inf)
    surf_z[idx] = 1.0 / (key >> 32).astype(np.int32).view(np.float32)
    if lighting.shadow > 0:
        lit = np.float32(1.0) - np.float32(lighting.shadow) * self_shadow(
            mesh, prep.tris, idx, px, py, surf_z, cam, lighting
        )
        diffuse *= lit
        spec *= lit
    if lighting.occlusion > 0:
        ao = ambient_occlusion(idx, ids, px, py, planes, surf_z, cam, lighting.occlusion_radius)
        ao = np.float32(1.0) - np.float32(lighting.occlusion) * ao
        diffuse *= ao
        spec *= ao
    rgba = scratch("rgba", (4, h * w), np.float32, 0)  # premultiplied colour planes + coverage
    uniform = bool((alpha == alpha[0]).all() and (base == base[0]).all())  # skip per-pixel gathers
    a = np.float32(alpha[0]) if uniform else alpha[src].astype(np.float32)[ids]
    ambient = np.float32(lighting.ambient) if lighting.occlusion <= 0 else np.float32(lighting.ambient) * ao
    for c in range(3):
        light = np.float32(lighting.color[c])
        albedo = np.float32(base[0, c]) if uniform else base[src, c].astype(np.float32)[ids]
        tone = albedo * (diffuse * light + ambient) + spec * light
        rgba[c, idx] = np.minimum(tone, 1.0) * a
    rgba[3, idx] = a
    if edge_lines:
        seg, seg_rgb = _visible_segments(mesh, cam, edge_rgb, cond_edge_rgb)
        if len(seg):
            pix, which = _line_pixels((seg - cam.position) @ rot.T, cam, surf_z, edge_width * s)
            rgba[:3, pix] = seg_rgb[which].T
            rgba[3, pix] = 1.0
    return _resolve(rgba, surf_z, camera, s)


def _check_render_args(alpha: np.ndarray, count: int, supersample: Any, edge_width: float) -> None:
    if alpha.shape != (count,) or not ((alpha >= 0) & (alpha <= 1)).all():
        raise RenderError(f"tri_alpha must be ({count},) opacities in [0, 1], got shape {alpha.shape!r}")
    if (
        isinstance(supersample, bool)
        or not isinstance(supersample, int | np.integer)
        or not 1 <= supersample <= 8
    ):
        raise RenderError(f"supersample must be an integer from 1 to 8, got {supersample!r}")
    if not 0 < edge_width <= 16:
        raise RenderError(f"edge_width must be in (0, 16] pixels, got {edge_width!r}")


def _project_facing(
    mesh: Mesh, prep: _Prepared, camera: Camera, cam: Camera, rot: np.ndarray, smooth: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The triangles in view that face the camera (two-sided ones either way), clipped at the near
    plane and projected: screen x, y, 1/z per corner, source triangle, corner normals turned to
    face the camera; None when every triangle faces away. RenderError when none is in view."""
    w, h = cam.width, cam.height
    normals = prep.vert_n if smooth else np.repeat(prep.face_n[:, None], 3, axis=1)
    verts, src = clip_near(np.concatenate([(prep.tris - cam.position) @ rot.T, normals @ rot.T], 2), cam.near)
    if len(verts) == 0:
        raise RenderError(f"the mesh is wholly behind the camera at {camera.position!r}; aim it at the part")
    z = verts[:, :, 2]
    x = verts[:, :, 0] / z * cam.focal + w / 2
    y = verts[:, :, 1] / z * cam.focal + h / 2
    in_view = (x.max(1) > 0) & (x.min(1) < w) & (y.max(1) > 0) & (y.min(1) < h)
    if not in_view.any():
        raise RenderError(
            f"the mesh is wholly outside the view of the camera at {camera.position!r} "
            f"looking at {camera.target!r}; aim it at the part"
        )
    area2 = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    # With y down the image, a face wound counter-clockwise towards the camera has area2 < 0.
    keep = in_view & ((area2 < 0) | (np.asarray(mesh.two_sided, bool)[src] & (area2 > 0)))
    if not keep.any():
        return None
    vn = verts[keep, :, 3:] * np.where(area2[keep] > 0, -1.0, 1.0)[:, None, None]  # two-sided: face us
    return x[keep], y[keep], 1.0 / z[keep], src[keep], vn


def corner_normals(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) unit face normals (zero where degenerate) and (T, 3, 3) corner normals smoothed
    within ``CREASE_ANGLE_DEG``, as :func:`render_mesh` shades with (cached per Mesh object)."""
    prep = _prepare(mesh)
    return prep.face_n, prep.vert_n


# ----------------------------------------------------------------------------- mesh preparation


@dataclass(frozen=True)
class _Prepared:
    tris: np.ndarray  # (T, 3, 3) float64
    face_n: np.ndarray  # (T, 3) unit normals (zero where degenerate)
    vert_n: np.ndarray  # (T, 3, 3) corner normals smoothed within the crease angle
    crc: int  # checksum of the source arrays, so an edited (writeable) mesh is not served stale


_PREP_CACHE: dict[int, tuple[weakref.ref[Mesh], _Prepared]] = {}


def _prepare(mesh: Mesh) -> _Prepared:
    """Validate the mesh and compute its normals, cached per Mesh object."""
    tris = np.asarray(mesh.triangles)
    two = np.asarray(mesh.two_sided)
    crc = zlib.crc32(two.tobytes(), zlib.crc32(np.ascontiguousarray(tris).tobytes()))
    hit = _PREP_CACHE.get(id(mesh))
    if hit is not None and hit[0]() is mesh and hit[1].crc == crc:
        return hit[1]
    if tris.ndim != 3 or tris.shape[1:] != (3, 3) or two.shape != tris.shape[:1]:
        raise RenderError(
            f"mesh.triangles must be (T, 3, 3) and two_sided (T,), got {tris.shape!r} and {two.shape!r}"
        )
    if len(tris) == 0:
        raise RenderError("the mesh has no triangles, nothing to render; check the part's LDraw file")
    tris = tris.astype(np.float64)
    bad = ~np.isfinite(tris).all(axis=(1, 2))
    if bad.any():
        raise RenderError(
            f"the mesh has NaN/inf vertices in {int(bad.sum())} triangle(s), first at index "
            f"{int(np.argmax(bad))}; fix the mesh source"
        )
    for name in ("edges", "cond_edges"):
        if not np.isfinite(getattr(mesh, name)).all():
            raise RenderError(f"mesh.{name} has NaN/inf coordinates; fix the mesh source")
    prep = _Prepared(tris, *_normals(tris, two.astype(bool)), crc)
    key = id(mesh)
    _PREP_CACHE[key] = (weakref.ref(mesh, lambda _ref: _PREP_CACHE.pop(key, None)), prep)
    return prep


def _normals(tris: np.ndarray, two_sided: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face normals, and corner normals averaged over the faces at that vertex within the crease."""
    n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    face_n = np.divide(n, length, out=np.zeros_like(n), where=length > 0)
    # Weighting by the corner angle makes the result independent of how a surface is split up.
    e1, e2 = np.roll(tris, -1, axis=1) - tris, np.roll(tris, 1, axis=1) - tris
    lens = np.linalg.norm(e1, axis=2) * np.linalg.norm(e2, axis=2)
    angle = np.arccos(np.clip(np.einsum("tij,tij->ti", e1, e2) / np.maximum(lens, 1e-30), -1, 1)).ravel()
    q = np.round(tris.reshape(-1, 3) / _WELD_LDU).astype(np.int64)
    q -= q.min(axis=0)
    packed = (q[:, 0] << 42) | (q[:, 1] << 21) | q[:, 2] if q.max() < 2**21 else q
    vid = np.unique(packed, axis=0 if packed.ndim > 1 else None, return_inverse=True)[1].ravel()
    # All ordered pairs of corners sharing a vertex (a corner of a huge fan pairs only with itself).
    order = np.argsort(vid, kind="stable")
    sv = vid[order]
    start = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1]])
    size = np.diff(np.r_[start, len(sv)])
    size_c, start_c = np.repeat(size, size), np.repeat(start, size)
    big = size_c > _MAX_FAN
    size_c, start_c = np.where(big, 1, size_c), np.where(big, np.arange(len(sv)), start_c)
    pos = np.arange(size_c.sum()) - np.repeat(np.cumsum(size_c) - size_c, size_c)
    ci, cj = order[np.repeat(np.arange(len(sv)), size_c)], order[np.repeat(start_c, size_c) + pos]
    ni, nj = face_n[ci // 3], face_n[cj // 3]
    dot = np.einsum("ij,ij->i", ni, nj)
    loose = two_sided[ci // 3] | two_sided[cj // 3]  # unknown winding: compare up to sign
    sign = np.where(loose & (dot < 0), -1.0, 1.0)
    weight = np.where(sign * dot >= np.cos(np.radians(CREASE_ANGLE_DEG)), angle[cj] * sign, 0.0)
    acc = np.stack([np.bincount(ci, weight * nj[:, k], minlength=len(vid)) for k in range(3)], 1)
    length = np.linalg.norm(acc, axis=1, keepdims=True)
    vert_n = np.where(length > 1e-12, acc / np.maximum(length, 1e-30), np.repeat(face_n, 3, axis=0))
    return face_n, vert_n.reshape(-1, 3, 3)


# ----------------------------------------------------------------------------- shading and lines


def _shade(
    ids: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    planes: np.ndarray,
    cam: Camera,
    rot: np.ndarray,
    lighting: Lighting,
) -> tuple[np.ndarray, np.ndarray]:
    """Lambert (diffuse) and Blinn-Phong (specular) factors per covered pixel, in camera space.

    ``planes`` (9, T) holds each triangle's affine screen planes of normal / z (x, y, z components
    times a, b, c coefficients); the common 1/z factor vanishes when normalising.
    """
    f32 = np.float32
    pl = np.take(planes, ids, axis=1)
    nx, ny, nz = (pl[3 * c] * px + pl[3 * c + 1] * py + pl[3 * c + 2] for c in range(3))
    inv_n = 1.0 / np.sqrt(nx * nx + ny * ny + nz * nz + f32(1e-30))
    lx, ly, lz = (rot @ lighting.direction).astype(f32)
    ndl = (nx * lx + ny * ly + nz * lz) * inv_n
    # The unit vector towards the eye is minus the pixel's ray; half vector = it + light direction.
    vx, vy = (f32(cam.width / 2) - px) / f32(cam.focal), (f32(cam.height / 2) - py) / f32(cam.focal)
    inv_v = 1.0 / np.sqrt(vx * vx + vy * vy + f32(1.0))
    hx, hy, hz = vx * inv_v + lx, vy * inv_v + ly, lz - inv_v
    ndh = (nx * hx + ny * hy + nz * hz) * inv_n / np.sqrt(hx * hx + hy * hy + hz * hz + f32(1e-30))
    spec = _power(np.maximum(ndh, 0, out=ndh), lighting.shininess)
    spec *= (ndl > 0) * f32(lighting.specular)
    return np.maximum(ndl, 0, out=ndl), spec


def _power(x: np.ndarray, exponent: float) -> np.ndarray:
    """``x ** exponent``, by repeated squaring when the exponent is a whole number (faster)."""
    e = int(exponent)
    if e != exponent or not 1 <= e <= 4096:
        return np.power(x, np.float32(exponent))
    out, sq = None, x
    while e:
        if e & 1:
            out = sq.copy() if out is None else np.multiply(out, sq, out=out)
        e >>= 1
        if e:
            sq = sq * sq
    assert out is not None
    return out


def _visible_segments(
    mesh: Mesh, cam: Camera, edge_rgb: np.ndarray | None, cond_edge_rgb: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """World segments (S, 2, 3) to draw, with colours: every type-2 line, and each type-5 line
    whose two control points project to the same side of it."""
    edges = np.asarray(mesh.edges, np.float64).reshape(-1, 2, 3)
    cond = np.asarray(mesh.cond_edges, np.float64).reshape(-1, 4, 3)
    e_rgb = _colors(edge_rgb, len(edges), "edge_rgb", DEFAULT_EDGE_RGB)
    c_rgb = _colors(cond_edge_rgb, len(cond), "cond_edge_rgb", DEFAULT_EDGE_RGB)
    if len(cond):
        xy, depth = cam.project(cond.reshape(-1, 3))
        xy = xy.reshape(-1, 4, 2)
        d = xy[:, 1] - xy[:, 0]
        side = d[:, None, 0] * (xy[:, 2:, 1] - xy[:, :1, 1]) - d[:, None, 1] * (xy[:, 2:, 0] - xy[:, :1, 0])
        show = (depth.reshape(-1, 4) >= cam.near).all(axis=1) & (side[:, 0] * side[:, 1] > 0)
        edges, e_rgb = np.concatenate([edges, cond[show, :2]]), np.concatenate([e_rgb, c_rgb[show]])
    return edges, e_rgb


def _line_pixels(
    seg: np.ndarray, cam: Camera, surf_z: np.ndarray, width_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of camera-space segments (S, 2, 3) drawn over the surface and not hidden by it.

    Returns (pixel index, segment index) per drawn sample. Each segment is sampled every half pixel
    along and across ``width_px``; a sample survives where its depth is within a small bias of the
    surface's (the line lies on that surface) and is dropped where something nearer covers it.
    """
    ok = np.flatnonzero(seg[:, :, 2].max(axis=1) >= cam.near)
    p, q = seg[ok, 0].copy(), seg[ok, 1].copy()
    for u, v in ((p, q), (q, p)):  # move an end behind the near plane onto it
        cut = u[:, 2] < cam.near
        u[cut] += (v[cut] - u[cut]) * ((cam.near - u[cut, 2]) / (v[cut, 2] - u[cut, 2]))[:, None]
    f, w, h = cam.focal, cam.width, cam.height
    a, b = p[:, :2] / p[:, 2:] * f + (w / 2, h / 2), q[:, :2] / q[:, 2:] * f + (w / 2, h / 2)
    iza, dz = 1.0 / p[:, 2], 1.0 / q[:, 2] - 1.0 / p[:, 2]
    # Liang-Barsky: keep the part of each segment inside the (padded) frame; 1/z stays affine in t.
    t0, t1, d, pad = np.zeros(len(a)), np.ones(len(a)), b - a, width_px + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis, size in ((0, w), (1, h)):
            for pk, qk in ((-d[:, axis], a[:, axis] + pad), (d[:, axis], size + pad - a[:, axis])):
                t0 = np.where(pk < 0, np.maximum(t0, qk / pk), t0)
                t1 = np.where(pk > 0, np.minimum(t1, qk / pk), np.where((pk == 0) & (qk < 0), -1.0, t1))
    live = np.flatnonzero(t1 >= t0)
    ok, a, d, t0, t1, iza, dz = ok[live], a[live], d[live], t0[live], t1[live], iza[live], dz[live]
    norm = np.linalg.norm(d, axis=1)
    m = np.ceil(norm * (t1 - t0) * 2.0).astype(np.int64) + 1  # a sample every half pixel
    step = (t1 - t0) / np.maximum(m - 1, 1)
    j = (np.arange(int(m.sum())) - np.repeat(np.cumsum(m) - m, m)).astype(np.float32)
    if len(j) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)

    def along(start: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return (
            np.repeat((start + delta * t0).astype(np.float32), m)
            + np.repeat((delta * step).astype(np.float32), m) * j
        )

    sx, sy, z = along(a[:, 0], d[:, 0]), along(a[:, 1], d[:, 1]), 1.0 / along(iza, dz)
    unit = d / np.maximum(norm, 1e-30)[:, None]
    n_off = max(1, int(np.ceil(width_px - 1e-6)))
    pix = []
    for k in range(n_off):  # parallel copies across the width
        off = (k - (n_off - 1) / 2.0) * (width_px / n_off)
        ix = np.floor(sx - np.repeat((unit[:, 1] * off).astype(np.float32), m)).astype(np.int64)
        iy = np.floor(sy + np.repeat((unit[:, 0] * off).astype(np.float32), m)).astype(np.int64)
        pix.append(np.where((ix >= 0) & (ix < w) & (iy >= 0) & (iy < h), iy * w + ix, -1))
    flat, z = np.concatenate(pix), np.tile(z, n_off)
    # A sample may sit ~width/2 + 1 pixels from where the surface depth was taken: allow the depth
    # change that means on moderately slanted faces, plus a little for rounding.
    bias = z * np.float32(0.002 + 1.5 * (0.5 * width_px + 1.0) / f)
    under = surf_z[flat]
    drawn = np.flatnonzero((flat >= 0) & (z <= under + bias) & (under < np.inf))
    return flat[drawn], ok[np.searchsorted(np.cumsum(m), drawn % len(j), side="right")]


def _colors(value: np.ndarray | None, count: int, name: str, default: tuple[float, ...] | None) -> np.ndarray:
    if value is None and default is not None:
        return np.broadcast_to(np.asarray(default, np.float64), (count, 3))
    arr = np.asarray(value, np.float64)
    if (
        arr.shape != (count, 3)
        or not np.isfinite(arr).all()
        or arr.min(initial=0) < 0
        or arr.max(initial=0) > 1
    ):
        raise RenderError(f"{name} must be ({count}, 3) linear RGB in [0, 1], got shape {arr.shape!r}")
    return arr


def _resolve(rgba: np.ndarray, surf_z: np.ndarray, camera: Camera, s: int) -> RenderResult:
    """Area-average the supersampled planes (4, H*s*W*s) and depth down to the output size."""
    width, height = camera.width, camera.height
    planes = [p.reshape(height * s, width * s) for p in rgba]
    zs = surf_z.reshape(height * s, width * s)
    depth = zs[::s, ::s].copy()
    for k in range(1, s * s):
        np.minimum(depth, zs[k // s :: s, k % s :: s], out=depth)
    planes.append(np.isfinite(zs, out=scratch("hit", zs.shape, np.float32, None)))
    if s > 1:
        planes = [cv2.resize(p, (width, height), interpolation=cv2.INTER_AREA) for p in planes]
    # planes[4] is the covered fraction; the value below 1/2 nearest to it is 1/2 - 1/64 (s <= 8).
    mask = np.where(planes[4] >= 0.5 - 1e-4, 255, 0).astype(np.uint8)
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    bbox = (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1) if len(ys) else None
    coverage = planes[3] if s > 1 else planes[3].copy()  # never hand out a scratch buffer
    return RenderResult(np.dstack(planes[:3]), coverage, mask, depth, bbox)
