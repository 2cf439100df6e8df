"""Turntable drivers on gpiozero's mock pins: what the pins did, step counts, angles, timing."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from gpiozero.exc import DeviceClosed

from edge.rig.turntable import HALF_STEP_SEQUENCE, StepDirTurntable, ULN2003Turntable

IN_PINS = (5, 6, 13, 19)
CYCLE = [
    (1, 0, 0, 0),
    (1, 1, 0, 0),
    (0, 1, 0, 0),
    (0, 1, 1, 0),
    (0, 0, 1, 0),
    (0, 0, 1, 1),
    (0, 0, 0, 1),
    (1, 0, 0, 1),
]
OFF = (0, 0, 0, 0)


def _patterns(timeline, pins):
    return [pattern for _, pattern in timeline(pins)]


def _changes(pin) -> int:
    return len(pin.states) - 1


def _rising_edges(pin) -> int:
    levels = [round(s.state) for s in pin.states]
    return sum(1 for a, b in itertools.pairwise(levels) if not a and b)


@pytest.fixture
def uln(mock_factory):
    t = ULN2003Turntable(IN_PINS, step_delay=0)
    yield t
    t.close()


def test_sequence_constant_is_the_half_step_cycle() -> None:
    assert list(HALF_STEP_SEQUENCE) == CYCLE


def test_one_forward_cycle_walks_the_eight_states_in_order(mock_factory, timeline, clear) -> None:
    pins = [mock_factory.pin(p) for p in IN_PINS]
    with ULN2003Turntable(IN_PINS, step_delay=0.002) as t:
        clear(pins)
        assert t.step(8) == 8
        # energize the current phase, 8 half steps round the cycle, then release
        assert _patterns(timeline, pins) == [*CYCLE, CYCLE[0], OFF]
        # each step changes exactly one pin; IN1 alone: on, off at 0100, on at 1001, off at release
        assert [s.state for s in pins[0].states] == [0, 1, 0, 1, 0]
        assert t.position == 8


def test_one_backward_cycle_walks_the_states_in_reverse(mock_factory, timeline, clear) -> None:
    pins = [mock_factory.pin(p) for p in IN_PINS]
    with ULN2003Turntable(IN_PINS, step_delay=0.002) as t:
        clear(pins)
        assert t.step(-8) == -8
        backwards = [CYCLE[0], *reversed(CYCLE)]
        assert _patterns(timeline, pins) == [*backwards, OFF]
        assert t.position == -8 and t.angle == pytest.approx(360 - 8 * 360 / 4096)


def test_phase_carries_over_moves_and_home(mock_factory, timeline, clear) -> None:
    pins = [mock_factory.pin(p) for p in IN_PINS]
    with ULN2003Turntable(IN_PINS, step_delay=0.001) as t:
        t.step(3)
        t.home()  # the rotor still sits at phase 3: homing must not make it jump to phase 0
        clear(pins)
        t.step(1)
        # energizing phase 3 (0110) from all-low raises IN2 then IN3; then one step to phase 4
        assert _patterns(timeline, pins) == [(0, 1, 0, 0), CYCLE[3], CYCLE[4], OFF]
        assert t.position == 1


def test_full_turn_returns_to_angle_zero(uln) -> None:
    uln.step(4096)
    assert uln.position == 4096 and uln.angle == 0.0
    uln.step(-4096 - 1024)
    assert uln.position == -1024 and uln.angle == 270.0


def test_step_to_90_moves_1024_half_steps(mock_factory, uln) -> None:
    pins = [mock_factory.pin(p) for p in IN_PINS]
    assert uln.step_to(90) == 1024
    assert uln.position == 1024 and uln.angle == 90.0
    # 1 change to energize phase 0, one per half step, 1 to release phase 1024 % 8 = 0 (1000)
    assert sum(_changes(p) for p in pins) == 1 + 1024 + 1


def test_step_to_takes_the_shortest_way_unless_forward_only(uln) -> None:
    assert uln.step_to(270) == -1024
    assert uln.step_to(180, forward_only=True) == 3072
    assert uln.angle == 180.0
    assert uln.step_to(180) == 0
    uln.home()
    assert uln.angle == 0.0 and uln.step_to(-90) == -1024


def test_forward_only_flag_on_the_device(mock_factory) -> None:
    with ULN2003Turntable(IN_PINS, step_delay=0, forward_only=True) as t:
        assert t.step_to(350) == round(350 * 4096 / 360)


def test_many_small_moves_do_not_drift(uln) -> None:
    for _ in range(1000):
        uln.rotate_by(0.36)  # 4.096 half steps each: rounding each move alone would give 4000
    assert uln.position == 4096 and uln.angle == 0.0
    for degree in range(1, 361):
        uln.step_to(degree % 360)  # 11.38 half steps per degree
    assert uln.position == 2 * 4096 and uln.angle == 0.0
    for _ in range(7):
        uln.rotate_by(-360 / 7)
    assert uln.position == 4096


def test_coils_are_low_after_a_move_unless_holding(mock_factory) -> None:
    pins = [mock_factory.pin(p) for p in IN_PINS]
    with ULN2003Turntable(IN_PINS, step_delay=0) as t:
        t.step(5)
        assert [p.state for p in pins] == list(OFF) and not t.energized
    with ULN2003Turntable(IN_PINS, step_delay=0, hold=True) as t:
        t.step(5)
        assert tuple(round(p.state) for p in pins) == CYCLE[5] and t.energized
        t.release()
        assert [p.state for p in pins] == list(OFF) and not t.energized


def test_half_steps_are_at_least_step_delay_apart(mock_factory, timeline, clear) -> None:
    pins = [mock_factory.pin(p) for p in IN_PINS]
    delay = 0.004
    with ULN2003Turntable(IN_PINS, step_delay=delay) as t:
        clear(pins)
        t.step(6)
    times = [when for when, _ in timeline(pins)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 7  # energize, 6 steps, release
    assert min(gaps) >= delay * 0.9  # sleep never wakes early; 10% covers the clear() skew


def test_stop_from_another_thread_ends_the_move(mock_factory) -> None:
    pins = [mock_factory.pin(p) for p in IN_PINS]
    with ULN2003Turntable(IN_PINS, step_delay=0.001) as t:
        mover = threading.Thread(target=t.rotate_by, args=(36_000,))  # 100 turns
        mover.start()
        time.sleep(0.05)
        t.stop()
        mover.join(timeout=2)
        assert not mover.is_alive()
        assert 0 < t.position < 2048
        # 1 change to energize phase 0, one per step, then one per coil still on at release
        assert sum(_changes(p) for p in pins) == 1 + t.position + sum(CYCLE[t.position % 8])
        assert [p.state for p in pins] == list(OFF)
        done_before = t.position
        # the commanded angle follows the interrupted move: going home undoes exactly what was done
        assert t.step_to(0) == -done_before and t.position == 0


def test_closed_turntable_refuses_to_move(mock_factory) -> None:
    t = ULN2003Turntable(IN_PINS, step_delay=0)
    t.close()
    assert t.closed
    with pytest.raises(DeviceClosed):
        t.step(1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps_per_turn": 0}, "steps_per_turn"),
        ({"step_delay": -1.0}, "step_delay"),
        ({"pins": (5, 6, 13)}, "4 pins"),
    ],
)
def test_bad_arguments_are_named(mock_factory, kwargs, match) -> None:
    args = {"pins": IN_PINS, **kwargs}
    with pytest.raises(ValueError, match=match):
        ULN2003Turntable(**args)


def test_bad_angles_are_named(uln) -> None:
    with pytest.raises(ValueError, match="rotate_by angle"):
        uln.rotate_by(float("nan"))
    with pytest.raises(ValueError, match="step_to angle"):
        uln.step_to("90")  # type: ignore[arg-type]


# -- STEP/DIR --------------------------------------------------------------------------------


def test_stepdir_pulses_and_direction(mock_factory) -> None:
    step_pin, dir_pin = mock_factory.pin(20), mock_factory.pin(21)
    with StepDirTurntable(20, 21, steps_per_turn=200, step_delay=0, dir_setup_s=0) as t:
        assert t.step(7) == 7
        assert _rising_edges(step_pin) == 7 and step_pin.state == 0
        assert dir_pin.state == 1
        step_pin.clear_states()
        assert t.step(-3) == -3
        assert _rising_edges(step_pin) == 3 and dir_pin.state == 0
        assert t.position == 4 and t.angle == pytest.approx(4 * 360 / 200)
        assert t.step_to(90) == 46  # 50 steps is 90 degrees
        assert dir_pin.state == 1


def test_stepdir_invert_dir(mock_factory) -> None:
    dir_pin = mock_factory.pin(21)
    with StepDirTurntable(20, 21, step_delay=0, dir_setup_s=0, invert_dir=True) as t:
        t.step(2)
        assert dir_pin.state == 0
        t.step(-1)
        assert dir_pin.state == 1


def test_stepdir_sets_dir_before_pulsing(mock_factory, timeline, clear) -> None:
    step_pin, dir_pin = mock_factory.pin(20), mock_factory.pin(21)
    with StepDirTurntable(20, 21, step_delay=0.002, dir_setup_s=0.002) as t:
        t.step(1)  # DIR high
        clear([dir_pin, step_pin])  # DIR cleared first: its clock reads later, never earlier
        t.step(-2)
    events = timeline([dir_pin, step_pin])
    assert [pattern for _, pattern in events] == [(0, 0), (0, 1), (0, 0), (0, 1), (0, 0)]
    rises = [when for when, (_, step) in events if step == 1]
    assert rises[1] - rises[0] >= 0.002 * 0.9  # one step delay from rising edge to rising edge


def test_stepdir_enable_pin_wraps_each_move(mock_factory, timeline, clear) -> None:
    step_pin, en_pin = mock_factory.pin(20), mock_factory.pin(22)
    with StepDirTurntable(20, 21, enable_pin=22, step_delay=0.001, dir_setup_s=0) as t:
        assert en_pin.state == 1 and t.can_release  # active low: disabled at rest
        clear([en_pin, step_pin])
        t.step(2)
        # (EN, STEP): enable, two pulses, disable
        assert [p for _, p in timeline([en_pin, step_pin])] == [
            (0, 0),
            (0, 1),
            (0, 0),
            (0, 1),
            (0, 0),
            (1, 0),
        ]
    with StepDirTurntable(20, 21, step_delay=0, hold=True) as t:
        t.step(1)
        assert not t.can_release  # no EN pin: release() cannot cut the current


# -- background moves --------------------------------------------------------------------------


def test_background_move_lands_where_a_blocking_move_does(mock_factory) -> None:
    with ULN2003Turntable(IN_PINS, step_delay=0) as t:
        move = t.start_rotate_by(90)
        assert move.wait() == 1024 and move.done
        assert t.position == 1024 and t.angle == 90.0
        t.rotate_by(90)  # a blocking move after it goes on from there
        assert t.position == 2048


def test_background_moves_run_one_after_another(mock_factory) -> None:
    pins = [mock_factory.pin(p) for p in IN_PINS]
    with ULN2003Turntable(IN_PINS, step_delay=0) as t:
        first, second = t.start_rotate_by(45), t.start_rotate_by(45)
        assert first.wait() + second.wait() == 1024 and t.position == 1024
    # every half step changed exactly one coil: the two moves never interleaved their steps
    assert sum(_changes(p) for p in pins) == 2 * (1 + 512 + sum(CYCLE[512 % 8]))


def test_cancel_ends_a_background_move_after_its_step(mock_factory) -> None:
    with ULN2003Turntable(IN_PINS, step_delay=0.001) as t:
        move = t.start_rotate_by(36_000)  # 100 turns
        for _ in range(400):  # until it has begun stepping
            if t.position:
                break
            time.sleep(0.005)
        move.cancel()
        done = move.wait()
        assert 0 < done < 4096 and t.position == done
        assert t.step_to(0) == -done  # the commanded angle follows the cancelled move


def test_cancel_before_the_move_steps_is_not_lost(mock_factory) -> None:
    with ULN2003Turntable(IN_PINS, step_delay=0.001) as t:
        for _ in range(5):  # whether or not the thread has begun stepping, the move ends
            move = t.start_rotate_by(36_000)
            move.cancel()
            assert move.wait() < 4096


def test_background_move_error_is_raised_by_wait(mock_factory, monkeypatch) -> None:
    with ULN2003Turntable(IN_PINS, step_delay=0) as t:

        def broken(sign: int) -> None:
            raise OSError("GPIO write failed")

        monkeypatch.setattr(t, "_one_step", broken)
        move = t.start_rotate_by(90)
        with pytest.raises(OSError, match="GPIO write failed"):
            move.wait()
        assert not t.energized  # released after the failed step
    closed = ULN2003Turntable(IN_PINS, step_delay=0)
    closed.close()
    with pytest.raises(DeviceClosed):
        closed.start_rotate_by(90)
