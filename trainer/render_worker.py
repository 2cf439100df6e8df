"""The per-part worker of ``trainer render`` (:mod:`trainer.render`): a job's settings and its domain
randomisation, and each part's captures rendered into image and mask files with a resume record
under ``.progress/``, in this process or in a pool of worker processes.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import ConfigError
from edge.fileio import write_atomic

log = logging.getLogger(__name__)

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


def _iter_results(job: RenderJob, parts: Sequence[str], workers: int) -> Iterator[PartResult]:
    if workers <= 1:
        _worker_init(job)
        yield from map(_render_part, parts)
        return
    # A fork copies the parent's locks but not its threads: Dr.Jit's (the path tracer), or OpenCV's
    # after the parent has read images, can leave a forked worker waiting on a lock no thread will
    # release (a second raster render in one process hung so). Workers start afresh: spawn for the
    # path tracer, a fork server (forked from a clean process) for the rasteriser.
    context = multiprocessing.get_context("spawn" if job.renderer == "pathtrace" else "forkserver")
    with ProcessPoolExecutor(workers, context, initializer=_worker_init, initargs=(job,)) as pool:
        yield from pool.map(_render_part, parts, chunksize=1)
