"""The rig config, building a Rig from it on mock pins, and choosing the pin factory."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import pytest
from gpiozero import LED, Device
from gpiozero.exc import GPIOPinInUse
from gpiozero.pins.mock import MockFactory, MockPWMPin

import edge.rig.pins as pins_module
from edge.config import load_config, validate_config
from edge.errors import ConfigError, HardwareError, MissingDependencyError
from edge.rig import Rig, RigConfig, StepDirTurntable, ULN2003Turntable, pi_model, pin_factory_for

# -- config ---------------------------------------------------------------------------------


def test_defaults_use_distinct_pins() -> None:
    cfg = RigConfig()
    pins = [pin for pin, _ in cfg.pin_uses()]
    assert len(pins) == len(set(pins)) == 4 + 1 + 1 + 5
    assert cfg.turntable.driver == "uln2003" and cfg.pins == "auto"


def test_duplicate_pin_names_both_uses() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(RigConfig, {"chute": {"pin": 17}, "panel": {"stop_pin": 18}}, "rig.yaml")
    msg = str(info.value)
    assert "rig.yaml" in msg
    assert "BCM pin 17 is used by both turntable.pins[0] and chute.pin" in msg
    assert "BCM pin 18 is used by both chute.pin" not in msg  # 18 moved away from the chute: no clash
    assert "own pin" in msg


def test_duplicate_pin_across_stepdir_and_panel() -> None:
    data = {"turntable": {"driver": "stepdir", "step_pin": 24, "dir_pin": 25, "enable_pin": 5}}
    with pytest.raises(
        ConfigError, match=r"BCM pin 5 is used by both turntable.enable_pin and panel.ready_pin"
    ):
        validate_config(RigConfig, data, "rig.yaml")


@pytest.mark.parametrize(
    ("data", "expect"),
    [
        ({"light": {"pin": 28}}, ["light.pin", "28", "0..27"]),
        ({"turntable": {"driver": "uln2003", "pins": [1, 2, 3, -1]}}, ["turntable.uln2003.pins[3]", "-1"]),
        ({"turntable": {"driver": "l298"}}, ["turntable", "l298", "uln2003", "stepdir"]),
        ({"chute": {"min_pulse_width": 0.002, "max_pulse_width": 0.001}}, ["min_pulse_width", "below"]),
        ({"chute": {"bins": {"far": 170}}}, ["far", "outside"]),
        ({"chute": {"bins": []}}, ["bins", "empty"]),
        ({"panel": {"long_pres_s": 2}}, ["panel.long_pres_s", "unknown key", "long_press_s"]),
        ({"pins": "sim"}, ["pins", "'sim'", "mock"]),
    ],
)
def test_bad_settings_are_named(data, expect) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(RigConfig, data, "rig.yaml")
    for piece in expect:
        assert piece in str(info.value)


def test_stepdir_config_from_yaml(tmp_path: Path) -> None:
    f = tmp_path / "rig.yaml"
    f.write_text(
        "pins: mock\n"
        "turntable:\n  driver: stepdir\n  step_pin: 24\n  dir_pin: 25\n  steps_per_turn: 1600\n"
        "chute:\n  bins: {reject: -45, keep: 45}\n"
    )
    cfg = load_config(RigConfig, f)
    assert cfg.turntable.driver == "stepdir" and cfg.turntable.steps_per_turn == 1600
    assert cfg.chute.bins == {"reject": -45.0, "keep": 45.0}


# -- the rig --------------------------------------------------------------------------------


def test_rig_drives_the_configured_pins(mock_factory, timeline, clear) -> None:
    cfg = validate_config(RigConfig, {"pins": "mock", "chute": {"settle_s": 0}})
    with Rig.from_config(cfg, pin_factory=mock_factory) as rig:
        assert isinstance(rig.turntable, ULN2003Turntable)
        coils = [mock_factory.pin(p) for p in cfg.turntable.pins]
        clear(coils)
        rig.turntable.step(2)
        assert [p for _, p in timeline(coils)] == [(1, 0, 0, 0), (1, 1, 0, 0), (0, 1, 0, 0), (0, 0, 0, 0)]
        rig.chute.select("2")  # default bins are a list: bin '2' is 0 degrees, the mid pulse
        assert mock_factory.pin(cfg.chute.pin).state * 0.02 == pytest.approx(0.0015)
        rig.light.on()
        assert mock_factory.pin(cfg.light.pin).state == pytest.approx(cfg.light.brightness)
        rig.panel.show("running")
        assert [mock_factory.pin(n).state for n in (cfg.panel.ready_pin, cfg.panel.busy_pin)] == [1, 1]


def test_stepdir_rig(mock_factory) -> None:
    cfg = validate_config(
        RigConfig,
        {"pins": "mock", "turntable": {"driver": "stepdir", "step_pin": 24, "dir_pin": 25, "step_delay": 0}},
    )
    with Rig.from_config(cfg, pin_factory=mock_factory) as rig:
        assert isinstance(rig.turntable, StepDirTurntable)
        rig.turntable.step_to(90)
        assert rig.turntable.position == 800  # 3200 microsteps a turn
        assert mock_factory.pin(25).state == 1


def test_safe_state_releases_everything(mock_factory) -> None:
    data = {"pins": "mock", "turntable": {"driver": "uln2003", "hold": True}, "chute": {"settle_s": 0}}
    cfg = validate_config(RigConfig, data)
    with Rig.from_config(cfg, pin_factory=mock_factory) as rig:
        rig.turntable.step(3)
        rig.light.on()
        rig.chute.select("0")
        rig.panel.show("running")
        used = [
            mock_factory.pin(p)
            for p, _ in cfg.pin_uses()
            if p not in (cfg.panel.start_pin, cfg.panel.stop_pin)
        ]
        assert sum(p.state for p in used) > 0
        rig.safe_state()
        assert [p.state for p in used] == [0] * len(used)
        assert mock_factory.pin(cfg.chute.pin).frequency is None  # servo detached
        assert not rig.closed  # still usable
        rig.turntable.step(1)


def test_close_frees_every_pin(mock_factory) -> None:
    cfg = RigConfig(pins="mock")
    with Rig.from_config(cfg, pin_factory=mock_factory) as rig:
        pass
    assert rig.closed
    again = Rig.from_config(cfg, pin_factory=mock_factory)  # would raise GPIOPinInUse if any pin leaked
    again.close()


def test_failed_build_closes_what_was_built(mock_factory) -> None:
    cfg = RigConfig(pins="mock")
    blocker = LED(cfg.panel.stop_pin, pin_factory=mock_factory)  # the last device built will clash
    with pytest.raises(GPIOPinInUse):
        Rig.from_config(cfg, pin_factory=mock_factory)
    blocker.close()
    Rig.from_config(cfg, pin_factory=mock_factory).close()  # nothing half-built holds a pin


def test_mock_mode_builds_its_own_factory(mock_factory) -> None:
    with Rig.from_config(RigConfig(pins="mock")) as rig:
        assert isinstance(rig.pin_factory, MockFactory) and rig.pin_factory is not Device.pin_factory
        rig.light.on(0.5)  # PWM works on its pins
        assert rig.pin_factory.pin(13).state == pytest.approx(0.5)


# -- pin factories --------------------------------------------------------------------------


def test_mock_factory_supports_pwm() -> None:
    factory = pin_factory_for("mock")
    assert isinstance(factory, MockFactory) and factory.pin_class is MockPWMPin
    factory.close()


@pytest.mark.skipif(pi_model() is not None, reason="this test needs a machine that is not a Raspberry Pi")
def test_auto_on_a_non_pi_names_the_fix() -> None:
    with pytest.raises(HardwareError) as info:
        pin_factory_for("auto")
    msg = str(info.value)
    assert "not a Raspberry Pi" in msg and "--sim" in msg and "rig.pins: mock" in msg


@pytest.fixture
def fake_pi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    model = "Raspberry Pi 5 Model B Rev 1.0"
    f = tmp_path / "model"
    f.write_bytes(model.encode() + b"\x00")
    monkeypatch.setattr(pins_module, "_MODEL_FILE", f)
    return model


def test_pi_model_reads_the_device_tree(fake_pi) -> None:
    assert pi_model() == fake_pi


def test_auto_on_a_pi_refuses_mock_pins(fake_pi, mock_factory) -> None:
    # Device.pin_factory is a MockFactory (as GPIOZERO_PIN_FACTORY=mock would make it)
    with pytest.raises(HardwareError) as info:
        pin_factory_for("auto")
    assert "MockFactory" in str(info.value) and "rig.pins: mock" in str(info.value)


@pytest.fixture
def without_lgpio(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without lgpio (None in sys.modules stops its import, as if it were not installed)."""
    monkeypatch.setitem(sys.modules, "lgpio", None)
    monkeypatch.delitem(sys.modules, "gpiozero.pins.lgpio", raising=False)


