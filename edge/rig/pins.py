"""Choosing gpiozero's pin factory for the rig, without ever falling back to mock pins by surprise.

gpiozero quietly tries lgpio, RPi.GPIO, pigpio and its pure-Python ``native`` backend in turn, and
honours ``GPIOZERO_PIN_FACTORY=mock``. On a sorting rig that is dangerous: a rig that "runs" on mock
pins moves nothing while the daemon believes it is sorting. So a simulated rig must be asked for
(``rig.pins: mock`` / ``--sim``), and a real one must get a real backend or a clear error.

Hardware is probed only when :func:`pin_factory_for` is called, never at import.
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Literal

from gpiozero import Device
from gpiozero.exc import PinFactoryFallback
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.errors import ConfigError, HardwareError, MissingDependencyError

log = logging.getLogger(__name__)

PinMode = Literal["auto", "mock", "lgpio", "rpigpio"]
PIN_MODES: tuple[str, ...] = ("auto", "mock", "lgpio", "rpigpio")

# Where the kernel names the board (Raspberry Pi OS, Ubuntu on the Pi, ...).
_MODEL_FILE = Path("/proc/device-tree/model")

_SIM_FIX = "pass --sim or set 'rig.pins: mock' in the config to run the rig on simulated pins"

# mode -> (gpiozero module, factory class, Python module it needs, package to install)
_BACKENDS: dict[str, tuple[str, str, str, str]] = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory", "lgpio", "lgpio"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory", "RPi", "RPi.GPIO"),
}


class PinFallbackWarning(RuntimeWarning):
    """gpiozero had to fall back from its preferred GPIO backend to another real one."""


def pi_model(model_file: Path | None = None) -> str | None:
    """The Raspberry Pi model this runs on (e.g. ``'Raspberry Pi 5 Model B Rev 1.0'``), or None."""
    path = _MODEL_FILE if model_file is None else model_file
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    model = raw.replace(b"\x00", b"").decode("utf-8", "replace").strip()
    return model if "raspberry pi" in model.lower() else None


def pin_factory_for(mode: PinMode) -> Any:
    """Return a gpiozero pin factory for ``rig.pins`` = ``mode``.

    - ``mock``: a fresh :class:`~gpiozero.pins.mock.MockFactory` whose pins support PWM.
    - ``lgpio`` / ``rpigpio``: exactly that backend, or :class:`MissingDependencyError` /
      :class:`HardwareError`; never another one.
    - ``auto``: on a Raspberry Pi, gpiozero's own choice (``Device.pin_factory``), refusing mock pins
      and the PWM-less ``native`` backend, and warning when gpiozero fell back from its first choice;
      elsewhere :class:`HardwareError` telling the user to simulate the rig instead.

    An lgpio factory (the Pi 5's) makes pins that keep the PWM duty cycle's fraction
    (:mod:`edge.rig.lgpio_pin`).
    """
    if mode == "mock":
        return MockFactory(pin_class=MockPWMPin)
    if mode == "auto":
        return _fine_pwm(_auto_factory())
    if mode in _BACKENDS:
        return _fine_pwm(_explicit_factory(mode))
    raise ConfigError(f"rig.pins {mode!r} is not a pin backend; use one of {', '.join(PIN_MODES)}")


def _fine_pwm(factory: Any) -> Any:
    """lgpio's pins with the PWM duty cycle's fraction kept (:mod:`edge.rig.lgpio_pin`: gpiozero rounds
    it to a whole percent, 18 degrees of the chute's servo); imported only for an lgpio factory."""
    if type(factory).__module__ == "gpiozero.pins.lgpio":
        from edge.rig.lgpio_pin import use_fine_duty

        use_fine_duty(factory)
    return factory


def _explicit_factory(mode: str) -> Any:
    module_name, class_name, needs, package = _BACKENDS[mode]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] == needs:
            raise MissingDependencyError(package, "pi", f"the {mode!r} GPIO backend") from exc
        raise
    try:
        return getattr(module, class_name)()
    except Exception as exc:  # each backend raises its own types (lgpio.error, RuntimeError, ...)
        model = pi_model()
        fix = (
            "check that this user may open /dev/gpiochip* (group 'gpio') or try 'rig.pins: auto'"
            if model
            else f"this machine is not a Raspberry Pi; {_SIM_FIX}"
        )
        raise HardwareError(f"the {mode!r} GPIO backend failed to start ({exc}); {fix}") from exc


def _auto_factory() -> Any:
    model = pi_model()
    if model is None:
        raise HardwareError(
            f"rig.pins is 'auto' but this machine is not a Raspberry Pi (no {str(_MODEL_FILE)!r} naming "
            f"one), so there are no GPIO pins to drive; {_SIM_FIX}"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            Device.ensure_pin_factory()
        except Exception as exc:
            tried = "; ".join(str(w.message) for w in caught) or "no backend named any reason"
            raise HardwareError(
                f"no GPIO backend works on this {model} ({exc}; {tried}); install the Pi extra "
                f"(pip install 'lego-edge[pi]') and check access to /dev/gpiochip*"
            ) from exc
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, PinFactoryFallback)]
    for w in caught:  # pass on anything unrelated we swallowed
        if not issubclass(w.category, PinFactoryFallback):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    factory = Device.pin_factory
    name = type(factory).__name__
    if isinstance(factory, MockFactory):
        env = os.environ.get("GPIOZERO_PIN_FACTORY")
        cause = f"GPIOZERO_PIN_FACTORY={env!r}" if env else "something set Device.pin_factory to mock pins"
        raise HardwareError(
            f"rig.pins is 'auto' on a real {model}, but gpiozero's pin factory is {name} ({cause}); "
            f"the rig would move nothing. Unset that, or set 'rig.pins: mock' if you mean to simulate"
        )
    if name == "NativeFactory":
        raise HardwareError(
            f"gpiozero fell back to its 'native' backend on this {model} ({'; '.join(fallbacks)}); it has "
            f"no PWM for the chute servo and light. Install lgpio (pip install 'lego-edge[pi]')"
        )
    if fallbacks:
        msg = f"gpiozero is using {name} on this {model} after falling back: {'; '.join(fallbacks)}"
        log.warning("%s", msg)
        warnings.warn(msg, PinFallbackWarning, stacklevel=2)
    return factory
