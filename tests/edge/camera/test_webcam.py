"""The OpenCV camera, driven by a real MJPG .avi the tests write and open as the "device"."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import EndOfStream, create_camera
from edge.camera.webcam import WebcamConfig, WebcamSource, _to_rgb
from edge.errors import ConfigError, HardwareError, ImageError

#: One solid RGB colour per frame, all far apart so a frame is identified by its colour.
COLOURS = [
    (230, 20, 20),
    (20, 200, 30),
    (25, 30, 220),
    (240, 220, 30),
    (30, 210, 220),
    (210, 40, 200),
    (245, 245, 245),
    (10, 10, 10),
]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("webcam") / "colours.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened(), "this OpenCV build cannot write MJPG .avi"
    for rgb in COLOURS:
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:] = rgb
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))  # VideoWriter takes BGR
    writer.release()
    return path


def _which(image: np.ndarray) -> int:
    """Index of the COLOURS entry nearest to the image's mean colour (asserting it is close)."""
    mean = image.reshape(-1, 3).mean(axis=0)
    dist = [float(np.abs(mean - np.array(c)).max()) for c in COLOURS]
    best = int(np.argmin(dist))
    assert dist[best] < 12, f"frame colour {mean} matches no written colour"
    return best


def _camera(video: Path, **kw: object) -> WebcamSource:
    cam = create_camera({"type": "opencv", "device": str(video), **kw})
    assert isinstance(cam, WebcamSource)
    return cam


def test_frames_come_back_rgb_with_the_written_colours(video: Path) -> None:
    with _camera(video, flush_frames=0) as cam:
        frames = [cam.capture() for _ in range(len(COLOURS))]
    for k, frame in enumerate(frames):
        assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
        assert _which(frame.image) == k
        assert frame.meta["device"] == str(video) and frame.meta["source"] == "opencv"
    # Channel order, explicitly: the first frame is red, so R is by far the largest channel.
    r, g, b = frames[0].image[24, 32].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_flush_skips_the_configured_number_of_frames(video: Path) -> None:
    with _camera(video, flush_frames=2) as cam:
        got = [_which(cam.capture().image) for _ in range(2)]
        assert got == [2, 5]  # frames 0-1 and 3-4 were dropped as stale
        with pytest.raises(EndOfStream, match=r"colours\.avi.*end of the video file"):
            cam.capture()  # 6 and 7 flushed, nothing left to return


def test_end_of_stream_is_a_hardware_error_and_reconnect_rewinds(video: Path) -> None:
    with _camera(video, flush_frames=0) as cam:
        for _ in COLOURS:
            cam.capture()
        with pytest.raises(HardwareError, match=r"colours\.avi"):
            cam.capture()
        cam.reconnect()
        assert _which(cam.capture().image) == 0


def test_missing_device_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "video9.avi"
    with pytest.raises(HardwareError, match=r"video9\.avi.*cannot be opened \(the file does not exist\)"):
        _camera(missing).open()


def test_settings_that_do_not_stick_are_logged(video: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A video file honours none of these: each must be reported, none silently assumed.
    with (
        caplog.at_level(logging.WARNING),
        _camera(video, width=320, white_balance_k=4500, exposure=50) as cam,
    ):
        assert {"width", "auto_white_balance", "white_balance_k", "auto_exposure", "exposure"} <= set(
            cam.not_applied
        )
        assert cam.not_applied["width"][0] == 320.0
        assert _which(cam.capture().image) == 1  # still captures (default flush_frames=1)
    assert "width=320 did not stick" in caplog.text


def test_config_validation() -> None:
    cfg = WebcamConfig.model_validate({"type": "opencv"})
    assert cfg.device == 0 and cfg.buffer_size == 1 and cfg.flush_frames == 1
    with pytest.raises(ConfigError, match="flush_frames"):
        create_camera({"type": "opencv", "flush_frames": -1})
    with pytest.raises(ConfigError, match="fourcc"):
        create_camera({"type": "opencv", "fourcc": "MJPEG"})


def test_to_rgb_conversions() -> None:
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV order
    assert tuple(_to_rgb(bgr, "cam")[0, 0]) == (0, 0, 255)
    assert _to_rgb(np.full((2, 2), 7, np.uint8), "cam").shape == (2, 2, 3)
    with pytest.raises(ImageError, match="cam returned a frame of shape"):
        _to_rgb(np.zeros((2, 2, 2), np.uint8), "cam")
