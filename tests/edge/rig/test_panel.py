"""Panel LEDs and buttons on gpiozero's mock pins, pressed with drive_low()/drive_high()."""

from __future__ import annotations

import threading
import time

import pytest

from edge.rig.panel import PANEL_STATES, Panel

READY, BUSY, ERROR, START, STOP = 5, 6, 26, 16, 20


@pytest.fixture
def panel(mock_factory):
    p = Panel(READY, BUSY, ERROR, START, STOP, long_press_s=0.15, blink_s=0.02)
    yield p
    p.close()


def _leds(factory) -> tuple[int, int, int]:
    return tuple(round(factory.pin(n).state) for n in (READY, BUSY, ERROR))  # type: ignore[return-value]


def _wait_for_changes(pin, count: int, timeout: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(pin.states) - 1 >= count:
            return True
        time.sleep(0.01)
    return False


def test_steady_patterns(mock_factory, panel) -> None:
    assert _leds(mock_factory) == (0, 0, 0) and panel.state is None
    panel.show("idle")
    assert _leds(mock_factory) == (1, 0, 0) and panel.state == "idle"
    panel.show("running")
    assert _leds(mock_factory) == (1, 1, 0)
    panel.lights_off()
    assert _leds(mock_factory) == (0, 0, 0)


@pytest.mark.parametrize(("state", "blinking"), [("paused", READY), ("error", ERROR), ("stopping", BUSY)])
def test_blinking_patterns(mock_factory, panel, state, blinking) -> None:
    panel.show("running")  # something else lit first, to see it switched off
    pins = {n: mock_factory.pin(n) for n in (READY, BUSY, ERROR)}
    for pin in pins.values():
        pin.clear_states()
    panel.show(state)
    assert _wait_for_changes(pins[blinking], 4), f"{state}: LED on GPIO{blinking} did not blink"
    for n, pin in pins.items():
        if n != blinking:
            assert pin.state == 0, f"{state}: GPIO{n} should be off"
    panel.show("idle")  # a steady state stops the blinking
    time.sleep(0.05)
    assert _leds(mock_factory) == (1, 0, 0)


def test_unknown_state_lists_the_states(panel) -> None:
    with pytest.raises(ValueError) as info:
        panel.show("sleeping")
    assert "'sleeping'" in str(info.value) and all(s in str(info.value) for s in PANEL_STATES)


def test_start_press_fires_start_pause(mock_factory, panel) -> None:
    presses: list[str] = []
    panel.on_start_pause = lambda: presses.append("start")
    button = mock_factory.pin(START)
    button.drive_low()  # pressed (to ground, pulled up)
    assert presses == ["start"]
    button.drive_high()  # releasing does not fire again
    assert presses == ["start"]
    button.drive_low()
    button.drive_high()
    assert presses == ["start", "start"]


def test_short_stop_press_fires_stop_only(mock_factory, panel) -> None:
    fired: list[str] = []
    panel.on_stop = lambda: fired.append("stop")
    panel.on_shutdown = lambda: fired.append("shutdown")
    button = mock_factory.pin(STOP)
    button.drive_low()
    time.sleep(0.02)
    button.drive_high()
    assert fired == ["stop"]


def test_long_stop_press_fires_shutdown_only(mock_factory, panel) -> None:
    fired: list[str] = []
    held = threading.Event()
    panel.on_stop = lambda: fired.append("stop")

    def shutdown() -> None:
        fired.append("shutdown")
        held.set()

    panel.on_shutdown = shutdown
    assert panel.long_press_s == pytest.approx(0.15)
    button = mock_factory.pin(STOP)
    button.drive_low()
    assert held.wait(1.0), "on_shutdown was not fired while STOP was held"
    time.sleep(0.05)
    button.drive_high()
    assert fired == ["shutdown"]
    # the next short press is a plain stop again
    button.drive_low()
    button.drive_high()
    assert fired == ["shutdown", "stop"]


def test_callbacks_can_be_swapped_and_cleared(mock_factory, panel) -> None:
    fired: list[str] = []
    button = mock_factory.pin(START)
    panel.on_start_pause = lambda: fired.append("first")
    button.drive_low()
    button.drive_high()
    panel.on_start_pause = None  # cleared: a press is ignored, not an error
    button.drive_low()
    button.drive_high()
    panel.on_start_pause = lambda: fired.append("second")
    button.drive_low()
    button.drive_high()
    assert fired == ["first", "second"]


def test_bad_times_are_named(mock_factory) -> None:
    with pytest.raises(ValueError, match="long_press_s"):
        Panel(READY, BUSY, ERROR, START, STOP, long_press_s=0)
