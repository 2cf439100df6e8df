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
import multiprocessing
import os
import time
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import ConfigError, DataFileError
from edge.fileio import write_atomic

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
# A fixed epoch for the synthetic capture timestamps keeps re-runs byte-identical.
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RenderJob:
    """Everything a worker needs to render one part (plain data: it crosses process boundaries)."""

    ldraw: str
    layout: str
    out: str
    per_part: int
    views: int
    color_ids: tuple[int, ...]
    seed: int
    randomization: str
    supersample: int
    size: int | None = None
    #: Factors taken from the preset ``factors_from`` instead of ``randomization`` (a one-factor study).
    factors: tuple[str, ...] = ()
    factors_from: str | None = None
    #: 'raster' (studio.render) or 'pathtrace' (studio.pathtrace: Mitsuba 3, logo studs).
    renderer: str = "raster"
    spp: int = 16
    backgrounds: str | None = None
    #: Camera tilt from vertical drawn per placement in this range (degrees); None: the rig's own.
    camera_tilt: tuple[float, float] | None = None
    #: Rasteriser: the part's own shadow and ambient occlusion (studio.scene_config.ContactShadingFactor).
    contact_shading: bool = False


@dataclass
class PartResult:
    part: str
    records: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    skipped: bool = False


PRESETS = ("off", "train", "test")
RENDERERS = ("raster", "pathtrace")


def job_randomization(job: RenderJob) -> Any:
    """The job's :class:`~studio.scene_config.Randomization`: its preset, with ``job.factors``
    taken from the preset ``job.factors_from`` (e.g. 'train' with blur at 'test' strength)."""
    from studio.scene_config import FACTORS, Randomization

    def preset(name: str) -> Randomization:
        if name not in PRESETS:
            raise ConfigError(f"randomization preset {name!r} is unknown; use one of {', '.join(PRESETS)}")
        return getattr(Randomization, name)()

    out = preset(job.randomization)
    unknown = [f for f in job.factors if f not in FACTORS]
    if unknown:
        raise ConfigError(f"randomization factor(s) {unknown} unknown; the factors are {', '.join(FACTORS)}")
    if job.factors:
        if job.factors_from is None:
            raise ConfigError("factors were named without a preset to take them from; pass --factors-from")
        source = preset(job.factors_from)
        for name in job.factors:
            setattr(out, name, getattr(source, name))
    if job.camera_tilt is not None:
        from pydantic import ValidationError

        from studio.scene_config import CameraTiltFactor

        try:
            out.camera_tilt = CameraTiltFactor(enabled=True, tilt_deg=job.camera_tilt)
        except ValidationError:
            raise ConfigError(
                f"--camera-tilt {job.camera_tilt[0]:g},{job.camera_tilt[1]:g} must be LOW,HIGH degrees "
                "from vertical within 0..70 (0 = straight down), e.g. 0,45"
            ) from None
    if job.contact_shading:
        if job.renderer == "pathtrace":
            raise ConfigError(
                "--contact-shading is for the rasteriser; the path tracer shades contact and cavities "
                "by nature: drop the option or use --renderer raster"
            )
        out.contact_shading.enabled = True
    return out


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


def stable_seed(*keys: object) -> int:
    """A seed that depends only on its keys (Python's ``hash`` is salted per process)."""
    return zlib.crc32("/".join(map(str, keys)).encode())


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


# ---- per-process worker state ---------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _worker_init(job: RenderJob) -> None:
    cv2.setNumThreads(1)
    from studio.ldconfig import read_ldconfig
    from studio.ldraw import LDrawLibrary
    from studio.scene import RigGeometry, SceneRenderer

    pathtrace = job.renderer == "pathtrace"
    library = LDrawLibrary(job.ldraw, logo_studs=pathtrace)  # logo studs: what a photo shows
    ldconfig_path = Path(job.ldraw) / "LDConfig.ldr"
    ldconfig = read_ldconfig(ldconfig_path) if ldconfig_path.is_file() else None
    randomization = job_randomization(job)
    scene: SceneRenderer
    if pathtrace:
        from studio.pathtrace import PathTracedSceneRenderer, PathTraceSettings

        settings = PathTraceSettings(spp=job.spp).with_backgrounds(job.backgrounds)
        scene = PathTracedSceneRenderer(
            RigGeometry(), randomization, ldconfig=ldconfig, supersample=job.supersample, settings=settings
        )
    else:
        scene = SceneRenderer(RigGeometry(), randomization, ldconfig=ldconfig, supersample=job.supersample)
    _STATE.update(job=job, library=library, scene=scene)


def _render_part(part: str) -> PartResult:
    job: RenderJob = _STATE["job"]
    out = Path(job.out)
    progress = out / ".progress" / f"{_safe(part)}.json"
    done = _done_records(progress, job, out)
    kept = [r for r in done if r["capture"] < job.per_part]
    if len({r["capture"] for r in kept}) == job.per_part:
        return PartResult(part, kept, skipped=True)
    try:
        # Captures are rendered from their own seeds: a run with more captures per part (or one
        # stopped mid-part) renders only the captures its records lack.
        start = 1 + max((r["capture"] for r in kept), default=-1)
        records = kept + _render_part_images(part, job, out, start=start)
    except Exception as exc:  # reported per part at the end; one bad part must not stop the run
        log.debug("part %s failed", part, exc_info=True)
        return PartResult(part, error=f"{type(exc).__name__}: {exc}")
    write_atomic(progress, json.dumps({"part": part, "job": _job_key(job), "records": records}))
    return PartResult(part, records)


