"""The rig workflow's commands: ``edge calibrate camera|background|color|turntable|scale``, ``edge enroll``,
``edge enrolled``, ``edge wiring``, ``edge reindex``.

Registered on ``edge``'s parser by :func:`add_rig_commands`. The ``calibration`` package is imported
only inside the ``calibrate`` handlers, so the daemon never loads it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge.errors import ConfigError


def _config(args: argparse.Namespace) -> Any:
    from edge.cli import config_path
    from edge.settings import load_edge_config

    return load_edge_config(config_path(args))


def calibration_path(args: argparse.Namespace, cfg: Any) -> Path:
    """``--calibration``, else the config's ``calibration`` path, else an error saying how to set one."""
    if getattr(args, "calibration", None):
        return Path(args.calibration)
    if cfg.calibration is not None:
        return Path(cfg.calibration)
    raise ConfigError(
        "no calibration file: set `calibration: PATH` in the config (e.g. calibration.json beside it) "
        "or pass --calibration PATH"
    )


def _frames(args: argparse.Namespace, cfg: Any, count: int) -> list[Any]:
    from calibration.capture import frames_from_camera, frames_from_dir

    if args.source is not None:
        return frames_from_dir(args.source)
    return frames_from_camera(cfg.camera, count, cfg.calibration)


def _calibrate_camera(args: argparse.Namespace) -> int:
    """Lock the Pi camera's exposure, gain and colour gains (measured by AE/AWB) in the calibration file."""
    from calibration.camera import calibrate_camera

    cfg = _config(args)
    path = calibration_path(args, cfg)
    fit = calibrate_camera(cfg.camera, path)
    for line in fit.lines():
        print(line)
    print(f"wrote the camera section of {path}", end="")
    print("" if getattr(cfg.camera, "calibration", False) else "; set camera.calibration: true to apply it")
    return 0


def _calibrate_background(args: argparse.Namespace) -> int:
    """Fit the empty stage's HSV range and background model into the calibration file."""
    from calibration.background import calibrate_background

    cfg = _config(args)
    path = calibration_path(args, cfg)
    report_dir = args.report or path.parent / "calibration-report"
    report = calibrate_background(_frames(args, cfg, args.frames), path, report_dir)
    for line in report.lines():
        print(line)
    print(f"wrote the background section of {path}")
    return 0


def _brick_images(args: argparse.Namespace, cfg: Any, calibration: Path | None) -> dict[int, list[Any]]:
    """Reference brick images: ``--from DIR``, else one capture per brick, placed when prompted."""
    from calibration.color import bricks_from_dir

    if args.source is not None:
        return bricks_from_dir(args.source)
    from edge.camera import create_camera
    from edge.colors import parse_color_list

    bricks = parse_color_list(args.bricks)
    images: dict[int, list[Any]] = {}
    with create_camera(cfg.camera, calibration=calibration) as camera:
        for color in bricks:
            input(f"place a {color.name} ({color.id}) brick on the stage, then press Enter ")
            images[color.id] = [camera.capture().image]
    return images


def _calibrate_color(args: argparse.Namespace) -> int:
    """Fit white balance and the colour-correction matrix from reference bricks."""
    from calibration.color import calibrate_color
    from edge.segment import create_segmenter

    cfg = _config(args)
    path = calibration_path(args, cfg)
    reference = None
    if args.reference is not None:
        raw = json.loads(Path(args.reference).read_text(encoding="utf-8"))
        reference = {int(k): v for k, v in raw.items()}
    calibration = path if path.exists() else None
    images = _brick_images(args, cfg, calibration)
    with create_segmenter(cfg.segmenter, calibration=calibration) as segmenter:
        if args.write_reference is not None:  # this rig's look, for relative calibration of others
            from calibration.color import measure_bricks
            from edge.fileio import write_atomic

            measured = measure_bricks(images, segmenter)
            table = {str(k): [round(float(v), 2) for v in rgb] for k, rgb in measured.items()}
            write_atomic(args.write_reference, dump_json(table) + "\n")
            print(f"wrote this rig's patches to {args.write_reference}")
        fit = calibrate_color(images, segmenter, path, reference)
    for line in fit.lines():
        print(line)
    print(
        f"wrote the color section of {path}; set color_correction: true in the config to apply it "
        "(and drift_correction: true to hold colours steady against the stage around each part)"
    )
    return 0


