"""The path tracer's per-placement draws, as plain numpy: part materials, lights, environment.

Nothing here imports Mitsuba; :mod:`studio.pathtrace` turns these draws into a scene.
Materials: ABS is a principled BSDF with randomised roughness and specular level; transparent
colours are a rough dielectric tinted by the colour; chrome a rough conductor; metallic, pearl and
rubber finishes principled BSDFs with their own ranges. Lights: a square area key light where the
scene's key light is (its size sets how soft the shadows are), a fill light from anywhere above,
and an environment (a sky brighter above, with a window-like bright patch); each light has its own
colour temperature around the scene's, whose overall cast the camera gains already hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.colors import Color, color_by_ldraw_code
from edge.errors import UnknownColorError
from studio.effects import kelvin_to_rgb
from studio.ldconfig import LDrawColour
from studio.mesh import EDGE_COLOR, MAIN_COLOR
from studio.pathtrace_config import PathTraceSettings

MM_PER_LDU = 0.4
_NEUTRAL_K = 6504.0
#: Size of the environment map (lat-long); one size keeps Mitsuba's compiled kernels reusable.
ENV_SHAPE = (32, 64)
#: LDConfig finishes -> the path tracer's material kinds.
_LDCONFIG_KIND = {
    "chrome": "chrome",
    "pearlescent": "pearl",
    "metal": "metallic",
    "matte_metallic": "metallic",
}


@dataclass
class Material:
    """One surface kind of the part: a Mitsuba BSDF description plus what was drawn for it."""

    code: int  # LDraw colour code the triangles carry
    kind: str  # 'solid', 'trans', 'chrome', 'metallic', 'pearl' or 'rubber'
    bsdf: dict[str, Any]  # a Mitsuba plugin dict (no Mitsuba objects inside)
    meta: dict[str, Any]


@dataclass
class AreaLight:
    """A square emitter facing the scene's centre."""

    direction: np.ndarray  # unit vector from the scene towards the light (LDraw axes, -Y up)
    distance_ldu: float
    side_ldu: float
    radiance: np.ndarray  # (3,) linear RGB


def material_kind(code: int, main: Color, ldconfig: dict[int, LDrawColour] | None) -> str:
    """The material kind of the triangles of LDraw colour ``code`` in a part of colour ``main``."""
    if code in (MAIN_COLOR, EDGE_COLOR):
        return main.material
    if ldconfig is not None and code in ldconfig:
        entry = ldconfig[code]
        if entry.is_trans:
            return "trans"
        return "rubber" if entry.material == "rubber" else _LDCONFIG_KIND.get(entry.material, "solid")
    try:
        return color_by_ldraw_code(code).material
    except UnknownColorError:
        return main.material


def _rgb(value: np.ndarray) -> dict[str, Any]:
    return {"type": "rgb", "value": [float(v) for v in np.clip(value, 0.0, 1.0)]}


def draw_material(
    code: int, kind: str, rgb: np.ndarray, rng: np.random.Generator, settings: PathTraceSettings
) -> Material:
    """A material of ``kind`` and linear colour ``rgb`` with its finish drawn from ``rng``."""
    rgb = np.asarray(rgb, np.float64)
    meta: dict[str, Any] = {"code": int(code), "kind": kind}
    bsdf: dict[str, Any]
    if kind == "trans":
        # The colour tints each crossing of the surface: a wall (two crossings) passes about rgb.
        ior, alpha = float(rng.uniform(1.49, 1.59)), float(rng.uniform(0.005, 0.06))
        bsdf = {
            "type": "roughdielectric",
            "int_ior": ior,
            "ext_ior": 1.0,
            "alpha": alpha,
            "specular_transmittance": _rgb(np.sqrt(rgb)),
        }
        meta.update(ior=ior, alpha=alpha)
    elif kind == "chrome":
        alpha = float(rng.uniform(0.02, 0.1))
        bsdf = {
            "type": "roughconductor",
            "material": "none",
            "alpha": alpha,
            "specular_reflectance": _rgb(rgb),
        }
        meta.update(alpha=alpha)
    else:
        lo_r, hi_r = settings.abs_roughness
        ranges = {  # roughness, specular, metallic
            "solid": ((lo_r, hi_r), settings.abs_specular, (0.0, 0.0)),
            "metallic": ((0.25, 0.45), (0.4, 0.6), (0.6, 0.95)),
            "pearl": ((0.18, 0.35), (0.45, 0.65), (0.3, 0.6)),
            "rubber": ((0.6, 0.9), (0.15, 0.35), (0.0, 0.0)),
        }[kind if kind in ("metallic", "pearl", "rubber") else "solid"]
        rough, spec, metal = (float(rng.uniform(*r)) for r in ranges)
        bsdf = {
            "type": "principled",
            "base_color": _rgb(rgb),
            "roughness": rough,
            "specular": spec,
            "metallic": metal,
        }
        meta.update(roughness=rough, specular=spec, metallic=metal)
    return Material(
        int(code), kind, {"type": "twosided", "material": bsdf} if kind != "trans" else bsdf, meta
    )


def _direction(elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """Unit vector towards a light at this elevation and azimuth (0 = from the camera's side, -Z)."""
    e, a = math.radians(elevation_deg), math.radians(azimuth_deg)
    return np.array([math.sin(a) * math.cos(e), -math.sin(e), -math.cos(a) * math.cos(e)])


def _tint(rng: np.random.Generator, spread: float) -> tuple[np.ndarray, float]:
    kelvin = float(np.clip(_NEUTRAL_K + rng.uniform(-spread, spread), 1667, 25000))
    return kelvin_to_rgb(kelvin), kelvin


def draw_lights(
    key_direction: np.ndarray,
    key_rgb: np.ndarray,
    ambient: float,
    rng: np.random.Generator,
    settings: PathTraceSettings,
    dim: float = 1.0,
) -> tuple[list[AreaLight], np.ndarray, dict[str, Any]]:
    """Key and fill area lights and the environment map (``ENV_SHAPE`` + (3,), linear radiance).

    ``key_rgb`` is the scene's key light (the rasteriser's: a white face turned to it shows that
    much); ``ambient`` its ambient level; ``dim`` scales everything (a backlit scene is darker).
    """
    lights, meta = [], {}
    dist = float(rng.uniform(*settings.key_distance_mm)) / MM_PER_LDU
    size_deg = float(rng.uniform(*settings.key_size_deg))
    side = 2 * dist * math.tan(math.radians(size_deg) / 2)
    tint, kelvin = _tint(rng, settings.light_kelvin_spread)
    # Irradiance pi * key_rgb makes a white Lambertian face turned to the light as bright as the
    # rasteriser's; a square of side s at distance d delivers L s^2 / d^2.
    radiance = math.pi * np.asarray(key_rgb) * tint * dim * dist**2 / side**2
    lights.append(AreaLight(np.asarray(key_direction, np.float64), dist, side, radiance))
    meta["key"] = {"distance_mm": dist * MM_PER_LDU, "size_deg": size_deg, "kelvin": kelvin}

    fill_dir = _direction(rng.uniform(15, 75), rng.uniform(0, 360))
    fill_dist = 1500.0
    fill_deg = float(rng.uniform(20, 60))
    fill_side = 2 * fill_dist * math.tan(math.radians(fill_deg) / 2)
    fill_gain = float(rng.uniform(*settings.fill_strength))
    fill_tint, fill_k = _tint(rng, settings.light_kelvin_spread)
    fill_rad = math.pi * np.asarray(key_rgb) * fill_gain * fill_tint * dim * fill_dist**2 / fill_side**2
    lights.append(AreaLight(fill_dir, fill_dist, fill_side, fill_rad))
    meta["fill"] = {
        "direction": fill_dir.tolist(),
        "size_deg": fill_deg,
        "strength": fill_gain,
        "kelvin": fill_k,
    }

    env_gain = float(rng.uniform(*settings.env_strength))
    window_dir = _direction(rng.uniform(10, 70), rng.uniform(0, 360))
    window_deg = float(rng.uniform(10, 45))
    window_gain = float(rng.uniform(0.0, 3.0))
    env_tint, env_k = _tint(rng, settings.light_kelvin_spread)
    env = environment(ambient * env_gain * dim, window_dir, window_deg, window_gain) * env_tint.astype(
        np.float32
    )
    meta["environment"] = {
        "strength": env_gain,
        "window_direction": window_dir.tolist(),
        "window_deg": window_deg,
        "window_gain": window_gain,
        "kelvin": env_k,
    }
    return lights, env, meta


def env_directions(shape: tuple[int, int] = ENV_SHAPE) -> np.ndarray:
    """World directions (H, W, 3) of the texels of a Mitsuba lat-long environment map.

    Mitsuba maps a direction v to u = atan2(v.x, -v.z) / 2pi, v = acos(v.y) / pi.
    """
    h, w = shape
    theta = (np.arange(h) + 0.5) / h * math.pi
    phi = (np.arange(w) + 0.5) / w * 2 * math.pi
    st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
    return np.stack([st * np.sin(phi)[None, :], np.broadcast_to(ct, (h, w)), -st * np.cos(phi)[None, :]], -1)


def environment(level: float, window_dir: np.ndarray, window_deg: float, window_gain: float) -> np.ndarray:
    """A sky: ``level`` on average over the upper hemisphere, brighter straight up, dim below the
    horizon (a room's floor), with a soft bright patch of ``window_deg`` towards ``window_dir``."""
    d = env_directions()
    up = -d[..., 1]  # LDraw's -Y is up
    sky = np.where(up > 0, 0.6 + 0.8 * up, 0.25)
    width = math.radians(window_deg) / 2
    cos_to = np.clip(d @ (window_dir / np.linalg.norm(window_dir)), -1, 1)
    patch = window_gain * np.exp(-((np.arccos(cos_to) / width) ** 2))
    return (level * (sky + patch))[..., None].repeat(3, axis=-1).astype(np.float32)
