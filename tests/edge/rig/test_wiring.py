"""edge wiring: what to connect to which header pin, from the config's rig section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main
from edge.rig.rig import RigConfig, StepDirConfig
from edge.rig.wiring import header_lines, power_pins, wiring, wiring_lines

REPO = Path(__file__).resolve().parents[3]


def test_the_default_rig_is_wired_to_the_header_pins_of_its_bcm_numbers() -> None:
    wires = {w.use: w for w in wiring(RigConfig())}
    # BCM -> physical pin on the 40-pin header (the Pi's pinout)
    expected = {
        "turntable.pins[0]": (17, 11),
        "turntable.pins[1]": (27, 13),
        "turntable.pins[2]": (22, 15),
        "turntable.pins[3]": (23, 16),
        "chute.pin": (18, 12),
        "light.pin": (13, 33),
        "panel.ready_pin": (5, 29),
        "panel.busy_pin": (6, 31),
        "panel.error_pin": (26, 37),
        "panel.start_pin": (16, 36),
        "panel.stop_pin": (20, 38),
    }
    assert {use: (w.bcm, w.header_pin) for use, w in wires.items()} == expected
    assert wires["turntable.pins[2]"].connect == "ULN2003 board IN3"
    assert "to GND" in wires["panel.stop_pin"].connect and "pull-up" in wires["panel.stop_pin"].connect
    assert all(not w.notes for w in wires.values())  # none of the default pins has a second job


def test_a_stepdir_turntable_names_its_driver_pins_and_enable_level() -> None:
    low = RigConfig(turntable=StepDirConfig(driver="stepdir", step_pin=24, dir_pin=25, enable_pin=12))
    wires = {w.use: w for w in wiring(low)}
    assert wires["turntable.step_pin"].connect == "stepper driver STEP"
    assert (wires["turntable.dir_pin"].bcm, wires["turntable.dir_pin"].header_pin) == (25, 22)
    assert "enables it when low" in wires["turntable.enable_pin"].connect
    high = StepDirConfig(driver="stepdir", step_pin=24, dir_pin=25, enable_pin=12, enable_active_high=True)
    assert (
        "when high" in {w.use: w for w in wiring(RigConfig(turntable=high))}["turntable.enable_pin"].connect
    )


def test_pins_with_a_second_job_carry_a_note() -> None:
    rig = RigConfig.model_validate({"panel": {"ready_pin": 14, "start_pin": 2, "busy_pin": 3, "stop_pin": 0}})
    notes = {w.use: " ".join(w.notes) for w in wiring(rig)}
    assert "serial console" in notes["panel.ready_pin"]
    assert "fine for a button" in notes["panel.start_pin"]  # GPIO2's fixed pull-up
    assert "reads high until the daemon drives it" in notes["panel.busy_pin"]  # GPIO3, an output
    assert "HAT" in notes["panel.stop_pin"]
    text = "\n".join(wiring_lines(rig, "test.yaml"))
    assert "Notes:" in text and "BCM 14 (pin 8, panel.ready_pin): UART TX" in text


def test_the_header_has_twenty_rows_with_the_uses_beside_their_pins() -> None:
    lines = header_lines(wiring(RigConfig()))
    assert len(lines) == 20
    assert lines[5].split() == ["GPIO17", "turntable.pins[0]", "(11)", "(12)", "GPIO18", "chute.pin"]
    assert lines[0].split() == ["3V3", "(", "1)", "(", "2)", "5V"]
    power = power_pins()
    assert power["GND"] == [6, 9, 14, 20, 25, 30, 34, 39] and power["5V"] == [2, 4]


def test_the_command_prints_the_shipped_configs_wiring_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    config = REPO / "config" / "edge.yaml"
    assert main(["wiring", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert str(config) in out and "chute.pin           18   12" in out and "Ground: pins 6, 9" in out
    assert main(["wiring", "--config", str(config), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {w["use"] for w in data["wires"]} >= {"chute.pin", "light.pin", "panel.stop_pin"}
    assert data["power"]["5V"] == [2, 4]