def _calibrate_scale(args: argparse.Namespace) -> int:
    """Fit the stage's pixels per millimetre from views of a reference part; write the scale section."""
    from calibration.capture import frames_from_dir
    from calibration.scale import calibrate_scale
    from edge.imagefile import read_image
    from edge.manifest import MAX_TILT_DEG, open_manifest
    from edge.segment import create_segmenter
    from edge.size import reference_footprints

    cfg = _config(args)
    path = calibration_path(args, cfg)
    calibration = path if path.exists() else None
    manifest = open_manifest(Path(cfg.engine.model_set))
    if not 0 <= args.tilt <= MAX_TILT_DEG:
        raise ConfigError(
            f"--tilt {args.tilt:g} must be a camera tilt from vertical in 0..{MAX_TILT_DEG:g} degrees"
        )
    # fail before any capture when the part cannot be used
    reference_footprints(manifest, args.part, args.tilt)
    if args.images:
        images = [read_image(p) for p in args.images]
    elif args.source is not None:
        images = frames_from_dir(args.source)
    else:
        from edge.camera import create_camera

        images = []
        with create_camera(cfg.camera, calibration=calibration) as camera:
            for i in range(args.views):
                input(f"drop the {args.part} on the stage ({i + 1}/{args.views}), then press Enter ")
                images.append(camera.capture().image)
    with create_segmenter(cfg.segmenter, calibration=calibration) as segmenter:
        fit = calibrate_scale(
            images, segmenter, manifest, args.part, path, cfg.recognition.size_sigma, tilt_deg=args.tilt
        )
    for line in fit.lines():
        print(line)
    print(f"wrote the scale section of {path}; the size prior is on while recognition.size_prior is true")
    return 0


def _calibrate_turntable(args: argparse.Namespace) -> int:
    """Measure the turntable's steps per turn with a part on it; write the turntable section."""
    from calibration.turntable import measure_steps_per_turn
    from edge.calibration_file import read_calibration, update_calibration
    from edge.camera import create_camera
    from edge.feeder import SimulatedRig
    from edge.rig import Rig
    from edge.segment import create_segmenter

    cfg = _config(args)
    path = calibration_path(args, cfg)
    calibration = path if path.exists() else None
    # The config's steps per turn, not an earlier measurement's: each measurement starts afresh.
    rig = Rig.from_config(cfg.rig.model_copy(update={"pins": "mock"}) if args.sim else cfg.rig)
    try:
        turntable = rig.turntable
        with (
            create_camera(cfg.camera, calibration=calibration) as camera,
            create_segmenter(cfg.segmenter, calibration=calibration) as segmenter,
        ):
            sim_rig = camera if isinstance(camera, SimulatedRig) else None
            if sim_rig is not None:  # the simulated platter turns by its own steps per turn
                true_steps = args.sim_steps_per_turn or turntable.steps_per_turn
                sim_rig.follow(lambda: turntable.position * 360.0 / true_steps)
            if args.sim and sim_rig is not None:
                sim_rig.next_part()  # the simulated feeder drops a part
            else:
                input("place an asymmetric part off-centre on the turntable, then press Enter ")
            fit = measure_steps_per_turn(turntable, lambda: camera.capture().image, segmenter)
    finally:
        rig.close()
    old = read_calibration(path).turntable if path.exists() else None
    zero = old.zero_offset_steps if old is not None else 0
    update_calibration(path, turntable={"steps_per_turn": fit.steps_per_turn, "zero_offset_steps": zero})
    for line in fit.lines():
        print(line)
    print(f"wrote the turntable section of {path}")
    if fit.steps_per_turn != fit.nominal:
        print(
            f"the rig now turns by the measured {fit.steps_per_turn} steps per turn; the config's "
            f"rig.turntable.steps_per_turn ({fit.nominal}) is the fallback without this file"
        )
    return 0


# --- enrolment ---------------------------------------------------------------------------------


def _enroll_pipeline(cfg: Any, *, with_camera: bool) -> Any:
    """The configured segmenter, model and colour correction, without loading any index."""
    from edge.pipeline import Pipeline

    classifier = cfg.model_copy(
        update={"recognition": cfg.recognition.model_copy(update={"mode": "classifier"})}
    )
    return Pipeline.from_config(classifier, with_camera=with_camera)


