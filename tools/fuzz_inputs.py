"""The inputs tools/fuzz.py feeds the daemon's readers: seed files and seeded mutations of them.

The seeds are the shipped configs (comments dropped) and small images in every format the image
reader takes; the mutations are byte flips, cuts and splices, YAML tokens, line and structural edits
of a parsed config, a header's width and height and repeated or dropped PNG chunks. Each is a
function of a ``random.Random``, so a case is reproducible from its seed; nothing here runs the
daemon's code (``tools/fuzz.py`` runs the cases and reports them).
"""

from __future__ import annotations

import json
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]

# Text dropped into configs at random: YAML's sharp edges and values settings should refuse.
YAML_TOKENS = [
    "&a ", "*a", "&x [1, 2]", "<<: *a", "!!python/object/apply:os.system ['true']", "!!binary AAAA",
    "!!set {a, b}", "!!omap [a: 1]", "!!timestamp 2024-13-45", "? [1, 2]\n: x", "{", "}", "[", "]",
    "- ", ": ", ":", "\t", "\x00", "\ufeff", "---\n", "...\n", "%YAML 1.2\n---\n", "'", '"', "|\n  x",
    ">-\n  y", "#", "~", "null", ".nan", ".inf", "-.inf", "1e999", "0x7fffffffffffffff", "0o777",
    "1_000", "9" * 5000, "2024-02-30", "yes", "No", "on", "=", "<<", "[" * 60 + "]" * 60,
    "{a: " * 60 + "1" + "}" * 60, "x" * 100_000, "../../../../etc/passwd", "/dev/zero", "\\", "\r",
]  # fmt: skip
INTERESTING: list[Any] = [
    0, -1, 1, 2, 2**31, 2**63, -(2**63), 10**30, 1e308, -1e308, float("nan"), float("inf"),
    float("-inf"), 0.5, "", " ", "x" * 5000, "0", "1e3", "none", "../x", "/dev/zero", "/etc/passwd",
    True, False, None, [], {}, [1, 2, 3], {"type": "sim"}, {"type": "nope"}, ["a"] * 1000,
    {"k": {"k": {"k": {"k": 1}}}}, [[[[[[[[1]]]]]]]], "Red", "reject", 4, "3001", "picamera2",
]  # fmt: skip
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZES = [0, 1, 2, 7, 255, 256, 4095, 4096, 4097, 16383, 16384, 20000, 65535, 65536, 2**24, 2**31 - 1]


# --- byte mutations -------------------------------------------------------------------------------


