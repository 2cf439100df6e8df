"""The decision record: every sorting decision in a SQLite file, crops of doubtful parts as PNGs.

One row per part in ``parts`` (begun as ``'in_progress'``, then finished or abandoned), one row per
camera view in ``views`` and rig faults in ``events``. The schema version lives in
``PRAGMA user_version``; :data:`MIGRATIONS` upgrades older files on open. Times are ISO 8601 UTC.
Crop paths are stored relative to ``crops_dir`` so the folder can be moved with the database.
A daemon holds :class:`edge.record_lock.RecordLock` (``<db>.lock``) for its whole life, so a second
daemon cannot take the record and abandon the first one's part in hand.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.errors import DataFileError, DiskFullError, ImageError
from edge.fileio import write_atomic
from edge.part import STATUSES as DECIDED
from edge.part import PartRecord

log = logging.getLogger(__name__)

KeepCrops = Literal["uncertain", "all", "none"]
STATUSES = ("sorted", "unknown", "low_confidence", "error", "abandoned")
UNCERTAIN = frozenset({"unknown", "low_confidence"})
LEVELS = ("debug", "info", "warning", "error", "critical")
#: While crops cannot be written, one warning (log line and event) at most this often, in seconds.
CROP_WARNING_INTERVAL_S = 600.0

# MIGRATIONS[i] brings a file from user_version i to i + 1. Append new steps; never edit old ones.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE parts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL CHECK (status IN ('in_progress', 'sorted', 'unknown',
                                                   'low_confidence', 'error', 'abandoned')),
            part_num TEXT,
            part_name TEXT,
            color_id INTEGER,
            confidence REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
            bin INTEGER,
            mode TEXT,
            timings TEXT,
            predictions TEXT,
            model_set_id TEXT,
            note TEXT
        )""",
        "CREATE INDEX parts_status ON parts (status)",
        """CREATE TABLE views (
            part_id INTEGER NOT NULL REFERENCES parts (id) ON DELETE CASCADE,
            view_index INTEGER NOT NULL,
            angle REAL,
            topk TEXT NOT NULL,
            crop_path TEXT,
            PRIMARY KEY (part_id, view_index)
        )""",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time TEXT NOT NULL,
            level TEXT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json(value: Any, what: str) -> str:
    """JSON text of ``value``; numpy scalars/arrays (model outputs) are converted, NaN is refused."""

    def convert(obj: Any) -> Any:
        if isinstance(obj, np.generic | np.ndarray):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    try:
        return json.dumps(value, default=convert, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{what} {value!r} cannot be stored as JSON ({exc}); use plain numbers, strings, lists and dicts"
        ) from None


_FIXES = (  # (SQLite error-name prefixes, what to do), first match wins
    (
        ("SQLITE_BUSY", "SQLITE_LOCKED"),
        "it is locked by another process: stop the other program using it "
        "(only one 'edge run' may use a record), then retry",
    ),
    (
        ("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_CANTOPEN", "SQLITE_AUTH"),
        "it cannot be opened for writing: make the file and its folder writable by this user",
    ),
    (
        ("SQLITE_NOTADB", "SQLITE_CORRUPT"),
        "it is corrupt or not a decision record: move it aside "
        "(mv {p} {p}.corrupt, and any {p}-wal/{p}-shm) and restart to begin a new record",
    ),
    (("SQLITE_FULL",), "the disk is full: free space on the disk that holds it"),
    (("SQLITE_IOERR",), "the disk reported an I/O error: check the SD card or drive"),
)


