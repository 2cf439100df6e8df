"""The rig's front panel: three status LEDs and two buttons, as a gpiozero composite device.

LED patterns per state (``Panel.show``):

========== ============ ============ =============
state      ready        busy         error
========== ============ ============ =============
idle       on           off          off
running    on           on           off
paused     blinking     off          off
error      off          off          blinking
stopping   off          blinking     off
========== ============ ============ =============

Buttons (wired to ground, internal pull-ups): START/PAUSE fires ``on_start_pause`` when pressed;
STOP fires ``on_stop`` when released after a short press, or ``on_shutdown`` once held for
``long_press_s`` (and then not ``on_stop``). Callbacks run in gpiozero's event threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from gpiozero import LED, Button, CompositeDevice

PANEL_STATES: tuple[str, ...] = ("idle", "running", "paused", "error", "stopping")

# state -> (ready, busy, error): "on", "off" or "blink"
_PATTERNS: dict[str, tuple[str, str, str]] = {
    "idle": ("on", "off", "off"),
    "running": ("on", "on", "off"),
    "paused": ("blink", "off", "off"),
    "error": ("off", "off", "blink"),
    "stopping": ("off", "blink", "off"),
}

Callback = Callable[[], Any] | None


class Panel(CompositeDevice):  # type: ignore[misc]
    """Status LEDs (ready, busy, error) and START/PAUSE and STOP buttons on BCM pins.

    Set the callbacks as attributes: ``panel.on_start_pause = fn`` (likewise ``on_stop``,
    ``on_shutdown``); ``None`` ignores the event. ``blink_s`` is the on and off time of a blinking
    LED; ``bounce_s`` (or None) is the buttons' debounce time. Named devices: ``ready_led``,
    ``busy_led``, ``error_led``, ``start_button``, ``stop_button``.
    """

    def __init__(
        self,
        ready_pin: int,
        busy_pin: int,
        error_pin: int,
        start_pin: int,
        stop_pin: int,
        *,
        long_press_s: float = 3.0,
        blink_s: float = 0.5,
        bounce_s: float | None = None,
        pin_factory: Any = None,
    ) -> None:
        if not long_press_s > 0:
            raise ValueError(f"long_press_s must be > 0 seconds, got {long_press_s!r}")
        if not blink_s > 0:
            raise ValueError(f"blink_s must be > 0 seconds, got {blink_s!r}")
        self._blink_s = float(blink_s)
        self._state: str | None = None
        self._stop_lock = threading.Lock()
        self._stop_was_held = False
        self.on_start_pause: Callback = None
        self.on_stop: Callback = None
        self.on_shutdown: Callback = None
        order = ["ready_led", "busy_led", "error_led", "start_button", "stop_button"]
        devices: dict[str, Any] = {}
        try:
            for name, pin in zip(order[:3], (ready_pin, busy_pin, error_pin), strict=True):
                devices[name] = LED(pin, initial_value=False, pin_factory=pin_factory)
            devices["start_button"] = Button(start_pin, bounce_time=bounce_s, pin_factory=pin_factory)
            devices["stop_button"] = Button(
                stop_pin, bounce_time=bounce_s, hold_time=long_press_s, pin_factory=pin_factory
            )
        except Exception:
            for dev in devices.values():
                dev.close()
            raise
        super().__init__(_order=order, pin_factory=pin_factory, **devices)
        self.start_button.when_pressed = self._start_pressed
        self.stop_button.when_pressed = self._stop_pressed
        self.stop_button.when_held = self._stop_held
        self.stop_button.when_released = self._stop_released

    @property
    def long_press_s(self) -> float:
        """Seconds STOP must be held to fire ``on_shutdown``."""
        return float(self.stop_button.hold_time)

    @property
    def state(self) -> str | None:
        """The state last shown, or None before the first :meth:`show`."""
        return self._state

    def show(self, state: str) -> None:
        """Set the LEDs to the pattern of ``state`` (one of :data:`PANEL_STATES`)."""
        try:
            pattern = _PATTERNS[state]
        except (KeyError, TypeError):
            raise ValueError(f"unknown panel state {state!r}; use one of {', '.join(PANEL_STATES)}") from None
        for led, mode in zip((self.ready_led, self.busy_led, self.error_led), pattern, strict=True):
            if mode == "on":
                led.on()
            elif mode == "off":
                led.off()
            else:
                led.blink(on_time=self._blink_s, off_time=self._blink_s, background=True)
        self._state = state

    def lights_off(self) -> None:
        """Switch every LED off (blinking included)."""
        for led in (self.ready_led, self.busy_led, self.error_led):
            led.off()
        self._state = None

    def close(self) -> None:
        """Switch the LEDs off and free the pins."""
        if getattr(self, "_all", None):
            try:
                self.lights_off()
            finally:
                super().close()

    # -- button events (gpiozero threads) ------------------------------------------------------
    def _start_pressed(self) -> None:
        if self.on_start_pause is not None:
            self.on_start_pause()

    def _stop_pressed(self) -> None:
        with self._stop_lock:
            self._stop_was_held = False

    def _stop_held(self) -> None:
        with self._stop_lock:
            if self._stop_was_held:
                return
            self._stop_was_held = True
        if self.on_shutdown is not None:
            self.on_shutdown()

    def _stop_released(self) -> None:
        with self._stop_lock:
            held = self._stop_was_held
        if not held and self.on_stop is not None:
            self.on_stop()
