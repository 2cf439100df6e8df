"""The chute's servo on lgpio pins (the Pi 5's backend): each bin's pulse is the one its angle asks for.

gpiozero's ``LGPIOPin`` rounds the PWM duty cycle down to a whole percent before lgpio sees it;
``edge.rig.pins`` gives lgpio factories :class:`~edge.rig.lgpio_pin.FineDutyLGPIOPin` instead. There is
no gpiochip here and lgpio offers no test double, so lgpio's calls on the chip are recorded at the
module's boundary (what a Pi would be sent); everything above them is gpiozero's and the project's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

lgpio = pytest.importorskip("lgpio", reason="lgpio has no wheel for this machine")

from gpiozero.pins import local  # noqa: E402
from gpiozero.pins.lgpio import LGPIOPin  # noqa: E402

from edge.rig.lgpio_pin import FineDutyLGPIOPin  # noqa: E402
from edge.rig.pins import pin_factory_for  # noqa: E402
from edge.rig.rig import ChuteConfig, build_chute  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
PI5_REVISION = 0xD04170


@pytest.fixture
def pwm(monkeypatch: pytest.MonkeyPatch) -> dict[int, float]:
    """A Pi 5 without a gpiochip: each pin's last PWM duty cycle (percent) as lgpio was sent it."""
    duty: dict[int, float] = {}
    modes: dict[int, int] = {}  # pin -> the line's mode flags, as gpio_get_mode reports them

    def claim(flags: int) -> Callable[..., int]:
        def call(handle: int, pin: int, *rest: int) -> int:
            modes[pin] = flags
            return 0

        return call

    def tx_pwm(handle: int, pin: int, frequency: float, cycle: float, *rest: int) -> int:
        duty[pin] = cycle
        return 0

    monkeypatch.setattr(local, "get_pi_revision", lambda: PI5_REVISION)
    monkeypatch.setattr(lgpio, "gpiochip_open", lambda chip: 1)
    monkeypatch.setattr(lgpio, "gpiochip_close", lambda handle: 0)
    monkeypatch.setattr(lgpio, "gpio_claim_output", claim(LGPIOPin.GPIO_IS_OUT))
    monkeypatch.setattr(lgpio, "gpio_claim_input", claim(0))
    monkeypatch.setattr(lgpio, "gpio_free", lambda handle, pin: 0)
    monkeypatch.setattr(lgpio, "gpio_write", lambda handle, pin, level: 0)
    monkeypatch.setattr(lgpio, "gpio_read", lambda handle, pin: 0)
    monkeypatch.setattr(lgpio, "gpio_get_mode", lambda handle, pin: modes.get(pin, 0))
    monkeypatch.setattr(lgpio, "tx_pwm", tx_pwm)
    return duty


def _shipped_chute() -> ChuteConfig:
    cfg = yaml.safe_load((REPO / "config" / "edge.yaml").read_text(encoding="utf-8"))
    return ChuteConfig.model_validate(cfg["rig"]["chute"])


def _angles_sent(pin_class: type | None, pwm: dict[int, float]) -> dict[str, float]:
    """Each shipped bin's servo angle as the pulse lgpio is sent reads back."""
    c = _shipped_chute().model_copy(update={"settle_s": 0.0})
    factory = pin_factory_for("lgpio")
    if pin_class is not None:
        factory.pin_class = pin_class
    frame = 0.02  # gpiozero's servo frame (the chute keeps its default)
    chute = build_chute(c, factory)
    sent = {}
    try:
        for name in chute.bins:
            chute.select(name)
            pulse = pwm[c.pin] / 100 * frame
            share = (pulse - c.min_pulse_width) / (c.max_pulse_width - c.min_pulse_width)
            sent[name] = c.min_angle + share * (c.max_angle - c.min_angle)
    finally:
        chute.close()
        factory.close()
    return sent


def test_an_lgpio_factory_makes_fine_duty_pins(pwm: dict[int, float]) -> None:
    factory = pin_factory_for("lgpio")
    try:
        assert factory.pin_class is FineDutyLGPIOPin
    finally:
        factory.close()


def test_every_shipped_bin_gets_the_pulse_of_its_angle(pwm: dict[int, float]) -> None:
    sent = _angles_sent(None, pwm)
    wanted = _shipped_chute().bins
    assert isinstance(wanted, dict) and set(sent) == set(wanted)
    for name, angle in wanted.items():
        assert sent[name] == pytest.approx(angle, abs=0.01), name


def test_gpiozeros_own_pin_would_miss_the_bins_by_up_to_a_bin(pwm: dict[int, float]) -> None:
    """Why the project's pin exists: with gpiozero's, a whole percent of duty is 18 degrees."""
    sent = _angles_sent(LGPIOPin, pwm)
    wanted = _shipped_chute().bins
    assert isinstance(wanted, dict)
    misses = {name: wanted[name] - sent[name] for name in wanted}
    assert max(misses.values()) > 15  # the 80-degree bin is sent to 63 degrees
    assert min(misses.values()) >= 0  # always short: the duty is rounded down
