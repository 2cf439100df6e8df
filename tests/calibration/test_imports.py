"""The daemon's path never loads ``calibration`` (nor colour-science): only `edge calibrate` does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_edge_modules_load_no_calibration() -> None:
    code = (
        "import sys\n"
        "import edge.cli, edge.cli_calibrate, edge.cli_rig, edge.daemon, edge.pipeline, edge.enroll\n"
        "import edge.color_correction\n"
        "edge.cli.build_parser()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('calibration', 'colour')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
