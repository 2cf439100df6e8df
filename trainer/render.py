"""``trainer render``: labelled turntable images of LDraw parts, in the project's data set layouts.

Layouts:

- ``b200c``: a folder per part number of 64x64 crops, no colour label (as the B200C data set).
- ``legacy``: 224x224 crops with part and colour in ``manifest.csv``.
- ``real``: the rig's own capture layout: ``manifest.csv`` with the columns of :data:`REAL_COLUMNS` and
  ``raw/{part}/{color}/{part}_{color}_{angle}.jpg`` at the rig's full 640x480 frame.

Two renderers draw the same scenes: the fast software rasteriser (default) and, with
``--renderer pathtrace``, a Mitsuba 3 path tracer with denoising, logo studs, plastic, transparent
and metallic materials, soft lights and the grounds real rigs have (:mod:`studio.pathtrace`).

Every image has its exact mask beside it (``*_mask.png``). A run is split into one unit per part;
a finished unit leaves a record under ``.progress/``, so re-running skips it. A part that fails
(unknown part, unreadable file) is reported at the end and does not stop the run.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import cv2

from edge.errors import ConfigError, DataFileError
from edge.fileio import write_atomic
from trainer.render_worker import PRESETS, RENDERERS, PartResult, RenderJob, _iter_results, job_randomization

log = logging.getLogger(__name__)

LAYOUTS = ("b200c", "legacy", "real")
REAL_COLUMNS = ["image_path", "part_num", "color_id", "color_name", "part_name", "angle", "timestamp"]
LEGACY_COLUMNS = [
    "image_path",
    "mask_path",
    "part_num",
    "color_id",
    "color_name",
    "part_name",
    "capture",
    "view",
    "angle",
]
CREDIT = "Rendered from the LDraw.org Parts Library (CC BY)"


def _tilt_range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--camera-tilt {text!r} must be two numbers LOW,HIGH in degrees from vertical, e.g. 0,45"
        ) from None
    return low, high


def read_parts_list(path: Path, top: int | None = None) -> list[str]:
    """Part numbers from a text file, one per line; blank lines and ``#`` comments are ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataFileError(f"parts list {str(path)!r} cannot be read: {exc.strerror}") from None
    parts: list[str] = []
    for line in lines:
        name = line.split("#", 1)[0].strip()
        if name and name not in parts:
            parts.append(name)
    if top is not None:
        parts = parts[:top]
    if not parts:
        raise ConfigError(f"parts list {str(path)!r} holds no part numbers; write one part number per line")
    return parts


# ---- the run -----------------------------------------------------------------------------------


def run_render(job: RenderJob, parts: Sequence[str], workers: int = 1) -> list[PartResult]:
    """Render every part (in parallel when ``workers`` > 1), then write the manifest and report."""
    from tqdm import tqdm

    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: list[PartResult] = []
    with tqdm(total=len(parts), unit="part", desc=f"render {job.layout}") as bar:
        for result in _iter_results(job, parts, workers):
            results.append(result)
            bar.update(1)
            if result.error:
                bar.write(f"FAILED {result.part}: {result.error}")
    order = {part: i for i, part in enumerate(parts)}
    results.sort(key=lambda r: order[r.part])
    _write_manifest(job, out, results)
    _write_report(job, out, results, time.perf_counter() - started)
    return results


def _write_manifest(job: RenderJob, out: Path, results: list[PartResult]) -> None:
    rows = [r for res in results for r in res.records]
    if job.layout == "b200c":
        return  # the folder per part is the label
    columns = REAL_COLUMNS if job.layout == "real" else LEGACY_COLUMNS
    tmp = out / ".manifest.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out / "manifest.csv")


def _write_report(job: RenderJob, out: Path, results: list[PartResult], seconds: float) -> None:
    failed = {r.part: r.error for r in results if r.error}
    rendered = [r for r in results if not r.error and not r.skipped]
    report = {
        "job": asdict(job),
        "parts": len(results),
        "parts_rendered": len(rendered),
        "parts_skipped_as_done": sum(r.skipped for r in results),
        "parts_failed": len(failed),
        "images": sum(len(r.records) for r in results),
        "images_rendered_now": sum(len(r.records) for r in rendered),
        "seconds": round(seconds, 2),
        "failures": failed,
        "credit": CREDIT,
    }
    write_atomic(out / "render_report.json", json.dumps(report, indent=2))


