"""Seeded fuzzing of the daemon's inputs: config files, image files and model manifests.

Each case mutates a seed input (byte flips, cuts, splices, YAML tokens such as anchors, aliases,
tags and deep nesting, header fields such as a PNG's width and height, structural edits of the
parsed config) and feeds it to the reader the daemon uses:

* configs: :func:`edge.settings.load_edge_config` (and :func:`edge.segment.hsv.read_calibration`),
* images: :func:`edge.imagefile.read_image`, then, when it decodes, recognition through a
  :class:`~edge.pipeline.Pipeline` (``edge classify``'s path), and at the end the folder camera
  replays every mutated image with ``skip_corrupt``,
* manifests: :func:`edge.manifest.load_manifest`.

An outcome is ``ok`` or a refusal with one of the project's :class:`~edge.errors.EdgeError`
subclasses; anything else (a traceback), an error message over :data:`MAX_MESSAGE` characters, or
a case slower than :data:`SLOW_S` is a finding. Case ``i`` of seed ``s`` is reproducible on its own
(``random.Random(f"{s}:{kind}:{i}")``); ``--keep DIR`` saves the inputs of findings.

    python tools/fuzz.py --configs 10000 --images 10000 --manifests 2000 --seed 0 \\
        --markdown benchmarks/results/fuzz.md

``tests/faults/test_fuzz.py`` runs a few hundred cases of each in CI.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import struct
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from edge.errors import EdgeError  # noqa: E402

#: An error message longer than this is a finding (messages quote short previews).
MAX_MESSAGE = 10_000
#: A case slower than this (seconds) is a finding.
SLOW_S = 10.0

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


@dataclass
class Finding:
    """An input that crashed, gave a huge message or was slow."""

    kind: str
    index: int
    what: str
    detail: str
    data: bytes = field(repr=False, default=b"")


@dataclass
class Report:
    """Outcome counts, findings and timings of one fuzz run of one kind."""

    kind: str
    cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    longest_message: int = 0

    def line(self) -> str:
        """One summary line."""
        t = np.array(self.seconds or [0.0]) * 1000
        top = ", ".join(f"{k} {v}" for k, v in self.outcomes.most_common(6))
        return (
            f"{self.kind}: {self.cases} cases, {len(self.findings)} finding(s); {top}; "
            f"{np.percentile(t, 50):.2f} ms p50, {t.max():.0f} ms max; longest message {self.longest_message}"
        )


def _run_case(report: Report, index: int, data: bytes, target: Callable[[], Any]) -> Any:
    """Run ``target`` and file its outcome; returns its result (None when it raised)."""
    report.cases += 1
    start = time.perf_counter()
    result = None
    try:
        result = target()
        report.outcomes["ok"] += 1
    except EdgeError as exc:
        report.outcomes[type(exc).__name__] += 1
        n = len(str(exc))
        report.longest_message = max(report.longest_message, n)
        if n > MAX_MESSAGE:
            report.findings.append(Finding(report.kind, index, "long message", f"{n} characters", data))
    except Exception as exc:  # the point of the fuzz: anything but EdgeError is a finding
        report.outcomes["CRASH " + type(exc).__name__] += 1
        detail = "".join(traceback.format_exception(exc)[-6:])
        report.findings.append(Finding(report.kind, index, f"crash {type(exc).__name__}", detail, data))
    elapsed = time.perf_counter() - start
    report.seconds.append(elapsed)
    if elapsed > SLOW_S:
        report.findings.append(Finding(report.kind, index, "slow", f"{elapsed:.1f} s", data))
    return result


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


def fuzz_configs(count: int, seed: int, folder: Path) -> Report:
    """Load ``count`` mutated configs (and every 10th as a calibration file)."""
    from edge.calibration_file import read_calibration
    from edge.settings import load_edge_config

    report = Report("configs")
    seeds = config_seeds()
    path = folder / "edge.yaml"
    for i in range(count):
        rng = random.Random(f"{seed}:configs:{i}")
        data = mutate_config(rng, seeds)
        path.write_bytes(data)
        if i % 10 == 9:
            _run_case(report, i, data, lambda: read_calibration(path))
        else:
            _run_case(report, i, data, lambda: load_edge_config(path))
    return report


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


def fuzz_images(
    count: int, seed: int, folder: Path, classify: Callable[[Path], Any] | None = None
) -> tuple[Report, Report]:
    """Read ``count`` mutated images (recognising those that decode), then replay them all.

    ``classify(path)`` is ``edge classify``'s path for one file (a Pipeline's classify_images);
    a row with an error is a refusal. Returns the per-file report and the folder camera's.
    """
    from edge.camera.folder import FolderConfig, FolderSource
    from edge.imagefile import read_image

    report = Report("images")
    seeds = image_seeds()
    exts = {b"\x89P": ".png", b"\xff\xd8": ".jpg", b"BM": ".bmp", b"II": ".tif", b"RI": ".webp"}
    images = folder / "images"
    images.mkdir(exist_ok=True)
    for i in range(count):
        rng = random.Random(f"{seed}:images:{i}")
        data = mutate_image(rng, seeds)
        path = images / f"{i:06d}{exts.get(data[:2], '.png')}"
        path.write_bytes(data)
        if _run_case(report, i, data, lambda p=path: read_image(p)) is not None and classify is not None:
            _run_case(report, i, data, lambda p=path, c=classify: c(p))
    camera = Report("folder camera")

    def replay() -> int:
        frames = 0
        with FolderSource(FolderConfig(path=str(images), skip_corrupt=True, manifest=False)) as cam:
            while True:
                try:
                    cam.capture()
                except EdgeError as exc:
                    if "all" in str(exc) and "replayed" in str(exc):
                        return frames
                    raise
                frames += 1

    frames = _run_case(camera, 0, b"", replay)
    if frames is not None:  # one run over the whole folder: say what it replayed
        camera.outcomes[f"ok: {frames} of {count} files replayed, the rest skipped"] = camera.outcomes.pop(
            "ok"
        )
    return report, camera


def pipeline_classifier(config: Path) -> tuple[Callable[[Path], Any], Callable[[], None]]:
    """``edge classify``'s per-file path for ``config`` and a function that closes it."""
    from edge.errors import ImageError, ModelError
    from edge.pipeline import Pipeline
    from edge.settings import load_edge_config

    pipeline = Pipeline.from_config(load_edge_config(config), with_camera=False)

    def classify(path: Path) -> Any:
        (row,) = pipeline.classify_images([path])
        if row.error is not None:  # classify's per-image error row: refused, not crashed
            raise (ImageError if "image" in row.error else ModelError)(row.error)
        return row

    return classify, pipeline.close


