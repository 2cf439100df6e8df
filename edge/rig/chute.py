"""The sorting chute's servo and the camera's light ring, as gpiozero composite devices."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gpiozero import PWMLED, AngularServo, CompositeDevice

from edge.errors import EdgeError


class UnknownBinError(EdgeError, KeyError):
    """The chute was asked for a bin it has no angle for."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


def _bin_table(bin_angles: Mapping[str, float] | Sequence[float]) -> dict[str, float]:
    """Normalise ``bin_angles``: a mapping name -> angle, or a list whose bins are named '0', '1', ..."""
    if isinstance(bin_angles, Mapping):
        items = [(str(k), v) for k, v in bin_angles.items()]
    elif isinstance(bin_angles, Sequence) and not isinstance(bin_angles, str | bytes):
        items = [(str(i), v) for i, v in enumerate(bin_angles)]
    else:
        raise TypeError(
            f"bin_angles must be a mapping of bin name to angle or a list of angles, got {bin_angles!r}"
        )
    if not items:
        raise ValueError("bin_angles is empty; give the chute at least one bin angle")
    table: dict[str, float] = {}
    for name, angle in items:
        if isinstance(angle, bool) or not isinstance(angle, int | float) or not math.isfinite(angle):
            raise ValueError(f"bin {name!r} has angle {angle!r}; give a finite number of degrees")
        table[name] = float(angle)
    return table


class Chute(CompositeDevice):  # type: ignore[misc]
    """A servo that points the chute at one of several bins.

    ``bin_angles`` maps bin names to servo angles in degrees (or is a list, naming bins '0', '1',
    ...). ``min_angle``/``max_angle`` are the angles reached at ``min_pulse_width``/``max_pulse_width``
    seconds. :meth:`select` waits ``settle_s`` after a move so a part isn't dropped mid-swing. The
    servo starts detached (no pulses) until the first :meth:`select`. Named device: ``servo``.
    """

    def __init__(
        self,
        pin: int,
        bin_angles: Mapping[str, float] | Sequence[float],
        *,
        min_pulse_width: float = 0.0005,
        max_pulse_width: float = 0.0025,
        min_angle: float = -90.0,
        max_angle: float = 90.0,
        frame_width: float = 0.02,
        settle_s: float = 0.3,
        pin_factory: Any = None,
    ) -> None:
        bins = _bin_table(bin_angles)
        if not min_angle < max_angle:
            raise ValueError(f"min_angle {min_angle!r} must be below max_angle {max_angle!r}")
        outside = {k: a for k, a in bins.items() if not min_angle <= a <= max_angle}
        if outside:
            raise ValueError(
                f"bin angle(s) {outside!r} are outside the servo's range {min_angle}..{max_angle} degrees; "
                f"change the bin angles or min_angle/max_angle"
            )
        if not (math.isfinite(settle_s) and settle_s >= 0):
            raise ValueError(f"settle_s must be a number of seconds >= 0, got {settle_s!r}")
        self._bins = bins
        self._settle_s = float(settle_s)
        self._current: str | None = None
        servo = AngularServo(
            pin,
            initial_angle=None,
            min_angle=min_angle,
            max_angle=max_angle,
            min_pulse_width=min_pulse_width,
            max_pulse_width=max_pulse_width,
            frame_width=frame_width,
            pin_factory=pin_factory,
        )
        super().__init__(servo=servo, pin_factory=pin_factory)

    @property
    def bins(self) -> dict[str, float]:
        """Bin name -> servo angle in degrees (a copy)."""
        return dict(self._bins)

    @property
    def current_bin(self) -> str | None:
        """The bin last selected, or None before the first :meth:`select`."""
        return self._current

    def select(self, bin_name: str | int) -> None:
        """Point the chute at ``bin_name`` (an int is taken as its string) and wait for it to settle."""
        name = str(bin_name)
        if name not in self._bins:
            raise UnknownBinError(
                f"no bin {bin_name!r} on the chute; use one of {', '.join(self._bins)} "
                f"or add it to rig.chute.bins"
            )
        angle = self._bins[name]
        moving = self.servo.angle is None or not math.isclose(self.servo.angle, angle, abs_tol=1e-9)
        self.servo.angle = angle
        self._current = name
        if moving and self._settle_s:
            time.sleep(self._settle_s)

    def detach(self) -> None:
        """Stop sending pulses so the servo stops jittering (it no longer holds its position)."""
        self.servo.detach()


class LightRing(CompositeDevice):  # type: ignore[misc]
    """The PWM-dimmed LED ring that lights the turntable for the camera.

    ``brightness`` (0..1) is what :meth:`on` uses when given none. ``frequency`` defaults to 1 kHz
    because gpiozero's 100 Hz default shows as dark bands on a rolling-shutter camera. Named device:
    ``led``.
    """

    def __init__(
        self, pin: int, brightness: float = 0.8, *, frequency: int = 1000, pin_factory: Any = None
    ) -> None:
        self._brightness = self._check(brightness)
        led = PWMLED(pin, initial_value=0, frequency=frequency, pin_factory=pin_factory)
        super().__init__(led=led, pin_factory=pin_factory)

    @staticmethod
    def _check(brightness: float) -> float:
        if (
            isinstance(brightness, bool)
            or not isinstance(brightness, int | float)
            or not 0 <= brightness <= 1
        ):
            raise ValueError(f"brightness must be between 0 and 1, got {brightness!r}")
        return float(brightness)

    @property
    def brightness(self) -> float:
        """The level :meth:`on` uses by default, 0..1."""
        return self._brightness

    @property
    def level(self) -> float:
        """The PWM level the ring is driven at now (0 when off)."""
        return float(self.led.value)

    def on(self, brightness: float | None = None) -> None:
        """Light the ring at ``brightness`` (0..1; default: the configured brightness)."""
        self.led.value = self._brightness if brightness is None else self._check(brightness)

    def off(self) -> None:
        """Switch the ring off."""
        self.led.off()