def write_sample_sheet(
    out: Path, results: list[PartResult], limit: int, tile: int, footer: str = CREDIT
) -> Path | None:
    """A contact sheet of the first view of the first capture of up to ``limit`` parts."""
    from trainer.contact_sheet import contact_sheet, write_png

    images, labels = [], []
    for res in results:
        if res.error or not res.records or len(images) >= limit:
            continue
        bgr = cv2.imread(str(out / res.records[0]["image_path"]), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        labels.append(res.part)
    if not images:
        return None
    sheet = contact_sheet(images, labels, tile=tile, footer=footer)
    path = out / "contact_sheet.png"
    write_png(path, sheet)
    return path


# ---- command line --------------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="render labelled turntable images of LDraw parts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ldraw", required=True, type=Path, help="LDraw library folder (holds parts/ and p/)")
    p.add_argument("--parts", required=True, type=Path, help="text file of part numbers, one per line")
    p.add_argument("--top", type=int, help="only the first N parts of the list")
    p.add_argument(
        "--colors",
        default="30",
        help="N (the N most used solid colours) or a list of ids or names (default 30)",
    )
    p.add_argument("--per-part", type=int, default=4, help="captures (placements) per part (default 4)")
    p.add_argument("--views", type=int, default=4, help="turntable views per capture (default 4)")
    p.add_argument("--layout", required=True, choices=LAYOUTS)
    p.add_argument("--out", required=True, type=Path, help="output folder (re-running resumes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workers",
        type=int,
        help="processes (default: one per core with the rasteriser, 1 with the path tracer, "
        "which runs its own threads)",
    )
    p.add_argument(
        "--randomization",
        choices=PRESETS,
        default="train",
        help="domain randomisation preset: 'test' is stronger than 'train' (default train)",
    )
    p.add_argument(
        "--factors",
        default="",
        help="comma-separated randomisation factors to take from --factors-from instead "
        "(e.g. defocus,motion_blur; see studio.scene_config.FACTORS): a one-factor sensitivity study",
    )
    p.add_argument("--factors-from", choices=PRESETS, help="the preset --factors come from (e.g. test)")
    p.add_argument(
        "--camera-tilt",
        metavar="LOW,HIGH",
        help="draw the camera's tilt from vertical per placement in this range of degrees (0 = straight "
        "down, as over a belt); default the rig's fixed 30",
    )
    p.add_argument(
        "--contact-shading",
        action="store_true",
        help="rasteriser: darken the part's own shadow and its hollows (ambient occlusion), as a photo "
        "shows a brick's underside; default off",
    )
    p.add_argument("--supersample", type=int, default=2, choices=(1, 2, 3, 4))
    p.add_argument(
        "--renderer",
        choices=RENDERERS,
        default="raster",
        help="'raster': the fast software rasteriser; 'pathtrace': Mitsuba 3 with denoising, logo "
        "studs, real materials and grounds (pip install '.[studio]'; default raster)",
    )
    p.add_argument("--spp", type=int, default=16, help="path tracer: samples per pixel (default 16)")
    p.add_argument(
        "--backgrounds",
        type=Path,
        help="path tracer: a folder of photos of empty sorting rigs, added to the grounds parts lie on",
    )
    p.add_argument("--size", type=int, help="crop size for b200c/legacy (default 64 / 224)")
    p.add_argument("--sheet", type=int, default=100, help="parts on the contact sheet (0: none)")
    p.add_argument("--sheet-tile", type=int, default=96, help="contact sheet tile size in pixels")
    p.set_defaults(func=main)


def _check_path_tracer(job: RenderJob) -> None:
    """Fail before any worker starts when the path tracer cannot run or its settings are bad."""
    from studio.grounds import list_photos
    from studio.mitsuba_env import unavailable_reason

    reason = unavailable_reason(load=False)  # loading Dr.Jit here would not survive the workers' fork
    if reason is not None:
        raise ConfigError(f"--renderer pathtrace cannot run here: {reason}")
    if job.backgrounds is not None:
        list_photos(job.backgrounds)


def main(args: argparse.Namespace) -> int:
    from edge.colors import parse_color_list

    if args.workers is None:
        args.workers = 1 if args.renderer == "pathtrace" else os.cpu_count() or 1
    for name in ("per_part", "views", "workers", "spp"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)!r}")
    if not (args.ldraw / "parts").is_dir():
        raise DataFileError(
            f"--ldraw {str(args.ldraw)!r} is not an LDraw library (no parts/ folder); "
            "pass the folder that holds parts/ and p/"
        )
    parts = read_parts_list(args.parts, args.top)
    colors = parse_color_list(args.colors)
    job = RenderJob(
        ldraw=str(args.ldraw),
        layout=args.layout,
        out=str(args.out),
        per_part=args.per_part,
        views=args.views,
        color_ids=tuple(c.id for c in colors),
        seed=args.seed,
        randomization=args.randomization,
        supersample=args.supersample,
        size=args.size,
        factors=tuple(f.strip() for f in args.factors.split(",") if f.strip()),
        factors_from=args.factors_from,
        renderer=args.renderer,
        spp=args.spp,
        backgrounds=str(args.backgrounds) if args.backgrounds else None,
        camera_tilt=_tilt_range(args.camera_tilt),
        contact_shading=args.contact_shading,
    )
    job_randomization(job)  # a bad factor name fails here, before any worker starts
    if job.renderer == "pathtrace":
        _check_path_tracer(job)
    results = run_render(job, parts, workers=min(args.workers, len(parts)))
    failed = [r for r in results if r.error]
    if args.sheet:
        sheet = write_sample_sheet(args.out, results, args.sheet, args.sheet_tile)
        if sheet:
            log.info("contact sheet: %s", sheet)
    images = sum(len(r.records) for r in results)
    log.info(
        "%d parts, %d images in %s (%d skipped as already done), %d failed",
        len(results),
        images,
        args.out,
        sum(r.skipped for r in results),
        len(failed),
    )
    for r in failed:
        log.error("part %s failed: %s", r.part, r.error)
    return 1 if failed else 0
