"""What to wire to which pin of the Pi 5's 40-pin header, from the config's ``rig`` section.

``edge wiring`` prints it: a row per pin the config uses (its BCM number, the header pin it is on,
what to connect to it), the header drawn with those uses, and notes on pins with a second job
(the HAT's ID EEPROM, the serial console, the I2C pull-ups). The header's layout and each pin's
fixed pull come from gpiozero's board data for the Pi 5, not from a table kept here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from gpiozero.pins.pi import PiBoardInfo

from edge.rig.rig import RigConfig, ULN2003Config

#: gpiozero's board revision code of a Raspberry Pi 5 Model B (its header matches every Pi since the B+).
PI5_REVISION = 0xD04170
HEADER = "J8"

#: Pins with a second job on a Pi that the wiring should know about (BCM number -> what).
SECOND_JOBS: dict[int, str] = {
    0: "ID_SD of a HAT's ID EEPROM: leave free if a HAT is fitted",
    1: "ID_SC of a HAT's ID EEPROM: leave free if a HAT is fitted",
    14: "UART TX: the serial console drives it at boot if the console is on",
    15: "UART RX: the serial console reads it if the console is on",
}


@dataclass(frozen=True)
class Wire:
    """One pin the config uses: its BCM number, header pin, config key, what to connect, notes."""

    bcm: int
    header_pin: int
    use: str
    connect: str
    notes: tuple[str, ...] = ()


@cache
def _board() -> Any:
    """gpiozero's board data of the Pi 5 (built once)."""
    return PiBoardInfo.from_revision(PI5_REVISION)


def _connections(rig: RigConfig) -> list[tuple[int, str, str]]:
    """(BCM pin, config key, what to connect) for every pin the rig uses, in ``pin_uses`` order."""
    what: dict[str, str] = {}
    t = rig.turntable
    if isinstance(t, ULN2003Config):
        for i in range(4):
            what[f"turntable.pins[{i}]"] = f"ULN2003 board IN{i + 1}"
    else:
        what["turntable.step_pin"] = "stepper driver STEP"
        what["turntable.dir_pin"] = "stepper driver DIR"
        level = "high" if t.enable_active_high else "low"
        what["turntable.enable_pin"] = f"stepper driver EN (enables it when {level})"
    what["chute.pin"] = "chute servo's signal wire (orange or yellow)"
    what["light.pin"] = "gate of the LED ring's logic-level N-MOSFET (10 kohm gate to GND)"
    what["panel.ready_pin"] = "green READY LED's anode, through 330 ohm; cathode to GND"
    what["panel.busy_pin"] = "yellow BUSY LED's anode, through 330 ohm; cathode to GND"
    what["panel.error_pin"] = "red ERROR LED's anode, through 330 ohm; cathode to GND"
    what["panel.start_pin"] = "START/PAUSE push button; its other leg to GND (internal pull-up)"
    what["panel.stop_pin"] = "STOP push button; its other leg to GND (internal pull-up)"
    return [(pin, use, what[use]) for pin, use in rig.pin_uses()]


def wiring(rig: RigConfig) -> list[Wire]:
    """A :class:`Wire` per pin ``rig`` uses, with the notes its header pin calls for."""
    board = _board()
    wires = []
    for bcm, use, connect in _connections(rig):
        header, info = next(iter(board.find_pin(f"GPIO{bcm}")))
        assert header.name == HEADER  # every BCM 0..27 is on the 40-pin header
        number = info.number
        notes = []
        if bcm in SECOND_JOBS:
            notes.append(SECOND_JOBS[bcm])
        if info.pull == "up":
            if use in ("panel.start_pin", "panel.stop_pin"):
                notes.append("has a fixed 1.8 kohm pull-up to 3.3 V (I2C): fine for a button to GND")
            else:
                notes.append(
                    "has a fixed 1.8 kohm pull-up to 3.3 V (I2C): it reads high until the daemon drives it"
                )
        wires.append(Wire(bcm, number, use, connect, tuple(notes)))
    return wires


def power_pins() -> dict[str, list[int]]:
    """Header pin numbers of the ground, 5 V and 3.3 V pins."""
    pins = _board().headers[HEADER].pins.values()
    return {name: sorted(p.number for p in pins if p.name == name) for name in ("GND", "5V", "3V3")}


def header_lines(wires: list[Wire]) -> list[str]:
    """The 40-pin header, odd pins on the left, with each used pin's config key beside it."""
    board = _board()
    used = {w.header_pin: w.use for w in wires}
    pins = board.headers[HEADER].pins

    def label(number: int) -> str:
        name = pins[number].name
        return f"{name} {used[number]}" if number in used else name

    width = max(len(label(n)) for n in range(1, 41, 2))
    return [f"{label(n):>{width}} ({n:2d}) ({n + 1:2d}) {label(n + 1)}" for n in range(1, 41, 2)]


def wiring_lines(rig: RigConfig, source: str) -> list[str]:
    """``edge wiring``'s text: the table of uses, the header, power and notes."""
    wires = wiring(rig)
    power = power_pins()
    key_w = max(len(w.use) for w in wires)
    lines = [f"Raspberry Pi 5, 40-pin header, as {source} wires the rig (the config gives BCM numbers):", ""]
    lines.append(f"{'use':<{key_w}}  BCM  pin  connect to")
    for w in wires:
        lines.append(f"{w.use:<{key_w}}  {w.bcm:>3}  {w.header_pin:>3}  {w.connect}")
    lines += ["", *header_lines(wires), ""]
    lines.append(
        f"Ground: pins {', '.join(map(str, power['GND']))}. Join the motor supply's ground to one of them."
    )
    lines.append(
        f"5 V: pins {', '.join(map(str, power['5V']))}. Power the ULN2003 board (or the stepper driver's "
        "motor supply) and the servo from their own 5 V supply, not from these: a stalling motor browns "
        "out the Pi."
    )
    notes = [f"BCM {w.bcm} (pin {w.header_pin}, {w.use}): {n}" for w in wires for n in w.notes]
    if notes:
        lines += ["", "Notes:", *(f"- {n}" for n in notes)]
    return lines


def wiring_json(rig: RigConfig) -> dict[str, Any]:
    """``edge wiring --json``: the wires and the power pins."""
    return {
        "board": "Raspberry Pi 5 Model B",
        "header": HEADER,
        "wires": [asdict(w) | {"notes": list(w.notes)} for w in wiring(rig)],
        "power": power_pins(),
    }
