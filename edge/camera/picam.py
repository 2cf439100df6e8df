"""``type: picamera2``: the Raspberry Pi camera through picamera2/libcamera.

Exposure, analogue gain, white-balance gains and lens position are fixed (AE/AWB off) so colours
do not drift between parts. They come from the config, else from the rig calibration's
``camera`` section (``calibration: true``); any still unknown is measured once at ``open()``: the
auto algorithms run for ``settle_s``, then the values they reached are locked and logged.

picamera2 only installs on a Pi, so it is imported in :meth:`PicameraSource._open`. It comes
from Raspberry Pi OS (``python3-picamera2``), not PyPI: libcamera's Python bindings are built with
the system's libcamera and published only as that package, so the project's virtual environment is
made with ``--system-site-packages`` (systemd/README.md). Everything else here (presets, controls,
pixel-format conversion) is pure and tested without a camera.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import cv2
import numpy as np
from pydantic import Field

from edge.calibration_file import CameraSection, Gain, load_calibration
from edge.camera.base import CameraSource, register_camera
from edge.config import StrictModel
from edge.errors import ConfigError, HardwareError, ImageError, MissingDependencyError
from edge.segment.base import Calibration

log = logging.getLogger(__name__)

#: How a Pi gets picamera2: from the OS, seen through a virtual environment that sees its packages.
PICAMERA2_FIX = (
    "sudo apt install python3-picamera2 (Raspberry Pi OS has it), and make the virtual environment "
    "with python3 -m venv --system-site-packages so it sees it (libcamera's Python bindings are not "
    "on PyPI); then pip install 'lego-edge[pi]' in it (systemd/README.md)"
)
T = TypeVar("T")

#: libcamera's ``AfModeEnum.Manual`` (numeric, so this module needs no libcamera import).
AF_MODE_MANUAL = 0


@dataclass(frozen=True)
class Preset:
    """A named stream configuration: the picamera2 factory method and the default main size."""

    method: str
    size: tuple[int, int]
    buffer_count: int


#: Sizes suit the HQ camera (IMX477): 2028x1520 is its full-field 2x2 binned mode.
PRESETS: dict[str, Preset] = {
    "still": Preset("create_still_configuration", (2028, 1520), 2),
    "preview": Preset("create_preview_configuration", (1014, 760), 4),
    "video": Preset("create_video_configuration", (1332, 990), 4),
}

Side = Annotated[int, Field(ge=16, le=9152, description="pixels")]


class CameraCalibration(CameraSection):
    """The calibration file's ``camera`` section (all values fixed while sorting)."""

    @classmethod
    def from_calibration(cls, data: Calibration, source: str = "calibration") -> CameraCalibration:
        """Read the ``camera`` section of calibration data (a parsed mapping or a JSON/YAML file)."""
        cal, source, _ = load_calibration(data, source)
        if cal.camera is None:
            raise ConfigError(
                f"{source}: no 'camera' section; run `edge calibrate camera`, or set "
                "camera.exposure_us/analogue_gain/colour_gains and calibration: false"
            )
        return cls.model_validate(cal.camera.model_dump())


class PicameraConfig(StrictModel):
    """Settings of the Raspberry Pi camera."""

    type: Literal["picamera2"] = Field("picamera2", description="'picamera2': the Raspberry Pi camera")
    camera_num: int = Field(
        0, ge=0, le=7, description="which camera, 0 = the first (rpicam-hello --list-cameras)"
    )
    preset: Literal["still", "preview", "video"] = Field(
        "still", description="'still' (2028x1520, best quality), 'preview' or 'video' (faster frames)"
    )
    size: tuple[Side, Side] | None = Field(None, description="[width, height] of the image; unset = preset's")
    format: Literal["RGB888", "BGR888", "XRGB8888", "XBGR8888"] = Field(
        "RGB888", description="picamera2 pixel format of the main stream (converted to RGB either way)"
    )
    exposure_us: int | None = Field(
        None, ge=1, le=10_000_000, description="fixed exposure time in µs; unset = calibration/measured"
    )
    analogue_gain: float | None = Field(
        None, ge=1.0, le=64.0, description="fixed analogue gain; unset = calibration/measured"
    )
    colour_gains: tuple[Gain, Gain] | None = Field(
        None, description="fixed white-balance gains [red, blue]; unset = calibration/measured"
    )
    lens_position: float | None = Field(
        None, ge=0.0, le=32.0, description="fixed lens position in dioptres (autofocus cameras only)"
    )
    calibration: bool = Field(
        False, description="true: take unset exposure, gain, colour gains, lens from calibration 'camera'"
    )
    settle_s: float = Field(
        1.0, ge=0.0, le=30.0, description="seconds AE/AWB run at open() to measure values left unset"
    )
    flush: bool = Field(
        True, description="true: each capture waits for a frame that started after the call (no stale frame)"
    )
    timeout_s: float = Field(5.0, gt=0.0, le=120.0, description="seconds to wait for a frame before failing")


