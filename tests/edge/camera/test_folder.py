"""The folder replay camera, with real PNG/JPEG files written by the tests; plus the registry."""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import EndOfStream, Frame, available_cameras, create_camera, parse_camera_config
from edge.camera.folder import FolderConfig, FolderSource, list_images, read_manifest
from edge.errors import ConfigError, DataFileError, HardwareError, ImageError
from edge.imagefile import read_image


def _solid(rgb: tuple[int, int, int], size: tuple[int, int] = (24, 32)) -> np.ndarray:
    img = np.zeros((*size, 3), np.uint8)
    img[:] = rgb
    return img


def _write(path: Path, rgb_image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb_image, cv2.COLOR_RGB2BGR))
    return path


RED, GREEN, BLUE = (220, 20, 30), (20, 200, 40), (30, 40, 210)


def _folder(tmp_path: Path) -> Path:
    """img_2 (green), img_10 (blue), img_1 (red) as PNG, plus a mask that must not be replayed."""
    _write(tmp_path / "img_1.png", _solid(RED))
    _write(tmp_path / "img_2.png", _solid(GREEN))
    _write(tmp_path / "img_10.png", _solid(BLUE))
    cv2.imwrite(str(tmp_path / "img_1_mask.png"), np.full((24, 32), 255, np.uint8))
    return tmp_path


def _camera(path: Path, **kw: object) -> FolderSource:
    cam = create_camera({"type": "folder", "path": str(path), **kw})
    assert isinstance(cam, FolderSource)
    return cam


def test_replays_in_natural_order_as_rgb_then_stops(tmp_path: Path) -> None:
    with _camera(_folder(tmp_path)) as cam:
        frames = [cam.capture() for _ in range(3)]
        with pytest.raises(EndOfStream, match="all 3 images replayed"):
            cam.capture()
    assert [Path(f.meta["path"]).name for f in frames] == ["img_1.png", "img_2.png", "img_10.png"]
    for frame, rgb in zip(frames, (RED, GREEN, BLUE), strict=True):
        assert isinstance(frame, Frame)
        assert frame.image.shape == (24, 32, 3) and frame.image.dtype == np.uint8
        assert tuple(int(c) for c in frame.image[5, 5]) == rgb  # PNG is lossless: exact RGB order
    assert [f.meta["index"] for f in frames] == [0, 1, 2]
    assert frames[0].meta["mask_path"].endswith("img_1_mask.png") and "mask_path" not in frames[1].meta
    assert frames[0].timestamp <= frames[2].timestamp


def test_loop_starts_again(tmp_path: Path) -> None:
    with _camera(_folder(tmp_path), loop=True) as cam:
        names = [Path(cam.capture().meta["path"]).name for _ in range(5)]
    assert names == ["img_1.png", "img_2.png", "img_10.png", "img_1.png", "img_2.png"]


def test_glob_pattern_selects_files(tmp_path: Path) -> None:
    _folder(tmp_path)
    _write(tmp_path / "sub" / "a.jpg", _solid(RED))
    assert [p.name for p in list_images(tmp_path, "*.png", ["*_mask.png"])] == [
        "img_1.png",
        "img_2.png",
        "img_10.png",
    ]
    assert [p.name for p in list_images(tmp_path, "**/*.jpg")] == ["a.jpg"]
    with _camera(tmp_path, pattern="sub/*.jpg") as cam:
        frame = cam.capture()
    assert np.abs(frame.image.astype(int) - RED).max() <= 6  # JPEG: close, and R still first


