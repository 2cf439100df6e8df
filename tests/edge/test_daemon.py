"""The daemon end to end on the simulated rig: ``edge run --sim --parts 5`` in-process.

The tiny model's accuracy is irrelevant; these tests check the mechanics: parts recorded in SQLite,
the turntable stepped between views, the chute pointed at each part's bin, the panel LEDs showing
running then idle, the button commands.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.daemon import Daemon
from edge.part import PartRecord
from edge.record import DecisionRecord
from edge.rig import HALF_STEP_SEQUENCE
from edge.settings import load_edge_config
from tests.edge.test_settings import BINS, SIM_PARTS, write_sim_setup

COILS = ("GPIO17", "GPIO27", "GPIO22", "GPIO23")  # the default ULN2003 pins IN1..IN4
OFF = (0, 0, 0, 0)


class RecordingPin(MockPWMPin):
    """A mock pin that appends every change to one log shared by all pins, in the order they happen."""

    log: ClassVar[list[tuple[str, float]]] = []

    def _change_state(self, value: Any) -> bool:
        changed = bool(super()._change_state(value))
        if changed:
            RecordingPin.log.append((self.info.name, float(value)))
        return changed


@pytest.fixture
def factory() -> MockFactory:
    RecordingPin.log = []
    factory = MockFactory(pin_class=RecordingPin)
    yield factory
    factory.reset()


def _coil_moves(log: list[tuple[str, float]]) -> list[list[tuple[int, ...]]]:
    """The coil patterns of each move (energise .. last step), split where the motor is released."""
    state = dict.fromkeys(COILS, 0)
    moves: list[list[tuple[int, ...]]] = [[]]
    for name, value in log:
        if name not in state:
            continue
        state[name] = round(value)
        pattern = tuple(state[c] for c in COILS)
        if pattern == OFF:
            if moves[-1]:
                moves.append([])
        elif not moves[-1] or moves[-1][-1] != pattern:
            moves[-1].append(pattern)
    return [m for m in moves if m]


def _duty_of_bin(angle: float) -> float:
    """The servo duty cycle for a chute angle (the rig's default pulse widths, 20 ms frames)."""
    pulse = 0.0005 + (angle + 90.0) / 180.0 * 0.002
    return pulse / 0.02


def test_sim_run_sorts_five_parts(tmp_path: Path, demo_library: Path, factory: MockFactory) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    outcomes: list[PartRecord] = []
    daemon = Daemon(cfg, sim=True, parts=5, pin_factory=factory, on_part=outcomes.append)
    stats = daemon.run()

    # Five parts, in the feeder's order, each with ground truth and a bin.
    assert stats.parts == 5 and [o.number for o in outcomes] == [1, 2, 3, 4, 5]
    assert [o.truth["part_num"] for o in outcomes] == [*SIM_PARTS, *SIM_PARTS[:2]]
    assert all(o.bin in BINS and o.truth_bin in BINS for o in outcomes)
    assert sum(stats.by_status.values()) == 5 and stats.with_truth == 5
    assert set(stats.latency()) == {"capture", "segment", "preprocess", "infer", "search", "fuse", "total"}

    # The record: five finished parts with four views each, timings, the chute bin, crops on disk.
    with DecisionRecord(cfg.data.db, cfg.data.crops_dir) as record:
        parts = record.recent(10)
        assert record.summary()["by_status"]["in_progress"] == 0
    assert len(parts) == 5
    names = list(BINS)
    for row, outcome in zip(reversed(parts), outcomes, strict=True):
        assert row["status"] == outcome.status and row["bin"] == names.index(outcome.bin)
        assert len(row["views"]) == 4 and row["mode"] == "classifier"
        assert set(row["timings"]) >= {"capture_ms", "segment_ms", "infer_ms", "fuse_ms", "total_ms"}
        assert all((cfg.data.crops_dir / v["crop_path"]).is_file() for v in row["views"])  # keep_crops all
    assert [v["angle"] for v in parts[-1]["views"]] == [0.0, 90.0, 180.0, 270.0]  # the sim followed

    # The turntable: three moves per part (between 4 views), each a forward walk of 16 half steps.
    moves = _coil_moves(RecordingPin.log)
    assert len(moves) == 5 * 3
    cycle = list(HALF_STEP_SEQUENCE)
    for move in moves:
        assert len(move) == 17  # the energised phase, then 16 steps (64 steps a turn / 4 views)
        start = cycle.index(move[0])
        assert move == [cycle[(start + k) % 8] for k in range(17)]

    # The chute: one move per part, to the bin recorded for it (consecutive equal bins: no move).
    servo = [v for name, v in RecordingPin.log if name == "GPIO18" and v > 0]
    wanted = [_duty_of_bin(BINS[o.bin]) for o in outcomes]
    deduped = [d for i, d in enumerate(wanted) if i == 0 or d != wanted[i - 1]]
    assert servo == pytest.approx(deduped)

    # The panel: READY then BUSY on while running, BUSY off again at idle, all off at the end.
    assert daemon.state_history == ["idle", "running", "idle"]
    leds = [(n, v) for n, v in RecordingPin.log if n in ("GPIO5", "GPIO6")]
    assert leds[:2] == [("GPIO5", 1.0), ("GPIO6", 1.0)]
    assert leds[-2:] == [("GPIO6", 0.0), ("GPIO5", 0.0)]
    assert ("GPIO13", 0.8) in RecordingPin.log  # the light ring lit the views
    assert factory.pin(13).state == 0  # and is off again


def test_the_turntable_turns_by_the_calibrated_steps(
    tmp_path: Path, demo_library: Path, factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """`edge calibrate turntable` measured 80 steps a turn where the config says 64: the rig uses 80."""
    from edge.calibration_file import update_calibration

    update_calibration(tmp_path / "cal.json", turntable={"steps_per_turn": 80, "zero_offset_steps": 10})
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library, calibration="cal.json"))
    assert cfg.rig.turntable.steps_per_turn == 64
    outcomes: list[PartRecord] = []
    with caplog.at_level("INFO", logger="edge.rig.rig"):
        Daemon(cfg, sim=True, parts=2, pin_factory=factory, on_part=outcomes.append).run()
    assert "turntable: 80 steps per turn, zero offset 10 steps, from " in caplog.text
    assert "cal.json" in caplog.text and "the config's 64 is the fallback" in caplog.text
    moves = _coil_moves(RecordingPin.log)
    assert len(moves) == 2 * 3 and all(len(m) == 1 + 80 // 4 for m in moves)  # 20 half steps a view
    # Home lies 10 steps (45 degrees) ahead of where the motor started: the first view sees 315.
    assert [v.angle for v in outcomes[0].views] == [315.0, 45.0, 135.0, 225.0]


def test_a_second_run_appends_to_the_record(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    Daemon(cfg, sim=True, parts=1).run()
    Daemon(cfg, sim=True, parts=2).run()
    with sqlite3.connect(cfg.data.db) as con:
        assert con.execute("SELECT count(*) FROM parts").fetchone()[0] == 3


def test_buttons_pause_resume_and_stop(tmp_path: Path, demo_library: Path, factory: MockFactory) -> None:
    config = write_sim_setup(tmp_path, demo_library, autostart=False, rig={"panel": {"long_press_s": 0.2}})
    daemon = Daemon(load_edge_config(config), parts=3, pin_factory=factory)  # not sim: waits for START
    pressed = threading.Event()

    def press(pin: int, hold_s: float = 0.0) -> None:
        factory.pin(pin).drive_low()  # buttons are wired to ground
        if hold_s:
            threading.Event().wait(hold_s)
        factory.pin(pin).drive_high()

    def until(condition: Any) -> None:
        for _ in range(1000):
            if condition():
                return
            threading.Event().wait(0.01)
        raise AssertionError(f"timed out; states so far {daemon.state_history}")

    def operator() -> None:
        states = daemon.state_history
        try:
            until(lambda: states[-1:] == ["idle"])
            press(16)  # START: idle -> running
            until(lambda: "running" in states)
            press(16)  # PAUSE
            until(lambda: "paused" in states)
            press(16)  # resume
            until(lambda: states.count("running") == 2)
            press(20)  # STOP (short press): back to idle
            until(lambda: states[-1] == "idle")
            press(20, hold_s=0.3)  # long press: shut down (no poweroff: not configured, not a Pi)
            pressed.set()
        finally:
            daemon.request_stop()  # never leave the daemon running if a step failed

    assert (daemon.cfg.rig.panel.start_pin, daemon.cfg.rig.panel.stop_pin) == (16, 20)
    worker = threading.Thread(target=operator, daemon=True)
    worker.start()
    daemon.run()
    worker.join(5)
    assert pressed.is_set()
    assert daemon.state_history[:5] == ["idle", "running", "paused", "running", "idle"]
    assert daemon.shutdown_requested


@pytest.mark.parametrize(
    ("sim", "on_pi", "powered_off"), [(False, True, True), (True, True, False), (False, False, False)]
)
def test_long_stop_press_powers_off_only_a_real_pi_when_configured(
    tmp_path: Path,
    demo_library: Path,
    monkeypatch: pytest.MonkeyPatch,
    sim: bool,
    on_pi: bool,
    powered_off: bool,
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("edge.daemon.pi_model", lambda: "Raspberry Pi 5 Model B Rev 1.0" if on_pi else None)
    monkeypatch.setattr("edge.daemon.subprocess.run", lambda cmd, **kw: calls.append(cmd))
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library, poweroff_on_shutdown=True))
    daemon = Daemon(cfg, sim=sim)
    daemon.command("shutdown")  # as the panel does on a long STOP press
    daemon.run()
    assert daemon.shutdown_requested
    assert calls == ([["systemctl", "poweroff"]] if powered_off else [])
