"""gpiozero's lgpio pins with the PWM duty cycle kept to the fraction (imported only where lgpio is).

gpiozero 2.0's ``LGPIOPin`` truncates a PWM duty cycle to a whole percent before it hands it to
lgpio (``int(value * 100)``; gpiozero issue 1209, open). At a servo's 50 Hz frame a percent is
0.2 ms of pulse, 18 degrees of a 180-degree servo: the chute's nine bins 20 degrees apart would
land up to 17 degrees short of their angles, some nearer the next bin than their own, on a Pi 5,
whose default backend is lgpio. lgpio itself takes the duty cycle as a float, so
:class:`FineDutyLGPIOPin` passes the fraction on; everything else is gpiozero's.
:func:`use_fine_duty` makes a factory's pins, not yet made, of that class.
"""

from __future__ import annotations

import logging
from typing import Any

import lgpio
from gpiozero.exc import PinInvalidState
from gpiozero.pins.lgpio import LGPIOFactory, LGPIOPin

log = logging.getLogger(__name__)


class FineDutyLGPIOPin(LGPIOPin):  # type: ignore[misc]
    """An lgpio pin whose PWM duty cycle is not rounded down to a whole percent."""

    _pwm: tuple[float, float] | None  # (frequency in Hz, duty cycle in percent) while PWM runs

    def _set_state(self, value: float) -> None:
        if not self._pwm:  # a plain output or input: gpiozero's own handling
            super()._set_state(value)
            return
        freq, _ = self._pwm
        self._pwm = (freq, float(value) * 100)
        try:
            lgpio.tx_pwm(self.factory._handle, self._number, *self._pwm)
        except lgpio.error:
            raise PinInvalidState(f'invalid state "{value}" for pin {self!r}') from None


def use_fine_duty(factory: Any) -> bool:
    """Make an :class:`LGPIOFactory`'s pins :class:`FineDutyLGPIOPin` (True); other factories are
    left as they are (False). Pins the factory has already made keep their class."""
    if not isinstance(factory, LGPIOFactory):
        return False
    factory.pin_class = FineDutyLGPIOPin
    log.debug("lgpio pins keep the PWM duty cycle's fraction (gpiozero rounds it to a whole percent)")
    return True