@dataclass(frozen=True)
class FixedSettings:
    """The image settings to hold fixed; None = measure it with the auto algorithms at open()."""

    exposure_us: int | None = None
    analogue_gain: float | None = None
    colour_gains: tuple[float, float] | None = None
    lens_position: float | None = None

    @property
    def complete(self) -> bool:
        """Whether nothing needs measuring (lens position is optional)."""
        return None not in (self.exposure_us, self.analogue_gain, self.colour_gains)


def resolve_settings(config: PicameraConfig, calibration: Calibration = None) -> FixedSettings:
    """Config values, falling back to the calibration's ``camera`` section when ``calibration`` is on."""
    cal = None
    if config.calibration:
        if calibration is None:
            raise ConfigError(
                "camera.calibration is true but no calibration data was given; pass the rig's "
                "calibration file, or set calibration: false"
            )
        cal = CameraCalibration.from_calibration(calibration)
    return FixedSettings(
        exposure_us=_first(config.exposure_us, cal.exposure_us if cal else None),
        analogue_gain=_first(config.analogue_gain, cal.gain if cal else None),
        colour_gains=_first(config.colour_gains, cal.colour_gains if cal else None),
        lens_position=_first(config.lens_position, cal.lens_position if cal else None),
    )


def _first(value: T | None, fallback: T | None) -> T | None:
    return value if value is not None else fallback


def camera_controls(settings: FixedSettings, supported: Collection[str] | None = None) -> dict[str, Any]:
    """libcamera controls for ``settings``: AE/AWB off when their values are known, else on to measure.

    With AE on, a known exposure time still pins the shutter (the AGC then varies only the gain).
    ``supported`` (``Picamera2.camera_controls``) drops the lens controls on fixed-focus cameras.
    """
    controls: dict[str, Any] = {
        "AeEnable": settings.exposure_us is None or settings.analogue_gain is None,
        "AwbEnable": settings.colour_gains is None,
    }
    if settings.exposure_us is not None:
        controls["ExposureTime"] = int(settings.exposure_us)
    if settings.analogue_gain is not None:
        controls["AnalogueGain"] = float(settings.analogue_gain)
    if settings.colour_gains is not None:
        controls["ColourGains"] = (float(settings.colour_gains[0]), float(settings.colour_gains[1]))
    if settings.lens_position is not None:
        if supported is not None and "LensPosition" not in supported:
            log.warning("camera has no focus motor: lens_position %s ignored", settings.lens_position)
        else:
            controls["AfMode"] = AF_MODE_MANUAL
            controls["LensPosition"] = float(settings.lens_position)
    return controls


def locked_settings(settings: FixedSettings, metadata: Mapping[str, Any]) -> FixedSettings:
    """``settings`` with its unknowns filled from frame metadata the auto algorithms produced."""
    try:
        exposure = settings.exposure_us
        if exposure is None:
            exposure = int(metadata["ExposureTime"])
        gain = settings.analogue_gain
        if gain is None:
            gain = float(metadata["AnalogueGain"])
        gains = settings.colour_gains
        if gains is None:
            red, blue = metadata["ColourGains"]
            gains = (float(red), float(blue))
    except (KeyError, TypeError, ValueError) as exc:
        raise HardwareError(
            f"camera metadata lacks the value to lock ({exc}); set exposure_us, analogue_gain and "
            "colour_gains in the config"
        ) from None
    return FixedSettings(exposure, gain, gains, settings.lens_position)


def stream_configuration(picam2: Any, config: PicameraConfig, controls: Mapping[str, Any]) -> Any:
    """The picamera2 configuration of ``config``'s preset with the main stream's size and format."""
    preset = PRESETS[config.preset]
    size = tuple(config.size) if config.size is not None else preset.size
    factory = getattr(picam2, preset.method)
    main = {"size": size, "format": config.format}
    return factory(main=main, controls=dict(controls), buffer_count=preset.buffer_count)


