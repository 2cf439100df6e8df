"""What one placement of a part draws: pose, light, camera gains, ground, colour, camera effects.

Every factor has its own random stream derived from ``(seed, factor)`` (:func:`stream`), so
switching one factor off never changes what the others draw. :class:`PlacementDraws` makes the
draws for :class:`studio.scene.SceneRenderer` and records each in the placement's ``meta``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.colors import Color, all_colors
from studio import effects
from studio.camera import Camera
from studio.errors import RenderError
from studio.framing import fit_in_frame
from studio.lighting import Lighting
from studio.mesh import Mesh
from studio.poses import Pose, placement
from studio.render import srgb_to_linear
from studio.scene_config import FACTORS, MM_PER_LDU, Randomization, RigGeometry

__all__ = ["Placement", "PlacementDraws", "lin", "stream"]

_KEY_LIGHT = 0.62  # key light strength: a white face turned to it lands near 0.85 (no clipping)
_AMBIENT = 0.30
_NEUTRAL_K = 6504.0  # colour temperature that kelvin_to_rgb maps to white
#: Specular strength and shininess per finish (ABS is glossy; chrome is a mirror).
_FINISH = {
    "solid": (0.30, 32.0),
    "trans": (0.50, 48.0),
    "pearl": (0.50, 24.0),
    "metallic": (0.60, 40.0),
    "chrome": (0.95, 64.0),
}


def stream(seed: int, factor: str, view: int | None = None) -> np.random.Generator:
    key = [seed, FACTORS.index(factor)] + ([] if view is None else [view + 1])
    return np.random.default_rng(key)


def lin(rgb: Sequence[float] | np.ndarray) -> np.ndarray:
    """sRGB 0..255 -> linear float64 (3,)."""
    return srgb_to_linear(np.asarray(rgb, np.float64) / 255.0)


@dataclass
class Placement:
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


class PlacementDraws:
    """The draws of one placement for a rig and a randomisation recipe."""

    def __init__(self, rig: RigGeometry, randomization: Randomization) -> None:
        self.rig = rig
        self.randomization = randomization

    def draw(
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
    ) -> Placement:
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
        return Placement(*fields, defocus, blur_px, noise, jpeg, meta)

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
            pose_index = int(stream(seed, "pose").choice(len(poses), p=probs / probs.sum()))
        pose_index = pose_index or 0
        pose = poses[pose_index]
        meta.update(pose_index=pose_index, pose_probability=pose.probability)

        rng = stream(seed, "placement")
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
        offset = fit_in_frame(frame_cam, base, offset, angles, name, strict=whole_frame)
        meta.update(yaw_deg=yaw, offset_mm=[float(v * MM_PER_LDU) for v in offset])
        return pose, yaw, offset

    def _draw_light(self, color: Color, seed: int, meta: dict[str, Any]) -> Lighting:
        """The key light's direction and strength, the finish's highlight, contact shading."""
        rnd, rig = self.randomization, self.rig
        el, az = rig.light_elevation_deg, rig.light_azimuth_deg
        if rnd.light_direction.enabled:
            rng = stream(seed, "light_direction")
            el = float(np.clip(el + rng.uniform(-1, 1) * rnd.light_direction.elevation_jitter_deg, 5, 90))
            az = float(az + rng.uniform(-1, 1) * rnd.light_direction.azimuth_jitter_deg)
        intensity = self.uniform(seed, "light_intensity", "scale", 1.0)
        e, a = math.radians(el), math.radians(az)
        direction = np.array([math.sin(a) * math.cos(e), -math.sin(e), -math.cos(a) * math.cos(e)])
        specular, shininess = _FINISH.get(color.material, _FINISH["solid"])
        key = np.full(3, _KEY_LIGHT * intensity)
        shading: dict[str, float] = {}
        if rnd.contact_shading.enabled:
            cs, rng = rnd.contact_shading, stream(seed, "contact_shading")
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
            kelvin = float(stream(seed, "color_temperature").uniform(*ct.kelvin))
            tint = effects.kelvin_to_rgb(kelvin)
            gains = gains * tint ** (1.0 - ct.camera_correction)
        if rnd.white_balance.enabled:
            err = stream(seed, "white_balance").uniform(-1, 1, 2) * rnd.white_balance.max_gain_error
            gains = gains * np.array([math.exp(err[0]), 1.0, math.exp(err[1])])
        ev = self.uniform(seed, "exposure", "ev", 0.0)
        meta.update(kelvin=kelvin, channel_gains=gains.tolist(), exposure_ev=ev)
        return gains, ev

    def _draw_ground(
        self, seed: int, meta: dict[str, Any]
    ) -> tuple[effects.DiscSurface, effects.BackgroundKind, np.ndarray, float]:
        """The disc's surface and the background around it."""
        rnd, rig = self.randomization, self.rig
        disc, disc_meta = self._draw_disc(seed)
        bg_kind: effects.BackgroundKind = "solid"
        bg_rgb, bg_strength = lin(rig.background_rgb), 0.0
        if rnd.background.enabled:
            rng, bg = stream(seed, "background"), rnd.background
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
            rng = stream(seed, "color_jitter")
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
        defocus = self.uniform(seed, "defocus", "sigma_px", 0.0)
        blur = tuple(rnd.motion_blur.length_px) if rnd.motion_blur.enabled else (0.0, 0.0)
        noise = (0.0, 0.0)
        if rnd.sensor_noise.enabled:
            rng = stream(seed, "sensor_noise")
            noise = (float(rng.uniform(*rnd.sensor_noise.shot)), float(rng.uniform(*rnd.sensor_noise.read)))
        jpeg = (
            int(stream(seed, "jpeg").integers(rnd.jpeg.quality[0], rnd.jpeg.quality[1] + 1))
            if rnd.jpeg.enabled
            else None
        )
        meta.update(defocus_px=defocus, noise_shot=noise[0], noise_read=noise[1], jpeg_quality=jpeg)
        return defocus, (float(blur[0]), float(blur[1])), noise, jpeg

    def uniform(self, seed: int, factor: str, span: str, neutral: float) -> float:
        """A draw from factor's ``span`` range if the factor is on, else its neutral value."""
        settings = getattr(self.randomization, factor)
        return float(stream(seed, factor).uniform(*getattr(settings, span))) if settings.enabled else neutral

    def _draw_disc(self, seed: int) -> tuple[effects.DiscSurface, dict[str, Any]]:
        rnd = self.randomization.disc
        rgb = lin(self.rig.disc_rgb)
        if not rnd.enabled:
            return effects.DiscSurface(tuple(rgb.tolist())), {"noise": 0.0, "grain": 0.0, "felt": 0.0}
        rng = stream(seed, "disc")
        rgb = rgb * rng.uniform(*rnd.brightness) * np.exp(rng.normal(0, rnd.tint, 3))
        noise = float(rng.uniform(*rnd.noise))
        grain = float(rng.uniform(0.02, 0.06)) if rng.uniform() < rnd.grain_probability else 0.0
        felt = float(rng.uniform(0.4, 1.0)) if rng.uniform() < rnd.felt_probability else 0.0
        surface = effects.DiscSurface(tuple(rgb.tolist()), noise, grain, felt, int(rng.integers(2**31)))
        return surface, {"rgb": rgb.tolist(), "noise": noise, "grain": grain, "felt": felt}
