"""The whole rig: its config (the ``rig:`` section) and the composite device built from it.

A :class:`Rig` is built from a turntable, a chute, a light ring and a panel, the way gpiozero's
``Robot`` is built from two ``Motor``\\ s. Pin numbers are BCM GPIO numbers (0..27); the config
rejects a pin used twice, naming both uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from gpiozero import CompositeDevice
from pydantic import Field, model_validator

from edge.config import StrictModel
from edge.rig.chute import Chute, LightRing
from edge.rig.panel import Panel
from edge.rig.pins import pin_factory_for
from edge.rig.turntable import StepDirTurntable, Turntable, ULN2003Turntable

log = logging.getLogger(__name__)

BcmPin = Annotated[int, Field(ge=0, le=27, description="a BCM GPIO number, 0..27")]


class ULN2003Config(StrictModel):
    """A 28BYJ-48 stepper on a ULN2003 board, half-stepped."""

    driver: Literal["uln2003"] = Field(
        default="uln2003", description="turntable driver: 'uln2003' or 'stepdir'"
    )
    pins: tuple[BcmPin, BcmPin, BcmPin, BcmPin] = Field(
        default=(17, 27, 22, 23), description="BCM pins wired to IN1, IN2, IN3, IN4 (4 pins, each 0..27)"
    )
    steps_per_turn: int = Field(
        default=4096,
        ge=8,
        le=1_000_000,
        description="half steps per platter turn, gearing included, 8..1000000",
    )
    step_delay: float = Field(
        default=0.0012,
        ge=0.0,
        le=1.0,
        description="seconds between half steps, 0..1 (28BYJ-48: 0.001 or more)",
    )
    hold: bool = Field(default=False, description="keep the coils powered between moves (warms the motor)")
    forward_only: bool = Field(default=False, description="always turn forward to a target angle, never back")


class StepDirConfig(StrictModel):
    """A stepper on a STEP/DIR driver (A4988, DRV8825, TMC...)."""

    driver: Literal["stepdir"] = Field(description="turntable driver: 'uln2003' or 'stepdir'")
    step_pin: BcmPin = Field(description="BCM pin wired to STEP, 0..27")
    dir_pin: BcmPin = Field(description="BCM pin wired to DIR, 0..27")
    enable_pin: BcmPin | None = Field(
        default=None, description="BCM pin wired to EN, 0..27, or null if not wired"
    )
    enable_active_high: bool = Field(
        default=False, description="EN enables the driver when high (A4988: false)"
    )
    invert_dir: bool = Field(default=False, description="swap which DIR level turns the platter forward")
    steps_per_turn: int = Field(
        default=3200,
        ge=8,
        le=1_000_000,
        description="(micro)steps per platter turn, gearing included, 8..1000000",
    )
    step_delay: float = Field(default=0.0005, ge=0.0, le=1.0, description="seconds between steps, 0..1")
    dir_setup_s: float = Field(
        default=0.0001, ge=0.0, le=0.1, description="seconds DIR is held before STEP, 0..0.1"
    )
    hold: bool = Field(
        default=False, description="keep the driver enabled between moves (needs enable_pin to matter)"
    )
    forward_only: bool = Field(default=False, description="always turn forward to a target angle, never back")


TurntableConfig = Annotated[ULN2003Config | StepDirConfig, Field(discriminator="driver")]


class ChuteConfig(StrictModel):
    """The chute's servo and its bins."""

    pin: BcmPin = Field(
        default=18, description="BCM pin of the servo signal, 0..27 (lgpio times PWM in software on any pin)"
    )
    bins: dict[str, float] | list[float] = Field(
        default_factory=lambda: [-60.0, -30.0, 0.0, 30.0, 60.0],
        description="bin name -> servo angle in degrees, or a list of angles (bins named '0', '1', ...)",
    )
    min_angle: float = Field(
        default=-90.0, ge=-360.0, le=360.0, description="servo angle at min_pulse_width, -360..360"
    )
    max_angle: float = Field(
        default=90.0, ge=-360.0, le=360.0, description="servo angle at max_pulse_width, -360..360"
    )
    min_pulse_width: float = Field(
        default=0.0005, ge=0.0001, le=0.005, description="shortest pulse, seconds, 0.0001..0.005"
    )
    max_pulse_width: float = Field(
        default=0.0025, ge=0.0001, le=0.005, description="longest pulse, seconds, 0.0001..0.005"
    )
    settle_s: float = Field(default=0.3, ge=0.0, le=5.0, description="seconds to wait after a move, 0..5")

    @model_validator(mode="after")
    def _check_ranges(self) -> ChuteConfig:
        if self.min_pulse_width >= self.max_pulse_width:
            lo, hi = self.min_pulse_width, self.max_pulse_width
            raise ValueError(f"min_pulse_width {lo!r} must be below max_pulse_width {hi!r}")
        if self.min_angle >= self.max_angle:
            raise ValueError(f"min_angle {self.min_angle!r} must be below max_angle {self.max_angle!r}")
        named = self.bins.items() if isinstance(self.bins, dict) else enumerate(self.bins)
        if not self.bins:
            raise ValueError("bins is empty; give at least one bin angle")
        outside = {str(k): a for k, a in named if not self.min_angle <= a <= self.max_angle}
        if outside:
            span = f"{self.min_angle}..{self.max_angle}"
            raise ValueError(f"bin angle(s) {outside!r} are outside min_angle..max_angle ({span})")
        return self


