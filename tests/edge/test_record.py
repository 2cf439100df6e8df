"""Tests of edge.record on real SQLite files and real PNG crops in tmp_path."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import edge.fileio
from edge.errors import DataFileError, ImageError
from edge.part import PartRecord, ViewRecord
from edge.record import DecisionRecord
from edge.record_file import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]


def _crop(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(12, 9, 3), dtype=np.uint8)


def _views(n: int = 2, crops: list[np.ndarray] | None = None) -> list[ViewRecord]:
    return [
        ViewRecord(90.0 * i, [("3001", 0.5 - 0.1 * i), ("3003", 0.2)], crops[i] if crops else None)
        for i in range(n)
    ]


def _part(
    part_id: int, status: str = "sorted", views: list[ViewRecord] | None = None, **fields: Any
) -> PartRecord:
    """A decided part as the daemon hands it to the record (no recognizer decision needed here)."""
    timings = fields.pop("timings", {})
    return PartRecord(None, views or [], timings, status=status, part_id=part_id, **fields)  # type: ignore[arg-type]


@pytest.fixture
def rec(tmp_path: Path):
    record = DecisionRecord(tmp_path / "rec.db", tmp_path / "crops")
    yield record
    record.close()


def _png_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_wal_full_sync_and_schema_version(rec: DecisionRecord, tmp_path: Path) -> None:
    rec.finish_part(_part(rec.begin_part()))
    other = sqlite3.connect(tmp_path / "rec.db")
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in other.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"parts", "views", "events"} <= tables
    finally:
        other.close()
    assert (tmp_path / "rec.db-wal").exists()
    assert rec._connection().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert rec.schema_version == SCHEMA_VERSION


def test_decision_round_trips_across_reopen(tmp_path: Path) -> None:
    decision = {
        "part_num": "3001",
        "part_name": "Brick 2 x 4",
        "color_id": 4,
        "confidence": np.float32(0.875),
        "bin_index": 3,
        "mode": "classifier",
        "timings": {"capture": 20.0004, "infer": np.float64(41.0)},
        "model_set_id": "set-2024-05",
    }
    with DecisionRecord(tmp_path / "rec.db", tmp_path / "crops") as rec:
        part_id = rec.begin_part()
        assert rec.recent(1)[0]["status"] == "in_progress"
        rec.finish_part(_part(part_id, "sorted", _views(2), **decision))
    with DecisionRecord(tmp_path / "rec.db", tmp_path / "crops") as rec:
        [row] = rec.recent(5)
    assert row["id"] == part_id
    assert row["status"] == "sorted"
    assert (row["part_num"], row["part_name"], row["color_id"], row["bin"]) == ("3001", "Brick 2 x 4", 4, 3)
    assert row["confidence"] == pytest.approx(0.875)
    assert row["mode"] == "classifier" and row["model_set_id"] == "set-2024-05"
    assert row["timings"] == {"capture_ms": 20.0, "infer_ms": 41.0}  # stage ms, rounded to 1 us
    assert row["predictions"] == [["3001", 0.5], ["3001", 0.4]]  # default: each view's top-1
    assert [v["view_index"] for v in row["views"]] == [0, 1]
    assert row["views"][1]["angle"] == 90.0
    assert row["views"][1]["topk"] == [["3001", 0.4], ["3003", 0.2]]
    assert row["views"][0]["crop_path"] is None
    assert row["started_at"] <= row["finished_at"]


@pytest.mark.parametrize(
    ("keep", "kept_statuses"),
    [
        ("uncertain", {"unknown", "low_confidence"}),
        ("all", {"sorted", "unknown", "low_confidence"}),
        ("none", set()),
    ],
)
def test_crops_kept_per_policy(tmp_path: Path, keep: str, kept_statuses: set[str]) -> None:
    crops_dir = tmp_path / "crops"
    ids = {}
    with DecisionRecord(tmp_path / "rec.db", crops_dir, keep_crops=keep) as rec:  # type: ignore[arg-type]
        for n, status in enumerate(("sorted", "unknown", "low_confidence")):
            ids[status] = rec.begin_part()
            rec.finish_part(_part(ids[status], status, _views(2, [_crop(2 * n), _crop(2 * n + 1)])))
        rows = {r["status"]: r for r in rec.recent(10)}
    expected = []
    for n, status in enumerate(("sorted", "unknown", "low_confidence")):
        paths = [v["crop_path"] for v in rows[status]["views"]]
        if status not in kept_statuses:
            assert paths == [None, None]
            continue
        day = rows[status]["finished_at"][:10]
        assert paths == [f"{day}/{ids[status]}_0.png", f"{day}/{ids[status]}_1.png"]
        expected += paths
        for view, rel in enumerate(paths):
            bgr = cv2.imread(str(crops_dir / rel), cv2.IMREAD_COLOR)
            np.testing.assert_array_equal(bgr[..., ::-1], _crop(2 * n + view))  # RGB stored losslessly
    assert (_png_files(crops_dir) if crops_dir.exists() else []) == sorted(expected)  # no temp files


def test_disk_full_on_crop_write_still_records(rec: DecisionRecord, monkeypatch, caplog) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(edge.fileio.os, "fsync", full)
    part_id = rec.begin_part()
    with caplog.at_level(logging.WARNING, logger="edge.record"):
        rec.finish_part(_part(part_id, "unknown", _views(2, [_crop(0), _crop(1)]), confidence=0.1))
    [row] = rec.recent(1)
    assert row["status"] == "unknown" and row["confidence"] == pytest.approx(0.1)
    assert [v["crop_path"] for v in row["views"]] == [None, None]
    [event] = rec.recent_events(1)
    assert event["kind"] == "crop_write_failed" and "disk full" in event["message"]
    assert "disk full" in caplog.text
    assert _png_files(rec.crops_dir) == []  # the temp file was removed


CRASH_CHILD = """
import sys, time
from pathlib import Path
from typing import Any
from edge.part import PartRecord, ViewRecord
from edge.record import DecisionRecord
rec = DecisionRecord(Path(sys.argv[1]), Path(sys.argv[2]))
done = rec.begin_part()
rec.finish_part(PartRecord(None, [ViewRecord(0.0, [("3001", 0.9)])], {}, status="sorted", part_id=done,
                           part_num="3001", confidence=0.9, bin_index=2))
