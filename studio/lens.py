"""Radial lens distortion (Brown-Conrady, k1 and k2) and vignetting of a rendered view.

The distortion belongs to the rig camera's lens, so it is defined in that camera's normalised image
coordinates (x / z, y / z about its optical axis) even when the view is a narrow crop taken from the
same position: a crop near the frame's edge is bent as that part of the full frame would be.
A point at undistorted radius r appears at r (1 + k1 r^2 + k2 r^4): k1 < 0 is barrel distortion.
Vignetting darkens the image by (1 + r^2)^(-2 s) at radius r on the sensor: s = 1 is the natural
cos^4 fall-off of a simple lens, real modules add their own (s up to ~1.5).
"""

from __future__ import annotations

import cv2
import numpy as np

from studio.camera import Camera


def distortion_maps(view: Camera, sensor: Camera, k1: float, k2: float) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel of the distorted ``view``, where to sample the undistorted render of it.

    ``sensor`` is the rig camera whose lens distorts (same position as ``view``). Returns float32
    (H, W) x and y maps for ``cv2.remap`` (pixel-centre coordinates).
    """
    w, h, f = view.width, view.height, view.focal
    rot_v, rot_s = view.rotation(), sensor.rotation()
    xd, yd = _sensor_coords(view, sensor)
    xu, yu = xd.copy(), yd.copy()
    for _ in range(8):  # invert r_d = r_u (1 + k1 r_u^2 + k2 r_u^4) by fixed-point iteration
        r2 = xu * xu + yu * yu
        factor = 1.0 + k1 * r2 + k2 * r2 * r2
        xu, yu = xd / factor, yd / factor
    # Back to the view's pixels.
    back = np.stack([xu, yu, np.ones_like(xu)], -1) @ rot_s @ rot_v.T
    map_x = back[..., 0] / back[..., 2] * f + w / 2 - 0.5
    map_y = back[..., 1] / back[..., 2] * f + h / 2 - 0.5
    return map_x.astype(np.float32), map_y.astype(np.float32)


def _sensor_coords(view: Camera, sensor: Camera) -> tuple[np.ndarray, np.ndarray]:
    """The sensor's normalised image coordinates (H, W) of each of ``view``'s pixel centres."""
    w, h, f = view.width, view.height, view.focal
    xs = (np.arange(w, dtype=np.float64) + 0.5 - w / 2) / f
    ys = (np.arange(h, dtype=np.float64) + 0.5 - h / 2) / f
    rot_v = view.rotation()
    rays = xs[None, :, None] * rot_v[0] + ys[:, None, None] * rot_v[1] + rot_v[2]
    s = rays @ sensor.rotation().T
    return s[..., 0] / s[..., 2], s[..., 1] / s[..., 2]


def vignette(image: np.ndarray, view: Camera, sensor: Camera, strength: float) -> np.ndarray:
    """``image`` (H, W, C, linear light) darkened towards the sensor's corners by ``strength``."""
    if strength == 0:
        return image
    x, y = _sensor_coords(view, sensor)
    gain = (1.0 + x * x + y * y) ** (-2.0 * strength)
    return (image * gain[:, :, None]).astype(image.dtype)


def distort(
    image: np.ndarray, mask: np.ndarray, view: Camera, sensor: Camera, k1: float, k2: float
) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (H, W, C float) and ``mask`` (H, W uint8 0/255) as the distorting lens shows them."""
    if k1 == 0 and k2 == 0:
        return image, mask
    map_x, map_y = distortion_maps(view, sensor, k1, k2)
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    cover = cv2.remap(mask.astype(np.float32) / 255.0, map_x, map_y, cv2.INTER_LINEAR, borderValue=0.0)
    return out, np.where(cover >= 0.5, 255, 0).astype(np.uint8)


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), exclusive, of the mask's non-zero pixels; None if it has none."""
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1) if len(ys) else None
