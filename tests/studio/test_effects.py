"""Camera effects, procedural textures and colour appearance."""

from __future__ import annotations

import numpy as np
import pytest

from studio import effects as fx
from studio.errors import ImageError


def flat(value: float, size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), value, np.float32)


def test_white_balance_and_exposure_are_channel_gains() -> None:
    img = np.random.default_rng(0).uniform(0, 1, (8, 9, 3)).astype(np.float32)
    out = fx.white_balance(img, (2.0, 1.0, 0.5))
    assert out[..., 0] == pytest.approx(img[..., 0] * 2)
    assert out[..., 2] == pytest.approx(img[..., 2] * 0.5)
    assert fx.exposure(img, 1.0) == pytest.approx(img * 2)
    assert fx.exposure(img, -2.0) == pytest.approx(img / 4)
    with pytest.raises(ImageError, match="shape"):
        fx.exposure(np.zeros((4, 4)), 0.0)
    with pytest.raises(ImageError, match="uint8"):
        fx.exposure(np.zeros((4, 4, 3), np.uint8), 0.0)
    with pytest.raises(ValueError, match="gains"):
        fx.white_balance(img, (1.0, -1.0, 1.0))


def test_kelvin_to_rgb_warm_to_cool() -> None:
    assert fx.kelvin_to_rgb(6504) == pytest.approx([1, 1, 1], abs=1e-6)
    warm, cool = fx.kelvin_to_rgb(2700), fx.kelvin_to_rgb(7500)
    assert warm[0] > warm[1] > warm[2]
    assert cool[2] > cool[1] > cool[0]
    ratios = [fx.kelvin_to_rgb(k)[0] / fx.kelvin_to_rgb(k)[2] for k in (2700, 3500, 4500, 5500, 6500, 7500)]
    assert ratios == sorted(ratios, reverse=True)  # red/blue falls as the light gets cooler
    luminance = np.array([0.2126, 0.7152, 0.0722])
    for k in (2700, 4000, 7500):
        assert fx.kelvin_to_rgb(k) @ luminance == pytest.approx(1.0, abs=0.02)
    with pytest.raises(ValueError, match="kelvin"):
        fx.kelvin_to_rgb(1000)


def test_sensor_noise_is_reproducible_and_signal_dependent() -> None:
    img = np.concatenate([flat(0.05), flat(0.8)], axis=1)
    a = fx.sensor_noise(img, np.random.default_rng(5), shot=0.01, read=0.002)
    b = fx.sensor_noise(img, np.random.default_rng(5), shot=0.01, read=0.002)
    c = fx.sensor_noise(img, np.random.default_rng(6), shot=0.01, read=0.002)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    dark, bright = (a - img)[:, :64].std(), (a - img)[:, 64:].std()
    assert bright == pytest.approx(np.sqrt(0.8 * 0.01 + 0.002**2), rel=0.1)
    assert dark == pytest.approx(np.sqrt(0.05 * 0.01 + 0.002**2), rel=0.1)
    read_only = fx.sensor_noise(flat(0.5), np.random.default_rng(1), shot=0.0, read=0.01) - 0.5
    assert read_only.std() == pytest.approx(0.01, rel=0.1)


def test_sensor_noise_scale_models_sensor_pixels() -> None:
    img = flat(0.5, 96)
    fine = fx.sensor_noise(img, np.random.default_rng(2), 0.0, 0.02, scale=1.0) - 0.5
    coarse = fx.sensor_noise(img, np.random.default_rng(2), 0.0, 0.02, scale=4.0) - 0.5
    binned = fx.sensor_noise(img, np.random.default_rng(2), 0.0, 0.02, scale=0.25) - 0.5

    def neighbour_corr(n: np.ndarray) -> float:
        return float(np.corrcoef(n[:, :-1, 0].ravel(), n[:, 1:, 0].ravel())[0, 1])

    assert abs(neighbour_corr(fine)) < 0.1
    assert neighbour_corr(coarse) > 0.5  # one sensor pixel spans 4 image pixels
    assert binned.std() < 0.5 * fine.std()  # 16 sensor pixels averaged into each image pixel


def test_defocus_blurs_and_keeps_the_mean() -> None:
    checker = np.kron((np.indices((8, 8)).sum(0) % 2).astype(np.float32), np.ones((4, 4)))
    img = np.repeat(checker[:, :, None], 3, axis=2).astype(np.float32)
    assert np.array_equal(fx.defocus(img, 0), img)
    out = fx.defocus(img, 2.0)
    assert out.std() < 0.5 * img.std()
    assert out.mean() == pytest.approx(img.mean(), abs=0.01)
    with pytest.raises(ValueError, match="sigma_px"):
        fx.defocus(img, -1)


@pytest.mark.parametrize(("angle", "axis"), [(0.0, 1), (90.0, 0)])
def test_motion_blur_smears_along_its_angle(angle: float, axis: int) -> None:
    img = np.zeros((31, 31, 3), np.float32)
    img[15, 15] = 1.0
    out = fx.motion_blur(img, angle, 9.0)[..., 0]
    along = out[15, :] if axis == 1 else out[:, 15]
    across = out[:, 15] if axis == 1 else out[15, :]
    assert (along > 0.01).sum() >= 8
    assert (across > 0.01).sum() <= 2
    assert out.sum() == pytest.approx(1.0, abs=1e-4)
    assert np.array_equal(fx.motion_blur(img, angle, 0.5), img)  # under a pixel: unchanged


