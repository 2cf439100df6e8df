"""The turntable's stepper motor, as gpiozero composite devices.

Two drivers share one API (:class:`Turntable`):

- :class:`ULN2003Turntable`: a 28BYJ-48 on a ULN2003 board, driven in half steps on four pins
  (4096 half steps a turn, gearbox included).
- :class:`StepDirTurntable`: any STEP/DIR driver (A4988, DRV8825, TMC2208...), one pulse per
  (micro)step.

Position is tracked as an integer step count and commanded angles as exact fractions, so any number
of moves lands on the same steps as one big move (no float drift). A move blocks the calling thread;
:meth:`Turntable.stop` from another thread ends it after the current step.
:meth:`Turntable.start_rotate_by` runs a move in a background thread instead (the daemon recognises
a view while the turntable turns to the next one) and returns a :class:`TurntableMove` to wait for
or cancel.
"""

from __future__ import annotations

import math
import operator
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from gpiozero import CompositeDevice, DigitalOutputDevice

# The 28BYJ-48 half-step sequence on IN1..IN4: one coil, two coils, one coil, ...; each state
# differs from the next in exactly one pin.
HALF_STEP_SEQUENCE: tuple[tuple[int, int, int, int], ...] = (
    (1, 0, 0, 0),
    (1, 1, 0, 0),
    (0, 1, 0, 0),
    (0, 1, 1, 0),
    (0, 0, 1, 0),
    (0, 0, 1, 1),
    (0, 0, 0, 1),
    (1, 0, 0, 1),
)

_HALF = Fraction(1, 2)


def _pause(seconds: float) -> None:
    if seconds > 0:  # sleep(0) still costs a system call per step
        time.sleep(seconds)


def _check_motion(steps_per_turn: int, step_delay: float) -> None:
    if isinstance(steps_per_turn, bool) or not isinstance(steps_per_turn, int) or steps_per_turn < 1:
        raise ValueError(f"steps_per_turn must be a positive whole number, got {steps_per_turn!r}")
    if not (isinstance(step_delay, int | float) and math.isfinite(step_delay) and step_delay >= 0):
        raise ValueError(f"step_delay must be a number of seconds >= 0, got {step_delay!r}")


def _degrees(value: float | Fraction, what: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float | Fraction) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number of degrees, got {value!r}")
    return Fraction(value)


