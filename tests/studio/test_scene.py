"""Turntable scenes: determinism, the turntable, every randomisation factor, framing, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from edge.colors import all_colors, color_by_name, get_color
from edge.config import validate_config
from edge.errors import ConfigError
from studio import effects as fx
from studio.errors import RenderError
from studio.ldconfig import LDrawColour
from studio.ldraw import LDrawLibrary
from studio.mesh import Mesh
from studio.scene import Randomization, RigGeometry, SceneRenderer

SMALL_RIG = RigGeometry(width=96, height=72)


@pytest.fixture(scope="module")
def brick(demo_library: Path) -> Mesh:
    return LDrawLibrary(demo_library).part_mesh("demo-3001")


def renderer(
    randomization: Randomization | None = None, rig: RigGeometry = SMALL_RIG, **kw: Any
) -> SceneRenderer:
    return SceneRenderer(
        rig, randomization if randomization is not None else Randomization.off(), supersample=1, **kw
    )


RED = get_color(4)


def only(factor: str, **settings: Any) -> Randomization:
    """Everything off except ``factor`` (with ``settings`` for it)."""
    data = {name: {"enabled": name == factor} for name in Randomization.model_fields}
    data[factor].update(settings)
    return Randomization.model_validate(data)


# Per factor: settings that make its effect certain to show (no near-zero draws).
STRONG: dict[str, dict[str, Any]] = {
    "pose": {},
    "placement": {"max_offset_frac": 1.0, "yaw_deg": (20.0, 340.0)},
    "light_direction": {"elevation_jitter_deg": 20, "azimuth_jitter_deg": 90},
    "light_intensity": {"scale": (0.5, 0.8)},
    "color_temperature": {"kelvin": (2700, 3500), "camera_correction": 0.3},
    "white_balance": {"max_gain_error": 0.3},
    "exposure": {"ev": (0.5, 1.0)},
    "disc": {"brightness": (0.5, 0.7), "noise": (0.1, 0.2)},
    "background": {"brightness": (2.0, 3.0)},
    "color_jitter": {"max_delta_e": 6},
    "defocus": {"sigma_px": (1.0, 2.0)},
    "motion_blur": {"length_px": (3.0, 5.0)},
    "sensor_noise": {"shot": (0.002, 0.004), "read": (0.005, 0.01)},
    "jpeg": {"quality": (20, 40)},
    "camera_tilt": {"tilt_deg": (0.0, 10.0)},
    "contact_shading": {"shadow": (0.8, 0.9), "occlusion": (0.8, 0.9)},
}


def test_same_seed_same_images_and_different_seeds_differ(brick: Mesh) -> None:
    r = renderer(Randomization.train())
    a = r.render_views(brick, RED, [0, 90], seed=7)
    b = renderer(Randomization.train()).render_views(brick, RED, [0, 90], seed=7)
    c = r.render_views(brick, RED, [0, 90], seed=8)
    for va, vb, vc in zip(a, b, c, strict=True):
        assert np.array_equal(va.image, vb.image) and np.array_equal(va.mask, vb.mask)
        assert va.meta == vb.meta
        assert not np.array_equal(va.image, vc.image)
    assert a[0].image.shape == (72, 96, 3) and a[0].image.dtype == np.uint8
    assert a[0].mask.shape == (72, 96) and set(np.unique(a[0].mask)) <= {0, 255}
    json.dumps(a[0].meta)  # JSON-serialisable


def test_off_is_clean_and_the_turntable_turns(brick: Mesh) -> None:
    r = renderer()
    views = r.render_views(brick, RED, [0, 30, 60, 90], seed=1)
    again = r.render_views(brick, RED, [0, 30, 60, 90], seed=99)
    assert all(np.array_equal(v.image, w.image) for v, w in zip(views, again, strict=True))  # seed-free
    areas = [int((v.mask > 0).sum()) for v in views]
    assert min(areas) > 20
    assert max(areas) / min(areas) < 2.5  # the same brick from similar viewpoints
    assert len(set(areas)) > 1  # ...but its silhouette changes as it turns
    boxes = [v.bbox for v in views]
    assert len(set(boxes)) == 4, boxes
    widths = [b[2] - b[0] for b in boxes if b]
    assert max(widths) - min(widths) >= 3  # a 2x4 brick turning 90 degrees: long side to end-on
    assert [v.angle_deg for v in views] == [0, 30, 60, 90]


def test_offset_part_orbits_the_disc_centre(brick: Mesh) -> None:
    rnd = only("placement", max_offset_frac=1.0, yaw_deg=(0.0, 0.0))
    r = renderer(rnd)
    views = r.render_views(brick, RED, [0, 90, 180, 270], seed=3)
    assert views[0].meta["offset_mm"] != [0.0, 0.0]
    centre = r.camera().project(np.zeros((1, 3)))[0][0]  # where the turntable's axis meets the disc
    spots = np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] for b in (v.bbox for v in views) if b]) - centre
    assert len(spots) == 4
    assert np.linalg.norm(spots, axis=1).min() > 3  # off-centre in every view
    assert spots[0] @ spots[2] < 0 and spots[1] @ spots[3] < 0  # half a turn: the opposite side


def test_full_frame_at_another_size_keeps_the_part_in_view(brick: Mesh) -> None:
    rnd = only("placement", max_offset_frac=1.0)
    for seed in range(3):
        for v in renderer(rnd).render_views(brick, RED, [0, 90, 180, 270], seed=seed, size=(40, 72)):
            x0, y0, x1, y1 = v.bbox
            assert v.image.shape == (72, 40, 3)
            assert x0 > 0 and y0 > 0 and x1 < 40 and y1 < 72


@pytest.mark.parametrize("factor", list(STRONG))
def test_each_factor_changes_the_output_only_when_on(brick: Mesh, factor: str) -> None:
    base = renderer().render_views(brick, RED, [0], seed=0)[0].image
    disabled = only(factor, **STRONG[factor])
    getattr(disabled, factor).enabled = False
    for seed in range(4):
        assert np.array_equal(renderer(disabled).render_views(brick, RED, [0], seed=seed)[0].image, base)
    changed = [
        not np.array_equal(
            renderer(only(factor, **STRONG[factor])).render_views(brick, RED, [0], seed=s)[0].image, base
        )
        for s in range(4)
    ]
    assert any(changed) if factor == "pose" else all(changed)


def test_switching_one_factor_off_leaves_the_others_draws_alone(brick: Mesh) -> None:
    full = Randomization.train()
    less = Randomization.train()
    less.light_direction.enabled = False
    a = renderer(full).render_views(brick, RED, [0], seed=5)[0]
    b = renderer(less).render_views(brick, RED, [0], seed=5)[0]
    assert a.meta["light_elevation_deg"] != b.meta["light_elevation_deg"]
    for key in ("yaw_deg", "offset_mm", "pose_index", "exposure_ev", "main_rgb", "disc", "jpeg_quality"):
        assert a.meta[key] == b.meta[key], key


def test_camera_tilt_is_drawn_per_placement_and_the_rigs_own_tilt_changes_nothing(brick: Mesh) -> None:
    tilts = set()
    for seed in range(4):
        views = renderer(only("camera_tilt", tilt_deg=(0.0, 45.0))).render_views(
            brick, RED, [0, 90], seed=seed
        )
        assert views[0].meta["camera_tilt_deg"] == views[1].meta["camera_tilt_deg"]  # one camera per capture
        tilts.add(views[0].meta["camera_tilt_deg"])
    assert len(tilts) == 4 and all(0.0 <= t <= 45.0 for t in tilts)
    # a range holding only the rig's tilt renders exactly what the rig's fixed camera does, in
    # full frames and crops: the factor has its own random stream
    rig_tilt = (SMALL_RIG.camera_tilt_deg, SMALL_RIG.camera_tilt_deg)
    for frame in ("full", "crop"):
        a = renderer(Randomization.train()).render_views(brick, RED, [0], seed=3, frame=frame)[0]
        pinned = Randomization.train()
        pinned.camera_tilt = only("camera_tilt", tilt_deg=rig_tilt).camera_tilt
        b = renderer(pinned).render_views(brick, RED, [0], seed=3, frame=frame)[0]
        assert np.array_equal(a.image, b.image) and a.meta == b.meta
    with pytest.raises(ValidationError, match=r"within 0\.\.70"):
        only("camera_tilt", tilt_deg=(0.0, 80.0))


def test_colour_jitter_keeps_the_part_looking_its_colour(brick: Mesh) -> None:
    def mean_lab(view: Any) -> np.ndarray:
        return fx.srgb_to_lab(view.image[view.mask > 0].astype(np.float64).mean(axis=0))

    jitter = renderer(only("color_jitter", max_delta_e=6))
    for colour in (RED, color_by_name("Light Bluish Gray"), color_by_name("Dark Blue")):
        clean = mean_lab(renderer().render_views(brick, colour, [0], seed=0)[0])
        for seed in range(5):
            view = jitter.render_views(brick, colour, [0], seed=seed)[0]
            assert view.meta["color_delta_e"] <= 6.0 + 1e-6
            # Under neutral light the rendered part moves no further than the jitter allows.
            assert np.linalg.norm(mean_lab(view) - clean) <= 6.0 + 1.0


def test_colour_jitter_never_crosses_to_another_named_colour() -> None:
    palette = [c for c in all_colors() if not c.is_trans]
    rgb = np.array([c.rgb for c in palette], float)
    rng = np.random.default_rng(0)
    for i, colour in enumerate(palette):
        others = np.delete(rgb, i, axis=0)
        distinct = others[fx.delta_e(others, colour.rgb) > 1.0]
        for _ in range(10):
            out = fx.jitter_color(colour.rgb, rng, 6.0, others)
            assert fx.delta_e(out, colour.rgb) <= 6.0 + 1e-6
            if len(distinct):
                assert fx.delta_e(out, colour.rgb) < fx.delta_e(distinct, out).min(), colour.name


#: A wide view of a small grey disc: the frame shows the disc's edge and the backdrop beyond it.
WIDE_GREY_RIG = RigGeometry(
    width=96,
    height=72,
    disc_radius_mm=60,
    camera_height_mm=150,
    fov_deg=50,
    disc_rgb=(200, 200, 196),
    background_rgb=(48, 50, 54),
)


def test_full_frame_shows_the_part_on_the_disc(brick: Mesh) -> None:
    view = renderer(rig=WIDE_GREY_RIG).render_views(brick, color_by_name("Black"), [0], seed=0)[0]
    img = view.image.astype(float)
    mask = view.mask > 0
    x0, y0, x1, y1 = view.bbox
    ring = np.zeros_like(mask)
    ring[max(0, y0 - 4) : y1 + 4, max(0, x0 - 4) : x1 + 4] = True
    ring &= ~mask
    disc = img[ring].mean(axis=0)
    backdrop = np.array(WIDE_GREY_RIG.background_rgb, float)
    assert disc.mean() > 100 and np.ptp(disc) < 25  # light grey disc around the part
    for corner in (img[0, 0], img[0, -1], img[-1, 0], img[-1, -1]):
        assert np.abs(corner - backdrop).max() < 25  # the backdrop beyond the disc
    assert img[mask].mean() < 60  # a black part
    assert abs((x0 + x1) / 2 - 48) < 10 and abs((y0 + y1) / 2 - 36) < 10  # at the disc's centre


def test_default_rig_is_keyed_by_the_sim_config(brick: Mesh) -> None:
    """The default disc and enclosure fall in sim.yaml's HSV background range; a white part does not."""
    import yaml

    from edge.segment.hsv import HsvConfig, HsvSegmenter

    sim = yaml.safe_load((Path(__file__).parents[2] / "config" / "sim.yaml").read_text())["segmenter"]
    seg = HsvSegmenter(HsvConfig.model_validate(sim | {"min_area_px": 5}))
    rnd = Randomization.test()
    for seed in range(3):
        view = renderer(rnd, rig=RigGeometry(width=160, height=120)).render_views(
            brick, color_by_name("White"), [0], seed=seed
        )[0]
        truth = view.mask > 0
        found = seg.mask(view.image) > 0
        assert (found & truth).sum() / (found | truth).sum() > 0.7, seed


