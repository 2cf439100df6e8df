"""The Pi camera backend without a camera: pixel formats, presets, controls, calibration, errors."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest

from edge.camera import create_camera
from edge.camera.picam import (
    AF_MODE_MANUAL,
    PRESETS,
    CameraCalibration,
    FixedSettings,
    PicameraConfig,
    PicameraSource,
    camera_controls,
    locked_settings,
    picamera_array_to_rgb,
    resolve_settings,
    stream_configuration,
)
from edge.errors import ConfigError, HardwareError, ImageError, MissingDependencyError

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)


# --- pixel formats: memory layouts as libcamera fills them ------------------------------------


@pytest.mark.parametrize(
    ("fmt", "memory"),
    [
        ("RGB888", RGB[..., ::-1]),  # picamera2's "RGB888" is B, G, R in memory
        ("BGR888", RGB),  # ... and "BGR888" is R, G, B
        ("XRGB8888", np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 255, np.uint8)])),
        ("XBGR8888", np.dstack([RGB, np.zeros(RGB.shape[:2], np.uint8)])),
    ],
)
def test_rgb_formats_convert_to_rgb(fmt: str, memory: np.ndarray) -> None:
    out = picamera_array_to_rgb(np.ascontiguousarray(memory), fmt)
    assert out.shape == RGB.shape and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, RGB)


def test_rgb888_pure_red_pixel() -> None:
    # A red scene: libcamera writes bytes (0, 0, 255) per pixel for "RGB888".
    memory = np.zeros((2, 2, 3), np.uint8)
    memory[..., 2] = 255
    assert tuple(picamera_array_to_rgb(memory, "RGB888")[0, 0]) == (255, 0, 0)


def test_yuv420_with_stride_padding() -> None:
    h, w, stride = 16, 24, 32
    # Constant 2x2 blocks survive 4:2:0 chroma subsampling, so any misread plane shows up.
    blocks = RNG.integers(30, 226, (h // 2, stride // 2, 3), dtype=np.uint8)
    smooth = np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1)
    planes = cv2.cvtColor(smooth, cv2.COLOR_RGB2YUV_I420)  # (h * 3/2, stride) as picamera2 returns
    out = picamera_array_to_rgb(planes, "YUV420", width=w)
    assert out.shape == (h, w, 3)
    assert np.abs(out.astype(int) - smooth[:, :w].astype(int)).max() <= 4  # YUV rounding only


@pytest.mark.parametrize(
    ("arr", "fmt", "message"),
    [
        (np.zeros((4, 4, 4), np.uint8), "RGB888", r"shape \(H, W, 3\)"),
        (np.zeros((4, 4, 3), np.uint16), "RGB888", "uint8"),
        (np.zeros((0, 4, 3), np.uint8), "RGB888", "non-empty"),
        (np.zeros((4, 4, 3), np.uint8), "SRGGB10", "'SRGGB10' is not supported"),
        (np.zeros((5, 4), np.uint8), "YUV420", "H \\* 3/2"),
    ],
)
def test_bad_arrays_are_image_errors(arr: np.ndarray, fmt: str, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        picamera_array_to_rgb(arr, fmt)


# --- config, calibration and controls ----------------------------------------------------------


def test_presets_and_stream_configuration() -> None:
    assert PRESETS["still"].size == (2028, 1520)

    class Recorder:
        def create_still_configuration(self, **kw: Any) -> dict[str, Any]:
            return {"method": "still", **kw}

        def create_video_configuration(self, **kw: Any) -> dict[str, Any]:
            return {"method": "video", **kw}

    still = stream_configuration(Recorder(), PicameraConfig(), {"AeEnable": False})
    assert still["method"] == "still" and still["main"] == {"size": (2028, 1520), "format": "RGB888"}
    assert still["controls"] == {"AeEnable": False}
    video = stream_configuration(Recorder(), PicameraConfig(preset="video", size=(640, 480)), {})
    assert video["method"] == "video" and video["main"]["size"] == (640, 480)


def test_config_bounds_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="analogue_gain"):
        create_camera({"type": "picamera2", "analogue_gain": 0.5})
    with pytest.raises(ConfigError, match="preset"):
        create_camera({"type": "picamera2", "preset": "fast"})
    with pytest.raises(ConfigError, match="colour_gains"):
        create_camera({"type": "picamera2", "colour_gains": [1.5]})


CALIBRATION = {"camera": {"exposure_us": 8000, "gain": 1.5, "colour_gains": [2.1, 1.7], "lens_position": 6.0}}


def test_fixed_values_come_from_config_or_calibration(tmp_path: Path) -> None:
    fixed = PicameraConfig(exposure_us=5000, analogue_gain=2.0, colour_gains=(1.9, 1.6))
    assert resolve_settings(fixed) == FixedSettings(5000, 2.0, (1.9, 1.6), None)
    from_cal = resolve_settings(PicameraConfig(calibration=True), CALIBRATION)
    assert from_cal == FixedSettings(8000, 1.5, (2.1, 1.7), 6.0) and from_cal.complete
    # A config value wins over the calibration's; the rest still comes from it.
    mixed = resolve_settings(PicameraConfig(calibration=True, exposure_us=3000), CALIBRATION)
    assert mixed.exposure_us == 3000 and mixed.analogue_gain == 1.5
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(CALIBRATION))
    cam = create_camera({"type": "picamera2", "calibration": True}, calibration=path)
    assert isinstance(cam, PicameraSource) and cam.settings.colour_gains == (2.1, 1.7)


def test_calibration_errors() -> None:
    with pytest.raises(ConfigError, match="no calibration data was given"):
        resolve_settings(PicameraConfig(calibration=True))
    with pytest.raises(ConfigError, match="no 'camera' section"):
        CameraCalibration.from_calibration({"background_hsv": {"lower": [0, 0, 0], "upper": [9, 9, 9]}})
    with pytest.raises(ConfigError, match=r"(?s)calibration.*camera.exposure_us: required"):
        CameraCalibration.from_calibration({"camera": {"exposure": 10, "gain": 1, "colour_gains": [1, 1]}})


def test_controls_disable_auto_algorithms_when_values_are_fixed() -> None:
    controls = camera_controls(FixedSettings(8000, 1.5, (2.1, 1.7), 6.0))
    assert controls == {
        "AeEnable": False,
        "AwbEnable": False,
        "ExposureTime": 8000,
        "AnalogueGain": 1.5,
        "ColourGains": (2.1, 1.7),
        "AfMode": AF_MODE_MANUAL,
        "LensPosition": 6.0,
    }
    # A fixed-focus camera (HQ) has no LensPosition control: it is left out rather than rejected.
    assert "LensPosition" not in camera_controls(FixedSettings(8000, 1.5, (2.1, 1.7), 6.0), {"ExposureTime"})
    measuring = camera_controls(FixedSettings(exposure_us=8000))
    assert measuring == {"AeEnable": True, "AwbEnable": True, "ExposureTime": 8000}


def test_locking_fills_unknowns_from_metadata() -> None:
    meta = {"ExposureTime": 12345, "AnalogueGain": 3.25, "ColourGains": (1.8, 1.4)}
    assert locked_settings(FixedSettings(exposure_us=8000), meta) == FixedSettings(8000, 3.25, (1.8, 1.4))
    with pytest.raises(HardwareError, match="lacks the value to lock"):
        locked_settings(FixedSettings(), {"ExposureTime": 1})


# --- opening ---------------------------------------------------------------------------------


def test_open_without_picamera2_is_a_missing_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes `import picamera2` fail here too
    cam = create_camera({"type": "picamera2"})
    with pytest.raises(MissingDependencyError, match=r"'picamera2' is needed.*python3-picamera2") as info:
        cam.open()
    assert info.value.package == "picamera2" and info.value.extra == "pi"
    assert "--system-site-packages" in str(info.value) and "lego-edge[pi]" in str(info.value)
    assert not cam.is_open


def test_picamera2_without_libcamera_names_the_system_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A virtual environment that does not see the system's packages: picamera2 found, libcamera not."""
    (tmp_path / "picamera2").mkdir()
    (tmp_path / "picamera2" / "__init__.py").write_text("import libcamera\n")  # as the real one does
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    monkeypatch.setitem(sys.modules, "libcamera", None)  # not importable
    cam = create_camera({"type": "picamera2"})
    with pytest.raises(MissingDependencyError, match=r"'libcamera' is needed.*--system-site-packages"):
        cam.open()


