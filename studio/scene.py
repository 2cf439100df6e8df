"""Turntable scenes: a LEGO part as the rig's camera sees it, with domain randomisation.

World frame: LDraw units (1 LDU = 0.4 mm) and axes (-Y up). The turntable's top is the plane
y = 0 with its centre at the origin; the camera sits ``camera_height_mm`` above it, tilted
``camera_tilt_deg`` from vertical, looking at the centre from the -Z side. The camera and the key
light stay put; the turntable (disc and part) turns about the Y axis between views.

One :meth:`SceneRenderer.render_views` call is one physical placement: every placement factor
(pose, yaw, offset, light, disc, backdrop, colour, lens, white balance...) is drawn once from the
seed, then each view turns the turntable and draws only per-frame factors (sensor noise, motion
blur). Every factor has its own random stream derived from ``(seed, factor)``, so switching one
factor off never changes what the others draw.
"""

from __future__ import annotations

import math
import weakref
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from edge.colors import Color, color_by_ldraw_code, get_color
from edge.errors import UnknownColorError
from studio import effects
from studio.camera import Camera
from studio.draws import _KEY_LIGHT, Placement, PlacementDraws, lin, stream
from studio.framing import crop_camera, disc_coverage, footprint, ground_shadows, motion_direction, plane_hits
from studio.ldconfig import LDrawColour, default_edge_rgb
from studio.lighting import Lighting
from studio.mesh import EDGE_COLOR, MAIN_COLOR, Mesh
from studio.poses import Pose, placement, stable_poses, yaw_matrix
from studio.render import linear_to_srgb, render_mesh
from studio.scene_config import FACTORS, MM_PER_LDU, Randomization, RigGeometry

__all__ = ["MM_PER_LDU", "Randomization", "RigGeometry", "SceneRenderer", "View"]

_BEVEL_MM = 0.3  # width of the rounded edge of a real brick, which edge lines stand for


@dataclass
class View:
    """One image of the part on the turntable.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) uint8 0/255, the renderer's exact object mask (same framing as ``image``).
        bbox: (x0, y0, x1, y1), exclusive, of ``mask``; None if the part is not visible.
        angle_deg: turntable angle of this view.
        meta: JSON-serialisable record of every drawn factor (seed, pose, light, exposure...).
    """

    image: np.ndarray
    mask: np.ndarray
    bbox: tuple[int, int, int, int] | None
    angle_deg: float
    meta: dict[str, Any]


@dataclass
class _Stage:
    """The fixed set as one camera sees it (computed once per camera)."""

    base: np.ndarray  # (H, W, 3) backdrop and disc rim, linear RGB
    top: np.ndarray  # (H, W) coverage of the disc's top surface
    inside: np.ndarray  # (H, W) bool, top > 0
    x: np.ndarray  # (H, W) float32 world x, z (LDU) of the disc-plane point each pixel sees
    z: np.ndarray
    r_frac: np.ndarray  # (H, W) float32, its distance from the centre / disc radius
    footprint_mm: float  # typical pixel size on the disc


def _key(lighting: Lighting) -> np.ndarray:
    """Key light falling on the (upward-facing) disc: its colour times cos(incidence)."""
    return lighting.color * max(0.0, -float(lighting.direction[1]))


