"""``edge calibrate camera``: lock the Pi camera's exposure, gain and white balance for sorting.

The ``picamera2`` camera is opened with every image setting left to libcamera's auto algorithms
(AE/AWB on, whatever the config or an older calibration fixed), which run for the config's
``settle_s`` on the lit stage; the values they reached become the calibration file's ``camera``
section. A camera with ``calibration: true`` then starts with them fixed and AE/AWB off
(:func:`edge.camera.picam.camera_controls`), so colours do not drift from part to part.

Run it first: the background and colour calibrations are measured through these settings, so they
are stale once the settings change (the command says so). Other camera types have no such
controls: an ``opencv`` camera takes ``exposure``/``white_balance_k`` in the config, the simulated
rig's camera has nothing to lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.calibration_file import CalibrationFile, now_utc, read_calibration, update_calibration
from edge.errors import ConfigError

log = logging.getLogger(__name__)

#: Sections measured through the camera's settings: stale when the settings change.
DEPENDENT = ("background", "color")


@dataclass(frozen=True)
class CameraFit:
    """The locked settings and the sections measured before them."""

    section: dict[str, Any]
    stale: tuple[str, ...]

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        s = self.section
        red, blue = s["colour_gains"]
        out = [
            f"exposure {s['exposure_us']} µs, analogue gain {s['gain']:.3f}, "
            f"colour gains red {red:.3f} blue {blue:.3f} (AE/AWB off while sorting)"
        ]
        if s.get("lens_position") is not None:
            out.append(f"lens position {s['lens_position']:.2f} dioptres")
        for name in self.stale:
            out.append(
                f"the {name} section was measured with other camera settings: run `edge calibrate {name}`"
            )
        return out


def camera_section(settings: Any) -> dict[str, Any]:
    """The calibration file's ``camera`` section for locked :class:`~edge.camera.picam.FixedSettings`."""
    if settings is None or not settings.complete:
        raise ConfigError(
            f"camera settings {settings!r} are not all known; the camera must measure them before locking"
        )
    red, blue = settings.colour_gains
    section: dict[str, Any] = {
        "exposure_us": int(settings.exposure_us),
        "gain": round(float(settings.analogue_gain), 4),
        "colour_gains": [round(float(red), 4), round(float(blue), 4)],
        "timestamp": now_utc().isoformat(),
    }
    if settings.lens_position is not None:
        section["lens_position"] = round(float(settings.lens_position), 3)
    return section


def auto_config(camera_config: Any) -> Any:
    """``camera_config`` with exposure, gain and colour gains unset and the calibration ignored:
    the camera measures them all at ``open()``. Only ``picamera2`` cameras have these controls."""
    kind = getattr(camera_config, "type", None)
    if kind != "picamera2":
        raise ConfigError(
            f"`edge calibrate camera` locks the Raspberry Pi camera's exposure and white balance; the "
            f"configured camera is type {kind!r}, which has none to lock (an 'opencv' camera takes "
            "exposure and white_balance_k in the config; the simulated rig's has no such settings)"
        )
    names = ("exposure_us", "analogue_gain", "colour_gains")
    fixed = [k for k in names if getattr(camera_config, k) is not None]
    if fixed:
        log.warning(
            "camera.%s set in the config win(s) over the calibration; remove them to use what this "
            "command measures",
            ", camera.".join(fixed),
        )
    unset = dict.fromkeys(names)
    return camera_config.model_copy(update={**unset, "calibration": False})


def calibrate_camera(camera_config: Any, calibration: Path) -> CameraFit:
    """Measure the auto exposure/white balance on the stage and write the ``camera`` section."""
    from edge.camera import create_camera

    with create_camera(auto_config(camera_config)) as camera:
        section = camera_section(getattr(camera, "settings", None))
    before: CalibrationFile | None = read_calibration(calibration) if calibration.exists() else None
    stale = tuple(n for n in DEPENDENT if before is not None and getattr(before, n) is not None)
    update_calibration(calibration, camera=section)
    return CameraFit(section, stale)
