"""What puts parts on the turntable and takes them off: the :class:`Feeder` the daemon is given.

The daemon asks for the next part whenever the frames show the turntable empty
(:meth:`Feeder.next_part`) and sends the part off after routing it (:meth:`Feeder.remove_part`);
it never asks what kind of feeder it has. Two kinds exist:

- the simulated rig (:class:`~edge.camera.sim.SimSource`, seen through :class:`SimulatedRig`): it
  places a part and knows its ground truth, and lifts it off again;
- :class:`HandFeeder`, the real rig: a person (or a hopper) drops parts, so it places nothing, and it
  clears the turntable with a sweep turn (``clearing.sweep_deg``; 0: the part is taken off by hand).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from edge.errors import ConfigError


@runtime_checkable
class Feeder(Protocol):
    """Puts parts on the turntable and takes them off."""

    def next_part(self) -> dict[str, Any] | None:
        """Place the next part on the empty turntable and return its ground truth (``{}`` if unknown).

        None when this feeder places nothing (someone else drops the parts). May raise
        :class:`~edge.camera.EndOfStream` when there are no more parts.
        """
        ...

    def remove_part(self) -> None:
        """Send the part on the turntable off it (down the chute)."""
        ...


@runtime_checkable
class SimulatedRig(Feeder, Protocol):
    """The simulated rig's camera: a feeder that also renders the turntable at its angle."""

    def follow(self, turntable: Any) -> None:
        """Read the turntable angle at each capture from ``turntable`` (``.angle`` or a callable)."""
        ...

    def set_angle(self, angle_deg: float) -> None:
        """Put the (simulated) turntable at ``angle_deg`` (stops following a turntable)."""
        ...


class HandFeeder:
    """The real rig's feeder: parts arrive by hand; a sweep turn of ``sweep_deg`` clears them."""

    def __init__(self, turntable: Any, sweep_deg: float = 0.0) -> None:
        self.turntable = turntable
        self.sweep_deg = sweep_deg

    def next_part(self) -> dict[str, Any] | None:
        """Nothing to place: the daemon waits until the frames show a part."""
        return None

    def remove_part(self) -> None:
        """Turn the turntable by ``sweep_deg`` so the part slides off (nothing when 0)."""
        if self.sweep_deg:
            self.turntable.rotate_by(self.sweep_deg)


def simulated_rig(camera: Any) -> SimulatedRig:
    """``camera`` as the simulated rig, or a ConfigError when it is not one (``--sim`` needs it)."""
    if not isinstance(camera, SimulatedRig):
        raise ConfigError(
            f"the simulated rig needs the sim camera (camera type 'sim'), but the camera is "
            f"{getattr(camera, 'name', type(camera).__name__)!r}; drop --sim or use config/sim.yaml"
        )
    return camera
