"""``type: opencv``: a USB/V4L2 camera (or a video file or stream URL) through ``cv2.VideoCapture``.

Exposure, white balance and focus are fixed where the driver allows it; OpenCV's property API is
best effort (``set`` may return True and change nothing), so every setting is read back and what
did not stick is logged and listed in :attr:`WebcamSource.not_applied`. Drivers queue a few
frames; each capture drops ``flush_frames`` of them first so the frame returned was exposed after
``capture()`` was called (with ``buffer_size: 1`` one dropped frame is enough).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from edge.camera.base import CameraSource, EndOfStream, register_camera
from edge.config import StrictModel
from edge.errors import HardwareError, ImageError

log = logging.getLogger(__name__)

_BACKENDS = {
    "any": cv2.CAP_ANY,
    "v4l2": cv2.CAP_V4L2,
    "ffmpeg": cv2.CAP_FFMPEG,
    "gstreamer": cv2.CAP_GSTREAMER,
}
#: V4L2's V4L2_EXPOSURE_MANUAL (OpenCV passes CAP_PROP_AUTO_EXPOSURE through); 0.25 is the old
#: DirectShow-style "manual" some builds expect instead.
_MANUAL_EXPOSURE = (1.0, 0.25)


class WebcamConfig(StrictModel):
    """Settings of an OpenCV capture device."""

    type: Literal["opencv"] = Field("opencv", description="'opencv': a USB/V4L2 camera via cv2.VideoCapture")
    device: int | str = Field(
        0, description="camera index (0 = /dev/video0), or a device path, video file or stream URL"
    )
    backend: Literal["any", "v4l2", "ffmpeg", "gstreamer"] = Field(
        "any", description="OpenCV capture backend; 'v4l2' for USB cameras on the Pi"
    )
    width: int | None = Field(None, ge=16, le=7680, description="requested frame width in pixels")
    height: int | None = Field(None, ge=16, le=4320, description="requested frame height in pixels")
    fps: float | None = Field(None, gt=0.0, le=240.0, description="requested frame rate")
    fourcc: str | None = Field(
        None, min_length=4, max_length=4, description="pixel format the camera sends, e.g. 'MJPG' or 'YUYV'"
    )
    exposure: float | None = Field(
        None,
        ge=0.0,
        le=1_000_000.0,
        description="fixed exposure in driver units (V4L2: 100 µs); unset = auto",
    )
    white_balance_k: int | None = Field(
        None, ge=1000, le=12000, description="fixed white-balance temperature in kelvin; unset = auto"
    )
    focus: float | None = Field(
        None, ge=0.0, le=10_000.0, description="fixed focus in driver units (autofocus off); unset = driver's"
    )
    buffer_size: int | None = Field(
        1, ge=1, le=32, description="frames the driver queues (CAP_PROP_BUFFERSIZE); unset = driver default"
    )
    flush_frames: int = Field(
        1, ge=0, le=30, description="stale frames grabbed and dropped before each capture"
    )


def _device(value: int | str) -> int | str:
    """An index stays an index (also when written as a string); anything else is a path or URL."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


