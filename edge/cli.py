"""The ``edge`` command line (the daemon's commands join here as they land)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from edge import __version__
from edge.errors import EdgeError
from edge.log import setup_logging

log = logging.getLogger("edge")


def _colors(args: argparse.Namespace) -> int:
    """Print the colour table (Rebrickable ids, the ids sorting rules use)."""
    from edge.colors import all_colors

    rows = all_colors()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": c.id,
                        "name": c.name,
                        "rgb": c.hex,
                        "is_trans": c.is_trans,
                        "ldraw_code": c.ldraw_code,
                    }
                    for c in rows
                ],
                indent=2,
            )
        )
        return 0
    print(f"{'id':>5}  {'name':<26} {'rgb':<7}  {'ldraw':>5}  trans")
    for c in rows:
        ldraw = "" if c.ldraw_code is None else str(c.ldraw_code)
        print(f"{c.id:>5}  {c.name:<26} {c.hex:<7}  {ldraw:>5}  {'yes' if c.is_trans else ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="LEGO part sorting rig runtime")
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("-q", "--quiet", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("colors", help="list the colour table (Rebrickable ids and their LDraw codes)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_colors)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose)
    try:
        return int(args.func(args) or 0)
    except EdgeError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
