"""`edge calibrate camera`: the locked settings go into the calibration file and back to the camera."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

from calibration.camera import auto_config, calibrate_camera, camera_section
from edge.calibration_file import read_calibration, update_calibration
from edge.camera import create_camera, parse_camera_config
from edge.camera.picam import FixedSettings, PicameraConfig, PicameraSource, camera_controls
from edge.cli import main
from edge.errors import ConfigError
from tests.edge.test_settings import write_sim_setup

LOCKED = FixedSettings(exposure_us=8123, analogue_gain=1.75, colour_gains=(2.05, 1.62))


def test_section_round_trips_into_the_cameras_controls(tmp_path: Path) -> None:
    cal = tmp_path / "calibration.json"
    update_calibration(cal, camera=camera_section(LOCKED))
    section = read_calibration(cal).camera
    assert section is not None and section.timestamp is not None
    cam = create_camera({"type": "picamera2", "calibration": True}, calibration=cal)
    assert isinstance(cam, PicameraSource) and cam.settings == LOCKED
    # What the camera is started with: every value fixed and the auto algorithms off.
    assert camera_controls(cam.settings) == {
        "AeEnable": False,
        "AwbEnable": False,
        "ExposureTime": 8123,
        "AnalogueGain": 1.75,
        "ColourGains": (2.05, 1.62),
    }
    # Without calibration: true the file's section is not used (AE/AWB measure at open()).
    plain = create_camera({"type": "picamera2"}, calibration=cal)
    assert isinstance(plain, PicameraSource) and not plain.settings.complete


def test_unmeasured_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="not all known"):
        camera_section(FixedSettings(exposure_us=8000))


def test_measuring_frees_every_setting() -> None:
    cfg = PicameraConfig(exposure_us=5000, analogue_gain=2.0, colour_gains=(1.9, 1.6), calibration=True)
    free = auto_config(cfg)
    assert (free.exposure_us, free.analogue_gain, free.colour_gains) == (None, None, None)
    assert free.calibration is False
    assert free.preset == cfg.preset and free.settle_s == cfg.settle_s


@pytest.mark.parametrize("camera", [{"type": "sim"}, {"type": "opencv", "device": 0}])
def test_cameras_without_the_controls(tmp_path: Path, camera: dict[str, object]) -> None:
    """The sim and USB cameras have nothing to lock; a camera section in the file does not bother them."""
    with pytest.raises(ConfigError, match=f"type '{camera['type']}', which has none to lock"):
        auto_config(parse_camera_config(camera))
    cal = tmp_path / "calibration.json"
    update_calibration(cal, camera=camera_section(LOCKED))
    assert create_camera(camera, calibration=cal).key == camera["type"]


def test_command_on_the_sim_rig_says_there_is_nothing_to_lock(
    tmp_path: Path, demo_library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    cal = tmp_path / "calibration.json"
    assert main(["calibrate", "camera", "--config", str(config), "--calibration", str(cal)]) == 2
    assert "has none to lock" in caplog.text and not cal.exists()


def test_command_flow_with_the_stand_in_picamera2(
    tmp_path: Path, demo_library: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The measuring flow needs libcamera's auto algorithms: the camera tests' stand-in plays them."""
    from tests.edge.camera.test_picam import _FakePicamera2

    fake = ModuleType("picamera2")
    fake.Picamera2 = _FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", fake)
    monkeypatch.setattr("edge.camera.picam.time.sleep", lambda s: None)
    cal = tmp_path / "calibration.json"
    update_calibration(cal, color={"white_balance": [1, 1, 1], "matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]})
    fit = calibrate_camera(PicameraConfig(exposure_us=3000, calibration=True), cal)
    # The stand-in's AE/AWB settle on these; the configured exposure was freed for measuring.
    assert _FakePicamera2.instances[-1].configured["controls"] == {"AeEnable": True, "AwbEnable": True}
    camera = read_calibration(cal).camera
    assert camera is not None
    assert (camera.exposure_us, camera.gain, camera.colour_gains) == (9000, 2.5, (1.9, 1.5))
    assert fit.stale == ("color",) and "run `edge calibrate color`" in "\n".join(fit.lines())
