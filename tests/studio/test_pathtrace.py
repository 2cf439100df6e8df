"""The path tracer: renders, masks that match the geometry, determinism, materials, grounds, lens.

Tests that need Mitsuba skip, naming the reason, where it cannot run (no mitsuba/pyoidn, or no
LLVM 19 for its CPU variant); the pure-numpy parts (grounds, lens, settings) always run.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge.colors import color_by_name, get_color
from studio import mitsuba_env
from studio.camera import Camera
from studio.effects import DiscSurface
from studio.grounds import TEXTURE_SIZE, draw_ground, list_photos, periodic_noise
from studio.ldraw import LDrawLibrary
from studio.lens import distort, distortion_maps, mask_bbox, vignette
from studio.mesh import Mesh
from studio.pathtrace_config import PathTraceSettings
from studio.scene import Randomization, RigGeometry, SceneRenderer

RIG = RigGeometry(width=96, height=72)
RED = get_color(4)


@pytest.fixture(scope="module")
def brick(demo_library: Path) -> Mesh:
    return LDrawLibrary(demo_library).part_mesh("demo-3001")


@pytest.fixture(scope="module")
def tracer_ready() -> None:
    reason = mitsuba_env.unavailable_reason()
    if reason is not None:
        pytest.skip(f"the path tracer cannot run here: {reason}")


def traced(**settings: object) -> object:
    from studio.pathtrace import PathTracedSceneRenderer

    base: dict[str, object] = {
        "spp": 4,
        "lens_k1": (0.0, 0.0),
        "lens_k2": (0.0, 0.0),
        "vignetting": (0.0, 0.0),
    }
    return PathTracedSceneRenderer(
        RIG, Randomization.off(), supersample=2, settings=PathTraceSettings(**{**base, **settings})
    )


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.slow
def test_renders_a_demo_part_with_its_exact_mask(tracer_ready: None, brick: Mesh) -> None:
    views = traced(grounds=["black"]).render_views(
        brick, color_by_name("White"), [0, 90], seed=3, frame="crop", size=(96, 96)
    )
    raster = SceneRenderer(RIG, Randomization.off(), supersample=2).render_views(
        brick, color_by_name("White"), [0, 90], seed=3, frame="crop", size=(96, 96)
    )
    for view, ref in zip(views, raster, strict=True):
        assert view.image.shape == (96, 96, 3) and view.image.dtype == np.uint8
        assert view.mask.shape == (96, 96) and set(np.unique(view.mask)) <= {0, 255}
        assert view.bbox == mask_bbox(view.mask) and view.bbox is not None
        assert view.meta["pathtrace"]["ground"]["kind"] == "black"
        json.dumps(view.meta)  # the record of the draws stays plain data
        assert iou(view.mask > 0, ref.mask > 0) > 0.99  # same scene, same geometry
        # The traced pixels agree with the mask: a white part on a black board.
        grey = view.image.astype(np.float32).mean(axis=2)
        lit = grey > 0.5 * np.percentile(grey[view.mask > 0], 90)
        assert iou(lit, view.mask > 0) > 0.9


@pytest.mark.slow
def test_same_seed_same_image(tracer_ready: None, brick: Mesh) -> None:
    renderer = traced()
    a = renderer.render_views(brick, RED, [30], seed=11, frame="crop", size=(64, 64))[0]
    b = renderer.render_views(brick, RED, [30], seed=11, frame="crop", size=(64, 64))[0]
    c = renderer.render_views(brick, RED, [30], seed=12, frame="crop", size=(64, 64))[0]
    assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() < 1.0  # denoiser tolerance
    assert (a.mask == b.mask).all() and a.meta == b.meta
    assert np.abs(a.image.astype(int) - c.image.astype(int)).mean() > 2.0


@pytest.mark.slow
def test_transparent_colour_shows_the_ground_through(tracer_ready: None, brick: Mesh) -> None:
    renderer = traced(grounds=["white"])
    clear = renderer.render_views(
        brick, color_by_name("Trans-Clear"), [0], seed=5, frame="crop", size=(64, 64)
    )[0]
    black = renderer.render_views(brick, color_by_name("Black"), [0], seed=5, frame="crop", size=(64, 64))[0]
    assert clear.meta["pathtrace"]["materials"][0]["kind"] == "trans"
    inside = clear.mask > 0
    assert inside.sum() > 100
    assert clear.image[inside].mean() > black.image[black.mask > 0].mean() + 40


@pytest.mark.slow
def test_full_frame_on_the_rig_and_every_ground(tracer_ready: None, brick: Mesh, tmp_path: Path) -> None:
    photo = np.zeros((40, 60, 3), np.uint8)
    photo[:, 30:] = 200
    cv2.imwrite(str(tmp_path / "rig.png"), photo)
    renderer = traced(grounds=["rig", "backlit", "photo"], backgrounds=tmp_path, lens_k1=(-0.1, -0.1))
    kinds = set()
    for seed in range(6):
        view = renderer.render_views(brick, RED, [45], seed=seed, frame="full")[0]
        assert view.image.shape == (72, 96, 3) and view.mask.any()
        kinds.add(view.meta["pathtrace"]["ground"]["kind"])
    assert kinds == {"rig", "backlit", "photo"}


def test_settings_check_their_values(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="'photo' ground needs backgrounds"):
        PathTraceSettings(grounds=["photo"])
    with pytest.raises(ValidationError, match="swap them"):
        PathTraceSettings(abs_roughness=(0.5, 0.1))
    with pytest.raises(ValidationError, match="not a folder"):
        PathTraceSettings(backgrounds=tmp_path / "missing")
    assert "photo" in PathTraceSettings().with_backgrounds(tmp_path).grounds


def test_missing_llvm_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mitsuba_env.LLVM_ENV, raising=False)
    monkeypatch.setattr(mitsuba_env, "find_llvm", lambda: None)
    with pytest.raises(ImportError, match="apt-get install libllvm19"):
        mitsuba_env._point_drjit_at_llvm()
    assert "libllvm19" in str(mitsuba_env.unavailable_reason("llvm", load=False))


def test_every_ground_kind_draws_a_texture(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((50, 80, 3), 128, np.uint8))
    photos = list_photos(tmp_path)
    disc = DiscSurface((0.5, 0.1, 0.4), noise=0.05)
    for kind in ("rig", "white", "grey", "black", "backlit", "belt", "photo", "procedural"):
        ground = draw_ground(
            kind,
            np.random.default_rng(1),
            rig_disc=disc,
            disc_radius_mm=100,
            floor_rgb=np.full(3, 0.2),
            photos=photos,
        )
        assert ground.albedo.shape == (TEXTURE_SIZE, TEXTURE_SIZE, 3) and ground.albedo.dtype == np.float32
        assert ground.albedo.min() >= 0 and ground.albedo.max() <= 1 and ground.tile_mm > 0
        assert (ground.emission > 0) == (kind == "backlit") and (ground.rig is not None) == (kind == "rig")
    a = draw_ground("belt", np.random.default_rng(7), rig_disc=disc, disc_radius_mm=100, floor_rgb=np.ones(3))
    b = draw_ground("belt", np.random.default_rng(7), rig_disc=disc, disc_radius_mm=100, floor_rgb=np.ones(3))
    assert np.array_equal(a.albedo, b.albedo)


def test_periodic_noise_tiles_seamlessly() -> None:
    n = periodic_noise(64, 6, np.random.default_rng(0))
    assert abs(float(n.mean())) < 1e-5 and abs(float(n.std()) - 1) < 1e-3
    across = np.abs(n[:, 0] - n[:, -1]).mean()  # the wrap-around neighbours
    inside = np.abs(np.diff(n, axis=1)).mean()
    assert across < 2 * inside


def test_lens_distortion_bends_the_frame_edges_and_keeps_the_centre() -> None:
    cam = Camera(np.array([0.0, -400.0, 0.0]), np.zeros(3), 64, 48, 40.0, np.array([0.0, 0.0, -1.0]))
    mx, my = distortion_maps(cam, cam, 0.0, 0.0)
    grid_x, grid_y = np.meshgrid(np.arange(64), np.arange(48))
    assert np.allclose(mx, grid_x, atol=1e-3) and np.allclose(my, grid_y, atol=1e-3)
    mx, my = distortion_maps(cam, cam, -0.2, 0.0)  # barrel: each pixel samples further out
    assert mx[0, 0] < -0.5 and mx[24, 63] > 63.2 and abs(mx[24, 32] - 32) < 0.05
    image = np.random.default_rng(0).random((48, 64, 3)).astype(np.float32)
    mask = np.zeros((48, 64), np.uint8)
    mask[20:28, 28:36] = 255
    out, bent = distort(image, mask, cam, cam, -0.2, 0.0)
    assert out.shape == image.shape and bent.dtype == np.uint8
    assert mask_bbox(bent) == mask_bbox(mask)  # the centre barely moves


def test_vignetting_darkens_the_corners_only() -> None:
    cam = Camera(np.array([0.0, -400.0, 0.0]), np.zeros(3), 64, 48, 40.0, np.array([0.0, 0.0, -1.0]))
    flat = np.ones((48, 64, 3), np.float32)
    out = vignette(flat, cam, cam, 1.0)
    assert out.dtype == np.float32 and out[24, 32].min() > 0.999
    assert 0.5 < out[0, 0].max() < 0.57  # cos^4 of the corner ray, 31 degrees off axis
    assert vignette(flat, cam, cam, 0.0) is flat
