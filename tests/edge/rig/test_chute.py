"""Chute servo and light ring on gpiozero's mock PWM pins."""

from __future__ import annotations

import time

import pytest

from edge.errors import EdgeError
from edge.rig.chute import Chute, LightRing, UnknownBinError

SERVO_PIN = 18
BINS = {"reject": -90.0, "bricks": 0.0, "plates": 45.0, "tiles": 90.0}


def _expected_pulse(angle: float, lo=-90.0, hi=90.0, min_pw=0.0005, max_pw=0.0025) -> float:
    return min_pw + (angle - lo) / (hi - lo) * (max_pw - min_pw)


@pytest.mark.parametrize(("name", "angle"), list(BINS.items()))
def test_each_bin_gets_its_pulse_width(mock_factory, name, angle) -> None:
    pin = mock_factory.pin(SERVO_PIN)
    with Chute(SERVO_PIN, BINS, settle_s=0) as chute:
        chute.select(name)
        assert pin.frequency == 50  # 20 ms frames
        assert pin.state * 0.02 == pytest.approx(_expected_pulse(angle), abs=1e-9)
        assert chute.current_bin == name


def test_custom_pulse_range_and_angles(mock_factory) -> None:
    pin = mock_factory.pin(SERVO_PIN)
    with Chute(
        SERVO_PIN,
        [0, 90, 180],
        min_angle=0,
        max_angle=180,
        min_pulse_width=0.001,
        max_pulse_width=0.002,
        settle_s=0,
    ) as chute:
        assert chute.bins == {"0": 0.0, "1": 90.0, "2": 180.0}
        chute.select(1)  # list bins are named by index; an int is accepted
        assert pin.state * 0.02 == pytest.approx(0.0015, abs=1e-9)
        chute.select("2")
        assert pin.state * 0.02 == pytest.approx(0.002, abs=1e-9)


def test_servo_starts_detached_and_detach_stops_pulses(mock_factory) -> None:
    pin = mock_factory.pin(SERVO_PIN)
    with Chute(SERVO_PIN, BINS, settle_s=0) as chute:
        assert pin.frequency is None and chute.current_bin is None
        chute.select("plates")
        assert pin.frequency == 50 and pin.state > 0
        chute.detach()
        assert pin.frequency is None and pin.state == 0
        chute.select("plates")  # selecting again re-attaches
        assert pin.state * 0.02 == pytest.approx(_expected_pulse(45.0), abs=1e-9)


def test_unknown_bin_lists_the_bins(mock_factory) -> None:
    with Chute(SERVO_PIN, BINS, settle_s=0) as chute, pytest.raises(UnknownBinError) as info:
        chute.select("wheels")
    msg = str(info.value)
    assert "'wheels'" in msg and all(name in msg for name in BINS)
    assert isinstance(info.value, KeyError) and isinstance(info.value, EdgeError)


def test_select_waits_for_the_servo_to_settle(mock_factory) -> None:
    with Chute(SERVO_PIN, BINS, settle_s=0.05) as chute:
        start = time.monotonic()
        chute.select("tiles")
        assert time.monotonic() - start >= 0.05


@pytest.mark.parametrize(
    ("bins", "kwargs", "match"),
    [
        ({"far": 120.0}, {}, "outside the servo's range"),
        ({}, {}, "empty"),
        ({"a": float("nan")}, {}, "finite"),
        ({"a": 0.0}, {"min_angle": 10, "max_angle": -10}, "min_angle"),
        ({"a": 0.0}, {"settle_s": -1}, "settle_s"),
    ],
)
def test_bad_chute_settings_are_named(mock_factory, bins, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        Chute(SERVO_PIN, bins, **kwargs)


def test_light_ring_pwm_levels(mock_factory) -> None:
    pin = mock_factory.pin(12)
    with LightRing(12, brightness=0.8) as light:
        assert pin.state == 0 and light.level == 0
        light.on()
        assert pin.state == pytest.approx(0.8) and pin.frequency == 1000
        light.on(0.25)
        assert pin.state == pytest.approx(0.25) and light.level == pytest.approx(0.25)
        light.off()
        assert pin.state == 0
        with pytest.raises(ValueError, match="brightness"):
            light.on(1.5)
        assert pin.state == 0  # a refused level changes nothing


def test_light_ring_rejects_bad_default_brightness(mock_factory) -> None:
    with pytest.raises(ValueError, match="brightness"):
        LightRing(12, brightness=-0.1)
