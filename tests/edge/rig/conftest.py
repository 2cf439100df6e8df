"""Fixtures for the rig tests: gpiozero's own MockFactory (with PWM pins) as the default pin factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    """A fresh MockFactory installed as ``Device.pin_factory``; every device left open is closed after."""
    saved = Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        with factory._res_lock:  # gpiozero's own shutdown walks the reservations the same way
            devices = {ref() for refs in factory._reservations.values() for ref in refs}
        for dev in devices:
            if dev is not None:
                dev.close()
        factory.close()
        factory.reset()
        Device.pin_factory = saved


Timeline = list[tuple[float, tuple[int, ...]]]


def _timeline(pins: Sequence[Any]) -> Timeline:
    """Merge the histories of ``pins`` (each cleared together just before the action) into
    ``[(seconds since the clear, (state of pin 0, state of pin 1, ...)), ...]``, one entry per change.

    Mock pins record each change as the time since the pin's previous change, so the cumulative sum
    gives the time since ``clear_states()``; clearing the pins one after another skews them by
    microseconds, far below the step delays the tests use.
    """
    current = [round(pin.states[0].state) for pin in pins]
    events: list[tuple[float, int, int]] = []
    for index, pin in enumerate(pins):
        elapsed = 0.0
        for change in pin.states[1:]:
            elapsed += change.timestamp
            events.append((elapsed, index, round(change.state)))
    events.sort()
    out: Timeline = []
    for elapsed, index, state in events:
        current[index] = state
        out.append((elapsed, tuple(current)))
    return out


@pytest.fixture
def timeline() -> Callable[[Sequence[Any]], Timeline]:
    """The function that merges mock pin histories (see ``_timeline``)."""
    return _timeline


@pytest.fixture
def clear() -> Callable[[Sequence[Any]], None]:
    """Clear the recorded history of several mock pins at (nearly) the same moment."""

    def _clear(pins: Sequence[Any]) -> None:
        for pin in pins:
            pin.clear_states()

    return _clear