def test_jpeg_roundtrip_loses_more_at_low_quality() -> None:
    rng = np.random.default_rng(0)
    img = np.clip(fx.defocus(rng.uniform(0, 1, (64, 64, 3)).astype(np.float32), 1.5), 0, 1)
    hi = np.abs(fx.jpeg_roundtrip(img, 95) - img).mean()
    lo = np.abs(fx.jpeg_roundtrip(img, 20) - img).mean()
    assert hi < 0.02
    assert lo > 1.5 * hi
    with pytest.raises(ValueError, match="quality"):
        fx.jpeg_roundtrip(img, 0)


def test_disc_surface_is_a_function_of_position() -> None:
    surface = fx.DiscSurface((0.5, 0.5, 0.45), noise=0.05, grain=0.05, felt=0.5, seed=9)
    u = np.linspace(-50, 50, 101)
    coarse = surface.albedo(u[::10], np.zeros(11), footprint_mm=0.05)
    fine = surface.albedo(u, np.zeros(101), footprint_mm=0.05)
    assert coarse == pytest.approx(fine[::10])  # same points, any sampling: the same colour
    other = fx.DiscSurface((0.5, 0.5, 0.45), noise=0.05, grain=0.05, felt=0.5, seed=10)
    assert not np.allclose(other.albedo(u, np.zeros(101), 0.05), fine)
    plain = fx.DiscSurface((0.5, 0.5, 0.45)).albedo(u, u, 0.05)
    assert plain == pytest.approx(np.tile([0.5, 0.5, 0.45], (101, 1)))


def test_disc_grain_makes_rings_and_fades_below_a_pixel() -> None:
    surface = fx.DiscSurface((0.5, 0.5, 0.5), grain=0.1, seed=1)
    r = np.linspace(20, 22, 400)  # along a radius: 4 rings of 0.5 mm
    profile = surface.albedo(r, np.zeros_like(r), footprint_mm=0.01)[:, 0] - 0.5
    crossings = np.count_nonzero(np.diff(np.sign(profile)) != 0)
    assert 6 <= crossings <= 10
    blurred = surface.albedo(r, np.zeros_like(r), footprint_mm=1.0)
    assert blurred == pytest.approx(np.full_like(blurred, 0.5))  # rings finer than a pixel: gone


def test_felt_desaturates_the_disc() -> None:
    u, v = np.meshgrid(np.linspace(-30, 30, 64), np.linspace(-30, 30, 64))
    base = (0.6, 0.3, 0.2)
    plain = fx.DiscSurface(base).albedo(u, v, 0.5)
    felt = fx.DiscSurface(base, felt=1.0, seed=3).albedo(u, v, 0.5)
    chroma = lambda x: float((x.max(-1) - x.min(-1)).mean())  # noqa: E731
    assert chroma(felt) < chroma(plain)


def test_disc_texture_is_round() -> None:
    tex = fx.disc_texture(32, fx.DiscSurface((0.5, 0.5, 0.5)), 60.0)
    assert tex.shape == (32, 32, 3)
    assert tex[0, 0].sum() == 0 and tex[16, 16].sum() > 0


def test_background_kinds() -> None:
    rng = np.random.default_rng(0)
    solid = fx.background_texture(20, 30, (0.1, 0.2, 0.3), rng)
    assert solid.shape == (20, 30, 3)
    assert solid[..., 2] == pytest.approx(np.full((20, 30), 0.3))
    grad = fx.background_texture(
        20, 30, (0.2, 0.2, 0.2), np.random.default_rng(1), kind="gradient", strength=0.5
    )
    corners = [grad[0, 0, 0], grad[0, -1, 0], grad[-1, 0, 0], grad[-1, -1, 0]]
    assert max(corners) - min(corners) > 0.05
    noise = fx.background_texture(
        40, 40, (0.2, 0.2, 0.2), np.random.default_rng(1), kind="noise", strength=0.5
    )
    assert noise.std() > 0.005
    same = fx.background_texture(
        40, 40, (0.2, 0.2, 0.2), np.random.default_rng(1), kind="noise", strength=0.5
    )
    assert np.array_equal(noise, same)
    with pytest.raises(ValueError, match="kind"):
        fx.background_texture(4, 4, (0.1, 0.1, 0.1), rng, kind="plaid")  # type: ignore[arg-type]


def test_lab_conversions() -> None:
    assert fx.srgb_to_lab((255, 255, 255)) == pytest.approx([100, 0, 0], abs=0.01)
    assert fx.srgb_to_lab((0, 0, 0)) == pytest.approx([0, 0, 0], abs=0.01)
    rgb = np.array([[12, 200, 77], [180, 20, 40], [90, 90, 91]], float)
    assert fx.lab_to_srgb(fx.srgb_to_lab(rgb)) == pytest.approx(rgb, abs=1e-6)
    assert fx.delta_e((0, 0, 0), (255, 255, 255)) == pytest.approx(100, abs=0.01)


def test_jitter_stays_within_delta_e_and_its_named_colour() -> None:
    lbg, dbg, dark_gray = (160, 165, 169), (108, 110, 104), (99, 95, 82)
    very_close = (163, 168, 172)  # another "named colour" barely 1.4 delta E away
    rng = np.random.default_rng(11)
    for _ in range(300):
        out = fx.jitter_color(lbg, rng, 6.0, [dbg, dark_gray, very_close])
        assert fx.delta_e(out, lbg) <= 6.0 + 1e-6
        assert fx.delta_e(out, lbg) < fx.delta_e(out, very_close)  # never across the boundary
    free = [fx.delta_e(fx.jitter_color(lbg, rng, 6.0), lbg) for _ in range(300)]
    assert max(free) > 4.0  # without neighbours the jitter uses its range
    a = fx.jitter_color(lbg, np.random.default_rng(4), 5.0, [dbg])
    b = fx.jitter_color(lbg, np.random.default_rng(4), 5.0, [dbg])
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="max_delta_e"):
        fx.jitter_color(lbg, rng, 30.0)