def _mutate_bytes(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3))):
        op = rng.randrange(8)
        n = len(buf)
        if op == 0 and n:  # flip bits
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # random bytes over a span
            i = rng.randrange(n)
            buf[i : i + rng.randint(1, 16)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 2:  # cut short
            del buf[rng.randint(0, n) :]
        elif op == 3 and n:  # delete a span
            i = rng.randrange(n)
            del buf[i : i + rng.randint(1, max(1, n // 4))]
        elif op == 4 and n:  # repeat a span
            i = rng.randrange(n)
            span = buf[i : i + rng.randint(1, max(1, n // 4))]
            buf[i:i] = span * rng.randint(1, 4)
        elif op == 5:  # insert random bytes
            i = rng.randint(0, n)
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif op == 6 and others:  # splice with another seed
            other = rng.choice(others)
            buf = buf[: rng.randint(0, n)] + other[rng.randint(0, len(other)) :]
        elif op == 7:  # append junk
            buf += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return bytes(buf)


# --- configs --------------------------------------------------------------------------------------


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaves(v, (*path, i))
    return out


def _structural(rng: random.Random, text: str) -> str:
    """Parse a seed config, change one place (value, key, deletion), dump it again."""
    data = yaml.safe_load(text)
    paths = [p for p in _leaves(data) if p]
    if not paths:
        return text
    path = rng.choice(paths)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    op = rng.randrange(4)
    value = rng.choice(INTERESTING)
    if op == 0:
        parent[key] = value
    elif op == 1 and isinstance(parent, dict):
        parent[rng.choice(["bogus", "type", "Type", "x" * 300, 7, None, ""])] = value
    elif op == 2:
        del parent[key]
    else:
        parent[key] = [parent[key]] * rng.randint(2, 5) if rng.random() < 0.5 else {"nested": parent[key]}
    try:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1 << 20)
    except (yaml.YAMLError, ValueError, OverflowError):
        return text


def mutate_config(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One mutated config file's bytes."""
    seed = rng.choice(seeds)
    op = rng.randrange(5)
    if op == 0:
        return _mutate_bytes(rng, seed, seeds)
    text = seed.decode("utf-8")
    if op == 1:
        return _structural(rng, text).encode("utf-8")
    lines = text.splitlines(keepends=True)
    if op == 2:  # YAML tokens
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(lines))
            col = rng.randint(0, len(lines[i]))
            lines[i] = lines[i][:col] + rng.choice(YAML_TOKENS) + lines[i][col:]
    elif op == 3:  # line edits: repeat, drop, swap, re-indent
        for _ in range(rng.randint(1, 4)):
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            edit = rng.randrange(4)
            if edit == 0:
                lines.insert(j, lines[i])
            elif edit == 1 and len(lines) > 1:
                del lines[i]
            elif edit == 2:
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines[i] = " " * rng.choice((1, 2, 3, 4, 8)) + lines[i].lstrip(" ")
    else:  # a value after ': ' replaced
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(lines))
            head, sep, _ = lines[i].partition(": ")
            if sep:
                lines[i] = f"{head}: {rng.choice(YAML_TOKENS + [json.dumps(v) for v in INTERESTING[:20]])}\n"
    return "".join(lines).encode("utf-8")


def config_seeds() -> list[bytes]:
    """The shipped configs, comments dropped (a mutation should hit settings, not prose)."""
    seeds = []
    for name in ("sim.yaml", "edge.yaml"):
        data = yaml.safe_load((REPO / "config" / name).read_text(encoding="utf-8"))
        seeds.append(yaml.safe_dump(data, sort_keys=False).encode("utf-8"))
    return seeds


# --- images ---------------------------------------------------------------------------------------


def image_seeds() -> list[bytes]:
    """Small images in every format the reader takes: colour, grey, alpha, 16-bit, progressive."""
    rng = np.random.default_rng(7)
    h, w = 24, 32
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.dstack([xx * 8, yy * 10, (xx + yy) * 4]).astype(np.uint8)
    rgb[6:18, 10:22] = (200, 30, 30)
    noisy = rng.integers(0, 255, (h, w, 3), np.uint8)
    out = []
    for ext, image, params in (
        (".png", rgb, []),
        (".png", rgb[..., 0], []),
        (".png", np.dstack([rgb, xx.astype(np.uint8)]), []),
        (".png", (rgb.astype(np.uint16) * 257), []),
        (".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 80]),
        (".jpg", noisy, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".jpg", rgb[..., 1], []),
        (".bmp", rgb, []),
        (".tif", rgb, []),
        (".webp", rgb, [cv2.IMWRITE_WEBP_QUALITY, 80]),
        (".webp", noisy, [cv2.IMWRITE_WEBP_QUALITY, 101]),  # lossless
    ):
        ok, buf = cv2.imencode(ext, image, params)
        if ok:
            out.append(buf.tobytes())
    return out


def _png_chunks(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, type) of each PNG chunk while the lengths stay inside the file."""
    chunks, i = [], 8
    while i + 8 <= len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        chunks.append((i, data[i + 4 : i + 8]))
        i += 12 + length
    return chunks


def _set_size(rng: random.Random, data: bytes) -> bytes:
    """Rewrite the width and height a header claims (with a valid CRC for PNG)."""
    buf = bytearray(data)
    w, h = rng.choice(SIZES), rng.choice(SIZES)
    if buf.startswith(PNG_SIGNATURE) and len(buf) >= 33:
        struct.pack_into(">II", buf, 16, w, h)
        struct.pack_into(">I", buf, 29, zlib.crc32(bytes(buf[12:29])))
    elif buf[:2] == b"\xff\xd8":
        for marker in (b"\xff\xc0", b"\xff\xc2"):
            at = buf.find(marker)
            if at > 0 and at + 9 <= len(buf):
                struct.pack_into(">HH", buf, at + 5, h & 0xFFFF, w & 0xFFFF)
    elif buf[:2] == b"BM" and len(buf) >= 26:
        struct.pack_into("<ii", buf, 18, w & 0x7FFFFFFF, (h & 0x7FFFFFFF) * rng.choice((1, -1)))
    elif buf[:4] == b"RIFF" and len(buf) >= 30:
        struct.pack_into("<HH", buf, 26, w & 0x3FFF, h & 0x3FFF)
    return bytes(buf)


def mutate_image(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One mutated image file's bytes."""
    data = rng.choice(seeds)
    op = rng.randrange(4)
    if op == 0:
        return _set_size(rng, data)
    if op == 1 and data.startswith(PNG_SIGNATURE):  # repeat or drop a chunk
        chunks = _png_chunks(data)
        if len(chunks) > 2:
            start, _ = rng.choice(chunks[1:-1])
            (length,) = struct.unpack(">I", data[start : start + 4])
            chunk = data[start : start + 12 + length]
            if rng.random() < 0.5:
                return data[:start] + chunk * rng.randint(2, 50) + data[start + 12 + length :]
            return data[:start] + data[start + 12 + length :]
    if op == 2:
        return _mutate_bytes(rng, _set_size(rng, data), seeds)
    return _mutate_bytes(rng, data, seeds)