def test_auto_on_a_pi_without_backends_names_what_failed(
    fake_pi, mock_factory, without_lgpio, monkeypatch
) -> None:
    for backend in ("RPi", "pigpio"):
        if importlib.util.find_spec(backend) is not None:
            pytest.skip(f"{backend} is installed here; this test needs a machine without GPIO backends")
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    Device.pin_factory = None  # let gpiozero search (the fixture restores it)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may leak out as a bare fallback warning
        with pytest.raises(HardwareError) as info:
            pin_factory_for("auto")
    msg = str(info.value)
    assert fake_pi in msg and "lgpio" in msg and "lego-edge[pi]" in msg
    assert Device.pin_factory is None  # and no mock factory was slipped in


def test_explicit_backend_missing_names_the_extra(without_lgpio) -> None:
    with pytest.raises(MissingDependencyError) as info:
        pin_factory_for("lgpio")
    assert "'lgpio'" in str(info.value) and "lego-edge[pi]" in str(info.value)


def test_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"'gpio'.*auto, mock, lgpio, rpigpio"):
        pin_factory_for("gpio")  # type: ignore[arg-type]


# -- the measured turntable ---------------------------------------------------------------------


def test_turntable_geometry_from_the_calibration_else_the_config(tmp_path: Path) -> None:
    from edge.calibration_file import update_calibration
    from edge.rig.rig import turntable_geometry

    cfg = RigConfig().turntable
    assert turntable_geometry(cfg).steps_per_turn == 4096
    assert "no calibration file configured" in turntable_geometry(cfg).source
    path = tmp_path / "calibration.json"
    missing = turntable_geometry(cfg, path)
    assert (missing.steps_per_turn, missing.zero_offset_steps) == (4096, 0)
    assert "not written yet" in missing.source
    update_calibration(path, color={"white_balance": [1, 1, 1], "matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]})
    assert "run `edge calibrate turntable`" in turntable_geometry(cfg, path).source
    update_calibration(path, turntable={"steps_per_turn": 4000, "zero_offset_steps": -7})
    measured = turntable_geometry(cfg, path)
    assert (measured.steps_per_turn, measured.zero_offset_steps) == (4000, -7)
    assert str(path) in measured.source and "the config's 4096 is the fallback" in measured.source


def test_rig_turntable_uses_the_measured_steps(mock_factory: MockFactory, tmp_path: Path) -> None:
    from edge.calibration_file import update_calibration

    path = tmp_path / "calibration.json"
    update_calibration(path, turntable={"steps_per_turn": 3000, "zero_offset_steps": 750})
    data = {"turntable": {"driver": "stepdir", "step_pin": 24, "dir_pin": 25, "step_delay": 0.0}}
    with Rig.from_config(validate_config(RigConfig, data, "rig"), mock_factory, calibration=path) as rig:
        turntable = rig.turntable
        assert isinstance(turntable, StepDirTurntable) and turntable.steps_per_turn == 3000
        assert turntable.angle == 270.0  # home lies a quarter turn ahead
        step = mock_factory.pin(24)
        step.clear_states()
        assert turntable.step_to(0.0) == 750  # the shortest way home: forward 750 pulses
        assert sum(1 for s in step.states if s.state) == 750 and turntable.angle == 0.0
