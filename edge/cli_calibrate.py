"""``edge calibrate camera|background|color|turntable|scale``: the rig's calibration steps, each
writing its section of the calibration file.

Registered on ``edge``'s parser by :func:`add_calibrate_commands`. The ``calibration`` package is
imported only inside the handlers, so the daemon never loads it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge.cli_rig import _config, _config_args, dump_json
from edge.errors import ConfigError


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


def color_reference(arg: str | None, model_set: Path) -> tuple[dict[int, list[float]] | None, str]:
    """The patches a colour calibration corrects towards, and where they come from: ``--reference
    FILE``; ``table`` (None: the colour table's sRGB); by default the model set's renders' look
    (``calibration.color.REFERENCE_FILE``), or the table where the model set has none."""
    from calibration.color import REFERENCE_FILE

    if arg == "table":
        return None, "the colour table's sRGB (--reference table)"
    file = Path(arg) if arg is not None else model_set / REFERENCE_FILE
    if arg is None and not file.is_file():
        return None, f"the colour table's sRGB (the model set has no {REFERENCE_FILE})"
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
        reference = {int(k): [float(x) for x in v] for k, v in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"colour reference {str(file)!r} cannot be read ({exc}); give a JSON of "
            "{colour id: [r, g, b]} (edge calibrate color --write-reference, trainer color-reference) "
            "or --reference table"
        ) from None
    bad = sorted(k for k, v in reference.items() if len(v) != 3 or not all(0 <= x <= 255 for x in v))
    if bad:
        raise ConfigError(
            f"colour reference {str(file)!r}: colour(s) {bad} are not three values 0..255; write it again"
        )
    where = "given" if arg is not None else "the model set's renders' look"
    return reference, f"{file} ({where})"


def _calibrate_color(args: argparse.Namespace) -> int:
    """Fit white balance and the colour-correction matrix from reference bricks."""
    from calibration.color import calibrate_color
    from edge.segment import create_segmenter

    cfg = _config(args)
    path = calibration_path(args, cfg)
    reference, said = color_reference(args.reference, Path(cfg.engine.model_set))
    print(f"reference: {said}")
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


def add_calibrate_commands(sub: Any) -> None:
    """Add ``calibrate`` with its steps (camera, background, color, turntable, scale) to ``edge``'s
    parser."""
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
        help="JSON {colour id: [r, g, b]} to correct towards, or 'table' (the colour table's sRGB); "
        "default the model set's color_reference.json (the bricks as its renders show them), else the table",
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
