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


def dump_json(data: Any) -> str:
    """Indented JSON for ``--json`` output."""
    return json.dumps(data, indent=2)
