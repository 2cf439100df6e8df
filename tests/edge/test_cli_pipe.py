"""A reader that goes away (`edge colors | head`) ends the command quietly, not with a traceback."""

from __future__ import annotations

import subprocess
import sys

from edge.log import EXIT_BROKEN_PIPE


def test_a_closed_pipe_ends_the_command_without_a_traceback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "colors"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command has written anything: its first write meets a closed pipe
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == EXIT_BROKEN_PIPE
