"""A path tracer beside the rasteriser: the same turntable scenes, rendered with Mitsuba 3.

:class:`PathTracedSceneRenderer` is a :class:`~studio.scene.SceneRenderer`, so poses, placement,
colours, crops, the draws shared with the rasteriser (seeded per factor) and the camera effects
after rendering are the same code. It replaces only the two hooks that turn a placed part into
scene light: per placement it draws the materials, the ground, the lights and the lens
(:mod:`studio.pathtrace_draws`, :mod:`studio.grounds`); per view it builds a Mitsuba scene
from numpy arrays in memory (no files), path traces it with a box-filtered film and denoises it
with Open Image Denoise, guided by albedo and normal passes. The part's mask is the rasteriser's
coverage of the same geometry from the same camera: exact, and identical to the raster mask.
Radial lens distortion is applied to image and mask alike, then vignetting.

Mitsuba bakes plain numbers into its compiled kernels; every scene parameter is made opaque before
rendering, so scenes that differ only in values (colours, lights, camera) reuse one kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.colors import Color
from studio.camera import Camera
from studio.draws import Placement
from studio.errors import RenderError
from studio.grounds import Ground, draw_ground, list_photos
from studio.ldconfig import LDrawColour
from studio.lens import distort, mask_bbox, vignette
from studio.mesh import Mesh
from studio.mitsuba_env import load_denoiser, load_mitsuba
from studio.pathtrace_config import PathTraceSettings, pt_stream
from studio.pathtrace_draws import AreaLight, draw_lights, draw_material, material_kind
from studio.poses import yaw_matrix
from studio.render import corner_normals, render_mesh
from studio.scene import MM_PER_LDU, Randomization, RigGeometry, SceneRenderer

__all__ = ["PathTraceSettings", "PathTracedSceneRenderer", "PathTracer"]

_BUFFERS = ("vertex_positions", "faces", "vertex_normals", "vertex_texcoords")
_GROUND_HALF_LDU = 4000.0  # the ground plane reaches 1.6 m from the centre: past every view
_DROP_LDU = 0.01  # the ground lies this far below the part's resting plane (no coplanar faces)
_DISC_SEGMENTS = 128
_AUX_SPP = 4  # samples per pixel of the denoiser's albedo and normal pass


class PathTracer:
    """Renders scenes with Mitsuba 3: shapes built from numpy, path traced, then denoised."""

    def __init__(self, settings: PathTraceSettings | None = None) -> None:
        self.settings = settings if settings is not None else PathTraceSettings()
        self.mi, self.dr = load_mitsuba(self.settings.variant)
        self._oidn = load_denoiser() if self.settings.denoise else None
        self._aux: Any = None  # the albedo + normals integrator, made on first use

    @property
    def variant(self) -> str:
        """The Mitsuba variant in use (``cuda_ad_rgb`` or ``llvm_ad_rgb``)."""
        return str(self.mi.variant())

    def load(self, plugin: dict[str, Any]) -> Any:
        """A Mitsuba object (BSDF, emitter, texture) from its plugin dict."""
        return self.mi.load_dict(plugin)

    def texture(self, albedo: np.ndarray, wrap: str = "repeat") -> Any:
        """A bitmap texture of linear RGB values (no sRGB decoding)."""
        data = np.ascontiguousarray(albedo, dtype=np.float32)
        return self.load({"type": "bitmap", "bitmap": self.mi.Bitmap(data), "raw": True, "wrap_mode": wrap})

    def mesh(
        self,
        name: str,
        tris: np.ndarray,
        *,
        normals: np.ndarray | None = None,
        uv: np.ndarray | None = None,
        bsdf: Any = None,
        emitter: Any = None,
    ) -> Any:
        """A Mitsuba mesh of triangles (N, 3, 3) with optional corner normals (N, 3, 3) and UVs (N, 3, 2)."""
        mi = self.mi
        props = mi.Properties()
        if bsdf is not None:
            props["bsdf"] = bsdf
        if emitter is not None:
            props["emitter"] = emitter
        n = len(tris)
        mesh = mi.Mesh(
            name, 3 * n, n, props, has_vertex_normals=normals is not None, has_vertex_texcoords=uv is not None
        )
        params = mi.traverse(mesh)
        params["vertex_positions"] = mi.Float(np.ascontiguousarray(tris, np.float32).ravel())
        params["faces"] = mi.UInt32(np.arange(3 * n, dtype=np.uint32))
        if normals is not None:
            params["vertex_normals"] = mi.Float(np.ascontiguousarray(normals, np.float32).ravel())
        if uv is not None:
            params["vertex_texcoords"] = mi.Float(np.ascontiguousarray(uv, np.float32).ravel())
        params.update()
        return mesh

    def render(self, shapes: dict[str, Any], cam: Camera, seed: int) -> np.ndarray:
        """Path trace ``shapes`` (Mitsuba objects or plugin dicts, emitters included) as ``cam``
        sees them: (H, W, 3) float32 linear RGB, denoised unless the settings say not."""
        mi, s = self.mi, self.settings
        integrator = {"type": "path", "max_depth": s.max_depth}
        scene = mi.load_dict(
            {"type": "scene", "integrator": integrator, "sensor": self._sensor(cam), **shapes}
        )
        params = mi.traverse(scene)
        for key in params.keys():  # noqa: SIM118 (SceneParameters) re-set each value: plugins make it opaque
            if not key.endswith(_BUFFERS):
                params[key] = params[key]
        params.update()
        seed = int(seed) % 2**31
        rgb = np.nan_to_num(np.array(mi.render(scene, seed=seed, spp=s.spp), np.float32))
        if self._oidn is not None:
            # Albedo and normals guide the denoiser. A pass of their own costs a few percent of the
            # path tracing; Mitsuba's aov integrator wrapped round the path tracer doubled its time.
            if self._aux is None:
                self._aux = mi.load_dict({"type": "aov", "aovs": "albedo:albedo,nn:sh_normal"})
            aux = np.array(
                mi.render(scene, integrator=self._aux, seed=seed, spp=min(s.spp, _AUX_SPP)), np.float32
            )
            albedo = np.ascontiguousarray(np.clip(np.nan_to_num(aux[..., :3]), 0, 1))
            normal = np.ascontiguousarray(np.clip(np.nan_to_num(aux[..., 3:6]), -1, 1))
            rgb = self._oidn.denoise(np.ascontiguousarray(rgb), albedo, normal, hdr=True)
        return np.clip(rgb, 0.0, None)

    def _sensor(self, cam: Camera) -> dict[str, Any]:
        to_world = self.mi.ScalarTransform4f().look_at(
            origin=cam.position.tolist(), target=cam.target.tolist(), up=cam.up.tolist()
        )
        film = {
            "type": "hdrfilm",
            "width": cam.width,
            "height": cam.height,
            "rfilter": {"type": "box"},  # one pixel per sample: what the denoiser expects
            "pixel_format": "rgb",
        }
        return {
            "type": "perspective",
            "fov": float(cam.fov_deg),
            "fov_axis": "y",
            "near_clip": float(cam.near),
            "far_clip": 1e6,
            "to_world": to_world,
            "film": film,
            "sampler": {"type": "independent", "sample_count": self.settings.spp},
        }


@dataclass
class _Shots:
    """What the views of one placement share."""

    tri_rgb: np.ndarray
    groups: list[tuple[np.ndarray, Any]]  # triangle indices and their Mitsuba BSDF
    ground: Ground
    ground_bsdfs: dict[str, Any]
    lights: list[AreaLight]
    env: Any
    lens: tuple[float, float]
    vignetting: float
    seed: int


class PathTracedSceneRenderer(SceneRenderer):
    """A :class:`~studio.scene.SceneRenderer` whose views are path traced (see the module doc)."""

    def __init__(
        self,
        rig: RigGeometry | None = None,
        randomization: Randomization | None = None,
        ldconfig: dict[int, LDrawColour] | None = None,
        supersample: int = 2,
        *,
        settings: PathTraceSettings | None = None,
        edge_strength: float = 0.35,
    ) -> None:
        """Args as :class:`SceneRenderer` (``supersample`` applies to the mask), plus the path
        tracer's ``settings``. Raises :class:`~studio.mitsuba_env.PathTracerUnavailable`."""
        super().__init__(rig, randomization, ldconfig, supersample, edge_strength=edge_strength)
        self.settings = settings if settings is not None else PathTraceSettings()
        self.tracer = PathTracer(self.settings)
        folder = self.settings.backgrounds  # set whenever 'photo' is a ground (the settings check)
        photos = folder is not None and "photo" in self.settings.grounds
        self._photos = list_photos(folder) if photos and folder is not None else None

    # ------------------------------------------------------------------ per placement

    def _prepare_shots(self, mesh: Mesh, color: Color, place: Placement, full: Camera | None) -> _Shots:
        settings, tracer = self.settings, self.tracer
        seed = int(place.meta["seed"])
        tri_rgb, _, _ = self._part_colours(mesh, color, place)
        uniq, inv = np.unique(np.asarray(mesh.colors), return_inverse=True)
        rng = pt_stream(seed, "materials")
        groups, materials = [], []
        for i, code in enumerate(uniq.tolist()):
            idx = np.flatnonzero(inv.ravel() == i)
            material = draw_material(
                code, material_kind(code, color, self.ldconfig), tri_rgb[idx[0]], rng, settings
            )
            groups.append((idx, tracer.load(material.bsdf)))
            materials.append(material.meta)

        rng = pt_stream(seed, "ground")
        kind = settings.grounds[int(rng.integers(len(settings.grounds)))]
        ground = draw_ground(
            kind,
            rng,
            rig_disc=place.disc,
            disc_radius_mm=self.rig.disc_radius_mm,
            floor_rgb=place.bg_rgb,
            floor_kind=place.bg_kind,
            floor_strength=place.bg_strength,
            photos=self._photos,
        )
        bsdfs = {"ground": self._textured(ground.albedo, ground.wrap, ground.roughness, ground.specular)}
        if ground.rig is not None:
            bsdfs["disc"] = self._textured(ground.rig["disc"], "clamp", 0.5, 0.4)
            rim = {
                "type": "principled",
                "base_color": {"type": "rgb", "value": ground.rig["rim_rgb"].tolist()},
            }
            bsdfs["rim"] = tracer.load({"type": "twosided", "material": rim})
        rng = pt_stream(seed, "lights")
        dim = float(rng.uniform(0.3, 1.0)) if ground.emission > 0 else 1.0
        lighting = place.lighting
        lights, env, light_meta = draw_lights(
            lighting.direction, lighting.color, lighting.ambient, rng, settings, dim
        )
        env_obj = tracer.load({"type": "envmap", "bitmap": tracer.mi.Bitmap(env)})

        rng = pt_stream(seed, "lens")
        lens = (float(rng.uniform(*settings.lens_k1)), float(rng.uniform(*settings.lens_k2)))
        vignetting = float(rng.uniform(*settings.vignetting))
        place.meta["pathtrace"] = {
            "variant": tracer.variant,
            "spp": settings.spp,
            "ground": ground.meta,
            "materials": materials,
            "lights": light_meta,
            "lens_k1": lens[0],
            "lens_k2": lens[1],
            "vignetting": vignetting,
        }
        return _Shots(tri_rgb, groups, ground, bsdfs, lights, env_obj, lens, vignetting, seed)

    def _textured(self, albedo: np.ndarray, wrap: str, roughness: float, specular: float) -> Any:
        bsdf = {
            "type": "principled",
            "base_color": self.tracer.texture(albedo, wrap),
            "roughness": roughness,
            "specular": specular,
        }
        return self.tracer.load({"type": "twosided", "material": bsdf})

    # ------------------------------------------------------------------ per view

    def _shoot(
        self, shots: Any, part: Mesh, cam: Camera, place: Placement, angle: float
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int] | None]:
        assert isinstance(shots, _Shots)
        # The mask: the rasteriser's coverage of the same triangles from the same camera.
        mask = render_mesh(
            part, shots.tri_rgb, cam, place.lighting, supersample=self.supersample, edge_lines=False
        ).mask
        shapes = self._part_shapes(part, shots)
        shapes.update(self._ground_shapes(shots, angle))
        shapes.update(self._light_shapes(shots))
        view_seed = int(pt_stream(shots.seed, "render", round(angle * 1000) % 2**31).integers(2**31))
        linear = self.tracer.render(shapes, cam, view_seed)
        sensor = self.camera(tilt_deg=place.meta.get("camera_tilt_deg"))
        linear, mask = distort(linear, mask, cam, sensor, *shots.lens)
        linear = vignette(linear, cam, sensor, shots.vignetting)
        return linear, mask, mask_bbox(mask)

    def _part_shapes(self, part: Mesh, shots: _Shots) -> dict[str, Any]:
        face_n, vert_n = corner_normals(part)  # cached by render_mesh for this very mesh
        usable = np.linalg.norm(face_n, axis=1) > 0  # degenerate triangles cannot be hit anyway
        # Corner normals on the far side of their own face would shade it black: flip them.
        flip = np.einsum("tkc,tc->tk", vert_n, face_n) < 0
        normals = np.where(flip[:, :, None], -vert_n, vert_n)
        shapes = {}
        for i, (idx, bsdf) in enumerate(shots.groups):
            sel = idx[usable[idx]]
            if len(sel):
                shapes[f"part{i}"] = self.tracer.mesh(
                    f"part{i}", part.triangles[sel], normals=normals[sel], bsdf=bsdf
                )
        if not shapes:
            raise RenderError("the part has no triangle with an area; check its LDraw file")
        return shapes

    def _ground_shapes(self, shots: _Shots, angle: float) -> dict[str, Any]:
        """The ground, turned with the turntable (the part and what it lies on turn together)."""
        ground, tracer = shots.ground, self.tracer
        turn = yaw_matrix(angle)[:3, :3]
        shapes: dict[str, Any] = {}
        if ground.rig is not None:
            radius = self.rig.disc_radius_mm / MM_PER_LDU
            depth = max(self.rig.disc_thickness_mm / MM_PER_LDU, 2 * _DROP_LDU)
            disc, rim = _disc(radius, _DROP_LDU, depth)
            uv = disc[:, :, [0, 2]] / (2 * radius) + 0.5
            shapes["disc"] = tracer.mesh("disc", disc @ turn.T, uv=uv, bsdf=shots.ground_bsdfs["disc"])
            shapes["rim"] = tracer.mesh("rim", rim @ turn.T, bsdf=shots.ground_bsdfs["rim"])
            plane_y = depth
        else:
            plane_y = _DROP_LDU
        square = _square(_GROUND_HALF_LDU, plane_y)
        uv = square[:, :, [0, 2]] / (ground.tile_mm / MM_PER_LDU) + 0.5
        emitter = None
        if ground.emission > 0:  # an emitter belongs to one shape: a new one per view
            emitter = tracer.load(
                {"type": "area", "radiance": {"type": "rgb", "value": [ground.emission] * 3}}
            )
        shapes["ground"] = tracer.mesh(
            "ground", square @ turn.T, uv=uv, bsdf=shots.ground_bsdfs["ground"], emitter=emitter
        )
        return shapes

    def _light_shapes(self, shots: _Shots) -> dict[str, Any]:
        transform = self.tracer.mi.ScalarTransform4f
        shapes: dict[str, Any] = {"environment": shots.env}
        for name, light in zip(("key", "fill"), shots.lights, strict=True):
            if not light.radiance.max() > 0:
                continue
            pos = light.direction * light.distance_ldu
            up = [0.0, 0.0, 1.0] if abs(light.direction[1]) > 0.99 else [0.0, -1.0, 0.0]
            to_world = transform().look_at(origin=pos.tolist(), target=[0.0, 0.0, 0.0], up=up)
            half = light.side_ldu / 2
            shapes[name] = {
                "type": "rectangle",
                "to_world": to_world @ transform().scale([half, half, 1.0]),
                "emitter": {"type": "area", "radiance": {"type": "rgb", "value": light.radiance.tolist()}},
            }
        return shapes


def _square(half: float, y: float) -> np.ndarray:
    """Two triangles covering [-half, half]^2 on the plane at height ``y``, facing up (-Y)."""
    a, b, c, d = ((-half, y, -half), (half, y, -half), (half, y, half), (-half, y, half))
    return np.array([[a, b, c], [a, c, d]], np.float64)


def _disc(radius: float, top: float, bottom: float) -> tuple[np.ndarray, np.ndarray]:
    """The turntable: its top as a fan facing up (-Y) at ``top`` and its side down to ``bottom``."""
    ang = np.linspace(0, 2 * math.pi, _DISC_SEGMENTS, endpoint=False)
    ring = np.stack([radius * np.cos(ang), np.zeros_like(ang), radius * np.sin(ang)], 1)
    nxt = np.roll(ring, -1, axis=0)
    up, down = np.array([0.0, top, 0.0]), np.array([0.0, bottom, 0.0])
    fan = np.stack([np.broadcast_to(up, ring.shape), ring + up, nxt + up], 1)
    # Side quads wound so their normals point away from the axis.
    side = np.concatenate(
        [np.stack([ring + up, ring + down, nxt + down], 1), np.stack([ring + up, nxt + down, nxt + up], 1)]
    )
    return fan, side
