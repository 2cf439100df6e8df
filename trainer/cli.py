"""The ``trainer`` command line: one sub-command per stage of building a model set."""

from __future__ import annotations

import argparse
import logging
import sys

from edge.errors import EdgeError
from edge.log import setup_logging, stdout_gone

log = logging.getLogger("trainer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainer", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Each command module keeps its heavy imports (torch, timm, onnx2tf) inside its functions, so
    # `trainer render` works on a machine without the `train` extra.
    from trainer import (
        average,
        categories,
        color_reference,
        color_refit,
        demo,
        evaluate,
        evaluate_real,
        export,
        footprints,
        index,
        pack,
        popularity,
        quantize,
        real_compare,
        render,
        segmenter,
        ship,
        train,
    )

    for module in (
        render,
        pack,
        train,
        color_refit,
        average,
        export,
        quantize,
        index,
        categories,
        footprints,
        popularity,
        color_reference,
        evaluate,
        evaluate_real,
        real_compare,
        segmenter,
        ship,
        demo,
    ):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose)
    try:
        return int(args.func(args) or 0)
    except EdgeError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.warning("interrupted; finished work is kept and a re-run resumes")
        return 130
    except BrokenPipeError:  # the reader went away (`trainer ... | head`)
        return stdout_gone()


if __name__ == "__main__":
    sys.exit(main())
