"""SIGTERM during ``edge run``'s start-up stops it cleanly (exit 0), not by the default action.

Found by the hostile probe: the stop handlers were installed only once the config was read and the
daemon built (a second or more of imports), so a SIGTERM in that window exited 143.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edge.settings import load_edge_config
from tests.edge.test_settings import write_sim_setup

REPO = Path(__file__).resolve().parents[2]


def test_sigterm_during_start_up_stops_cleanly(tmp_path: Path, demo_library: Path) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    # SIGTERM arrives while the config is being read: before the daemon or its handlers existed,
    # the default action killed the process (exit 143 under systemd).
    code = (
        "import os, signal, sys\n"
        "import edge.settings as settings\n"
        "real = settings.load_edge_config\n"
        "def load(path):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(path)\n"
        "settings.load_edge_config = load\n"
        "from edge.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", "--sim", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "stop requested during start-up" in proc.stderr
    assert not load_edge_config(config).data.db.exists()  # nothing was started