def test_crop_centres_and_fills_the_frame(brick: Mesh) -> None:
    rnd = only("placement", max_offset_frac=1.0)
    for size in ((64, 64), (48, 48)):
        for v in renderer(rnd).render_views(brick, RED, [0, 120], seed=4, frame="crop", size=size):
            w, h = size
            x0, y0, x1, y1 = v.bbox
            assert v.image.shape == (h, w, 3) and v.mask.shape == (h, w)
            assert abs((x0 + x1) / 2 - w / 2) <= 1.5 and abs((y0 + y1) / 2 - h / 2) <= 1.5
            assert 0.65 <= max(x1 - x0, y1 - y0) / w <= 0.85  # 1 / (1 + 2 * 0.15) ~ 0.77
            assert v.meta["frame"] == "crop" and v.meta["crop_fov_deg"] < SMALL_RIG.fov_deg


def test_crop_renders_detail_not_an_upscale(brick: Mesh) -> None:
    full = renderer(rig=RigGeometry(width=64, height=48)).render_views(brick, RED, [0], seed=0)[0]
    crop = renderer(rig=RigGeometry(width=64, height=48)).render_views(
        brick, RED, [0], 0, frame="crop", size=(64, 64)
    )[0]
    assert (crop.mask > 0).sum() > 8 * (full.mask > 0).sum()