def _rig_views(pipeline: Any, cfg: Any, count: int, sim: bool) -> tuple[list[Any], list[str]]:
    """``count`` views of the part on the turntable, turning 360/count degrees between them."""
    from edge.feeder import SimulatedRig
    from edge.rig import Rig

    rig = Rig.from_config(
        cfg.rig.model_copy(update={"pins": "mock"}) if sim else cfg.rig, calibration=cfg.calibration
    )
    camera = pipeline.camera
    try:
        with camera:
            sim_rig = camera if isinstance(camera, SimulatedRig) else None
            if sim_rig is not None:
                sim_rig.follow(rig.turntable)  # the sim camera sees the turntable's angle
            if sim and sim_rig is not None:
                sim_rig.next_part()  # the simulated feeder drops a part
            frames, _ = pipeline.capture_views(count, lambda i: rig.turntable.rotate_by(360.0 / count))
    finally:
        rig.close()
    return [f.image for f in frames], [f"rig view {i + 1}/{count}" for i in range(count)]


def _enroll(args: argparse.Namespace) -> int:
    """Embed views of one part and add them to the user index."""
    from edge.colors import color_by_name, get_color
    from edge.enroll import UserIndex, embed_views, engine_model_key
    from edge.imagefile import read_image

    if bool(args.images) == bool(args.views):
        raise ConfigError("give the part's IMAGE files, or --views N to capture them on the rig (not both)")
    cfg = _config(args)
    color_id = None
    if args.color is not None:
        text = args.color.strip()
        color_id = get_color(int(text)).id if text.lstrip("-").isdigit() else color_by_name(text).id
    pipeline = _enroll_pipeline(cfg, with_camera=bool(args.views))
    try:
        if args.views:
            images, names = _rig_views(pipeline, cfg, args.views, args.sim)
        else:
            images, names = [read_image(p) for p in args.images], [str(p) for p in args.images]
        vectors, crops = embed_views(pipeline, images, names)
    finally:
        pipeline.close()
    user = UserIndex.load(cfg.data.user_index)
    key = engine_model_key(cfg.engine)
    user.add(vectors, crops, part=args.part, color_id=color_id, sources=names, model=key)
    print(f"enrolled {len(vectors)} view(s) of {args.part} into {cfg.data.user_index} ({len(user)} in all)")
    print_stale_fit(cfg, user)
    if cfg.recognition.mode == "classifier":
        print(
            "note: recognition.mode is 'classifier'; set it to 'hybrid' (or 'vector') to use enrolled parts"
        )
    return 0


def _enrolled(args: argparse.Namespace) -> int:
    """List the user index, or remove a part from it."""
    from edge.enroll import UserIndex

    cfg = _config(args)
    user = UserIndex.load(cfg.data.user_index)
    if args.remove:
        removed = user.remove(args.remove)
        if not removed:
            raise ConfigError(
                f"part {args.remove!r} is not enrolled in {cfg.data.user_index}; see `edge enrolled`"
            )
        print(f"removed {removed} view(s) of {args.remove}; {len(user)} left")
        print_stale_fit(cfg, user)
        return 0
    if args.save and not args.fit_threshold:
        raise ConfigError("--save keeps a fitted threshold: use it with --fit-threshold")
    if args.fit_threshold:
        return _fit_threshold(user, cfg, save=args.save)
    rows = user.parts()
    if args.json:
        print(dump_json([{**r, "added": r["added"].isoformat()} for r in rows]))
        return 0
    if not rows:
        print(f"nothing enrolled in {cfg.data.user_index}")
        return 0
    print(f"{'part':<12} {'colour':<26} views  enrolled")
    for r in rows:
        from edge.cli import _color_name

        print(
            f"{r['part']:<12} {_color_name(r['color_id']):<26} {r['views']:>5}  {r['added']:%Y-%m-%d %H:%M}"
        )
    print(f"{len(user)} view(s) of {len(rows)} part/colour pair(s) in {cfg.data.user_index}")
    return 0


def print_stale_fit(cfg: Any, user: Any) -> None:
    """Say so when the calibration file's fitted ``rig_threshold`` was fitted to other enrolled views
    than ``user`` (a :class:`~edge.enroll.UserIndex`) holds now
    (:func:`edge.recognition_setup.stale_fit_note`)."""
    from edge.recognition_setup import stale_fit_note

    labels = [] if user.index is None else list(user.index.labels)
    note = stale_fit_note(cfg, len(labels), len(set(labels)))
    if note:
        print(f"note: {note}")