class Turntable(CompositeDevice):  # type: ignore[misc]
    """Base of the turntable drivers: step counting, angles, homing; subclasses drive the pins.

    ``position`` counts steps from home (signed, unbounded); ``angle`` is that position in degrees
    modulo 360. ``hold=False`` releases the motor after every move so it doesn't heat up.
    ``forward_only=True`` makes :meth:`step_to` always turn forward (positive steps).
    ``zero_offset_steps``: where home (angle 0) lies, in steps forward from where the motor stands at
    construction (the calibration file's ``turntable.zero_offset_steps``); 0 = home is here.
    """

    def __init__(
        self,
        *args: Any,
        steps_per_turn: int,
        step_delay: float,
        hold: bool = False,
        forward_only: bool = False,
        zero_offset_steps: int = 0,
        pin_factory: Any = None,
        **kwargs: Any,
    ) -> None:
        _check_motion(steps_per_turn, step_delay)
        zero = operator.index(zero_offset_steps)
        self._steps_per_turn = steps_per_turn
        self._step_delay = float(step_delay)
        self._hold = bool(hold)
        self._forward_only = bool(forward_only)
        self._steps = 0  # steps done since construction (the driver's phase follows it)
        self._zero = zero  # value of _steps at home
        self._target = Fraction(-zero * 360, steps_per_turn)  # commanded angle from home, degrees, exact
        self._energized = False
        self._lock = threading.RLock()
        self._stop = threading.Event()
        super().__init__(*args, pin_factory=pin_factory, **kwargs)

    # -- state -------------------------------------------------------------------------------
    @property
    def steps_per_turn(self) -> int:
        """Steps (half steps, microsteps) in one turn of the platter."""
        return self._steps_per_turn

    @property
    def step_delay(self) -> float:
        """Seconds between consecutive steps (the motor's speed)."""
        return self._step_delay

    @property
    def position(self) -> int:
        """Steps from home, signed and unbounded (a full forward turn adds ``steps_per_turn``)."""
        return self._steps - self._zero

    @property
    def angle(self) -> float:
        """The platter's angle from home in degrees, 0 <= angle < 360, as the motor stands."""
        return (self.position % self._steps_per_turn) * 360.0 / self._steps_per_turn

    @property
    def energized(self) -> bool:
        """Whether the driver is currently powering the coils."""
        return self._energized

    # -- moves -------------------------------------------------------------------------------
    def step(self, n: int) -> int:
        """Move ``n`` steps (negative: backwards); return the steps actually done.

        Fewer than ``|n|`` are done only when :meth:`stop` interrupts the move.
        """
        n = operator.index(n)
        done = self._move(n)
        with self._lock:
            self._target = Fraction(self.position * 360, self._steps_per_turn)
        return done

    def rotate_by(self, angle_deg: float | Fraction) -> int:
        """Turn by ``angle_deg`` degrees (negative: backwards); return the steps done.

        The target is kept as an exact angle, so 1000 moves of 0.36 degrees end one turn on.
        """
        return self._rotate_by(_degrees(angle_deg, "rotate_by angle"), None)

    def start_rotate_by(self, angle_deg: float | Fraction) -> TurntableMove:
        """Start :meth:`rotate_by` in a background thread and return the move at once.

        The calling thread goes on (e.g. recognising the view just taken) while the platter turns;
        :meth:`TurntableMove.wait` joins the move (re-raising its error) and
        :meth:`TurntableMove.cancel` ends it after the current step. Moves never run at the same
        time: a second one waits for the first (the motor's lock).
        """
        delta = _degrees(angle_deg, "rotate_by angle")
        self._check_open()
        return TurntableMove(lambda cancel: self._rotate_by(delta, cancel))

    def _rotate_by(self, delta: Fraction, cancel: threading.Event | None) -> int:
        with self._lock:
            self._target += delta
            goal = math.floor(self._target * self._steps_per_turn / 360 + _HALF)
            wanted = goal - self.position
            done = self._move(wanted, cancel)
            if done != wanted:  # stopped early: aim at where the platter actually is
                self._target = Fraction(self.position * 360, self._steps_per_turn)
            return done

    def step_to(self, angle_deg: float, forward_only: bool | None = None) -> int:
        """Turn to the absolute angle ``angle_deg`` (any value; taken modulo 360).

        Takes the shortest way unless ``forward_only`` (default: the constructor's flag) is true.
        Returns the steps done (signed).
        """
        goal = _degrees(angle_deg, "step_to angle") % 360
        forward = self._forward_only if forward_only is None else bool(forward_only)
        with self._lock:
            delta = (goal - self._target % 360) % 360
            if not forward and delta > 180:
                delta -= 360
            return self.rotate_by(delta)

    def home(self) -> None:
        """Declare the current position to be angle 0."""
        with self._lock:
            self._zero = self._steps
            self._target = Fraction(0)

    def stop(self) -> None:
        """Ask a move running in another thread to end after its current step."""
        self._stop.set()

    def release(self) -> None:
        """De-energize the motor (coils low / driver disabled) so it doesn't heat up."""
        with self._lock:
            self._release()
            self._energized = False

    def close(self) -> None:
        """Release the motor and free its pins."""
        if getattr(self, "_all", None):
            try:
                self.release()
            finally:
                super().close()

    # -- driver interface ----------------------------------------------------------------------
    def _move(self, n: int, cancel: threading.Event | None = None) -> int:
        """``n`` steps; ends early on :meth:`stop` or when ``cancel`` (this move's own event) is set."""
        if n == 0:
            return 0
        self._check_open()
        with self._lock:
            self._stop.clear()
            sign = 1 if n > 0 else -1
            done = 0
            try:
                if not self._energized:
                    self._energize()
                    self._energized = True
                self._begin(sign)
                for _ in range(abs(n)):
                    if self._stop.is_set() or (cancel is not None and cancel.is_set()):
                        break
                    self._one_step(sign)
                    self._steps += sign
                    done += sign
            finally:
                if not self._hold:
                    self.release()
            return done

    def _energize(self) -> None:
        """Power the motor at its current position (before the first step after a release)."""
        raise NotImplementedError

    def _begin(self, sign: int) -> None:
        """Prepare a move in direction ``sign`` (+1 / -1)."""

    def _one_step(self, sign: int) -> None:
        """Do one step in direction ``sign`` and wait the step delay."""
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError


class TurntableMove:
    """A turntable move running in a background thread (:meth:`Turntable.start_rotate_by`).

    It has its own cancel event, so a :meth:`cancel` that comes before the thread has even started
    stepping still ends the move (:meth:`Turntable.stop` is cleared by each new move).
    """

    def __init__(self, move: Callable[[threading.Event], int]) -> None:
        self._cancel = threading.Event()
        self._steps: int | None = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._steps = move(self._cancel)
            except BaseException as exc:  # handed to the thread that waits for the move
                self._error = exc

        self._thread = threading.Thread(target=run, name="turntable-move", daemon=True)
        self._thread.start()

    @property
    def done(self) -> bool:
        """Whether the move has ended (finished, cancelled or failed)."""
        return not self._thread.is_alive()

    def cancel(self) -> None:
        """Ask the move to end after its current step (or not to start stepping at all)."""
        self._cancel.set()

    def wait(self) -> int:
        """Block until the move has ended; return the steps it did, or raise the error it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._steps is not None
        return self._steps


class ULN2003Turntable(Turntable):
    """A 28BYJ-48 stepper on a ULN2003 board, half-stepped on BCM pins ``pins=(in1, in2, in3, in4)``.

    The four coil outputs are this composite's devices (``turntable[0]`` .. ``turntable[3]``).
    """

    def __init__(
        self,
        pins: tuple[int, int, int, int] | list[int],
        *,
        steps_per_turn: int = 4096,
        step_delay: float = 0.0012,
        hold: bool = False,
        forward_only: bool = False,
        zero_offset_steps: int = 0,
        pin_factory: Any = None,
    ) -> None:
        pin_list = list(pins)
        if len(pin_list) != 4:
            raise ValueError(f"a ULN2003 needs 4 pins (IN1..IN4), got {pins!r}")
        coils: list[Any] = []
        try:
            for pin in pin_list:
                coils.append(DigitalOutputDevice(pin, initial_value=False, pin_factory=pin_factory))
        except Exception:
            for dev in coils:
                dev.close()
            raise
        self._pattern: tuple[int, int, int, int] = (0, 0, 0, 0)
        super().__init__(
            *coils,
            steps_per_turn=steps_per_turn,
            step_delay=step_delay,
            hold=hold,
            forward_only=forward_only,
            zero_offset_steps=zero_offset_steps,
            pin_factory=pin_factory,
        )

    @property
    def coils(self) -> tuple[Any, ...]:
        """The IN1..IN4 outputs."""
        return tuple(self)

    def _write(self, pattern: tuple[int, int, int, int]) -> None:
        # Only the coils that change are written: one pin per half step.
        for coil, old, new in zip(self, self._pattern, pattern, strict=True):
            if old != new:
                coil.value = new
        self._pattern = pattern

    def _energize(self) -> None:
        self._write(HALF_STEP_SEQUENCE[self._steps % 8])
        _pause(self._step_delay)  # let the rotor settle into that phase

    def _one_step(self, sign: int) -> None:
        self._write(HALF_STEP_SEQUENCE[(self._steps + sign) % 8])
        _pause(self._step_delay)

    def _release(self) -> None:
        self._write((0, 0, 0, 0))


class StepDirTurntable(Turntable):
    """A stepper on a STEP/DIR driver (A4988, DRV8825, TMC...).

    DIR is set (and held ``dir_setup_s``) before the first STEP pulse; each step is a high pulse of
    half the step delay. ``enable_pin`` (optional, active low unless ``enable_active_high``) lets
    :meth:`release` cut the coil current; without it the driver always holds. ``invert_dir`` swaps
    which DIR level is forward. Named devices: ``step_device``, ``dir_device``, ``enable_device``.
    """

    def __init__(
        self,
        step_pin: int,
        dir_pin: int,
        enable_pin: int | None = None,
        *,
        steps_per_turn: int = 3200,
        step_delay: float = 0.0005,
        dir_setup_s: float = 0.0001,
        enable_active_high: bool = False,
        invert_dir: bool = False,
        hold: bool = False,
        forward_only: bool = False,
        zero_offset_steps: int = 0,
        pin_factory: Any = None,
    ) -> None:
        if not (math.isfinite(dir_setup_s) and dir_setup_s >= 0):
            raise ValueError(f"dir_setup_s must be a number of seconds >= 0, got {dir_setup_s!r}")
        self._dir_setup_s = float(dir_setup_s)
        self._invert_dir = bool(invert_dir)
        devices: dict[str, Any] = {}
        try:
            devices["step_device"] = DigitalOutputDevice(
                step_pin, initial_value=False, pin_factory=pin_factory
            )
            devices["dir_device"] = DigitalOutputDevice(dir_pin, initial_value=False, pin_factory=pin_factory)
            if enable_pin is not None:
                devices["enable_device"] = DigitalOutputDevice(
                    enable_pin, active_high=enable_active_high, initial_value=False, pin_factory=pin_factory
                )
        except Exception:
            for dev in devices.values():
                dev.close()
            raise
        super().__init__(
            steps_per_turn=steps_per_turn,
            step_delay=step_delay,
            hold=hold,
            forward_only=forward_only,
            zero_offset_steps=zero_offset_steps,
            pin_factory=pin_factory,
            _order=list(devices),
            **devices,
        )

    @property
    def can_release(self) -> bool:
        """Whether :meth:`release` can cut the coil current (an enable pin is wired)."""
        return "enable_device" in self._named

    def _energize(self) -> None:
        if self.can_release:
            self.enable_device.on()
            _pause(self._step_delay)  # drivers need a moment after enable before stepping

    def _begin(self, sign: int) -> None:
        forward_level = not self._invert_dir
        level = forward_level if sign > 0 else not forward_level
        if bool(self.dir_device.value) != level:
            self.dir_device.value = level
        _pause(self._dir_setup_s)

    def _one_step(self, sign: int) -> None:
        half = self._step_delay / 2
        self.step_device.on()
        _pause(half)
        self.step_device.off()
        _pause(half)

    def _release(self) -> None:
        self.step_device.off()
        if self.can_release:
            self.enable_device.off()
