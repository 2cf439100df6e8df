"""tools/plot_runs.py: the committed runs table reads, is drawn, and a bad row is named."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

from tests.tools.load import load_tool

REPO = Path(__file__).resolve().parents[2]


def _tool() -> ModuleType:
    return load_tool("plot_runs")


def test_the_committed_table_reads_with_one_shipped_set_per_shipped_recipe() -> None:
    rows = _tool().read_runs(REPO / "docs" / "runs.csv")
    assert len({r["run"] for r in rows}) == len(rows)  # run names are unique
    shipped = [r["run"] for r in rows if r["shipped"]]
    assert "v" in shipped  # the set in models/default
    for row in rows:
        assert 0 <= row["belt"] <= 100 and 0 <= row["cutouts"] <= 100


def test_the_runs_are_drawn_as_a_png(tmp_path: Path) -> None:
    tool = _tool()
    out = tool.plot_runs(tool.read_runs(REPO / "docs" / "runs.csv"), tmp_path / "runs.png")
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 400 and image.height > 300


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a,a,0,12.5,x,no,w", "cutouts 'x' is not a number"),
        ("a,a,0,120,30,no,w", "belt 120.0 is not a percentage"),
        ("a,a,0,12.5,30,maybe,w", "shipped 'maybe' must be yes or no"),
        ("a,a,0,12.5,30", "5 cells, expected 7"),
    ],
)
def test_a_bad_row_is_named_by_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    table = tmp_path / "runs.csv"
    table.write_text(
        "# a comment\nrun,recipe,seed,belt,cutouts,shipped,what\n" + row + "\n", encoding="utf-8"
    )
    with pytest.raises(_tool().RunsError, match=rf"runs.csv:3: {message}"):
        _tool().read_runs(table)


def test_a_table_without_its_header_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "runs.csv"
    table.write_text("a,a,0,12.5,30,no,w\n", encoding="utf-8")
    with pytest.raises(_tool().RunsError, match="header"):
        _tool().read_runs(table)
    assert _tool().main(["--runs", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o.png")]) == 2