class SceneRenderer:
    """Renders turntable views of parts for a rig geometry and a randomisation recipe."""

    def __init__(
        self,
        rig: RigGeometry | None = None,
        randomization: Randomization | None = None,
        ldconfig: dict[int, LDrawColour] | None = None,
        supersample: int = 2,
        *,
        edge_strength: float = 0.35,
    ) -> None:
        """
        Args:
            rig: camera and turntable geometry (default :class:`RigGeometry`).
            randomization: what varies between placements (default :meth:`Randomization.train`).
            ldconfig: LDraw colours (from :func:`studio.ldconfig.read_ldconfig`) for sub-part
                colour codes and edge colours; without it codes go through :mod:`edge.colors`.
            supersample: the part renderer's antialiasing factor (1..8).
            edge_strength: how far LDraw's edge lines blend towards the edge colour: 0 hides them
                (a photo has none), 1 draws them fully (instruction style). They stand for a real
                brick's ~0.3 mm rounded edges, so they also fade where that is under a pixel.
        """
        self.rig = rig if rig is not None else RigGeometry()
        self.randomization = randomization if randomization is not None else Randomization.train()
        if not isinstance(self.rig, RigGeometry) or not isinstance(self.randomization, Randomization):
            raise TypeError("rig must be a RigGeometry and randomization a Randomization (or None)")
        if isinstance(supersample, bool) or not isinstance(supersample, int) or not 1 <= supersample <= 8:
            raise ValueError(f"supersample={supersample!r} must be an integer from 1 to 8")
        if not 0 <= edge_strength <= 1:
            raise ValueError(f"edge_strength={edge_strength!r} must be in [0, 1]")
        self.ldconfig = ldconfig
        self.supersample = supersample
        self.edge_strength = float(edge_strength)
        self._poses: dict[int, tuple[weakref.ref[Mesh], int, list[Pose]]] = {}

    # ------------------------------------------------------------------ geometry

    def camera(
        self, width: int | None = None, height: int | None = None, tilt_deg: float | None = None
    ) -> Camera:
        """The rig's fixed camera (full frame), at the rig's resolution and tilt unless given."""
        rig = self.rig
        tilt = math.radians(rig.camera_tilt_deg if tilt_deg is None else tilt_deg)
        h = rig.camera_height_mm / MM_PER_LDU
        position = np.array([0.0, -h, -h * math.tan(tilt)])
        # The exact image-up direction: works straight down (tilt 0) too.
        up = np.array([0.0, -math.sin(tilt), math.cos(tilt)])
        return Camera(position, np.zeros(3), width or rig.width, height or rig.height, rig.fov_deg, up)

    def poses(self, mesh: Mesh) -> list[Pose]:
        """The part's stable poses (cached per Mesh object)."""
        crc = zlib.crc32(np.ascontiguousarray(mesh.triangles).tobytes())
        hit = self._poses.get(id(mesh))
        if hit is not None and hit[0]() is mesh and hit[1] == crc:
            return hit[2]
        found = stable_poses(mesh)
        key = id(mesh)
        self._poses[key] = (weakref.ref(mesh, lambda _r: self._poses.pop(key, None)), crc, found)
        return found

    # ------------------------------------------------------------------ public API

    def render_views(
        self,
        mesh: Mesh,
        color: Color | int,
        angles_deg: Sequence[float],
        seed: int,
        *,
        frame: Literal["full", "crop"] = "full",
        size: tuple[int, int] | None = None,
        crop_margin: float = 0.15,
        pose_index: int | None = None,
        name: str = "part",
    ) -> list[View]:
        """Place the part once and photograph it at each turntable angle.

        Args:
            mesh: the part (LDU, LDraw axes), e.g. ``LDrawLibrary(root).part_mesh("3001")``.
            color: its colour (a :class:`~edge.colors.Color` or a Rebrickable colour id).
            angles_deg: turntable angles, one view each.
            seed: non-negative integer; the same seed gives the same images.
            frame: ``"full"``: the rig's whole frame (turntable in view) at the rig's resolution,
                or ``size``; ``"crop"``: a ``size`` image (default 224 x 224) centred on the part,
                rendered by a narrow camera at the rig camera's position (full detail, no upscale).
            size: (width, height) of the output.
            crop_margin: free space on each side of the part in a crop, as a fraction of the
                part's larger side.
            pose_index: force this stable pose (0 = most probable) instead of drawing one.
            name: what to call the part in error messages.

        Raises:
            ValueError: a bad argument (the message names it and the fix).
            RenderError: the part does not fit the rig's view, or cannot be rendered.
        """
        color = self._check_args(color, angles_deg, seed, frame, size, crop_margin)
        if frame == "full":
            out_w, out_h = size if size is not None else (self.rig.width, self.rig.height)
        else:
            out_w, out_h = size if size is not None else (224, 224)
        poses = self.poses(mesh)
        if pose_index is not None and not (isinstance(pose_index, int) and 0 <= pose_index < len(poses)):
            raise ValueError(
                f"pose_index={pose_index!r} is not one of {name!r}'s {len(poses)} poses (0..{len(poses) - 1})"
            )
        draws = PlacementDraws(self.rig, self.randomization)
        tilt = draws.uniform(seed, "camera_tilt", "tilt_deg", self.rig.camera_tilt_deg)
        full = self.camera(out_w, out_h, tilt) if frame == "full" else self.camera(tilt_deg=tilt)
        place = draws.draw(
            mesh, color, poses, seed, pose_index, name, angles_deg, full, whole_frame=frame == "full"
        )
        place.meta["camera_tilt_deg"] = tilt
        shots = self._prepare_shots(mesh, color, place, full if frame == "full" else None)
        views = []
        for k, angle in enumerate(angles_deg):
            world = yaw_matrix(float(angle)) @ placement(place.pose, place.yaw_deg, tuple(place.offset_ldu))
            part = mesh.transformed(world)
            cam = full if frame == "full" else crop_camera(full, part, out_w, out_h, crop_margin)
            linear, mask, bbox = self._shoot(shots, part, cam, place, float(angle))
            scale = cam.focal / self.camera().focal  # output pixels per sensor pixel
            image, per_view = self._camera_effects(linear, place, seed, k, cam, part, scale)
            meta = dict(place.meta, angle_deg=float(angle), view_index=k, frame=frame, **per_view)
            if frame == "crop":
                meta["crop_fov_deg"] = float(cam.fov_deg)
            views.append(View(image, mask, bbox, float(angle), meta))
        return views

    # ------------------------------------------------------------------ shooting (the renderer's part)

    def _prepare_shots(self, mesh: Mesh, color: Color, place: Placement, full: Camera | None) -> Any:
        """Per-placement work shared by the views (a subclass with another renderer overrides it).

        ``full`` is the rig camera for full frames, None for crops.
        """
        tri_rgb, tri_alpha, edges = self._part_colours(mesh, color, place)
        return tri_rgb, tri_alpha, edges, (self._stage(full, place) if full is not None else None)

    def _shoot(
        self, shots: Any, part: Mesh, cam: Camera, place: Placement, angle: float
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int] | None]:
        """One view's linear RGB scene light (H, W, 3), exact part mask and its bbox."""
        tri_rgb, tri_alpha, edges, stage = shots
        edge_rgb, cond_rgb, edge_width, edge_blend = self._edges(cam, part, edges)
        result = render_mesh(
            part,
            tri_rgb,
            cam,
            place.lighting,
            tri_alpha=tri_alpha,
            edge_rgb=edge_rgb,
            cond_edge_rgb=cond_rgb,
            supersample=self.supersample,
            edge_lines=edge_blend > 0,
            edge_width=edge_width,
        )
        scene = self._backdrop(stage or self._stage(cam, place), cam, part, place, angle)
        return result.rgb + (1.0 - result.coverage[:, :, None]) * scene, result.mask, result.bbox

    # ------------------------------------------------------------------ argument checks

    def _check_args(
        self,
        color: Color | int,
        angles: Sequence[float],
        seed: int,
        frame: str,
        size: tuple[int, int] | None,
        margin: float,
    ) -> Color:
        if isinstance(color, int) and not isinstance(color, bool):
            color = get_color(color)
        if not isinstance(color, Color):
            raise ValueError(f"color={color!r} must be an edge.colors.Color or a Rebrickable colour id")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed={seed!r} must be a non-negative integer")
        if isinstance(angles, str | bytes) or len(angles) == 0:
            raise ValueError(f"angles_deg={angles!r} must be a non-empty sequence of angles in degrees")
        if not all(isinstance(a, int | float | np.number) and math.isfinite(float(a)) for a in angles):
            raise ValueError(f"angles_deg={list(angles)!r} must hold finite numbers (degrees)")
        if frame not in ("full", "crop"):
            raise ValueError(
                f"frame={frame!r} must be 'full' (the rig's frame) or 'crop' (centred on the part)"
            )
        if size is not None and (
            len(size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or not 8 <= v <= 8192 for v in size)
        ):
            raise ValueError(f"size={size!r} must be (width, height), integers from 8 to 8192")
        if not 0 <= margin <= 2:
            raise ValueError(f"crop_margin={margin!r} must be in [0, 2] (fraction of the part's size)")
        return color

    # ------------------------------------------------------------------ colours

    def _part_colours(
        self, mesh: Mesh, color: Color, place: Placement
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        main_lin = lin(place.main_rgb)
        edge = self._edge_srgb(color)
        cache: dict[int, np.ndarray] = {MAIN_COLOR: main_lin, EDGE_COLOR: lin(edge)}

        def resolve(code: int) -> np.ndarray:
            if code not in cache:
                rgb: Sequence[int] | None = None
                if self.ldconfig is not None and code in self.ldconfig:
                    rgb = self.ldconfig[code].rgb
                elif self.ldconfig is None:
                    try:
                        rgb = color_by_ldraw_code(code).rgb
                    except UnknownColorError:
                        rgb = None
                cache[code] = lin(rgb) if rgb is not None else main_lin  # unknown: the main colour
            return cache[code]

        codes = np.asarray(mesh.colors)
        uniq, inv = np.unique(codes, return_inverse=True)
        tri_rgb = np.array([resolve(int(c)) for c in uniq]).reshape(-1, 3)[inv.ravel()]
        tri_alpha = np.full(len(codes), place.alpha)
        # Edge lines blend from the surface colour (an explicit line colour is its own surface)
        # towards the line colour; _edges picks the blend per view.
        ecodes = [int(c) for c in mesh.edge_colors]
        body = np.array([main_lin if c == EDGE_COLOR else resolve(c) for c in ecodes]).reshape(-1, 3)
        line = np.array([resolve(c) for c in ecodes]).reshape(-1, 3)
        n_cond = len(mesh.cond_edges)
        edges = (body, line, np.tile(main_lin, (n_cond, 1)), np.tile(cache[EDGE_COLOR], (n_cond, 1)))
        return tri_rgb, tri_alpha, edges

    def _edges(
        self, cam: Camera, part: Mesh, edges: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Edge and conditional-line colours and width for one view, and the blend used.

        A real brick's edges are ~0.3 mm bevels. Lines narrower than that on screen are drawn at
        that width; where the renderer cannot draw that thin (one supersample), the line is drawn
        at its minimum width but fainter in proportion, so small images are not all outline.
        """
        pts = part.triangles.reshape(-1, 3).astype(np.float64)
        centre = (pts.min(axis=0) + pts.max(axis=0)) / 2
        px_per_mm = cam.focal / (np.linalg.norm(centre - cam.position) * MM_PER_LDU)
        physical = float(_BEVEL_MM * px_per_mm)
        width = float(np.clip(physical, 1.0 / self.supersample, 16.0))
        k = self.edge_strength * min(1.0, physical / width)
        body, line, cbody, cline = edges
        return (1 - k) * body + k * line, (1 - k) * cbody + k * cline, width, k

    def _edge_srgb(self, color: Color) -> tuple[int, int, int]:
        if self.ldconfig is not None and color.ldraw_code in self.ldconfig:
            return self.ldconfig[color.ldraw_code].edge_rgb  # type: ignore[index]
        return default_edge_rgb(color.rgb, transparent=color.is_trans)

    # ------------------------------------------------------------------ drawing

    def _stage(self, cam: Camera, place: Placement) -> _Stage:
        """What a camera sees of the fixed set: the backdrop, the disc's rim, where the disc is."""
        rig = self.rig
        rng = np.random.default_rng([place.meta["seed"], FACTORS.index("background"), 0])
        out = effects.background_texture(
            cam.height, cam.width, place.bg_rgb, rng, kind=place.bg_kind, strength=place.bg_strength
        )
        out *= (0.5 + 0.5 * place.lighting.color / _KEY_LIGHT).astype(np.float32)  # half lit by the key light
        radius = rig.disc_radius_mm / MM_PER_LDU
        # Rim: the disc's side, seen below its near edge, lit by the ambient and grazing light.
        x, z, ok = plane_hits(cam, rig.disc_thickness_mm / MM_PER_LDU)
        rim = disc_coverage(np.hypot(x, z), radius, ok)[:, :, None]
        rim_rgb = np.asarray(place.disc.rgb) * (0.55 * place.lighting.ambient + 0.25 * _key(place.lighting))
        out = out * (1 - rim) + (rim * rim_rgb).astype(np.float32)
        x, z, ok = plane_hits(cam, 0.0)
        r = np.hypot(x, z)
        top = disc_coverage(r, radius, ok)
        inside = top > 0
        pixel_mm = footprint(r, inside) * MM_PER_LDU
        f32 = np.float32
        return _Stage(out, top, inside, x.astype(f32), z.astype(f32), (r / radius).astype(f32), pixel_mm)

    def _backdrop(self, stage: _Stage, cam: Camera, part: Mesh, place: Placement, angle: float) -> np.ndarray:
        """Linear RGB of everything but the part: the stage plus the turned disc and the shadows."""
        out = stage.base.copy()
        if not stage.inside.any():
            return out
        # Whole-frame arithmetic (the disc fills most of the rig's frame; gathers would cost more).
        a = math.radians(-angle)  # the disc's surface turns with the turntable
        c, s = np.float32(math.cos(a) * MM_PER_LDU), np.float32(math.sin(a) * MM_PER_LDU)
        u = stage.x * c + stage.z * s
        v = stage.z * c - stage.x * s
        albedo = place.disc.albedo(u, v, stage.footprint_mm)
        shadow, occlusion = ground_shadows(cam, part, place.lighting.direction)
        ring = 1.0 - np.float32(0.12) * stage.r_frac**2  # a ring light: centre brightest
        light = ((1 - shadow) * ring)[:, :, None] * _key(place.lighting).astype(np.float32)
        light += (1 - np.float32(0.45) * occlusion)[:, :, None] * np.asarray(
            place.lighting.ambient, np.float32
        )
        top = stage.top[:, :, None]
        return out * (1 - top) + albedo * light * top

    def _camera_effects(
        self,
        linear: np.ndarray,
        place: Placement,
        seed: int,
        k: int,
        cam: Camera,
        part: Mesh,
        scale: float,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Optics, sensor and encoder: linear scene light in, uint8 sRGB out."""
        img = linear.astype(np.float32)
        per_view: dict[str, Any] = {}
        if place.defocus_px > 0:
            img = effects.defocus(img, min(place.defocus_px * scale, 100.0))
        if self.randomization.motion_blur.enabled:
            rng = stream(seed, "motion_blur", k)
            length = float(rng.uniform(*place.blur_px)) * scale
            direction = motion_direction(cam, part, rng)
            img = effects.motion_blur(img, direction, min(length, 200.0))
            per_view.update(motion_blur_px=length, motion_blur_angle_deg=direction)
        img = effects.exposure(img, place.ev)
        if self.randomization.sensor_noise.enabled:
            rng = stream(seed, "sensor_noise", k)
            img = effects.sensor_noise(img, rng, *place.noise, scale=float(np.clip(scale, 0.01, 100)))
        img = effects.white_balance(np.clip(img, 0, None), place.gains)
        srgb = linear_to_srgb(np.clip(img, 0.0, 1.0))
        if place.jpeg is not None:
            srgb = effects.jpeg_roundtrip(srgb, place.jpeg)
        return np.clip(np.rint(srgb * 255), 0, 255).astype(np.uint8), per_view