def test_transparent_and_ldconfig_colours(brick: Mesh) -> None:
    trans = color_by_name("Trans-Clear")
    view = renderer(only("color_jitter")).render_views(brick, trans, [0], seed=2)[0]
    assert 0.55 <= view.meta["opacity"] <= 0.75
    tris = brick.triangles
    coloured = Mesh(
        tris,
        np.full(len(tris), 2, np.int32),
        brick.two_sided,
        brick.edges,
        brick.edge_colors,
        brick.cond_edges,
    )
    green = {2: LDrawColour(2, "Test_Green", (0, 255, 0), (51, 51, 51))}

    def part_mean(r: SceneRenderer, mesh: Mesh) -> np.ndarray:
        v = r.render_views(mesh, RED, [0], seed=0, frame="crop", size=(48, 48))[0]
        return v.image[v.mask > 0].astype(float).mean(axis=0)

    assert np.argmax(part_mean(renderer(ldconfig=green), coloured)) == 1  # code 2 from the ldconfig
    unknown = Mesh(
        tris,
        np.full(len(tris), 9999, np.int32),
        brick.two_sided,
        brick.edges,
        brick.edge_colors,
        brick.cond_edges,
    )
    assert np.argmax(part_mean(renderer(), unknown)) == 0  # an unknown code takes the main colour