@register_camera("opencv")
class WebcamSource(CameraSource):
    """Frames from ``cv2.VideoCapture``, converted BGR -> RGB."""

    config_model = WebcamConfig
    config: WebcamConfig

    def __init__(self, config: WebcamConfig) -> None:
        super().__init__(config)
        self._cap: Any = None
        #: setting name -> (requested, read back) for every setting the driver did not take.
        self.not_applied: dict[str, tuple[float, float]] = {}

    @property
    def name(self) -> str:
        """E.g. ``"opencv camera '/dev/video0'"``."""
        return f"opencv camera {self.config.device!r}"

    @property
    def _is_file(self) -> bool:
        device = _device(self.config.device)
        return isinstance(device, str) and Path(device).is_file()

    def _gone(self, what: str) -> HardwareError:
        if self._is_file:
            return EndOfStream(f"{self.name}: {what}: end of the video file; reopen it to start again")
        return HardwareError(
            f"{self.name}: {what}; check the USB cable and that no other program holds the camera "
            "(`v4l2-ctl --list-devices` lists the cameras)"
        )

    def _open(self) -> None:
        device = _device(self.config.device)
        cap = cv2.VideoCapture(device, _BACKENDS[self.config.backend])
        if not cap.isOpened():
            cap.release()
            fix = (
                "the file does not exist"
                if isinstance(device, str) and "://" not in device and not Path(device).exists()
                else "check the cable, the device index/path and that no other program holds it"
            )
            raise HardwareError(
                f"{self.name} cannot be opened ({fix}); `v4l2-ctl --list-devices` lists the cameras"
            )
        self._cap = cap
        self._apply_settings()

    def _settings(self) -> list[tuple[str, int, float]]:
        """(name, property, value) in the order drivers want them: format first, auto modes off first."""
        c = self.config
        out: list[tuple[str, int, float]] = []
        if c.buffer_size is not None:
            out.append(("buffer_size", cv2.CAP_PROP_BUFFERSIZE, c.buffer_size))
        if c.fourcc is not None:
            out.append(("fourcc", cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*c.fourcc)))
        if c.width is not None:
            out.append(("width", cv2.CAP_PROP_FRAME_WIDTH, c.width))
        if c.height is not None:
            out.append(("height", cv2.CAP_PROP_FRAME_HEIGHT, c.height))
        if c.fps is not None:
            out.append(("fps", cv2.CAP_PROP_FPS, c.fps))
        if c.white_balance_k is not None:
            out.append(("auto_white_balance", cv2.CAP_PROP_AUTO_WB, 0))
            out.append(("white_balance_k", cv2.CAP_PROP_WB_TEMPERATURE, c.white_balance_k))
        if c.focus is not None:
            out.append(("autofocus", cv2.CAP_PROP_AUTOFOCUS, 0))
            out.append(("focus", cv2.CAP_PROP_FOCUS, c.focus))
        return out

    def _set(self, name: str, prop: int, value: float) -> bool:
        ok = bool(self._cap.set(prop, float(value)))
        actual = float(self._cap.get(prop))
        if ok and abs(actual - float(value)) <= max(1e-3, 1e-3 * abs(float(value))):
            self.not_applied.pop(name, None)
            return True
        self.not_applied[name] = (float(value), actual)
        return False

    def _apply_settings(self) -> None:
        self.not_applied = {}
        for name, prop, value in self._settings():
            self._set(name, prop, value)
        if self.config.exposure is not None:
            # Drivers disagree on the value meaning "manual": try V4L2's, then the legacy one.
            any(self._set("auto_exposure", cv2.CAP_PROP_AUTO_EXPOSURE, v) for v in _MANUAL_EXPOSURE)
            self._set("exposure", cv2.CAP_PROP_EXPOSURE, self.config.exposure)
        for name, (wanted, actual) in self.not_applied.items():
            log.warning(
                "%s: %s=%g did not stick (driver reports %g); left as is", self.name, name, wanted, actual
            )
        if "buffer_size" in self.not_applied and self.config.flush_frames < 4:
            log.warning(
                "%s: the driver keeps its own frame queue; set flush_frames to its length (usually 4) "
                "so captures are not stale",
                self.name,
            )

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def _grab(self) -> tuple[np.ndarray, dict[str, Any]]:
        for _ in range(self.config.flush_frames):
            if not self._cap.grab():
                raise self._gone("no frame while flushing stale frames")
        ok, frame = self._cap.read()
        if not ok:
            raise self._gone("no frame")
        if frame is None or frame.size == 0:
            raise ImageError(f"{self.name} returned an empty frame; check the camera's pixel format (fourcc)")
        return _to_rgb(frame, self.name), {"device": str(self.config.device)}


def _to_rgb(frame: np.ndarray, source: str) -> np.ndarray:
    """OpenCV's BGR (or grey, BGRA) frame as RGB."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    raise ImageError(f"{source} returned a frame of shape {frame.shape!r}; expected (H, W, 3) colour")