class LightConfig(StrictModel):
    """The LED ring lighting the turntable."""

    pin: BcmPin = Field(default=13, description="BCM pin driving the LED ring's MOSFET, 0..27")
    brightness: float = Field(default=0.8, ge=0.0, le=1.0, description="PWM level when lit, 0..1")
    frequency: int = Field(default=1000, ge=10, le=10000, description="PWM frequency in Hz, 10..10000")


class PanelConfig(StrictModel):
    """The front panel's LEDs and buttons."""

    ready_pin: BcmPin = Field(default=5, description="BCM pin of the green READY LED, 0..27")
    busy_pin: BcmPin = Field(default=6, description="BCM pin of the yellow BUSY LED, 0..27")
    error_pin: BcmPin = Field(default=26, description="BCM pin of the red ERROR LED, 0..27")
    start_pin: BcmPin = Field(default=16, description="BCM pin of the START/PAUSE button (to ground), 0..27")
    stop_pin: BcmPin = Field(default=20, description="BCM pin of the STOP button (to ground), 0..27")
    long_press_s: float = Field(
        default=3.0, ge=0.1, le=30.0, description="seconds STOP is held to shut down, 0.1..30"
    )
    blink_s: float = Field(
        default=0.5, ge=0.02, le=5.0, description="on and off time of a blinking LED, 0.02..5"
    )
    bounce_s: float = Field(
        default=0.0, ge=0.0, le=1.0, description="button debounce in seconds, 0..1 (0: none)"
    )


class RigConfig(StrictModel):
    """The ``rig:`` section: pin backend and the four devices."""

    pins: Literal["auto", "mock", "lgpio", "rpigpio"] = Field(
        default="auto", description="GPIO backend: auto, mock (simulated rig), lgpio or rpigpio"
    )
    turntable: TurntableConfig = Field(
        default_factory=ULN2003Config, description="the turntable motor (driver: uln2003 or stepdir)"
    )
    chute: ChuteConfig = Field(default_factory=ChuteConfig, description="the chute servo and its bins")
    light: LightConfig = Field(default_factory=LightConfig, description="the LED ring")
    panel: PanelConfig = Field(default_factory=PanelConfig, description="the panel LEDs and buttons")

    def pin_uses(self) -> list[tuple[int, str]]:
        """Every (BCM pin, use) of the rig, e.g. ``(18, 'chute.pin')``."""
        uses: list[tuple[int, str]] = []
        t = self.turntable
        if isinstance(t, ULN2003Config):
            uses += [(p, f"turntable.pins[{i}]") for i, p in enumerate(t.pins)]
        else:
            uses += [(t.step_pin, "turntable.step_pin"), (t.dir_pin, "turntable.dir_pin")]
            if t.enable_pin is not None:
                uses.append((t.enable_pin, "turntable.enable_pin"))
        uses += [(self.chute.pin, "chute.pin"), (self.light.pin, "light.pin")]
        p = self.panel
        for name in ("ready_pin", "busy_pin", "error_pin", "start_pin", "stop_pin"):
            uses.append((getattr(p, name), f"panel.{name}"))
        return uses

    @model_validator(mode="after")
    def _check_pins_unique(self) -> RigConfig:
        seen: dict[int, str] = {}
        clashes = []
        for pin, use in self.pin_uses():
            if pin in seen:
                clashes.append(f"BCM pin {pin} is used by both {seen[pin]} and {use}")
            else:
                seen[pin] = use
        if clashes:
            raise ValueError("; ".join(clashes) + "; give each use its own pin")
        return self


@dataclass(frozen=True)
class TurntableGeometry:
    """The turntable's steps per turn and zero offset, and where they came from (for the log)."""

    steps_per_turn: int
    zero_offset_steps: int
    source: str


def turntable_geometry(cfg: ULN2003Config | StepDirConfig, calibration: Any = None) -> TurntableGeometry:
    """Steps per turn and zero offset: the calibration's measured ``turntable`` section when it has
    one (``edge calibrate turntable``), else the config's ``steps_per_turn`` and a zero offset of 0.

    ``calibration``: a calibration file's path (a missing file counts as none yet), parsed data or a
    :class:`~edge.calibration_file.CalibrationFile`; a file that is there but invalid is an error.
    """
    fallback = f"the config (rig.turntable.steps_per_turn: {cfg.steps_per_turn})"
    if calibration is None:
        return TurntableGeometry(cfg.steps_per_turn, 0, f"{fallback}; no calibration file configured")
    if isinstance(calibration, str | Path) and not Path(calibration).exists():
        return TurntableGeometry(
            cfg.steps_per_turn, 0, f"{fallback}; calibration file {str(calibration)!r} not written yet"
        )
    from edge.calibration_file import load_calibration

    cal, source, _ = load_calibration(calibration)
    measured = cal.turntable
    if measured is None:
        return TurntableGeometry(
            cfg.steps_per_turn,
            0,
            f"{fallback}; {source} has no turntable section (run `edge calibrate turntable`)",
        )
    when = f"measured {measured.timestamp:%Y-%m-%d %H:%M}" if measured.timestamp else "measured"
    return TurntableGeometry(
        measured.steps_per_turn,
        measured.zero_offset_steps,
        f"{source} ({when}; the config's {cfg.steps_per_turn} is the fallback)",
    )