def _fit_threshold(user: Any, cfg: Any, *, save: bool = False) -> int:
    """Print the ``recognition.rig_threshold`` fitted to the enrolled views (:func:`fit_rig_threshold`);
    with ``save``, keep it in the calibration file's ``recognition`` section for the daemon."""
    from edge.enroll import fit_rig_threshold

    fit = fit_rig_threshold(user.index.vectors(), list(user.index.labels)) if user.index else None
    if fit is None:
        raise ConfigError(
            f"fitting rig_threshold needs views of at least two parts enrolled in {cfg.data.user_index}; "
            "enrol another part with `edge enroll` (a part the model knows counts too)"
        )
    share = round(100 * fit["quantile"])
    print(
        f"recognition.rig_threshold: {fit['threshold']}  ({share}% of {fit['views']} enrolled views of "
        f"{fit['parts']} parts have their nearest other part's view below it; now "
        f"{cfg.recognition.rig_threshold or cfg.recognition.vector_threshold})"
    )
    median = fit["same_part_median"]
    if median is not None and median <= fit["threshold"]:
        print(
            f"warning: a view's nearest view of its own part is at {median} (median), no higher than "
            "the threshold: on this rig the model does not tell the enrolled parts apart; enrol more "
            "views per part or keep the default"
        )
    if fit["threshold"] < (cfg.recognition.rig_threshold or cfg.recognition.vector_threshold):
        print(
            "note: the fit sees only the enrolled parts; at a lower threshold the photos of parts this rig "
            "meets but were never enrolled are taken for enrolled ones more often (docs/real_transfer.md, "
            "rule 4): enrol every part the rig sorts before saving it"
        )
    if save:
        _save_fit(fit, cfg)
    return 0


def _save_fit(fit: dict[str, Any], cfg: Any) -> None:
    """Write ``fit`` into the calibration file's ``recognition`` section, stamped with the model."""
    from edge.calibration_file import update_calibration
    from edge.enroll import engine_model_key

    if cfg.calibration is None:
        raise ConfigError(
            "--save writes the fitted threshold to the rig's calibration file, and the config names none: "
            "set `calibration: PATH` in the config (e.g. calibration.json beside it), or copy the value "
            "into recognition.rig_threshold by hand"
        )
    key = engine_model_key(cfg.engine)
    section = {"rig_threshold": fit["threshold"], "model": key, "views": fit["views"], "parts": fit["parts"]}
    update_calibration(cfg.calibration, recognition=section)
    print(f"saved to {cfg.calibration} (recognition section)")
    if cfg.recognition.rig_threshold is not None:
        print(
            f"note: the config sets recognition.rig_threshold: {cfg.recognition.rig_threshold}, which wins; "
            "remove it from the config to use the fitted value"
        )
    else:
        print("`edge run` uses it from its next start, while the config leaves rig_threshold unset")


def _reindex(args: argparse.Namespace) -> int:
    """Re-embed the kept crops of the user index with the configured model."""
    from edge.enroll import UserIndex, embed_crops, engine_model_key

    cfg = _config(args)
    user = UserIndex.load(cfg.data.user_index)
    if not len(user):
        print(f"nothing enrolled in {cfg.data.user_index}")
        return 0
    pipeline = _enroll_pipeline(cfg, with_camera=False)
    try:
        vectors = embed_crops(pipeline, user.load_crops())
    finally:
        pipeline.close()
    key = engine_model_key(cfg.engine)
    user.replace_vectors(vectors, key)
    print(f"re-embedded {len(vectors)} view(s) with {key}")
    return 0


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="config file (default: /etc/lego-edge/edge.yaml)")
    p.add_argument("--sim", action="store_true", help="simulated rig: config/sim.yaml unless --config")