def _job_key(job: RenderJob) -> dict[str, Any]:
    """What decides a capture's pixels besides its part and number (not the output folder or count)."""
    key = asdict(job)
    for name in ("out", "per_part"):
        key.pop(name)
    if key["camera_tilt"] is None:  # the rig's own tilt, as every job before the option: still resumes
        key.pop("camera_tilt")
    if not key["contact_shading"]:  # as every job before the option: still resumes
        key.pop("contact_shading")
    return json.loads(json.dumps(key))  # tuples as lists, as they come back from the file


def _done_records(progress: Path, job: RenderJob, out: Path) -> list[dict[str, Any]]:
    """The records of a part's earlier run that this job can keep: none when the record is damaged,
    was made by a job with other settings (seed, views, randomisation...), or lost an image."""
    if not progress.is_file():
        return []
    try:
        data = json.loads(progress.read_text())
        records = data["records"]
        if "job" in data and data["job"] != _job_key(job):
            return []
        if all(_nonempty(out / r[k]) for r in records for k in ("image_path", "mask_path")):
            return [r for r in records if isinstance(r.get("capture"), int)]
    except (ValueError, KeyError, TypeError):
        pass  # a damaged record: render the part again
    return []


def _nonempty(path: Path) -> bool:
    # Images are renamed into place without fsync: after a power cut one may exist but be empty.
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _render_part_images(part: str, job: RenderJob, out: Path, start: int = 0) -> list[dict[str, Any]]:
    from edge.colors import get_color

    library = _STATE["library"]
    scene = _STATE["scene"]
    mesh = library.part_mesh(part)
    title = library.part_title(part)
    records: list[dict[str, Any]] = []
    part_offset = stable_seed(job.seed, part, "colour")
    for capture in range(start, job.per_part):
        seed = stable_seed(job.seed, part, capture)
        rng = np.random.default_rng(seed)
        color = get_color(job.color_ids[(part_offset + capture) % len(job.color_ids)])
        start = float(rng.uniform(0, 360))
        angles = [round((start + v * 360 / job.views) % 360) % 360 for v in range(job.views)]
        if job.layout == "real":
            views = scene.render_views(mesh, color, angles, seed, frame="full", name=part)
        else:
            size = job.size or (64 if job.layout == "b200c" else 224)
            views = scene.render_views(mesh, color, angles, seed, frame="crop", size=(size, size), name=part)
        # Several captures of one part and colour: the first uses the rig's plain file names, later
        # ones add the capture number so no file is overwritten.
        same_colour_before = sum(
            1 for k in range(capture) if job.color_ids[(part_offset + k) % len(job.color_ids)] == color.id
        )
        when = _EPOCH + timedelta(seconds=stable_seed(job.seed, part, capture) % 10_000_000)
        for v, view in enumerate(views):
            stem, folder = _names(job.layout, part, color.id, capture, v, view.angle_deg, same_colour_before)
            (out / folder).mkdir(parents=True, exist_ok=True)
            ext = ".jpg" if job.layout == "real" else ".png"
            image_rel = f"{folder}/{stem}{ext}"
            mask_rel = f"{folder}/{stem}_mask.png"
            _write_image(out / image_rel, view.image, jpeg=job.layout == "real")
            _write_image(out / mask_rel, view.mask, jpeg=False)
            records.append(
                {
                    "image_path": image_rel,
                    "mask_path": mask_rel,
                    "part_num": part,
                    "color_id": color.id,
                    "color_name": color.name,
                    "part_name": title,
                    "capture": capture,
                    "view": v,
                    "angle": round(float(view.angle_deg)) % 360,
                    "timestamp": (when + timedelta(seconds=2 * v)).isoformat(timespec="seconds"),
                    "seed": seed,
                }
            )
    return records


def _names(
    layout: str, part: str, color_id: int, capture: int, view: int, angle: float, repeat: int
) -> tuple[str, str]:
    p = _safe(part)
    if layout == "b200c":
        return f"{p}_{capture:04d}_{view}", p
    if layout == "legacy":
        return f"{p}_{color_id}_{capture:04d}_{view}", f"images/{p}"
    stem = f"{p}_{color_id}_{round(float(angle)) % 360}"
    return (stem if repeat == 0 else f"{stem}_{repeat}"), f"raw/{p}/{color_id}"


def _write_image(path: Path, image: np.ndarray, *, jpeg: bool) -> None:
    data = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if jpeg else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(".jpg" if jpeg else ".png", data, params)
    if not ok:
        raise OSError(f"could not encode {str(path)!r}")
    write_atomic(path, buf.tobytes(), fsync=False)  # a lost image is rendered again on resume


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


def _iter_results(job: RenderJob, parts: Sequence[str], workers: int) -> Iterator[PartResult]:
    if workers <= 1:
        _worker_init(job)
        yield from map(_render_part, parts)
        return
    # Dr.Jit's threads do not survive a fork: path tracer workers start afresh.
    context = multiprocessing.get_context("spawn") if job.renderer == "pathtrace" else None
    with ProcessPoolExecutor(workers, context, initializer=_worker_init, initargs=(job,)) as pool:
        yield from pool.map(_render_part, parts, chunksize=1)


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
