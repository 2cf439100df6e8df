"""What the benchmarks record about the machine they ran on."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo ("model name" on x86, "Model" on a Raspberry Pi)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    for key in ("model name", "Model", "Hardware"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or "unknown"


def machine_line(note: str = "") -> str:
    """``x86_64, 2 CPUs (AMD EPYC), Python 3.11.7; NOTE``: the machine line of a results file."""
    import os

    line = f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}"
    return line + (f"; {note}" if note else "")


def write_results(result: dict, json_path: Path | None, markdown_path: Path | None, markdown: Any) -> None:
    """Print ``result`` as JSON and write it (and ``markdown(result)``) where asked."""
    import json

    print(json.dumps(result, indent=2))
    if json_path:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    if markdown_path:
        markdown_path.write_text(markdown(result))


def run_child(code: str, *args: str) -> dict[str, Any]:
    """Run ``code`` in a fresh Python process (the repository as its folder) and return the JSON
    object its last line prints: what a measurement in a clean process (its memory) reports."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    if out.returncode:
        raise SystemExit(f"child process failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])
