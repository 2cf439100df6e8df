"""The rig workflow's commands: ``edge calibrate ...``, ``edge enroll``, ``edge enrolled``, ``edge reindex``.

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
        fit = calibrate_color(images, segmenter, path, reference)
    for line in fit.lines():
        print(line)
    print(f"wrote the color section of {path}; set color_correction: true in the config to apply it")
    return 0


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="config file (default: /etc/lego-edge/edge.yaml)")
    p.add_argument("--sim", action="store_true", help="simulated rig: config/sim.yaml unless --config")


def add_rig_commands(sub: Any) -> None:
    """Add ``calibrate`` (with its steps), ``enroll``, ``enrolled`` and ``reindex`` to ``edge``'s parser."""
    cal = sub.add_parser("calibrate", help="calibrate the rig: background, color, turntable")
    steps = cal.add_subparsers(dest="step", required=True, metavar="STEP")

    def common(p: argparse.ArgumentParser) -> None:
        _config_args(p)
        p.add_argument("--calibration", type=Path, help="calibration file (default: the config's)")
        p.add_argument("--report", type=Path, help="report folder (default: calibration-report/ beside it)")

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
    p.add_argument("--reference", type=Path, help="JSON {colour id: [r, g, b]}: default the colour table")
    p.set_defaults(func=_calibrate_color)


def dump_json(data: Any) -> str:
    """Indented JSON for ``--json`` output."""
    return json.dumps(data, indent=2)
