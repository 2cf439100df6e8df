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
import sys
import tempfile
import time
import traceback
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
from tools.fuzz_inputs import (  # noqa: E402
    INTERESTING,
    _leaves,
    _mutate_bytes,
    config_seeds,
    image_seeds,
    mutate_config,
    mutate_image,
)

#: An error message longer than this is a finding (messages quote short previews).
MAX_MESSAGE = 10_000
#: A case slower than this (seconds) is a finding.
SLOW_S = 10.0


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


# --- configs --------------------------------------------------------------------------------------


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