def _db_error(path: Path, exc: sqlite3.Error) -> DataFileError | DiskFullError:
    """Turn an SQLite error into a DataFileError (DiskFullError when full) naming the file and the fix."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    fix = next(
        (f for prefixes, f in _FIXES if name.startswith(prefixes)),
        "check the file, or move it aside to begin a new record",
    )
    p = str(path)
    text = f"decision record {p!r}: {exc} ({name or type(exc).__name__}); {fix.format(p=p)}"
    return DiskFullError(text) if name.startswith("SQLITE_FULL") else DataFileError(text)


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n {n!r} must be a whole number >= 0")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)  # makes the renames durable before the row that names them commits
    finally:
        os.close(fd)


def _row_of(part: PartRecord) -> dict[str, Any]:
    """The ``parts`` columns of a decided part; values the schema would refuse are a ValueError."""
    if part.status not in DECIDED:
        raise ValueError(
            f"part status {part.status!r} is not one of {list(DECIDED)!r} "
            "(use abandon_part() for parts that were never decided)"
        )
    conf = part.confidence
    if conf is not None and not (math.isfinite(conf) and 0.0 <= conf <= 1.0):
        raise ValueError(f"part confidence {conf!r} must be a number from 0 to 1, or None")
    if part.bin_index is not None and part.bin_index < 0:
        raise ValueError(f"part bin index {part.bin_index!r} must be >= 0, or None")
    return {
        "status": part.status,
        "part_num": part.part_num,
        "part_name": part.part_name,
        "color_id": None if part.color_id is None else int(part.color_id),
        "confidence": None if conf is None else float(conf),
        "bin": part.bin_index,
        "mode": part.mode,
        "timings": _json({f"{k}_ms": round(v, 3) for k, v in part.timings.items()}, "part timings"),
        "predictions": _json([v.topk[0] if v.topk else None for v in part.views], "part predictions"),
        "model_set_id": part.model_set_id,
        "note": part.note or None,
    }


def _check_crops(crops: list[np.ndarray | None]) -> None:
    for i, crop in enumerate(crops):
        if crop is not None and not (
            crop.dtype == np.uint8 and crop.ndim == 3 and crop.shape[2] == 3 and crop.size > 0
        ):
            raise ImageError(
                f"crop for view {i} must be an RGB uint8 array of shape (H, W, 3), "
                f"got dtype {crop.dtype}, shape {crop.shape}"
            )


def inspect_record(db_path: str | Path) -> str:
    """Check a record file read-only as :class:`DecisionRecord` would on open; a summary, or DataFileError.

    For ``edge check``: the same integrity check, schema version and "is it a record" test as the
    daemon's start-up, without creating, migrating or locking anything.
    """
    path = Path(db_path)
    if not path.exists():
        return "will be created"
    if path.is_dir():
        raise DataFileError(
            f"decision record {str(path)!r} is a folder; give the path of a file (e.g. .../record.db)"
        )
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            result = con.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {result}")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            tables = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            parts = con.execute("SELECT count(*) FROM parts").fetchone()[0] if version else 0
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise _db_error(path, exc) from None
    if version > SCHEMA_VERSION:
        raise DataFileError(
            f"decision record {str(path)!r} has schema version {version}, newer than this program's "
            f"{SCHEMA_VERSION}: upgrade lego-edge"
        )
    if version == 0 and tables:
        raise DataFileError(
            f"{str(path)!r} is an SQLite database but not a decision record; move it aside or choose "
            "another path"
        )
    return f"exists, schema {version}, {parts} part(s)"


class DecisionRecord:
    """Durable log of sorting decisions in a SQLite file (WAL), with PNG crops of doubtful parts.

    ``keep_crops``: ``"uncertain"`` keeps crops of unknown/low-confidence parts (the ones worth
    labelling later), ``"all"`` keeps every crop, ``"none"`` keeps none. ``verify`` runs SQLite's
    quick integrity check on open, so a damaged file fails at start-up rather than mid-run.
    """

    def __init__(
        self,
        db_path: Path,
        crops_dir: Path,
        *,
        keep_crops: KeepCrops = "uncertain",
        busy_timeout_s: float = 5.0,
        verify: bool = True,
    ) -> None:
        if keep_crops not in ("uncertain", "all", "none"):
            raise ValueError(f"keep_crops {keep_crops!r} must be 'uncertain', 'all' or 'none'")
        self.db_path, self.crops_dir, self.keep_crops = Path(db_path), Path(crops_dir), keep_crops
        if self.db_path.is_dir():
            raise DataFileError(
                f"decision record {str(self.db_path)!r} is a folder; "
                "give the path of a file (e.g. .../record.db)"
            )
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataFileError(
                f"cannot create the folder of decision record {str(self.db_path)!r}: "
                f"{exc.strerror}; create it or choose a writable path"
            ) from None
        self._con: sqlite3.Connection | None = None
        self._crops_failing = 0  # parts in a row whose crops could not be written
        self._crops_unreported = 0  # of those, parts not yet in a warning
        self._crops_warned_at: float | None = None
        with self._translate():
            con = sqlite3.connect(self.db_path, timeout=busy_timeout_s, isolation_level=None)
        self._con = con
        con.row_factory = sqlite3.Row
        try:
            self._open(verify)
        except BaseException:
            self.close()
            raise

    def _open(self, verify: bool) -> None:
        con = self._connection()
        with self._translate():
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DataFileError(
                    f"decision record {str(self.db_path)!r} cannot use write-ahead "
                    f"logging (journal mode {mode!r}); keep it on a local disk"
                )
            # FULL: in WAL mode every commit fsyncs the log, so a power cut loses only the part in
            # hand (still 'in_progress', marked abandoned by recover()). NORMAL could lose the last
            # few finished parts; one fsync per part is cheap at the rig's ~1 part/s.
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            if verify:
                result = con.execute("PRAGMA quick_check").fetchone()[0]
                if result != "ok":
                    raise _db_error(self.db_path, sqlite3.DatabaseError(f"integrity check: {result}"))
        with self._transaction() as tx:
            version = tx.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise DataFileError(
                    f"decision record {str(self.db_path)!r} has schema version {version}, "
                    f"newer than this program's {SCHEMA_VERSION}: upgrade lego-edge"
                )
            if version == 0 and tx.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise DataFileError(
                    f"{str(self.db_path)!r} is an SQLite database but not a decision "
                    "record; move it aside or choose another path"
                )
            for step in MIGRATIONS[version:]:
                for statement in step:
                    tx.execute(statement)
            tx.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _connection(self) -> sqlite3.Connection:
        if self._con is None:
            raise RuntimeError(f"decision record {str(self.db_path)!r} is closed")
        return self._con

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise _db_error(self.db_path, exc) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        con = self._connection()
        with self._translate():
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        """The file's ``PRAGMA user_version``."""
        with self._translate():
            return int(self._connection().execute("PRAGMA user_version").fetchone()[0])

    def _require_in_progress(self, con: sqlite3.Connection, part_id: int) -> None:
        row = con.execute("SELECT status FROM parts WHERE id = ?", (part_id,)).fetchone()
        if row is None:
            raise ValueError(f"no part with id {part_id!r} in {str(self.db_path)!r}; call begin_part() first")
        if row[0] != "in_progress":
            raise ValueError(f"part {part_id!r} is already {row[0]!r}; a part is finished or abandoned once")

    def begin_part(self) -> int:
        """Start a part (state ``'in_progress'``) and return its id."""
        with self._transaction() as con:
            cur = con.execute("INSERT INTO parts (started_at, status) VALUES (?, 'in_progress')", (_now(),))
            return int(cur.lastrowid or 0)

    def finish_part(self, part: PartRecord) -> None:
        """Record the decision for ``part`` (its ``part_id`` from :meth:`begin_part`) in one transaction.

        Stored: its status, part number, colour, confidence, bin index, recognition mode, stage
        timings, model set id and note, each view's angle and top parts, and the predictions (each
        view's top part). Crops that ``keep_crops`` selects are written first, so a committed row
        never names a missing file; if writing them fails (disk full) the failure is logged and the
        decision still recorded.
        """
        part_id = part.part_id
        if part_id is None:
            raise ValueError("part.part_id is None; set it to the id begin_part() returned")
        row = _row_of(part)
        _check_crops(part.crops)
        views = part.views
        topks = [_json(v.topk, f"view {i} topk") for i, v in enumerate(views)]
        with self._translate():
            self._require_in_progress(self._connection(), part_id)
        finished = _now()
        keep = self.keep_crops == "all" or (self.keep_crops == "uncertain" and part.status in UNCERTAIN)
        crop_paths: list[str | None] = [None] * len(views)
        events: list[tuple[str, str, str, str]] = []
        crops = part.crops
        if keep and any(c is not None for c in crops):
            crop_paths = self._save_crops(part_id, finished[:10], crops, events)
        with self._transaction() as con:
            self._require_in_progress(con, part_id)
            con.execute(
                "UPDATE parts SET finished_at = :finished_at, status = :status, part_num = :part_num,"
                " part_name = :part_name, color_id = :color_id, confidence = :confidence, bin = :bin,"
                " mode = :mode, timings = :timings, predictions = :predictions,"
                " model_set_id = :model_set_id, note = :note WHERE id = :id",
                {**row, "finished_at": finished, "id": part_id},
            )
            con.executemany(
                "INSERT INTO views (part_id, view_index, angle, topk, crop_path) VALUES (?, ?, ?, ?, ?)",
                [
                    (part_id, i, None if v.angle is None else float(v.angle), topks[i], crop_paths[i])
                    for i, v in enumerate(views)
                ],
            )
            con.executemany("INSERT INTO events (time, level, kind, message) VALUES (?, ?, ?, ?)", events)

    def _save_crops(
        self, part_id: int, day: str, crops: list[np.ndarray | None], events: list[tuple[str, str, str, str]]
    ) -> list[str | None]:
        """Write crops as PNGs; on an OS error (disk full) stop there and warn (rate-limited)."""
        import cv2  # core dependency, loaded only when a crop is actually kept

        paths: list[str | None] = [None] * len(crops)
        folder = self.crops_dir / day
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for i, crop in enumerate(crops):
                if crop is None:
                    continue
                ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2BGR))
                if not ok:
                    raise ImageError(f"OpenCV could not encode the crop of view {i} as PNG")
                rel = f"{day}/{part_id}_{i}.png"
                write_atomic(self.crops_dir / rel, png.tobytes())
                paths[i] = rel
            _fsync_dir(folder)
            _fsync_dir(self.crops_dir)  # the day folder may be new
        except OSError as exc:
            self._crop_failed(part_id, folder, exc, events)
            return paths  # the crops written before the failure are kept
        if self._crops_failing:
            log.info("crops are saved again, after %d part(s) without", self._crops_failing)
            self._crops_failing, self._crops_unreported, self._crops_warned_at = 0, 0, None
        return paths

    def _crop_failed(
        self, part_id: int, folder: Path, exc: OSError, events: list[tuple[str, str, str, str]]
    ) -> None:
        """Warn (log and event) about the first failure, then at most every CROP_WARNING_INTERVAL_S."""
        self._crops_failing += 1
        now = time.monotonic()
        if self._crops_warned_at is not None and now - self._crops_warned_at < CROP_WARNING_INTERVAL_S:
            self._crops_unreported += 1
            log.debug("part %d: crops not saved under %s: %s", part_id, folder, exc)
            return
        why = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        since = ""
        if self._crops_unreported:
            since = f"; {self._crops_unreported} more part(s) without crops since the last warning"
        msg = (
            f"part {part_id}: crops not saved under {str(folder)!r} ({why}); the decision is recorded "
            f"without them. Free disk space or set keep_crops='none'{since}. While this lasts further "
            f"failures are counted and reported every {CROP_WARNING_INTERVAL_S / 60:g} min"
        )
        log.warning(msg)
        events.append((_now(), "warning", "crop_write_failed", msg))
        self._crops_warned_at, self._crops_unreported = now, 0

    def abandon_part(self, part_id: int, reason: str) -> None:
        """Close a part that was never decided (jam, fell off the belt, shutdown); ``reason`` is kept."""
        with self._transaction() as con:
            self._require_in_progress(con, part_id)
            con.execute(
                "UPDATE parts SET status = 'abandoned', finished_at = ?, note = ? WHERE id = ?",
                (_now(), str(reason), part_id),
            )

    def log_event(self, level: str, kind: str, message: str) -> None:
        """Store a rig event (e.g. level 'warning', kind 'camera_lost'); ``level`` as in logging."""
        if level not in LEVELS:
            raise ValueError(f"event level {level!r} must be one of {list(LEVELS)!r}")
        with self._transaction() as con:
            con.execute(
                "INSERT INTO events (time, level, kind, message) VALUES (?, ?, ?, ?)",
                (_now(), level, str(kind), str(message)),
            )

    def recover(self) -> int:
        """Mark parts left 'in_progress' by a crash or power cut as abandoned; return how many."""
        with self._transaction() as con:
            note = "the program stopped before this part was decided (crash or power cut)"
            count = con.execute(
                "UPDATE parts SET status = 'abandoned', finished_at = ?, note = ? "
                "WHERE status = 'in_progress'",
                (_now(), note),
            ).rowcount
            if count:
                con.execute(
                    "INSERT INTO events (time, level, kind, message) VALUES (?, ?, ?, ?)",
                    (_now(), "warning", "recovered", f"{count} unfinished part(s) marked abandoned"),
                )
        return count

    def summary(self) -> dict[str, Any]:
        """Counts per status and per bin, the total, and the mean confidence of decided parts."""
        con = self._connection()
        with self._translate():
            by_status = dict.fromkeys(("in_progress", *STATUSES), 0)
            by_status.update(con.execute("SELECT status, count(*) FROM parts GROUP BY status").fetchall())
            by_bin = dict(
                con.execute(
                    "SELECT bin, count(*) FROM parts WHERE bin IS NOT NULL GROUP BY bin ORDER BY bin"
                ).fetchall()
            )
            mean = con.execute("SELECT avg(confidence) FROM parts WHERE confidence IS NOT NULL").fetchone()[0]
        return {
            "total": sum(by_status.values()),
            "by_status": by_status,
            "by_bin": by_bin,
            "mean_confidence": mean,
        }

    def recent(self, n: int) -> list[dict[str, Any]]:
        """The last ``n`` parts, newest first, JSON columns decoded, each with its ``views``."""
        _check_count(n)
        con = self._connection()
        with self._translate():
            parts = [dict(r) for r in con.execute("SELECT * FROM parts ORDER BY id DESC LIMIT ?", (n,))]
            for part in parts:
                for key in ("timings", "predictions"):
                    part[key] = None if part[key] is None else json.loads(part[key])
                rows = con.execute(
                    "SELECT view_index, angle, topk, crop_path FROM views WHERE part_id = ? "
                    "ORDER BY view_index",
                    (part["id"],),
                )
                part["views"] = [{**dict(v), "topk": json.loads(v["topk"])} for v in rows]
        return parts

    def recent_events(self, n: int) -> list[dict[str, Any]]:
        """The last ``n`` events, newest first."""
        _check_count(n)
        with self._translate():
            rows = self._connection().execute("SELECT * FROM events ORDER BY id DESC LIMIT ?", (n,))
            return [dict(r) for r in rows]

    def close(self) -> None:
        """Close the database (idempotent). SQLite checkpoints the WAL into the main file."""
        if self._con is not None:
            con, self._con = self._con, None
            with self._translate():
                con.close()

    def __enter__(self) -> DecisionRecord:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