def test_part_too_big_for_the_rig_is_an_error_naming_it(brick: Mesh) -> None:
    tiny_disc = RigGeometry(width=96, height=72, disc_radius_mm=10)
    with pytest.raises(RenderError, match=r"'demo-3001'.*disc_radius_mm"):
        renderer(rig=tiny_disc).render_views(brick, RED, [0], seed=0, name="demo-3001")
    close_up = RigGeometry(width=96, height=72, camera_height_mm=60, fov_deg=10)
    with pytest.raises(RenderError, match=r"'big'.*view"):
        renderer(rig=close_up).render_views(brick, RED, [0], seed=0, name="big")
    # a crop needs no room in the rig's frame: its own narrow camera frames the part at the centre
    [crop] = renderer(rig=close_up).render_views(brick, RED, [0], seed=0, name="big", frame="crop")
    assert crop.bbox is not None and crop.meta["offset_mm"] == [0.0, 0.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "seed"),
        ({"angles_deg": []}, "angles_deg"),
        ({"angles_deg": [0, float("nan")]}, "angles_deg"),
        ({"frame": "side"}, "frame"),
        ({"size": (0, 10)}, "size"),
        ({"crop_margin": 5}, "crop_margin"),
        ({"pose_index": 42}, "pose_index"),
        ({"color": "red"}, "color"),
    ],
)
def test_bad_arguments_raise_clear_errors(brick: Mesh, kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"mesh": brick, "color": RED, "angles_deg": [0], "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        renderer().render_views(**args)


def test_config_models_validate() -> None:
    with pytest.raises(ValidationError, match="low end"):
        Randomization.model_validate({"exposure": {"ev": (1.0, -1.0)}})
    with pytest.raises(ConfigError, match="unknown key"):
        validate_config(Randomization, {"exposure": {"evv": (0, 1)}}, "scene.yaml")
    with pytest.raises(ConfigError, match="camera_tilt_deg"):
        validate_config(RigGeometry, {"camera_tilt_deg": 80}, "rig.yaml")
    with pytest.raises(ValidationError):
        Randomization.model_validate({"color_jitter": {"max_delta_e": 9}})  # would change the colour
    off, train, test = Randomization.off(), Randomization.train(), Randomization.test()
    assert not any(getattr(off, n).enabled for n in Randomization.model_fields)
    # every factor is on in the presets but the camera tilt and the contact shading, which would
    # change their renders
    later = ("camera_tilt", "contact_shading")
    assert all(getattr(train, n).enabled for n in Randomization.model_fields if n not in later)
    assert not any(getattr(preset, n).enabled for preset in (train, test) for n in later)
    assert test.exposure.ev[1] > train.exposure.ev[1] and test.jpeg.quality[0] < train.jpeg.quality[0]
