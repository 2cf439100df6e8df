"""Image files read safely: the one reader for ``edge classify``, the folder camera and replays.

:func:`read_image` refuses, as :class:`~edge.errors.ImageError` naming the file, anything that is not
a regular file, a file cut short (OpenCV decodes a truncated JPEG with a grey bottom and only a
warning), and an image whose header claims more than ``max_megapixels``: the width and height are
parsed from the header (:func:`image_size`) *before* OpenCV decodes anything, so a 50 kB PNG that
would decode to 20000x20000 (1.2 GB, 40 s) costs nothing.

The default limit, :data:`DEFAULT_MAX_MEGAPIXELS` (16 MP), takes every Raspberry Pi camera's full
resolution (HQ camera 12.3 MP, Camera Module 3 11.9 MP) and a 4096x4096 frame. One image's trip
through the pipeline (file bytes, BGR and RGB copies, segmentation masks, crops) costs about 12 bytes
a pixel: a 4000x4000 JPEG adds 190 MB to ``edge classify``'s peak (150 MB for a small one), within
the daemon's 512 MB memory budget, where an 8000x6000 photo (48 MP) needed 725 MB. Raise the limit
with ``camera.max_megapixels`` (folder camera) or ``edge classify --max-megapixels``.

Formats: PNG, JPEG, BMP, TIFF and WebP, the ones whose headers are parsed here; anything else
(GIF, PPM, OpenEXR, ...) is refused rather than handed to a decoder whose size is not checked.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import ImageError

if TYPE_CHECKING:  # numpy and OpenCV load in read_image: the CLI imports this module for its default
    import numpy as np

#: Largest image read by default, in megapixels (see the module docstring).
DEFAULT_MAX_MEGAPIXELS = 16.0
#: Formats :func:`image_size` parses.
FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WebP")
# A file may hold at most this many bytes per allowed pixel (uncompressed 16-bit RGBA), plus room for
# metadata (EXIF, ICC profiles), before it is refused without being read.
_FILE_BYTES_PER_PIXEL = 8
_FILE_SLACK_BYTES = 16 << 20
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
# JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic).
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def image_size(data: bytes) -> tuple[str, int, int]:
    """``(format, width, height)`` from an image file's header, without decoding it.

    Raises :class:`ImageError` (without a file name: callers add it) for a format not in
    :data:`FORMATS` or a header that is cut short or malformed.
    """
    head = bytes(data[:16])
    if head.startswith(_PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError("PNG header has no IHDR chunk first (corrupt file)")
        width, height = struct.unpack(">II", data[16:24])
        return _checked("PNG", width, height)
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg_size(data)
    if head.startswith(b"BM"):
        if len(data) < 26:
            raise ImageError("BMP header is cut short")
        (dib,) = struct.unpack("<I", data[14:18])
        if dib == 12:
            width, height = struct.unpack("<HH", data[18:22])
        else:
            width, height = struct.unpack("<ii", data[18:26])
        return _checked("BMP", width, abs(height))
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(data)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_size(data)
    raise ImageError(f"not a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} image (starts with {head[:8]!r})")


def _checked(fmt: str, width: int, height: int) -> tuple[str, int, int]:
    if width <= 0 or height <= 0:
        raise ImageError(f"{fmt} header gives an empty size {width}x{height} (corrupt file)")
    return fmt, width, height


def _jpeg_size(data: bytes) -> tuple[str, int, int]:
    """The size in the first start-of-frame segment, walking the segments from SOI."""
    i, n = 2, len(data)
    while i < n:
        if data[i] != 0xFF:
            raise ImageError(f"JPEG header is malformed (no marker at byte {i})")
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            break
        marker = data[i]
        if marker in _JPEG_STANDALONE:
            i += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, or a scan, before any frame header
            raise ImageError("JPEG has no frame header before its image data (corrupt file)")
        if i + 3 > n:
            break
        (length,) = struct.unpack(">H", data[i + 1 : i + 3])
        if marker in _JPEG_SOF:
            if length < 8 or i + 8 > n:
                break
            height, width = struct.unpack(">HH", data[i + 4 : i + 8])
            if height == 0:
                raise ImageError("JPEG frame header leaves the height to a later DNL marker (not supported)")
            return _checked("JPEG", width, height)
        if length < 2:
            raise ImageError(f"JPEG segment at byte {i} has a bad length {length}")
        i += 1 + length
    raise ImageError("JPEG header is cut short before its frame header")


def _tiff_size(data: bytes) -> tuple[str, int, int]:
    """ImageWidth (256) and ImageLength (257) from the first IFD of a classic TIFF."""
    end = "<" if data[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(end + "I", data[4:8])
        (count,) = struct.unpack(end + "H", data[ifd : ifd + 2])
        found: dict[int, int] = {}
        for k in range(count):
            at = ifd + 2 + 12 * k
            tag, kind = struct.unpack(end + "HH", data[at : at + 4])
            if tag in (256, 257):
                if kind == 3:  # SHORT
                    (found[tag],) = struct.unpack(end + "H", data[at + 8 : at + 10])
                elif kind == 4:  # LONG
                    (found[tag],) = struct.unpack(end + "I", data[at + 8 : at + 12])
                else:
                    raise ImageError(f"TIFF size tag {tag} has field type {kind}, not SHORT or LONG")
    except struct.error:
        raise ImageError("TIFF header is cut short or its first IFD lies outside the file") from None
    if 256 not in found or 257 not in found:
        raise ImageError("TIFF first IFD lacks ImageWidth/ImageLength (corrupt file)")
    return _checked("TIFF", found[256], found[257])


def _webp_size(data: bytes) -> tuple[str, int, int]:
    chunk = bytes(data[12:16])
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return _checked("WebP", width, height)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return _checked("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return _checked("WebP", width, height)
    raise ImageError("WebP header is cut short or malformed")


def _truncation(data: bytes) -> str:
    """Why ``data`` looks cut short, or '' (formats without an end marker always pass)."""
    if data[:2] == b"\xff\xd8" and not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
        return "no JPEG end-of-image marker"
    if data[:8] == _PNG_SIGNATURE and not data.rstrip(b"\x00").endswith(_PNG_END):
        return "no PNG IEND chunk"
    return ""


def _read_file(path: Path, cap: int) -> bytes:
    """The bytes of a regular file of at most ``cap`` bytes, or ImageError saying what it is instead."""
    name = repr(str(path))
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused as not a regular file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ImageError(f"image {name} does not exist; pass an existing image file") from None
    except OSError as exc:
        raise ImageError(f"image {name} cannot be read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ImageError(f"image {name} is a directory; pass the image files in it")
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(f"image {name} is not a regular file (a device, pipe or socket); pass a file")
        if info.st_size > cap:
            raise ImageError(
                f"image {name} is {info.st_size / 2**20:.0f} MB, larger than any image within the size limit"
            )
        chunks, left = [], info.st_size + 1  # one byte more: a file that grew is noticed
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise ImageError(f"image {name} cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > cap:
        raise ImageError(f"image {name} grew past the size limit while being read")
    return data


def read_image(
    path: str | Path, *, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS, setting: str = ""
) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, or :class:`ImageError` naming the file.

    The size is checked from the header before decoding (see the module docstring); ``setting``
    names the setting that raises ``max_megapixels`` in the message (e.g. ``camera.max_megapixels``).
    """
    import cv2  # core dependencies, imported here so the header parser stays light
    import numpy as np

    path = Path(path)
    name = repr(str(path))
    max_pixels = max_megapixels * 1e6
    data = _read_file(path, int(max_pixels * _FILE_BYTES_PER_PIXEL) + _FILE_SLACK_BYTES)
    if not data:
        raise ImageError(f"image {name} is empty (0 bytes); re-capture or delete it")
    try:
        fmt, width, height = image_size(data)
    except ImageError as exc:
        raise ImageError(f"image {name}: {exc}; delete it or convert it to PNG or JPEG") from None
    if width * height > max_pixels:
        where = f" ({setting})" if setting else ""
        raise ImageError(
            f"image {name} is {width}x{height} ({width * height / 1e6:.1f} megapixels), over the limit of "
            f"{max_megapixels:g} megapixels{where}; scale it down, or raise the limit if the memory "
            "budget allows (about 12 bytes a pixel)"
        )
    problem = _truncation(data)
    if problem:
        raise ImageError(f"image {name} is truncated ({problem}); re-capture or delete it")
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except (cv2.error, MemoryError) as exc:
        raise ImageError(f"image {name} cannot be decoded ({type(exc).__name__}); delete it") from None
    if bgr is None or bgr.size == 0:
        raise ImageError(f"image {name} cannot be decoded (corrupt {fmt} file); delete it")
    if bgr.shape[0] * bgr.shape[1] != width * height:  # the decoder read another size than the header's
        raise ImageError(
            f"image {name} decodes to {bgr.shape[1]}x{bgr.shape[0]} but its {fmt} header says "
            f"{width}x{height} (corrupt file); delete it"
        )
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
