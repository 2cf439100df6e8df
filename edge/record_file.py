"""The decision record's SQLite file: its schema and migrations, SQLite errors named with their fix,
and the read-only check ``edge check`` runs on it.

The schema version lives in ``PRAGMA user_version``; :data:`MIGRATIONS` upgrades older files when
:class:`~edge.record.DecisionRecord` opens them. Times are ISO 8601 UTC (:func:`utc_now`).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from edge.errors import DataFileError, DiskFullError

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


def utc_now() -> str:
    """The time now as the record stores times: ISO 8601 UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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


def db_error(path: Path, exc: sqlite3.Error) -> DataFileError | DiskFullError:
    """Turn an SQLite error into a DataFileError (DiskFullError when full) naming the file and the fix."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    fix = next(
        (f for prefixes, f in _FIXES if name.startswith(prefixes)),
        "check the file, or move it aside to begin a new record",
    )
    p = str(path)
    text = f"decision record {p!r}: {exc} ({name or type(exc).__name__}); {fix.format(p=p)}"
    return DiskFullError(text) if name.startswith("SQLITE_FULL") else DataFileError(text)


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
        raise db_error(path, exc) from None
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
