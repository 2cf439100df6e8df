"""The decision record: every sorting decision in a SQLite file, crops of doubtful parts as PNGs.

One row per part in ``parts`` (begun as ``'in_progress'``, then finished or abandoned), one row per
camera view in ``views`` and rig faults in ``events``. The schema version lives in
``PRAGMA user_version``; :data:`~edge.record_file.MIGRATIONS` upgrades older files on open. Times are
ISO 8601 UTC. Crop paths are stored relative to ``crops_dir`` so the folder can be moved with the
database. A daemon holds :class:`edge.record_lock.RecordLock` (``<db>.lock``) for its whole life, so
a second daemon cannot take the record and abandon the first one's part in hand.

The schema, its migrations, SQLite errors and the read-only check ``edge check`` runs are
:mod:`edge.record_file`'s; writing the crops (and warning while they cannot be written),
:mod:`edge.record_crops`'s.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.errors import DataFileError
from edge.part import STATUSES as DECIDED
from edge.part import PartRecord
from edge.record_crops import CropWriter, check_crops
from edge.record_file import MIGRATIONS, SCHEMA_VERSION, db_error, utc_now

KeepCrops = Literal["uncertain", "all", "none"]
STATUSES = ("sorted", "unknown", "low_confidence", "error", "abandoned")
UNCERTAIN = frozenset({"unknown", "low_confidence"})
LEVELS = ("debug", "info", "warning", "error", "critical")


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


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n {n!r} must be a whole number >= 0")


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
        self._crops = CropWriter(self.crops_dir)
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
                    raise db_error(self.db_path, sqlite3.DatabaseError(f"integrity check: {result}"))
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
            raise db_error(self.db_path, exc) from exc

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
            cur = con.execute(
                "INSERT INTO parts (started_at, status) VALUES (?, 'in_progress')", (utc_now(),)
            )
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
        check_crops(part.crops)
        views = part.views
        topks = [_json(v.topk, f"view {i} topk") for i, v in enumerate(views)]
        with self._translate():
            self._require_in_progress(self._connection(), part_id)
        finished = utc_now()
        keep = self.keep_crops == "all" or (self.keep_crops == "uncertain" and part.status in UNCERTAIN)
        crop_paths: list[str | None] = [None] * len(views)
        events: list[tuple[str, str, str, str]] = []
        crops = part.crops
        if keep and any(c is not None for c in crops):
            crop_paths = self._crops.save(part_id, finished[:10], crops, events)
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

    def abandon_part(self, part_id: int, reason: str) -> None:
        """Close a part that was never decided (jam, fell off the belt, shutdown); ``reason`` is kept."""
        with self._transaction() as con:
            self._require_in_progress(con, part_id)
            con.execute(
                "UPDATE parts SET status = 'abandoned', finished_at = ?, note = ? WHERE id = ?",
                (utc_now(), str(reason), part_id),
            )

    def log_event(self, level: str, kind: str, message: str) -> None:
        """Store a rig event (e.g. level 'warning', kind 'camera_lost'); ``level`` as in logging."""
        if level not in LEVELS:
            raise ValueError(f"event level {level!r} must be one of {list(LEVELS)!r}")
        with self._transaction() as con:
            con.execute(
                "INSERT INTO events (time, level, kind, message) VALUES (?, ?, ?, ?)",
                (utc_now(), level, str(kind), str(message)),
            )

    def recover(self) -> int:
        """Mark parts left 'in_progress' by a crash or power cut as abandoned; return how many."""
        with self._transaction() as con:
            note = "the program stopped before this part was decided (crash or power cut)"
            count = con.execute(
                "UPDATE parts SET status = 'abandoned', finished_at = ?, note = ? "
                "WHERE status = 'in_progress'",
                (utc_now(), note),
            ).rowcount
            if count:
                con.execute(
                    "INSERT INTO events (time, level, kind, message) VALUES (?, ?, ?, ?)",
                    (utc_now(), "warning", "recovered", f"{count} unfinished part(s) marked abandoned"),
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