rec.begin_part()
print("mid-part", flush=True)
time.sleep(60)
"""


def test_sigkill_mid_part_then_recover(tmp_path: Path) -> None:
    db = tmp_path / "rec.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, str(db), str(tmp_path / "crops")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        line = child.stdout.readline()  # type: ignore[union-attr]
        assert line == "mid-part\n", child.stderr.read()  # type: ignore[union-attr]
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()  # type: ignore[union-attr]
        child.stderr.close()  # type: ignore[union-attr]
    assert (tmp_path / "rec.db-wal").exists()  # the kill left the log un-checkpointed
    with DecisionRecord(db, tmp_path / "crops") as rec:
        newest, finished = rec.recent(5)
        assert finished["status"] == "sorted" and finished["part_num"] == "3001" and finished["bin"] == 2
        assert finished["views"][0]["topk"] == [["3001", 0.9]]
        assert newest["status"] == "in_progress"
        assert rec.recover() == 1
        assert rec.recover() == 0
        newest, finished = rec.recent(5)
        assert newest["status"] == "abandoned" and newest["finished_at"] is not None
        assert finished["status"] == "sorted"
        assert rec.recent_events(1)[0]["kind"] == "recovered"
        assert rec.summary()["by_status"]["abandoned"] == 1


def test_corrupt_file_gives_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "rec.db"
    db.write_bytes(np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    with pytest.raises(DataFileError, match="move it aside") as info:
        DecisionRecord(db, tmp_path / "crops")
    assert repr(str(db)) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)  # DataFileError's builtin base


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE parts (x)")
    con.commit()
    con.close()
    with pytest.raises(DataFileError, match="not a decision record"):
        DecisionRecord(db, tmp_path / "crops")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    DecisionRecord(tmp_path / "rec.db", tmp_path / "crops").close()
    con = sqlite3.connect(tmp_path / "rec.db")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(DataFileError, match="upgrade lego-edge"):
        DecisionRecord(tmp_path / "rec.db", tmp_path / "crops")


def test_locked_file_gives_clear_error(tmp_path: Path) -> None:
    DecisionRecord(tmp_path / "rec.db", tmp_path / "crops").close()
    holder = sqlite3.connect(tmp_path / "rec.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        with pytest.raises(DataFileError, match="locked by another process") as info:
            DecisionRecord(tmp_path / "rec.db", tmp_path / "crops", busy_timeout_s=0.05)
        assert "rec.db" in str(info.value)
    finally:
        holder.close()


def test_readonly_file_gives_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "rec.db"
    DecisionRecord(db, tmp_path / "crops").close()
    if os.geteuid() == 0:  # root ignores permission bits; an immutable file is read-only even for root
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(db)], capture_output=True).returncode:
            pytest.skip("running as root and 'chattr +i' is unavailable on this filesystem")
        undo = [chattr, "-i", str(db)]
    else:
        db.chmod(0o444)
        undo = ["chmod", "644", str(db)]
    try:
        with pytest.raises(DataFileError, match="writable") as info:
            DecisionRecord(db, tmp_path / "crops")
        assert "readonly" in str(info.value) and repr(str(db)) in str(info.value)
    finally:
        subprocess.run(undo, check=True)


def test_folder_as_db_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="is a folder"):
        DecisionRecord(tmp_path, tmp_path / "crops")


def test_bad_decisions_are_refused_and_leave_the_part_open(rec: DecisionRecord) -> None:
    part_id = rec.begin_part()
    with pytest.raises(ValueError, match="abandon_part"):
        rec.finish_part(_part(part_id, "abandoned"))
    with pytest.raises(ValueError, match="from 0 to 1"):
        rec.finish_part(_part(part_id, confidence=1.5))
    with pytest.raises(ValueError, match="bin"):
        rec.finish_part(_part(part_id, bin_index=-1))
    with pytest.raises(ImageError, match="view 1"):
        rec.finish_part(_part(part_id, "unknown", _views(2, [_crop(0), np.zeros((4, 4), np.uint8)])))
    with pytest.raises(ValueError, match="JSON"):
        rec.finish_part(_part(part_id, timings={"infer": float("nan")}))
    with pytest.raises(ValueError, match="part_id is None"):
        rec.finish_part(PartRecord(None, [], {}, status="sorted"))
    assert rec.recent(1)[0]["status"] == "in_progress"
    assert not rec.crops_dir.exists() or _png_files(rec.crops_dir) == []
    with pytest.raises(ValueError, match="no part with id 999"):
        rec.finish_part(_part(999))
    rec.finish_part(_part(part_id, "error", note="camera timeout"))
    with pytest.raises(ValueError, match="already 'error'"):
        rec.finish_part(_part(part_id))
    with pytest.raises(ValueError, match="already 'error'"):
        rec.abandon_part(part_id, "jam")


def test_abandon_summary_and_events(rec: DecisionRecord) -> None:
    for status, conf, bin_ in (("sorted", 0.9, 1), ("sorted", 0.7, 1), ("low_confidence", 0.2, 0)):
        rec.finish_part(_part(rec.begin_part(), status, confidence=conf, bin_index=bin_))
    jammed = rec.begin_part()
    rec.abandon_part(jammed, "jam at the chute")
    rec.begin_part()
    summary = rec.summary()
    assert summary["total"] == 5
    assert summary["by_status"] == {
        "in_progress": 1,
        "sorted": 2,
        "unknown": 0,
        "low_confidence": 1,
        "error": 0,
        "abandoned": 1,
    }
    assert summary["by_bin"] == {0: 1, 1: 2}
    assert summary["mean_confidence"] == pytest.approx(0.6)
    row = next(r for r in rec.recent(10) if r["id"] == jammed)
    assert row["status"] == "abandoned" and row["note"] == "jam at the chute"
    rec.log_event("warning", "camera_lost", "no frame for 2 s")
    rec.log_event("info", "camera_recovered", "frames again")
    assert [e["kind"] for e in rec.recent_events(2)] == ["camera_recovered", "camera_lost"]
    with pytest.raises(ValueError, match="'loud'"):
        rec.log_event("loud", "x", "y")
    with pytest.raises(ValueError, match="whole number"):
        rec.recent(-1)


def test_closed_record_says_so(tmp_path: Path) -> None:
    rec = DecisionRecord(tmp_path / "rec.db", tmp_path / "crops")
    rec.close()
    rec.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        rec.begin_part()
