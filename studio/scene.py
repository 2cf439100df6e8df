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

import cv2
import numpy as np

from edge.colors import Color, all_colors, color_by_ldraw_code, get_color
from edge.errors import UnknownColorError
from studio import effects
from studio.camera import Camera
from studio.errors import RenderError
from studio.ldconfig import LDrawColour, default_edge_rgb
from studio.lighting import Lighting
from studio.mesh import EDGE_COLOR, MAIN_COLOR, Mesh
from studio.poses import Pose, placement, stable_poses, yaw_matrix
from studio.render import linear_to_srgb, render_mesh, srgb_to_linear
from studio.scene_config import FACTORS, Randomization, RigGeometry

__all__ = ["MM_PER_LDU", "Randomization", "RigGeometry", "SceneRenderer", "View"]

#: Millimetres per LDraw unit.
MM_PER_LDU = 0.4
_KEY_LIGHT = 0.62  # key light strength: a white face turned to it lands near 0.85 (no clipping)
_AMBIENT = 0.30
_NEUTRAL_K = 6504.0  # colour temperature that kelvin_to_rgb maps to white
_BEVEL_MM = 0.3  # width of the rounded edge of a real brick, which edge lines stand for
#: Specular strength and shininess per finish (ABS is glossy; chrome is a mirror).
_FINISH = {
    "solid": (0.30, 32.0),
    "trans": (0.50, 48.0),
    "pearl": (0.50, 24.0),
    "metallic": (0.60, 40.0),
    "chrome": (0.95, 64.0),
}


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


def _stream(seed: int, factor: str, view: int | None = None) -> np.random.Generator:
    key = [seed, FACTORS.index(factor)] + ([] if view is None else [view + 1])
    return np.random.default_rng(key)


def _lin(rgb: Sequence[float] | np.ndarray) -> np.ndarray:
    """sRGB 0..255 -> linear float64 (3,)."""
    return srgb_to_linear(np.asarray(rgb, np.float64) / 255.0)


