"""Logging set-up for the command-line tools (library code only calls ``logging.getLogger``)."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(verbosity: int = 0) -> None:
    """Configure the root logger once: INFO by default, DEBUG with -v, WARNING with -q."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    env = os.environ.get("EDGE_LOG_LEVEL")
    if env:
        level = getattr(logging, env.upper(), level)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


#: A command's exit status when the reader of its output went away (128 + SIGPIPE, as a shell reports).
EXIT_BROKEN_PIPE = 141


def stdout_gone() -> int:
    """After a BrokenPipeError (``edge colors | head``): point stdout at /dev/null so the flush at
    exit does not raise again, and return :data:`EXIT_BROKEN_PIPE`; no traceback for a closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE
