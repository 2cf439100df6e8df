"""Logging set-up for the command-line tools (library code only calls ``logging.getLogger``)."""

from __future__ import annotations

import logging
import os


def setup_logging(verbosity: int = 0) -> None:
    """Configure the root logger once: INFO by default, DEBUG with -v, WARNING with -q."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    env = os.environ.get("EDGE_LOG_LEVEL")
    if env:
        level = getattr(logging, env.upper(), level)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