def add_rig_commands(sub: Any) -> None:
    """Add ``calibrate`` (with its steps), ``enroll``, ``enrolled``, ``wiring`` and ``reindex`` to
    ``edge``'s parser."""
    cal = sub.add_parser("calibrate", help="calibrate the rig: camera, background, color, turntable, scale")
    steps = cal.add_subparsers(dest="step", required=True, metavar="STEP")

    def common(p: argparse.ArgumentParser) -> None:
        _config_args(p)
        p.add_argument("--calibration", type=Path, help="calibration file (default: the config's)")
        p.add_argument("--report", type=Path, help="report folder (default: calibration-report/ beside it)")

    p = steps.add_parser("camera", help="lock the Pi camera's exposure, gain and white balance (run first)")
    common(p)
    p.set_defaults(func=_calibrate_camera)

    p = steps.add_parser("background", help="fit the empty stage's HSV range and background model")
    common(p)
    p.add_argument("--frames", type=int, default=8, help="frames of the empty stage to capture (default 8)")
    p.add_argument("--from", dest="source", type=Path, help="read the frames from this folder of images")
    p.set_defaults(func=_calibrate_background)

    p = steps.add_parser("color", help="fit white balance and a 3x3 colour matrix from known bricks")
    common(p)
    p.add_argument(
        "--bricks", default="15,0,4,1,14,71", help="colour ids or names to place (default 15,0,4,1,14,71)"
    )
    p.add_argument("--from", dest="source", type=Path, help="images named by colour id (15.jpg or 15/)")
    p.add_argument(
        "--reference",
        type=Path,
        help="JSON {colour id: [r, g, b]} to correct towards; default the colour table",
    )
    p.add_argument(
        "--write-reference", type=Path, help="also write the measured patches as such a JSON (reference rig)"
    )
    p.set_defaults(func=_calibrate_color)

    p = steps.add_parser("turntable", help="measure the steps of one turn with a part on the turntable")
    common(p)
    p.add_argument("--sim-steps-per-turn", type=int, help=argparse.SUPPRESS)  # the sim platter's truth
    p.set_defaults(func=_calibrate_turntable)

    p = steps.add_parser("scale", help="fit the stage's pixels per millimetre from views of a known part")
    common(p)
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE", help="views of the part (else captured)")
    p.add_argument(
        "--part", default="3001", help="the reference part, one the model set knows (default 3001)"
    )
    p.add_argument(
        "--views", type=int, default=5, help="views to capture when no images are given (default 5)"
    )
    p.add_argument("--from", dest="source", type=Path, help="read the views from this folder of images")
    p.add_argument(
        "--tilt",
        type=float,
        default=0.0,
        help="the camera's tilt from vertical in degrees (default 0: straight down); the model set "
        "needs footprints for it (trainer footprints --tilt)",
    )
    p.set_defaults(func=_calibrate_scale)

    p = sub.add_parser("enroll", help="add a part's views to the user index (images, or --views on the rig)")
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE")
    _config_args(p)
    p.add_argument("--part", required=True, help="part number, e.g. 3001")
    p.add_argument("--color", help="Rebrickable colour id or name (recorded with the views)")
    p.add_argument("--views", type=int, help="capture N views on the turntable instead of IMAGE files")
    p.set_defaults(func=_enroll)
    p = sub.add_parser("enrolled", help="list the user index (or --remove PART)")
    _config_args(p)
    p.add_argument("--remove", metavar="PART", help="remove every view of this part")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--fit-threshold",
        action="store_true",
        help="print the recognition.rig_threshold fitted to the enrolled views of two or more parts",
    )
    p.add_argument(
        "--save",
        action="store_true",
        help="with --fit-threshold: keep the value in the calibration file, where `edge run` takes it "
        "from while the config leaves recognition.rig_threshold unset",
    )
    p.set_defaults(func=_enrolled)
    p = sub.add_parser("wiring", help="what to wire to which pin of the Pi's header (from the config)")
    _config_args(p)
    p.add_argument("--json", action="store_true", help="the wires and power pins as JSON")
    p.set_defaults(func=_wiring)
    p = sub.add_parser("reindex", help="re-embed the enrolled crops with the configured model set")
    _config_args(p)
    p.set_defaults(func=_reindex)


def _wiring(args: argparse.Namespace) -> int:
    """Print what to wire to which header pin, from the config's rig section."""
    from edge.cli import config_path
    from edge.rig.wiring import wiring_json, wiring_lines

    path = config_path(args)
    cfg = _config(args)
    if args.json:
        print(dump_json(wiring_json(cfg.rig)))
    else:
        print("\n".join(wiring_lines(cfg.rig, str(path))))
    return 0


def dump_json(data: Any) -> str:
    """Indented JSON for ``--json`` output."""
    return json.dumps(data, indent=2)
