"""tools/build_default_models.sh: its defaults are the recipe the shipped set was built with.

The README promises that the build script with its defaults (and the two folders of real photos
pointed to) rebuilds the shipped recipe; the shipped REPORT.md records the command that built it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "build_default_models.sh"
REPORT = REPO / "models" / "default" / "REPORT.md"
# Folders on the builder's machine, not recipe settings.
PATHS = {"BACKGROUNDS", "REAL"}


def script_recipe(**env: str) -> dict[str, str]:
    """`build_default_models.sh --recipe` in a clean environment (plus ``env``), as settings."""
    out = subprocess.run(
        ["bash", str(SCRIPT), "--recipe"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return settings(out)


def settings(command: str) -> dict[str, str]:
    """The leading `NAME=value` words of a command line."""
    words = shlex.split(command)
    return dict(w.split("=", 1) for w in words[: words.index("tools/build_default_models.sh")])


def report_recipe() -> dict[str, str]:
    """The `NAME=value` settings of the "Built by `...`" command in the shipped report."""
    match = re.search(r"Built by `([^`]*tools/build_default_models\.sh[^`]*)`", REPORT.read_text())
    assert match, f"{REPORT} names no build command"
    return settings(match[1])


def test_the_recipe_reads_its_environment(tmp_path: Path) -> None:
    defaults = script_recipe()
    assert defaults["SEED"] == "0" and defaults["CROP_TILTS"] == "fixed 0,45"
    assert "BACKGROUNDS" not in defaults and "REAL" not in defaults  # unset: left out
    changed = script_recipe(CROP_TILTS="fixed", SEED="1", REAL=str(tmp_path))
    assert changed["CROP_TILTS"] == "fixed" and changed["SEED"] == "1"
    assert changed["REAL"] == os.path.relpath(tmp_path, REPO)  # folders relative to the repository
    assert {k: v for k, v in changed.items() if k not in {"CROP_TILTS", "SEED", "REAL"}} == {
        k: v for k, v in defaults.items() if k not in {"CROP_TILTS", "SEED"}
    }


def test_the_shipped_report_names_its_recipe() -> None:
    recipe = report_recipe()
    assert recipe["CROP_TILTS"] == "fixed 0,45"  # shlex keeps the quoted words together
    assert len(recipe) >= 10


def test_every_setting_of_the_shipped_build_is_the_script_default() -> None:
    defaults = script_recipe()
    differ = {
        name: (value, defaults.get(name))
        for name, value in report_recipe().items()
        if name not in PATHS and defaults.get(name) != value
    }
    assert not differ, f"shipped recipe (REPORT.md) against the script's defaults: {differ}"