class _FakeRequest:
    def __init__(self, cam: _FakePicamera2) -> None:
        self.cam = cam

    def make_array(self, name: str) -> np.ndarray:
        assert name == "main"
        return np.ascontiguousarray(RGB[..., ::-1])  # RGB888 memory order

    def get_metadata(self) -> dict[str, Any]:
        return {"ExposureTime": 8000, "AnalogueGain": 1.5, "ColourGains": (2.1, 1.7), "SensorTimestamp": 9}


class _FakePicamera2:
    """Just enough of picamera2's API to run the backend's open/capture/close flow."""

    instances: ClassVar[list[_FakePicamera2]] = []

    def __init__(self, num: int) -> None:
        self.num, self.started, self.closed, self.held = num, False, False, 0
        self.camera_controls = {"ExposureTime": None, "AnalogueGain": None, "ColourGains": None}
        self.set: list[dict[str, Any]] = []
        self.configured: Any = None
        _FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return [{"Model": "imx477", "Num": 0}]

    def create_still_configuration(self, **kw: Any) -> dict[str, Any]:
        return kw

    def configure(self, config: Any) -> None:
        self.configured = config

    def start(self) -> None:
        self.started = True

    def capture_metadata(self) -> dict[str, Any]:
        return {"ExposureTime": 9000, "AnalogueGain": 2.5, "ColourGains": (1.9, 1.5)}

    def set_controls(self, controls: dict[str, Any]) -> None:
        self.set.append(controls)

    @contextmanager
    def captured_request(self, wait: Any = None, flush: Any = None) -> Any:
        assert flush is True
        self.held += 1
        try:
            yield _FakeRequest(self)
        finally:
            self.held -= 1  # the buffer goes back to libcamera

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


def test_open_capture_close_flow_with_a_stand_in_module(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = ModuleType("picamera2")
    fake.Picamera2 = _FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", fake)
    monkeypatch.setattr("edge.camera.picam.time.sleep", lambda s: None)
    with create_camera({"type": "picamera2", "exposure_us": 8000}) as cam:
        assert isinstance(cam, PicameraSource)
        frame = cam.capture()
        # Unknown gain and white balance were measured once, then locked with AE/AWB off.
        assert cam.settings == FixedSettings(8000, 2.5, (1.9, 1.5))
    picam = _FakePicamera2.instances[-1]
    assert picam.configured["controls"] == {"AeEnable": True, "AwbEnable": True, "ExposureTime": 8000}
    assert picam.set[-1]["AeEnable"] is False and picam.set[-1]["AwbEnable"] is False
    np.testing.assert_array_equal(frame.image, RGB)
    assert frame.meta["exposure_us"] == 8000 and frame.meta["device"] == "Raspberry Pi camera 0"
    assert picam.held == 0 and picam.closed and not picam.started
    with pytest.raises(HardwareError, match=r"camera 1 not found \(1 camera\(s\) detected\)"):
        create_camera({"type": "picamera2", "camera_num": 1}).open()