def _build_turntable(
    cfg: ULN2003Config | StepDirConfig, pin_factory: Any, geometry: TurntableGeometry
) -> Turntable:
    if isinstance(cfg, ULN2003Config):
        return ULN2003Turntable(
            cfg.pins,
            steps_per_turn=geometry.steps_per_turn,
            step_delay=cfg.step_delay,
            hold=cfg.hold,
            forward_only=cfg.forward_only,
            zero_offset_steps=geometry.zero_offset_steps,
            pin_factory=pin_factory,
        )
    return StepDirTurntable(
        cfg.step_pin,
        cfg.dir_pin,
        cfg.enable_pin,
        steps_per_turn=geometry.steps_per_turn,
        zero_offset_steps=geometry.zero_offset_steps,
        step_delay=cfg.step_delay,
        dir_setup_s=cfg.dir_setup_s,
        enable_active_high=cfg.enable_active_high,
        invert_dir=cfg.invert_dir,
        hold=cfg.hold,
        forward_only=cfg.forward_only,
        pin_factory=pin_factory,
    )


def build_chute(cfg: ChuteConfig, pin_factory: Any) -> Chute:
    """The chute's servo as ``rig.chute`` configures it."""
    return Chute(
        cfg.pin,
        cfg.bins,
        min_pulse_width=cfg.min_pulse_width,
        max_pulse_width=cfg.max_pulse_width,
        min_angle=cfg.min_angle,
        max_angle=cfg.max_angle,
        settle_s=cfg.settle_s,
        pin_factory=pin_factory,
    )


class Rig(CompositeDevice):  # type: ignore[misc]
    """The sorting rig: ``turntable``, ``chute``, ``light`` and ``panel`` as one gpiozero device.

    Use as a context manager (``with Rig.from_config(cfg) as rig:``); :meth:`close` first puts
    everything in its safe state (motor released, light off, servo detached, LEDs off).
    """

    def __init__(
        self, turntable: Turntable, chute: Chute, light: LightRing, panel: Panel, *, pin_factory: Any = None
    ) -> None:
        super().__init__(
            turntable=turntable,
            chute=chute,
            light=light,
            panel=panel,
            _order=["turntable", "chute", "light", "panel"],
            pin_factory=pin_factory,
        )

    @classmethod
    def from_config(cls, cfg: RigConfig, pin_factory: Any = None, *, calibration: Any = None) -> Rig:
        """Build the rig from ``cfg``; ``pin_factory`` defaults to ``pin_factory_for(cfg.pins)``.

        ``calibration`` (the config's calibration file): the turntable takes its measured steps per
        turn and zero offset from it when it has them (:func:`turntable_geometry`; logged either way).
        """
        factory = pin_factory_for(cfg.pins) if pin_factory is None else pin_factory
        geometry = turntable_geometry(cfg.turntable, calibration)
        log.info(
            "turntable: %d steps per turn, zero offset %d steps, from %s",
            geometry.steps_per_turn,
            geometry.zero_offset_steps,
            geometry.source,
        )
        built: list[Any] = []
        try:
            built.append(_build_turntable(cfg.turntable, factory, geometry))
            built.append(build_chute(cfg.chute, factory))
            lc = cfg.light
            built.append(LightRing(lc.pin, lc.brightness, frequency=lc.frequency, pin_factory=factory))
            p = cfg.panel
            built.append(
                Panel(
                    p.ready_pin,
                    p.busy_pin,
                    p.error_pin,
                    p.start_pin,
                    p.stop_pin,
                    long_press_s=p.long_press_s,
                    blink_s=p.blink_s,
                    bounce_s=p.bounce_s or None,
                    pin_factory=factory,
                )
            )
            return cls(*built, pin_factory=factory)
        except Exception:
            for dev in reversed(built):
                dev.close()
            raise

    def safe_state(self) -> None:
        """Stop and release the motor, switch the light and LEDs off, detach the servo (devices stay open)."""
        self.turntable.stop()  # a move in another thread ends after its step, freeing the motor's lock
        self.turntable.release()
        self.light.off()
        self.chute.detach()
        self.panel.lights_off()

    def close(self) -> None:
        """Put the rig in its safe state, then free every pin."""
        if getattr(self, "_all", None):
            try:
                self.safe_state()
            finally:
                super().close()
