"""One bad image does not stop ``edge classify``: each image is read and classified on its own.

Found by the hostile probe: every file was read before any was classified, so one unreadable image
(or a folder among the arguments) stopped the whole command with nothing classified. Now each
failure is reported for its image (an ``error`` field in ``--json``) and the exit status is 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge import cli
from tests.edge.test_cli import _frames
from tests.edge.test_settings import write_sim_setup


def _classify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(["classify", *argv])
    return code, capsys.readouterr().out


@pytest.fixture
def images(tmp_path: Path, demo_library: Path) -> tuple[Path, list[Path]]:
    config = write_sim_setup(tmp_path, demo_library)
    good = _frames(config, tmp_path)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    folder = tmp_path / "a-folder.png"
    folder.mkdir()
    return config, [good[0], bad, folder, tmp_path / "gone.jpg", good[1]]


def test_each_image_is_classified_on_its_own_json(
    images: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, paths = images
    code, out = _classify(capsys, *map(str, paths), "--config", str(config), "--json")
    rows = json.loads(out)
    assert code == 1
    assert [r["images"] for r in rows] == [[str(p)] for p in paths]
    good, bad, folder, gone, good2 = rows
    for row in (good, good2):
        assert row["error"] is None and row["status"] in ("sorted", "unknown", "low_confidence")
    assert "IHDR" in bad["error"] and bad["status"] == "error"
    assert "is a directory" in folder["error"]  # was: 'does not exist'
    assert "does not exist" in gone["error"]
    assert all(r["status"] == "error" and r["part_num"] is None for r in (bad, folder, gone))


def test_each_image_is_classified_on_its_own_text(
    images: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, paths = images
    code, out = _classify(capsys, *map(str, paths), "--config", str(config))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 5 and "-> bin '" in lines[0] and "-> bin '" in lines[4]
    assert lines[1].startswith(f"{paths[1]}: error: ") and "is a directory" in lines[2]


def test_fused_views_use_the_images_that_can_be_read(
    images: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, paths = images
    code, out = _classify(capsys, *map(str, paths), "--config", str(config), "--json", "--fuse")
    rows = json.loads(out)
    assert code == 1 and len(rows) == 4
    assert rows[0]["images"] == [str(paths[0]), str(paths[4])] and rows[0]["error"] is None
    assert [r["images"] for r in rows[1:]] == [[str(p)] for p in paths[1:4]]
    assert all(r["error"] for r in rows[1:])