def picamera_array_to_rgb(arr: np.ndarray, fmt: str, width: int | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 RGB copy of a picamera2 array of pixel format ``fmt``.

    picamera2 names formats by libcamera/DRM convention, which lists channels from the most
    significant byte of a little-endian word: "RGB888" is B, G, R in memory and "XRGB8888" is
    B, G, R, X; "BGR888" and "XBGR8888" are R, G, B (, X). "YUV420" arrays are (H * 3/2, stride)
    planes; pass ``width`` to crop the stride padding.
    """
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.size == 0:
        raise ImageError(
            f"picamera2 array must be a non-empty uint8 numpy array; got "
            f"{getattr(arr, 'dtype', type(arr).__name__)!s} of shape {getattr(arr, 'shape', None)!r}"
        )
    channels = {"RGB888": 3, "BGR888": 3, "XRGB8888": 4, "XBGR8888": 4}
    if fmt in channels:
        if arr.ndim != 3 or arr.shape[2] != channels[fmt]:
            raise ImageError(
                f"picamera2 {fmt} array must have shape (H, W, {channels[fmt]}); got {arr.shape!r}"
            )
        rgb = arr[..., 2::-1] if fmt in ("RGB888", "XRGB8888") else arr[..., :3]
        return np.ascontiguousarray(rgb)
    if fmt in ("YUV420", "YVU420"):
        if arr.ndim != 2 or arr.shape[0] % 3 or arr.shape[0] < 3:
            raise ImageError(f"picamera2 {fmt} array must have shape (H * 3/2, stride); got {arr.shape!r}")
        code = cv2.COLOR_YUV2RGB_I420 if fmt == "YUV420" else cv2.COLOR_YUV2RGB_YV12
        rgb = cv2.cvtColor(np.ascontiguousarray(arr), code)
        return np.ascontiguousarray(rgb[:, :width]) if width is not None else rgb
    raise ImageError(
        f"picamera2 format {fmt!r} is not supported; use one of RGB888, BGR888, XRGB8888, XBGR8888, YUV420"
    )


@register_camera("picamera2")
class PicameraSource(CameraSource):
    """The Pi camera with fixed exposure, gain, white balance and focus."""

    config_model = PicameraConfig
    config: PicameraConfig

    def __init__(self, config: PicameraConfig, settings: FixedSettings | None = None) -> None:
        super().__init__(config)
        self.settings = settings if settings is not None else resolve_settings(config)
        self._cam: Any = None

    @classmethod
    def from_config(cls, config: StrictModel, *, calibration: Calibration = None) -> PicameraSource:
        """Build, resolving unset image settings from the calibration when the config asks for it."""
        if not isinstance(config, PicameraConfig):
            raise TypeError(f"PicameraSource needs a PicameraConfig; got {type(config).__name__}")
        return cls(config, resolve_settings(config, calibration))

    @property
    def name(self) -> str:
        """E.g. ``"Raspberry Pi camera 0"``."""
        return f"Raspberry Pi camera {self.config.camera_num}"

    def _fail(self, what: str, exc: BaseException) -> HardwareError:
        return HardwareError(
            f"{self.name}: {what}: {exc}; check the ribbon cable and that no other program holds the "
            "camera (`rpicam-hello --list-cameras` should list it)"
        )

    def _open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:  # picamera2 itself, or libcamera's bindings it imports
            raise MissingDependencyError(
                exc.name or "picamera2", "pi", "the Raspberry Pi camera", fix=PICAMERA2_FIX
            ) from None
        found = len(Picamera2.global_camera_info())
        if self.config.camera_num >= found:
            raise HardwareError(
                f"{self.name} not found ({found} camera(s) detected); check the ribbon cable and "
                "camera_num, then run `rpicam-hello --list-cameras`"
            )
        try:
            cam = Picamera2(self.config.camera_num)
        except (RuntimeError, IndexError, OSError) as exc:
            raise self._fail("cannot be opened", exc) from None
        try:
            controls = camera_controls(self.settings, cam.camera_controls)
            cam.configure(stream_configuration(cam, self.config, controls))
            cam.start()
            if not self.settings.complete:
                self._lock_auto_values(cam)
        except (RuntimeError, OSError, TimeoutError) as exc:
            cam.close()
            raise self._fail("cannot be started", exc) from None
        except BaseException:
            cam.close()
            raise
        self._cam = cam

    def _lock_auto_values(self, cam: Any) -> None:
        """Let AE/AWB settle, then fix the values they reached so colours stop drifting."""
        time.sleep(self.config.settle_s)
        self.settings = locked_settings(self.settings, cam.capture_metadata())
        cam.set_controls(camera_controls(self.settings, cam.camera_controls))
        s = self.settings
        log.info(
            "%s: locked exposure_us=%s analogue_gain=%.3f colour_gains=[%.3f, %.3f]; run `edge calibrate "
            "camera` (or put these in the config) to keep them",
            self.name,
            s.exposure_us,
            s.analogue_gain,
            *(s.colour_gains or (0.0, 0.0)),
        )

    def _close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()

    def _grab(self) -> tuple[np.ndarray, dict[str, Any]]:
        # captured_request releases the buffer back to libcamera when the block ends; make_array
        # copies the pixels out first (it is what capture_array("main") does internally).
        flush = True if self.config.flush else None
        try:
            with self._cam.captured_request(wait=self.config.timeout_s, flush=flush) as request:
                arr = request.make_array("main")
                metadata = request.get_metadata()
        except (RuntimeError, OSError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError) and hasattr(self._cam, "cancel_all_and_flush"):
                self._cam.cancel_all_and_flush()  # picamera2's advice after a timeout, so close() works
            raise self._fail(
                f"no frame within {self.config.timeout_s} s"
                if isinstance(exc, TimeoutError)
                else "capture failed",
                exc,
            ) from None
        image = picamera_array_to_rgb(arr, self.config.format)
        meta = {
            "device": self.name,
            "exposure_us": metadata.get("ExposureTime"),
            "analogue_gain": metadata.get("AnalogueGain"),
            "colour_gains": list(metadata.get("ColourGains") or ()) or None,
            "lens_position": metadata.get("LensPosition"),
            "sensor_timestamp_ns": metadata.get("SensorTimestamp"),
        }
        return image, meta