@dataclass
class _Placement:
    """Everything drawn once per render_views call."""

    pose: Pose
    yaw_deg: float
    offset_ldu: np.ndarray
    lighting: Lighting
    gains: np.ndarray  # per-channel camera gain: light tint, its correction, white balance
    ev: float
    disc: effects.DiscSurface
    bg_kind: effects.BackgroundKind
    bg_rgb: np.ndarray
    bg_strength: float
    main_rgb: np.ndarray  # sRGB 0..255 of the (maybe jittered) main colour
    alpha: float
    defocus_px: float
    blur_px: tuple[float, float]
    noise: tuple[float, float]
    jpeg: int | None
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
        tilt = self._uniform(seed, "camera_tilt", "tilt_deg", self.rig.camera_tilt_deg)
        full = self.camera(out_w, out_h, tilt) if frame == "full" else self.camera(tilt_deg=tilt)
        place = self._draw_placement(
            mesh, color, poses, seed, pose_index, name, angles_deg, full, whole_frame=frame == "full"
        )
        place.meta["camera_tilt_deg"] = tilt
        shots = self._prepare_shots(mesh, color, place, full if frame == "full" else None)
        views = []
        for k, angle in enumerate(angles_deg):
            world = yaw_matrix(float(angle)) @ placement(place.pose, place.yaw_deg, tuple(place.offset_ldu))
            part = mesh.transformed(world)
            cam = full if frame == "full" else _crop_camera(full, part, out_w, out_h, crop_margin)
            linear, mask, bbox = self._shoot(shots, part, cam, place, float(angle))
            scale = cam.focal / self.camera().focal  # output pixels per sensor pixel
            image, per_view = self._camera_effects(linear, place, seed, k, cam, part, scale)
            meta = dict(place.meta, angle_deg=float(angle), view_index=k, frame=frame, **per_view)
            if frame == "crop":
                meta["crop_fov_deg"] = float(cam.fov_deg)
            views.append(View(image, mask, bbox, float(angle), meta))
        return views

    # ------------------------------------------------------------------ shooting (the renderer's part)

    def _prepare_shots(self, mesh: Mesh, color: Color, place: _Placement, full: Camera | None) -> Any:
        """Per-placement work shared by the views (a subclass with another renderer overrides it).

        ``full`` is the rig camera for full frames, None for crops.
        """
        tri_rgb, tri_alpha, edges = self._part_colours(mesh, color, place)
        return tri_rgb, tri_alpha, edges, (self._stage(full, place) if full is not None else None)

    def _shoot(
        self, shots: Any, part: Mesh, cam: Camera, place: _Placement, angle: float
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

    # ------------------------------------------------------------------ placement

    def _draw_placement(
        self,
        mesh: Mesh,
        color: Color,
        poses: list[Pose],
        seed: int,
        pose_index: int | None,
        name: str,
        angles: Sequence[float],
        frame_cam: Camera,
        *,
        whole_frame: bool = True,
    ) -> _Placement:
        """Everything drawn once per capture, each factor from its own named stream of ``seed``."""
        meta: dict[str, Any] = {"seed": int(seed), "color_id": color.id}
        pose, yaw, offset = self._draw_pose(
            mesh, poses, seed, pose_index, name, angles, frame_cam, whole_frame, meta
        )
        lighting = self._draw_light(color, seed, meta)
        gains, ev = self._draw_camera_gains(seed, meta)
        disc, bg_kind, bg_rgb, bg_strength = self._draw_ground(seed, meta)
        main, alpha = self._draw_colour(color, seed, meta)
        defocus, blur_px, noise, jpeg = self._draw_camera_effects(seed, meta)
        fields = (pose, yaw, offset, lighting, gains, ev, disc, bg_kind, bg_rgb, bg_strength, main, alpha)
        return _Placement(*fields, defocus, blur_px, noise, jpeg, meta)

    def _draw_pose(
        self,
        mesh: Mesh,
        poses: list[Pose],
        seed: int,
        pose_index: int | None,
        name: str,
        angles: Sequence[float],
        frame_cam: Camera,
        whole_frame: bool,
        meta: dict[str, Any],
    ) -> tuple[Pose, float, np.ndarray]:
        """The resting pose, its yaw and its offset on the disc (kept in the frame at every angle)."""
        rnd, rig = self.randomization, self.rig
        if pose_index is None and rnd.pose.enabled:
            probs = np.array([p.probability for p in poses])
            pose_index = int(_stream(seed, "pose").choice(len(poses), p=probs / probs.sum()))
        pose_index = pose_index or 0
        pose = poses[pose_index]
        meta.update(pose_index=pose_index, pose_probability=pose.probability)

        rng = _stream(seed, "placement")
        pl = rnd.placement
        yaw = float(rng.uniform(*pl.yaw_deg)) if pl.enabled else 0.0
        base = mesh.transformed(placement(pose, yaw))
        verts = base.triangles.reshape(-1, 3).astype(np.float64)
        part_radius = float(np.max(np.hypot(verts[:, 0], verts[:, 2])))  # about the turning axis
        disc_radius = rig.disc_radius_mm / MM_PER_LDU
        if part_radius > disc_radius:
            raise RenderError(
                f"part {name!r} reaches {part_radius * MM_PER_LDU:.0f} mm from its centre, beyond the "
                f"turntable's {rig.disc_radius_mm:g} mm radius; use a bigger rig disc_radius_mm"
            )
        offset = np.zeros(2)
        if pl.enabled:
            r = math.sqrt(rng.uniform()) * pl.max_offset_frac * (disc_radius - part_radius)
            a = rng.uniform(0, 2 * math.pi)
            offset = np.array([r * math.cos(a), r * math.sin(a)])
        offset = _fit_in_frame(frame_cam, base, offset, angles, name, strict=whole_frame)
        meta.update(yaw_deg=yaw, offset_mm=[float(v * MM_PER_LDU) for v in offset])
        return pose, yaw, offset

    def _draw_light(self, color: Color, seed: int, meta: dict[str, Any]) -> Lighting:
        """The key light's direction and strength, the finish's highlight, contact shading."""
        rnd, rig = self.randomization, self.rig
        el, az = rig.light_elevation_deg, rig.light_azimuth_deg
        if rnd.light_direction.enabled:
            rng = _stream(seed, "light_direction")
            el = float(np.clip(el + rng.uniform(-1, 1) * rnd.light_direction.elevation_jitter_deg, 5, 90))
            az = float(az + rng.uniform(-1, 1) * rnd.light_direction.azimuth_jitter_deg)
        intensity = self._uniform(seed, "light_intensity", "scale", 1.0)
        e, a = math.radians(el), math.radians(az)
        direction = np.array([math.sin(a) * math.cos(e), -math.sin(e), -math.cos(a) * math.cos(e)])
        specular, shininess = _FINISH.get(color.material, _FINISH["solid"])
        key = np.full(3, _KEY_LIGHT * intensity)
        shading: dict[str, float] = {}
        if rnd.contact_shading.enabled:
            cs, rng = rnd.contact_shading, _stream(seed, "contact_shading")
            shading = {
                "shadow": float(rng.uniform(*cs.shadow)),
                "occlusion": float(rng.uniform(*cs.occlusion)),
                "occlusion_radius": float(rng.uniform(*cs.radius_ldu)),
            }
            meta["contact_shading"] = shading
        meta.update(light_elevation_deg=el, light_azimuth_deg=az, light_intensity=intensity)
        return Lighting(direction, key, _AMBIENT * intensity, specular * intensity, shininess, **shading)

    def _draw_camera_gains(self, seed: int, meta: dict[str, Any]) -> tuple[np.ndarray, float]:
        """Per-channel gains and exposure. One light colour for key and ambient light makes the scene
        linear in it, so tinting the light is exactly a per-channel gain on the image."""
        rnd = self.randomization
        kelvin, gains = _NEUTRAL_K, np.ones(3)
        if rnd.color_temperature.enabled:
            ct = rnd.color_temperature
            kelvin = float(_stream(seed, "color_temperature").uniform(*ct.kelvin))
            tint = effects.kelvin_to_rgb(kelvin)
            gains = gains * tint ** (1.0 - ct.camera_correction)
        if rnd.white_balance.enabled:
            err = _stream(seed, "white_balance").uniform(-1, 1, 2) * rnd.white_balance.max_gain_error
            gains = gains * np.array([math.exp(err[0]), 1.0, math.exp(err[1])])
        ev = self._uniform(seed, "exposure", "ev", 0.0)
        meta.update(kelvin=kelvin, channel_gains=gains.tolist(), exposure_ev=ev)
        return gains, ev

    def _draw_ground(
        self, seed: int, meta: dict[str, Any]
    ) -> tuple[effects.DiscSurface, effects.BackgroundKind, np.ndarray, float]:
        """The disc's surface and the background around it."""
        rnd, rig = self.randomization, self.rig
        disc, disc_meta = self._draw_disc(seed)
        bg_kind: effects.BackgroundKind = "solid"
        bg_rgb, bg_strength = _lin(rig.background_rgb), 0.0
        if rnd.background.enabled:
            rng, bg = _stream(seed, "background"), rnd.background
            bg_kind = bg.kinds[int(rng.integers(len(bg.kinds)))]
            bg_rgb = bg_rgb * rng.uniform(*bg.brightness) * np.exp(rng.normal(0, bg.tint, 3))
            bg_strength = float(rng.uniform(*bg.strength))
        meta.update(
            disc=disc_meta, background={"kind": bg_kind, "rgb": bg_rgb.tolist(), "strength": bg_strength}
        )
        return disc, bg_kind, bg_rgb, bg_strength

    def _draw_colour(self, color: Color, seed: int, meta: dict[str, Any]) -> tuple[np.ndarray, float]:
        """The part's main colour (jittered within the colour's neighbours) and its opacity."""
        rnd = self.randomization
        main = np.asarray(color.rgb, np.float64)
        alpha = 0.65 if color.is_trans else 1.0
        if rnd.color_jitter.enabled:
            rng = _stream(seed, "color_jitter")
            others = [c.rgb for c in all_colors() if c.is_trans == color.is_trans and c.id != color.id]
            main = effects.jitter_color(color.rgb, rng, rnd.color_jitter.max_delta_e, others)
            if color.is_trans:
                alpha = float(rng.uniform(0.55, 0.75))
        meta.update(
            main_rgb=[float(v) for v in main],
            color_delta_e=float(effects.delta_e(main, color.rgb)),
            opacity=alpha,
        )
        return main, alpha

    def _draw_camera_effects(
        self, seed: int, meta: dict[str, Any]
    ) -> tuple[float, tuple[float, float], tuple[float, float], int | None]:
        """Defocus, motion blur's range, sensor noise and JPEG quality."""
        rnd = self.randomization
        defocus = self._uniform(seed, "defocus", "sigma_px", 0.0)
        blur = tuple(rnd.motion_blur.length_px) if rnd.motion_blur.enabled else (0.0, 0.0)
        noise = (0.0, 0.0)
        if rnd.sensor_noise.enabled:
            rng = _stream(seed, "sensor_noise")
            noise = (float(rng.uniform(*rnd.sensor_noise.shot)), float(rng.uniform(*rnd.sensor_noise.read)))
        jpeg = (
            int(_stream(seed, "jpeg").integers(rnd.jpeg.quality[0], rnd.jpeg.quality[1] + 1))
            if rnd.jpeg.enabled
            else None
        )
        meta.update(defocus_px=defocus, noise_shot=noise[0], noise_read=noise[1], jpeg_quality=jpeg)
        return defocus, (float(blur[0]), float(blur[1])), noise, jpeg

    def _uniform(self, seed: int, factor: str, span: str, neutral: float) -> float:
        """A draw from factor's ``span`` range if the factor is on, else its neutral value."""
        settings = getattr(self.randomization, factor)
        return float(_stream(seed, factor).uniform(*getattr(settings, span))) if settings.enabled else neutral

    def _draw_disc(self, seed: int) -> tuple[effects.DiscSurface, dict[str, Any]]:
        rnd = self.randomization.disc
        rgb = _lin(self.rig.disc_rgb)
        if not rnd.enabled:
            return effects.DiscSurface(tuple(rgb.tolist())), {"noise": 0.0, "grain": 0.0, "felt": 0.0}
        rng = _stream(seed, "disc")
        rgb = rgb * rng.uniform(*rnd.brightness) * np.exp(rng.normal(0, rnd.tint, 3))
        noise = float(rng.uniform(*rnd.noise))
        grain = float(rng.uniform(0.02, 0.06)) if rng.uniform() < rnd.grain_probability else 0.0
        felt = float(rng.uniform(0.4, 1.0)) if rng.uniform() < rnd.felt_probability else 0.0
        surface = effects.DiscSurface(tuple(rgb.tolist()), noise, grain, felt, int(rng.integers(2**31)))
        return surface, {"rgb": rgb.tolist(), "noise": noise, "grain": grain, "felt": felt}

    # ------------------------------------------------------------------ colours

    def _part_colours(
        self, mesh: Mesh, color: Color, place: _Placement
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        main_lin = _lin(place.main_rgb)
        edge = self._edge_srgb(color)
        cache: dict[int, np.ndarray] = {MAIN_COLOR: main_lin, EDGE_COLOR: _lin(edge)}

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
                cache[code] = _lin(rgb) if rgb is not None else main_lin  # unknown: the main colour
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

    def _stage(self, cam: Camera, place: _Placement) -> _Stage:
        """What a camera sees of the fixed set: the backdrop, the disc's rim, where the disc is."""
        rig = self.rig
        rng = np.random.default_rng([place.meta["seed"], FACTORS.index("background"), 0])
        out = effects.background_texture(
            cam.height, cam.width, place.bg_rgb, rng, kind=place.bg_kind, strength=place.bg_strength
        )
        out *= (0.5 + 0.5 * place.lighting.color / _KEY_LIGHT).astype(np.float32)  # half lit by the key light
        radius = rig.disc_radius_mm / MM_PER_LDU
        # Rim: the disc's side, seen below its near edge, lit by the ambient and grazing light.
        x, z, ok = _plane_hits(cam, rig.disc_thickness_mm / MM_PER_LDU)
        rim = _coverage(np.hypot(x, z), radius, ok)[:, :, None]
        rim_rgb = np.asarray(place.disc.rgb) * (0.55 * place.lighting.ambient + 0.25 * _key(place.lighting))
        out = out * (1 - rim) + (rim * rim_rgb).astype(np.float32)
        x, z, ok = _plane_hits(cam, 0.0)
        r = np.hypot(x, z)
        top = _coverage(r, radius, ok)
        inside = top > 0
        footprint = _footprint(r, inside) * MM_PER_LDU
        f32 = np.float32
        return _Stage(out, top, inside, x.astype(f32), z.astype(f32), (r / radius).astype(f32), footprint)

    def _backdrop(
        self, stage: _Stage, cam: Camera, part: Mesh, place: _Placement, angle: float
    ) -> np.ndarray:
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
        shadow, occlusion = _shadows(cam, part, place.lighting.direction)
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
        place: _Placement,
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
            rng = _stream(seed, "motion_blur", k)
            length = float(rng.uniform(*place.blur_px)) * scale
            direction = _motion_direction(cam, part, rng)
            img = effects.motion_blur(img, direction, min(length, 200.0))
            per_view.update(motion_blur_px=length, motion_blur_angle_deg=direction)
        img = effects.exposure(img, place.ev)
        if self.randomization.sensor_noise.enabled:
            rng = _stream(seed, "sensor_noise", k)
            img = effects.sensor_noise(img, rng, *place.noise, scale=float(np.clip(scale, 0.01, 100)))
        img = effects.white_balance(np.clip(img, 0, None), place.gains)
        srgb = linear_to_srgb(np.clip(img, 0.0, 1.0))
        if place.jpeg is not None:
            srgb = effects.jpeg_roundtrip(srgb, place.jpeg)
        return np.clip(np.rint(srgb * 255), 0, 255).astype(np.uint8), per_view


# ---------------------------------------------------------------------- helpers


def _plane_hits(cam: Camera, plane_y: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _footprint(r: np.ndarray, where: np.ndarray) -> float:
    """Typical pixel size (LDU) on the plane, from how fast the radius changes across pixels."""
    gy, gx = np.gradient(r)
    g = np.hypot(gx, gy)[where]
    return float(np.median(g)) if g.size else 1.0


def _coverage(r: np.ndarray, radius: float, ok: np.ndarray) -> np.ndarray:
    """Antialiased coverage of the disc of ``radius`` given each pixel's radius on the plane."""
    gy, gx = np.gradient(np.where(ok, r, 0.0))
    step = np.maximum(np.hypot(gx, gy), 1e-6)
    return np.where(ok, np.clip((radius - r) / step + 0.5, 0.0, 1.0), 0.0).astype(np.float32)


def _shadows(cam: Camera, part: Mesh, to_light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _fit_in_frame(
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


def _crop_camera(full: Camera, part: Mesh, width: int, height: int, margin: float) -> Camera:
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


def _motion_direction(cam: Camera, part: Mesh, rng: np.random.Generator) -> float:
    """Image direction (degrees) in which the part's centre moves as the turntable turns."""
    centre = part.triangles.reshape(-1, 3).astype(np.float64).mean(0)
    step = yaw_matrix(1.0)[:3, :3] @ centre
    (a, b), _ = cam.project(np.stack([centre, step]))
    d = b - a
    if np.hypot(*d) < 1e-6:  # at the axis: the part only spins in place
        return float(rng.uniform(0, 180))
    return float(math.degrees(math.atan2(d[1], d[0])))
