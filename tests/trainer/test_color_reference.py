"""trainer color-reference: the reference bricks as the renders show them, for edge calibrate color."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("cv2")

from calibration.color import DEFAULT_BRICKS, REFERENCE_FILE
from edge.colors import get_color
from edge.errors import DataFileError
from trainer import cli
from trainer.color_reference import measure_patches


def test_the_bricks_are_rendered_measured_and_written_as_a_reference(
    demo_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "set" / REFERENCE_FILE
    out.parent.mkdir()
    argv = ["color-reference", "--ldraw", str(demo_library), "--out", str(out), "--part", "demo-3001"]
    assert cli.main([*argv, "--captures", "2"]) == 0
    patches = {int(k): v for k, v in json.loads(out.read_text()).items()}
    assert sorted(patches) == sorted(DEFAULT_BRICKS)
    assert all(len(rgb) == 3 and all(0 <= x <= 255 for x in rgb) for rgb in patches.values())
    # A render's look: white brighter than light bluish grey, brighter than black; red reddest.
    lum = {c: sum(rgb) for c, rgb in patches.items()}
    assert lum[15] > lum[71] > lum[0]
    assert patches[4][0] > max(patches[4][1:]) and patches[1][2] > max(patches[1][:2])
    assert patches[15][0] < get_color(15).rgb[0]  # darker than the table's pure white
    assert "edge calibrate color --reference" in capsys.readouterr().out
    renders = tmp_path / "set" / "color-reference"
    assert measure_patches(renders / "71") == {71: patches[71]}  # the kept renders, one folder per colour


def test_a_folder_without_renders_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "renders"
    empty.mkdir()
    (empty / "manifest.csv").write_text(
        "image_path,mask_path,part_num,color_id,color_name,part_name,capture,view,angle\n"
    )
    with pytest.raises(DataFileError):
        measure_patches(empty)
