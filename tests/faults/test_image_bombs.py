"""Image bombs: a file's pixel count is read from its header and refused before anything is decoded.

Found by the hostile probe: a 50 kB PNG that decodes to 20000x20000 made ``edge classify`` take 43 s
and 7.6 GB, the folder camera crashed the daemon even with ``skip_corrupt: true``, and an 8000x6000
JPEG needed 725 MB. A spy on ``cv2.imdecode`` proves that no bomb reaches the decoder.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge import cli
from edge.camera.folder import FolderConfig, FolderSource
from edge.errors import ImageError
from edge.imagefile import DEFAULT_MAX_MEGAPIXELS, image_size, read_image
from tests.edge.test_settings import write_sim_setup


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A 1-bit greyscale PNG of ``width`` x ``height`` black pixels: tens of kB, gigabytes decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)
    raw = zlib.compress(row * height, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", raw) + _chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose frame header (SOF0) claims ``width`` x ``height``."""
    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """cv2.imdecode fails the test when given more than a small image's bytes' worth of pixels."""
    real = cv2.imdecode
    calls: list[int] = []

    def spy(buf: Any, flags: int) -> Any:
        calls.append(len(buf))
        out = real(buf, flags)
        if out is not None and out.shape[0] * out.shape[1] > 4_000_000:
            raise AssertionError(f"decoded a {out.shape[1]}x{out.shape[0]} bomb")
        return out

    monkeypatch.setattr(cv2, "imdecode", spy)
    return calls


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif", ".webp"])
@pytest.mark.parametrize(("w", "h"), [(1, 1), (37, 23), (300, 1000)])
def test_header_sizes_match_what_opencv_decodes(ext: str, w: int, h: int) -> None:
    image = np.random.default_rng(w * h).integers(0, 255, (h, w, 3), np.uint8)
    ok, buf = cv2.imencode(ext, image)
    assert ok
    _, width, height = image_size(buf.tobytes())
    assert (width, height) == (w, h)


def test_a_png_bomb_is_refused_before_decoding(tmp_path: Path, no_decoding: list[int]) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb())
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ImageError) as info:
        read_image(bomb)
    text = str(info.value)
    assert "20000x20000" in text and "400.0 megapixels" in text and str(bomb) in text
    assert f"{DEFAULT_MAX_MEGAPIXELS:g} megapixels" in text
    assert no_decoding == []


def test_a_large_jpeg_is_refused_and_the_limit_is_a_setting(tmp_path: Path, no_decoding: list[int]) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(jpeg_claiming(8000, 6000))
    with pytest.raises(ImageError, match=r"8000x6000 \(48\.0 megapixels\)"):
        read_image(big)
    assert no_decoding == []
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((1000, 1200, 3), np.uint8))
    assert read_image(small).shape == (1000, 1200, 3)
    with pytest.raises(ImageError, match=r"1200x1000 \(1\.2 megapixels\).*limit of 1 megapixels"):
        read_image(small, max_megapixels=1)


def test_the_folder_camera_skips_a_bomb(tmp_path: Path, no_decoding: list[int]) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.png"), np.full((40, 60, 3), 200, np.uint8))
    (frames / "b.png").write_bytes(png_bomb())
    (frames / "c.jpg").write_bytes(jpeg_claiming(8000, 6000))
    cv2.imwrite(str(frames / "d.png"), np.full((40, 60, 3), 100, np.uint8))
    with FolderSource(FolderConfig(path=str(frames), skip_corrupt=True)) as camera:
        shots = [camera.capture().meta["path"] for _ in range(2)]
    assert [Path(p).name for p in shots] == ["a.png", "d.png"]
    tiny = FolderConfig(path=str(frames), max_megapixels=0.001)
    limit = r"limit of 0\.001 megapixels \(camera\.max_megapixels\)"
    with FolderSource(tiny) as camera, pytest.raises(ImageError, match=limit):
        camera.capture()


def test_classify_refuses_a_bomb(
    tmp_path: Path,
    demo_library: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    no_decoding: list[int],
) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb())
    assert cli.main(["classify", str(bomb), "--config", str(config)]) != 0
    out = capsys.readouterr()
    assert "400.0 megapixels" in out.out + out.err + caplog.text
    assert no_decoding == []


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 4,  # no IHDR
        b"\xff\xd8\xff\xe0\x00\x10JFIF",  # no frame header
        b"\xff\xd8\xff\xda\x00\x02",  # a scan before any frame header
        b"BM" + b"\x00" * 10,
        b"II*\x00\xff\xff\xff\x7f",  # IFD offset past the end
        b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        b"GIF89a\x01\x00\x01\x00",  # not a format the reader takes
        b"P6\n20000 20000\n255\n",  # PPM: OpenCV would allocate it, the reader does not take it
    ],
)
def test_malformed_headers_are_image_errors(data: bytes) -> None:
    with pytest.raises(ImageError):
        image_size(data)


def test_what_is_not_a_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="is a directory"):
        read_image(tmp_path)
    with pytest.raises(ImageError, match="not a regular file"):
        read_image(Path("/dev/zero"))
    with pytest.raises(ImageError, match="does not exist"):
        read_image(tmp_path / "nope.png")