def test_truncated_jpeg_is_an_image_error_naming_the_file(tmp_path: Path) -> None:
    good = _write(tmp_path / "a_good.jpg", _solid(GREEN, (64, 64)))
    data = good.read_bytes()
    bad = tmp_path / "b_cut.jpg"
    bad.write_bytes(data[: len(data) // 2])
    # OpenCV alone would decode the cut file (grey bottom, a warning); read_image must refuse it.
    with pytest.raises(ImageError, match=r"b_cut\.jpg.*truncated"):
        read_image(bad)
    with _camera(tmp_path) as cam:
        assert Path(cam.capture().meta["path"]).name == "a_good.jpg"
        with pytest.raises(ImageError, match=r"b_cut\.jpg"):
            cam.capture()


def test_skip_corrupt_logs_and_moves_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path / "1.png", _solid(RED))
    (tmp_path / "2.png").write_bytes(b"")  # empty file
    (tmp_path / "3.jpg").write_bytes(b"\xff\xd8not really a jpeg\xff\xd9")
    png = _write(tmp_path / "4.png", _solid(BLUE)).read_bytes()
    (tmp_path / "5.png").write_bytes(png[:-20])  # lost its IEND chunk
    with caplog.at_level(logging.WARNING), _camera(tmp_path, skip_corrupt=True) as cam:
        first, second = cam.capture(), cam.capture()
        with pytest.raises(EndOfStream):
            cam.capture()
    assert [Path(f.meta["path"]).name for f in (first, second)] == ["1.png", "4.png"]
    text = caplog.text
    assert "2.png" in text and "empty" in text and "3.jpg" in text and "5.png" in text


def test_all_corrupt_with_loop_does_not_spin(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    with _camera(tmp_path, skip_corrupt=True, loop=True) as cam, pytest.raises(ImageError, match="no image"):
        cam.capture()


def _manifest(folder: Path, rows: list[dict[str, object]]) -> None:
    cols = ["image_path", "part_num", "color_id", "color_name", "part_name", "angle", "timestamp"]
    with (folder / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, cols)
        writer.writeheader()
        writer.writerows(rows)


def test_manifest_ground_truth_in_rig_layout(tmp_path: Path) -> None:
    rel = ["raw/3001/4/3001_4_0.jpg", "raw/3001/4/3001_4_120.jpg", "raw/3023/1/3023_1_0.jpg"]
    for r in rel:
        _write(tmp_path / r, _solid(RED, (48, 64)))
    _manifest(
        tmp_path,
        [
            {"image_path": rel[0], "part_num": "3001", "color_id": 4, "color_name": "Red",
             "part_name": "Brick 2 x 4", "angle": 0, "timestamp": "2026-01-01T00:00:00+00:00"},
            {"image_path": rel[1], "part_num": "3001", "color_id": 4, "color_name": "Red",
             "part_name": "Brick 2 x 4", "angle": 120, "timestamp": "2026-01-01T00:00:02+00:00"},
        ],
    )  # fmt: skip
    with _camera(tmp_path) as cam:
        frames = [cam.capture() for _ in range(3)]
    assert frames[0].meta["part_num"] == "3001" and frames[0].meta["color_id"] == 4
    assert frames[1].meta["angle"] == 120.0 and frames[1].meta["recorded_at"].endswith("02+00:00")
    assert frames[1].meta["color_name"] == "Red" and frames[1].meta["part_name"] == "Brick 2 x 4"
    assert "part_num" not in frames[2].meta  # no row for it: no invented truth
    with _camera(tmp_path, manifest=False) as cam:
        assert "part_num" not in cam.capture().meta


def test_manifest_errors_name_the_row(tmp_path: Path) -> None:
    _manifest(tmp_path, [{"image_path": "a.png", "color_id": "red"}])
    with pytest.raises(DataFileError, match=r"line 2: color_id 'red' is not a number"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("file,part\nx.png,3001\n")
    with pytest.raises(DataFileError, match="no 'image_path' column"):
        read_manifest(tmp_path)


def test_missing_or_empty_folder_is_a_hardware_error(tmp_path: Path) -> None:
    with pytest.raises(HardwareError, match=r"nowhere.*does not exist"):
        _camera(tmp_path / "nowhere").open()
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(HardwareError, match="holds no images"):
        _camera(tmp_path).open()


def test_capture_before_open_and_reconnect(tmp_path: Path) -> None:
    cam = _camera(_folder(tmp_path))
    with pytest.raises(HardwareError, match="not open"):
        cam.capture()
    cam.open()
    cam.capture()
    cam.reconnect()  # a folder "device" reopened starts from its first image again
    assert Path(cam.capture().meta["path"]).name == "img_1.png"
    cam.close()
    assert not cam.is_open


def test_registry_and_config_errors(tmp_path: Path) -> None:
    assert available_cameras() == ["folder", "opencv", "picamera2", "sim"]
    with pytest.raises(ConfigError, match=r"camera type 'usb' is unknown; use one of: folder, opencv"):
        parse_camera_config({"type": "usb"})
    with pytest.raises(ConfigError, match="expected a mapping with a 'type' key"):
        parse_camera_config({"path": "x"})
    with pytest.raises(ConfigError, match=r"loops.*unknown key"):
        parse_camera_config({"type": "folder", "path": str(tmp_path), "loops": True})
    cfg = parse_camera_config({"type": "folder", "path": str(tmp_path)})
    assert isinstance(cfg, FolderConfig) and cfg.exclude == ["*_mask.png"]


def test_creating_one_backend_imports_no_other(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys; from edge.camera import create_camera; "
        f"create_camera({{'type': 'folder', 'path': {str(tmp_path)!r}}}); "
        "print(sorted(m for m in sys.modules if m.startswith(('edge.camera.', 'studio'))))"
    )
    repo = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo)
    assert out.stdout.strip() == "['edge.camera.base', 'edge.camera.folder']"
