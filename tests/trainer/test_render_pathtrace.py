"""`trainer render --renderer pathtrace` end to end on the demo library (skips where Mitsuba cannot run)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest

from studio import mitsuba_env
from trainer.cli import main


@pytest.mark.slow
def test_pathtrace_cli_renders_masks_and_resumes(demo_library: Path, tmp_path: Path) -> None:
    reason = mitsuba_env.unavailable_reason()
    if reason is not None:
        pytest.skip(f"the path tracer cannot run here: {reason}")
    parts = tmp_path / "parts.txt"
    parts.write_text("demo-3039\ndemo-3062b\n")
    out = tmp_path / "legacy"
    args = [
        "-q", "render", "--ldraw", str(demo_library), "--parts", str(parts), "--layout", "legacy",
        "--out", str(out), "--per-part", "1", "--views", "2", "--size", "48", "--renderer", "pathtrace",
        "--spp", "4", "--colors", "Red,Trans-Clear", "--seed", "2", "--sheet", "0",
    ]  # fmt: skip
    assert main(args) == 0
    with (out / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {r["part_num"] for r in rows} == {"demo-3039", "demo-3062b"}
    for row in rows:
        image = cv2.imread(str(out / row["image_path"]))
        mask = cv2.imread(str(out / row["mask_path"]), cv2.IMREAD_GRAYSCALE)
        assert image.shape == (48, 48, 3) and mask.shape == (48, 48) and mask.any()
    report = json.loads((out / "render_report.json").read_text())
    assert report["parts_failed"] == 0 and report["job"]["renderer"] == "pathtrace"
    assert main(args) == 0  # a re-run resumes: nothing left to render
    assert json.loads((out / "render_report.json").read_text())["parts_skipped_as_done"] == 2


def test_pathtrace_cli_refuses_a_bad_backgrounds_folder(demo_library: Path, tmp_path: Path) -> None:
    parts = tmp_path / "parts.txt"
    parts.write_text("demo-3039\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [
        "-q", "render", "--ldraw", str(demo_library), "--parts", str(parts), "--layout", "legacy",
        "--out", str(tmp_path / "o"), "--renderer", "pathtrace", "--backgrounds", str(empty),
    ]  # fmt: skip
    assert main(args) == 2
