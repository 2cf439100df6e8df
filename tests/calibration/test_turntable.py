"""`edge calibrate turntable` on the simulated rig: a wrong steps-per-turn is found out."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.calibration_file import read_calibration, update_calibration
from edge.cli import main
from tests.edge.test_settings import write_sim_setup


@pytest.mark.parametrize(("configured", "true"), [(64, 72), (400, 368)])
def test_recovers_the_true_steps_per_turn(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str], configured: int, true: int
) -> None:
    config = write_sim_setup(
        tmp_path,
        demo_library,
        rig={"turntable": {"driver": "uln2003", "steps_per_turn": configured, "step_delay": 0.0}},
    )
    cal = tmp_path / "calibration.json"
    update_calibration(cal, turntable={"steps_per_turn": configured, "zero_offset_steps": 5})
    args = ["calibrate", "turntable", "--config", str(config), "--sim", "--calibration", str(cal)]
    assert main([*args, "--sim-steps-per-turn", str(true)]) == 0
    out = capsys.readouterr().out
    turntable = read_calibration(cal).turntable
    assert turntable is not None and abs(turntable.steps_per_turn - true) <= max(1, true // 100)
    assert turntable.zero_offset_steps == 5  # kept: the zero is not measured here
    assert f"the rig now turns by the measured {turntable.steps_per_turn} steps per turn" in out