# --- manifests ------------------------------------------------------------------------------------


def fuzz_manifests(count: int, seed: int, folder: Path) -> Report:
    """Load ``count`` mutated copies of the default model set's manifest."""
    from edge.manifest import load_manifest

    report = Report("manifests")
    original = (REPO / "models" / "default" / "manifest.json").read_bytes()
    data = json.loads(original)
    seeds = [original, json.dumps(data).encode()]
    path = folder / "manifest.json"
    for i in range(count):
        rng = random.Random(f"{seed}:manifests:{i}")
        if rng.random() < 0.5:
            mutated = _mutate_bytes(rng, rng.choice(seeds), seeds)
        else:
            doc = json.loads(original)
            paths = [p for p in _leaves(doc) if p]
            where = rng.choice(paths)
            parent = doc
            for key in where[:-1]:
                parent = parent[key]
            parent[where[-1]] = rng.choice(INTERESTING)
            mutated = json.dumps(doc, allow_nan=True).encode()
        path.write_bytes(mutated)
        _run_case(report, i, mutated, lambda: load_manifest(folder))
    return report


# --- the script -----------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def markdown(reports: list[Report], args: argparse.Namespace, seconds: float) -> str:
    """The results as the Markdown of benchmarks/results/fuzz.md."""
    import os
    import platform

    config = args.classify_config
    if config is not None and config.resolve().is_relative_to(REPO):
        config = config.resolve().relative_to(REPO)
    recognition = f"images that decode recognised with `{config}`" if config else "no recognition"
    lines = [
        "# Fuzzing the daemon's inputs",
        "",
        f"`python tools/fuzz.py --configs {args.configs} --images {args.images} --manifests {args.manifests} "
        f"--seed {args.seed}`: {seconds:.0f} s, peak {peak_rss_mb():.0f} MB resident, {recognition}; "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"OpenCV {cv2.__version__}, PyYAML {yaml.__version__}.",
        "",
        "A finding is an exception other than the project's EdgeError subclasses, an error message over "
        f"{MAX_MESSAGE} characters, or a case slower than {SLOW_S:g} s. Times are per case.",
        "",
        "Images count twice when they decode: read, then recognised (`edge classify`'s path).",
        "",
        "| input | cases | findings | outcomes | p50 ms | max ms | longest message |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        t = np.array(r.seconds or [0.0]) * 1000
        outcomes = ", ".join(k if k.startswith("ok: ") else f"{k} {v}" for k, v in r.outcomes.most_common())
        lines.append(
            f"| {r.kind} | {r.cases} | {len(r.findings)} | {outcomes} | {np.percentile(t, 50):.2f} | "
            f"{t.max():.0f} | {r.longest_message} |"
        )
    findings = [f for r in reports for f in r.findings]
    lines += ["", f"Findings: {len(findings)}."]
    for f in findings[:20]:
        lines += ["", f"- {f.kind} case {f.index}: {f.what}", "", "```", f.detail.strip()[:2000], "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the fuzz; exit 1 when anything was found."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--manifests", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--classify-config",
        default=str(REPO / "config" / "sim.yaml"),
        help="recognise the images that decode with this config's pipeline ('' for none)",
    )
    parser.add_argument("--keep", type=Path, help="save the inputs of findings in this folder")
    parser.add_argument("--markdown", type=Path, help="write the results as Markdown to this file")
    args = parser.parse_args(argv)
    args.classify_config = Path(args.classify_config) if args.classify_config else None
    import logging

    logging.disable(logging.WARNING)  # the folder camera logs each skipped file
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edge-fuzz-") as tmp:
        folder = Path(tmp)
        classify, close = pipeline_classifier(args.classify_config) if args.classify_config else (None, None)
        try:
            reports = [fuzz_configs(args.configs, args.seed, folder)]
            print(reports[-1].line(), flush=True)
            reports += list(fuzz_images(args.images, args.seed, folder, classify))
            print(reports[-2].line(), reports[-1].line(), sep="\n", flush=True)
            reports.append(fuzz_manifests(args.manifests, args.seed, folder))
            print(reports[-1].line(), flush=True)
        finally:
            if close is not None:
                close()
    seconds = time.perf_counter() - start
    findings = [f for r in reports for f in r.findings]
    for f in findings[:20]:
        print(f"FINDING {f.kind} {f.index}: {f.what}\n{f.detail}")
    if args.keep is not None and findings:
        args.keep.mkdir(parents=True, exist_ok=True)
        for f in findings:
            (args.keep / f"{f.kind.replace(' ', '_')}_{f.index}").write_bytes(f.data)
    print(f"{sum(r.cases for r in reports)} cases in {seconds:.0f} s, {len(findings)} finding(s), "
          f"peak {peak_rss_mb():.0f} MB")  # fmt: skip
    if args.markdown is not None:
        args.markdown.write_text(markdown(reports, args, seconds), encoding="utf-8")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
