"""``edge review`` and ``edge relabel`` end to end: a real run's SQLite record and crops, the
contact sheet and page on disk, corrections as new rows, and the user index they enrol into."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

import cv2
import pytest

from edge.cli import main
from edge.enroll import UserIndex, crops_dir
from edge.errors import DataFileError
from edge.pipeline import Pipeline
from edge.prior import read_parts_file
from edge.record import DecisionRecord
from edge.review import add_correction, open_record
from edge.settings import load_edge_config
from tests.edge.test_settings import add_index, write_sim_setup


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def _rows(db: Path, sql: str, *args: object) -> list[dict[str, object]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


@pytest.fixture
def recorded(tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A hybrid-mode sim rig so demanding that every part is doubtful, after a 3-part run."""
    config = write_sim_setup(
        tmp_path,
        demo_library,
        recognition={"mode": "hybrid", "threshold": 0.99, "vector_threshold": 0.999},
        data={"keep_crops": "uncertain"},
    )
    add_index(tmp_path / "models")
    code, _ = _run(capsys, "run", "--sim", "--config", str(config), "--parts", "3")
    assert code == 0
    return config


def test_review_lists_the_doubtful_parts_with_their_crops(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_edge_config(recorded)
    db = Path(cfg.data.db)
    doubtful = _rows(
        db, "SELECT id FROM parts WHERE status IN ('unknown', 'low_confidence') ORDER BY id DESC"
    )
    assert len(doubtful) == 3
    code, out = _run(capsys, "review", "--config", str(recorded))
    assert code == 0
    ids = [int(m) for m in re.findall(r"^\s+(\d+)\s+(?:unknown|low_confidence)", out, re.MULTILINE)]
    assert ids == [r["id"] for r in doubtful]  # newest first
    assert "3 part(s) to review (3 not corrected)" in out
    sheet = cv2.imread(str(db.parent / "review.png"))
    assert sheet is not None and sheet.shape[0] >= 3 * 100 and sheet.std() > 10  # crops drawn, not blank
    page = (db.parent / "review.html").read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 3 * 4  # 4 kept crops per part, linked relative to the page
    assert all((db.parent / s).is_file() for s in sources)
    assert f"edge relabel {doubtful[0]['id']} --part P" in page


def test_relabel_adds_a_correction_row_and_enrols_the_kept_crops(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_edge_config(recorded)
    db, user_path = Path(cfg.data.db), Path(cfg.data.user_index)
    part_id = int(_rows(db, "SELECT max(id) AS id FROM parts")[0]["id"])  # type: ignore[arg-type]
    before = _rows(db, "SELECT * FROM parts ORDER BY id"), _rows(db, "SELECT * FROM views ORDER BY part_id")

    code, out = _run(
        capsys, "relabel", str(part_id), "--config", str(recorded), "--part", "new-1", "--color", "Red"
    )
    assert code == 0 and f"part {part_id} is new-1 Red (4)" in out and "enrolled 4 kept crop(s)" in out
    [row] = _rows(db, "SELECT * FROM corrections")
    assert (row["part_id"], row["part_num"], row["color_id"], row["enrolled_views"]) == (
        part_id,
        "new-1",
        4,
        4,
    )
    assert (
        _rows(db, "SELECT * FROM parts ORDER BY id"),
        _rows(db, "SELECT * FROM views ORDER BY part_id"),
    ) == (before)  # the decision is kept as the rig made it
    user = UserIndex.load(user_path)
    assert [(r["part"], r["color_id"], r["views"]) for r in user.parts()] == [("new-1", 4, 4)]
    assert len(list(crops_dir(user_path).rglob("*_mask.png"))) == 4  # crops and masks kept for reindex

    # A second opinion: a new row; the earlier correction's views are replaced, not doubled.
    code, out = _run(capsys, "relabel", str(part_id), "--config", str(recorded), "--part", "new-2")
    assert code == 0 and "replaced 4 view(s)" in out
    rows = _rows(db, "SELECT part_num FROM corrections ORDER BY id")
    assert [r["part_num"] for r in rows] == ["new-1", "new-2"]
    user = UserIndex.load(user_path)
    assert [(r["part"], r["views"]) for r in user.parts()] == [("new-2", 4)]
    code, out = _run(capsys, "review", "--config", str(recorded), "--pending")
    assert code == 0 and "2 part(s) to review (2 not corrected)" in out
    code, out = _run(capsys, "review", "--config", str(recorded))
    assert re.search(rf"^\s+{part_id}\s.*new-2", out, re.MULTILINE)

    # The daemon's pipeline searches the enrolled crops; the record still opens as a record.
    pipe = Pipeline.from_config(cfg, with_camera=False)
    try:
        assert len(pipe.recognizer.index) == 12 + 4  # type: ignore[arg-type]
    finally:
        pipe.close()
    with DecisionRecord(db, Path(cfg.data.crops_dir)) as record:
        assert record.summary()["total"] == 3


def test_relabel_and_review_refuse_what_is_not_there(
    recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "edge"):
        assert main(["relabel", "99", "--config", str(recorded), "--part", "3001"]) == 2
    assert "has no part 99" in caplog.text
    db = Path(load_edge_config(recorded).data.db)
    assert _rows(db, "SELECT count(*) AS n FROM sqlite_master WHERE name = 'corrections'")[0]["n"] == 0
    with open_record(db) as con, pytest.raises(DataFileError, match="has no part 42"):
        add_correction(con, 42, "3001", None)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(DataFileError, match="not a decision record"), open_record(other):
        pass
    with pytest.raises(DataFileError, match="does not exist"), open_record(tmp_path / "missing.db"):
        pass


def test_counts_writes_the_parts_the_rig_met_as_a_part_prior_file(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    db = Path(load_edge_config(config).data.db)
    out = tmp_path / "met.txt"
    code, _ = _run(capsys, "counts", "--config", str(config), "--out", str(out))
    assert code == 2 and not out.exists()  # no record yet: refused, nothing written
    code, _ = _run(capsys, "run", "--sim", "--config", str(config), "--parts", "6")
    assert code == 0
    sorted_rows = _rows(db, "SELECT id, part_num FROM parts WHERE status = 'sorted'")
    other = _rows(db, "SELECT id FROM parts WHERE status != 'sorted'")
    assert sorted_rows, "the sim rig sorted no part; the test needs some"
    # One sorted part corrected to a part the model does not know; one doubtful part (if any) too.
    code, _ = _run(capsys, "relabel", str(sorted_rows[0]["id"]), "--config", str(config), "--part", "x-1")
    assert code == 0
    corrected = [sorted_rows[0]["id"]]
    if other:
        assert _run(capsys, "relabel", str(other[0]["id"]), "--config", str(config), "--part", "x-1")[0] == 0
        corrected.append(other[0]["id"])
    expected: dict[str, int] = {"x-1": len(corrected)}
    for row in sorted_rows[1:]:
        expected[str(row["part_num"])] = expected.get(str(row["part_num"]), 0) + 1

    code, printed = _run(capsys, "counts", "--config", str(config), "--out", str(out))
    assert code == 0 and f"({len(corrected)} corrected)" in printed and "recognition.part_prior" in printed
    assert "part_prior_strength, 0.25 now" in printed  # the default, named so an owner can change it
    lines = [ln.split() for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert {p: int(n) for p, n in lines} == expected
    assert [int(n) for _, n in lines] == sorted((int(n) for _, n in lines), reverse=True)
    assert read_parts_file(out) == {p: float(n) for p, n in expected.items()}  # the prior reads it

    code, _ = _run(capsys, "counts", "--config", str(config), "--out", str(out), "--corrected-only")
    assert code == 0
    assert [ln for ln in out.read_text().splitlines() if not ln.startswith("#")] == [f"x-1 {len(corrected)}"]
