"""Scan conversion for the rasteriser: near-plane clipping, edge functions and the z-buffer.

Vectorised: each triangle is cut into per-row pixel spans by its three edge functions, the spans
are expanded into fragments with ``np.repeat``, and the z-buffer is resolved by one
``np.maximum.at`` over 64-bit keys (float32 bits of 1/z high, triangle index low), which gives
depth and a triangle-id buffer at once. Work arrays are kept per thread (:func:`scratch`).
"""

from __future__ import annotations

import threading

import numpy as np

CHUNK = 1 << 22  # fragments z-buffered per pass (bounds memory for huge close-ups)


def clip_near(verts: np.ndarray, near: float) -> tuple[np.ndarray, np.ndarray]:
    """Cut camera-space triangles (T, 3, K), depth at [..., 2], at ``z = near``, keeping winding.

    Returns the clipped triangles and the index of each one's source triangle.
    """
    behind = verts[:, :, 2] < near
    nb = behind.sum(axis=1)
    keep = np.flatnonzero(nb == 0)
    parts, srcs = [verts[keep]], [keep]
    for count in (1, 2):
        sel = np.flatnonzero(nb == count)
        if len(sel) == 0:
            continue
        # Rotate so the odd corner out (the one behind, or the one in front) comes first.
        first = np.argmax(behind[sel] if count == 1 else ~behind[sel], axis=1)
        v = np.take_along_axis(verts[sel], ((first[:, None] + np.arange(3)) % 3)[:, :, None], axis=1)
        v0, v1, v2 = v[:, 0], v[:, 1], v[:, 2]
        a = v0 + (v1 - v0) * ((near - v0[:, 2]) / (v1[:, 2] - v0[:, 2]))[:, None]
        b = v0 + (v2 - v0) * ((near - v0[:, 2]) / (v2[:, 2] - v0[:, 2]))[:, None]
        if count == 1:
            parts += [np.stack([a, v1, v2], 1), np.stack([a, v2, b], 1)]
            srcs += [sel, sel]
        else:
            parts.append(np.stack([v0, a, b], 1))
            srcs.append(sel)
    return np.concatenate(parts), np.concatenate(srcs)


def edge_functions(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(4, 3, T): A, B, C of E_k(x, y) = A x + B y + C for the edge opposite corner k, and area2.

    Bit-exact negatives for an edge shared with a neighbour, so spans meet without cracks.
    """
    x, y = x.T, y.T
    xa, ya, xb, yb = x[[1, 2, 0]], y[[1, 2, 0]], x[[2, 0, 1]], y[[2, 0, 1]]
    ea, eb, ec = ya - yb, xb - xa, xa * yb - xb * ya
    area2 = ea[2] * x[2] + eb[2] * y[2] + ec[2]  # E_2 at corner 2: twice the signed area
    return np.stack([ea, eb, ec, np.broadcast_to(area2, ea.shape)])


def rasterize(
    edges: np.ndarray, y: np.ndarray, iz: np.ndarray, width: int, height: int, store: str = "keys"
) -> np.ndarray:
    """Z-buffer triangles; ``y`` and ``iz`` (1/depth) are per corner (T, 3).

    Returns (height * width,) int64 keys: 0 where empty, else float32 bits of 1/depth << 32 | index.
    A pixel is a triangle's when its centre is inside or on an edge.
    """
    ea, eb, ec, area2 = edges
    # 1/z is affine in screen space: barycentric weights E_k / area2 applied to the corners' 1/z.
    plane = np.stack([(iz.T * e).sum(0) for e in (ea, eb, ec)]) / area2[0]
    sgn = np.sign(area2)
    ea, eb, ec = ea * sgn, eb * sgn, ec * sgn  # inside <=> all three E >= 0
    r0 = np.clip(np.ceil(y.min(1) - 0.5), 0, height)
    nrow = np.maximum(np.clip(np.floor(y.max(1) - 0.5), -1, height - 1) - r0 + 1, 0).astype(np.int64)
    tri = np.repeat(np.arange(len(r0)), nrow)
    yc = np.arange(len(tri)) - np.repeat(np.cumsum(nrow) - nrow - r0, nrow) + 0.5
    lo, hi = np.full(len(tri), -np.inf), np.full(len(tri), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(3):  # intersect the row with each edge's half plane
            a, s = ea[k, tri], eb[k, tri] * yc + ec[k, tri]
            xe = -s / a
            np.maximum(lo, np.where(a > 0, xe, np.where((a == 0) & (s < 0), np.inf, -np.inf)), out=lo)
            np.minimum(hi, np.where(a < 0, xe, np.inf), out=hi)
    c0 = np.clip(np.ceil(lo - 0.5), 0, width)
    n = np.maximum(np.clip(np.floor(hi - 0.5), -1, width - 1) - c0 + 1, 0).astype(np.int64)
    live = np.flatnonzero(n)
    tri, yc, c0, n = tri[live], yc[live], c0[live], n[live]
    slope = plane[0, tri]
    iz0 = (slope * (c0 + 0.5) + plane[1, tri] * yc + plane[2, tri]).astype(np.float32)
    pix0 = (yc - 0.5).astype(np.int64) * width + c0.astype(np.int64)
    slope = slope.astype(np.float32)
    buf = scratch(store, (width * height,), np.int64, 0)
    ends = np.cumsum(n)
    cuts = np.searchsorted(ends, np.arange(CHUNK, int(ends[-1]) if len(ends) else 0, CHUNK))
    for lo_r, hi_r in zip(np.r_[0, cuts], np.r_[cuts, len(n)], strict=True):
        nn = n[lo_r:hi_r]
        k = np.arange(int(nn.sum())) - np.repeat(np.cumsum(nn) - nn, nn)
        frag_iz = np.repeat(iz0[lo_r:hi_r], nn) + np.repeat(slope[lo_r:hi_r], nn) * k.astype(np.float32)
        # A centre just outside a corner may extrapolate 1/z a little; keep it positive.
        np.maximum(frag_iz, np.float32(1e-30), out=frag_iz)
        key = (frag_iz.view(np.int32).astype(np.int64) << 32) | np.repeat(tri[lo_r:hi_r], nn)
        np.maximum.at(buf, np.repeat(pix0[lo_r:hi_r], nn) + k, key)
    return buf


_SCRATCH = threading.local()
_SCRATCH_MAX_BYTES = 64 << 20


def scratch(name: str, shape: tuple[int, ...], dtype: type, fill: float | None) -> np.ndarray:
    """A work array kept per thread between calls, filled with ``fill`` (unless None).

    Fresh multi-megabyte arrays cost page faults on every render (glibc hands big blocks back to
    the OS); reusing them made a 224x224 render about a third faster.
    """
    store: dict[str, np.ndarray] = _SCRATCH.__dict__.setdefault("arrays", {})
    arr = store.get(name)
    if arr is None or arr.shape != shape or arr.dtype != dtype:
        arr = np.empty(shape, dtype)
        if arr.nbytes <= _SCRATCH_MAX_BYTES:
            store[name] = arr
    if fill is not None:
        arr.fill(fill)
    return arr
