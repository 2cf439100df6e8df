"""Reviewing the decision record: the doubtful parts with their crops, and corrections of them.

``edge review`` lists the recorded parts that were unknown or low-confidence (the ones whose crops
the record keeps), draws their crops into a contact sheet (``review.png``) and writes an HTML page
(``review.html``), both in the record's folder. ``edge relabel ID --part P --color C`` corrects
one decision: the correction is a NEW row of the ``corrections`` table that points at the decision
(``parts.id``); nothing in ``parts`` or ``views`` is changed, so the record still shows what the
rig decided. The latest correction of a part is the one that counts. The correction's kept crops
are enrolled into the user index (:mod:`edge.enroll`) so the rig recognises the part next time.
``edge counts`` writes how often the rig met each part (corrections first, then sorted decisions)
as a parts file for the part prior (:mod:`edge.prior`).

This module owns the ``corrections`` table: it creates it in an existing decision record the first
time a correction is made (``CREATE TABLE IF NOT EXISTS``); the record's own schema version is
left alone.
"""

from __future__ import annotations

import html
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import DataFileError, ImageError
from edge.fileio import atomic_write, write_atomic
from edge.record import UNCERTAIN
from edge.record_file import SCHEMA_VERSION

CORRECTIONS_SQL = (
    """CREATE TABLE IF NOT EXISTS corrections (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        part_id INTEGER NOT NULL REFERENCES parts (id),
        corrected_at TEXT NOT NULL,
        part_num TEXT NOT NULL CHECK (length(part_num) > 0),
        color_id INTEGER,
        enrolled_views INTEGER NOT NULL DEFAULT 0 CHECK (enrolled_views >= 0),
        note TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS corrections_part ON corrections (part_id)",
)
#: File names of the review written into the record's folder.
SHEET_NAME, PAGE_NAME = "review.png", "review.html"


@dataclass
class ReviewItem:
    """One recorded part for review: what the rig decided, its crops, its latest correction."""

    part_id: int
    finished_at: str | None
    status: str
    part_num: str | None
    color_id: int | None
    confidence: float | None
    note: str | None
    guesses: list[str] = field(default_factory=list)  # each view's top-1 part
    crops: list[Path] = field(default_factory=list)  # kept crops that exist on disk
    correction: dict[str, Any] | None = None

    @property
    def guess(self) -> str | None:
        """The decided part, else the views' most common top-1 part."""
        if self.part_num:
            return self.part_num
        return Counter(self.guesses).most_common(1)[0][0] if self.guesses else None


@contextmanager
def open_record(db_path: str | Path, *, busy_timeout_s: float = 5.0) -> Iterator[sqlite3.Connection]:
    """A connection to an existing decision record (refused: missing, not a record, or newer)."""
    path = Path(db_path)
    if not path.is_file():
        raise DataFileError(
            f"decision record {str(path)!r} does not exist; run the rig (`edge run`) first or fix data.db"
        )
    try:
        con = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=busy_timeout_s, isolation_level=None)
    except sqlite3.Error as exc:
        raise DataFileError(f"decision record {str(path)!r} cannot be opened: {exc}") from None
    con.row_factory = sqlite3.Row
    try:
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            has_parts = con.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'parts'"
            ).fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise DataFileError(f"{str(path)!r} is not a decision record: {exc}") from None
        if version < 1 or not has_parts:
            raise DataFileError(f"{str(path)!r} is not a decision record (no parts table); check data.db")
        if version > SCHEMA_VERSION:
            raise DataFileError(
                f"decision record {str(path)!r} has schema version {version}, newer than this program's "
                f"{SCHEMA_VERSION}: upgrade lego-edge"
            )
        con.execute("PRAGMA foreign_keys=ON")
        yield con
    finally:
        con.close()


def _has_corrections(con: sqlite3.Connection) -> bool:
    row = con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'corrections'")
    return bool(row.fetchone()[0])


def latest_correction(con: sqlite3.Connection, part_id: int) -> dict[str, Any] | None:
    """The part's latest correction row, or None."""
    if not _has_corrections(con):
        return None
    row = con.execute(
        "SELECT * FROM corrections WHERE part_id = ? ORDER BY id DESC LIMIT 1", (part_id,)
    ).fetchone()
    return None if row is None else dict(row)


def corrections(con: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every correction, oldest first."""
    if not _has_corrections(con):
        return []
    return [dict(r) for r in con.execute("SELECT * FROM corrections ORDER BY id")]


def part_counts(con: sqlite3.Connection, *, corrected_only: bool = False) -> tuple[Counter[str], int]:
    """How often the rig met each part: a corrected part counts as its latest correction says, a
    sorted one (unless ``corrected_only``) as decided; unknown, doubtful, failed and abandoned
    parts without a correction do not count. Returns (counts, how many of them are corrections)."""
    latest = (
        "(SELECT c.part_num FROM corrections c WHERE c.part_id = p.id ORDER BY c.id DESC LIMIT 1)"
        if _has_corrections(con)
        else "NULL"
    )
    counts: Counter[str] = Counter()
    corrected = 0
    for row in con.execute(f"SELECT p.status, p.part_num, {latest} AS corrected FROM parts p"):
        if row["corrected"]:
            counts[row["corrected"]] += 1
            corrected += 1
        elif row["status"] == "sorted" and row["part_num"] and not corrected_only:
            counts[row["part_num"]] += 1
    return counts, corrected


def write_part_counts(counts: Counter[str], path: str | Path, source: str) -> Path:
    """``counts`` as a parts file of ``PART COUNT`` lines, most common first (the part prior's
    form, :mod:`edge.prior`), written atomically."""
    if not counts:
        raise DataFileError(
            f"{source} holds no sorted or corrected part to count; run the rig longer or correct "
            "parts with `edge relabel`"
        )
    lines = [f"# parts met on the rig, from {source}; for recognition.part_prior", "# part count"]
    lines += [f"{part} {n}" for part, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    write_atomic(path, "\n".join(lines) + "\n")
    return Path(path)


def _item(con: sqlite3.Connection, row: sqlite3.Row, crops_dir: Path) -> ReviewItem:
    item = ReviewItem(
        part_id=int(row["id"]),
        finished_at=row["finished_at"],
        status=str(row["status"]),
        part_num=row["part_num"],
        color_id=row["color_id"],
        confidence=row["confidence"],
        note=row["note"],
    )
    for view in con.execute(
        "SELECT topk, crop_path FROM views WHERE part_id = ? ORDER BY view_index", (item.part_id,)
    ):
        try:
            topk = json.loads(view["topk"])
        except (TypeError, ValueError):
            topk = []
        if topk and isinstance(topk[0], list) and topk[0]:
            item.guesses.append(str(topk[0][0]))
        if view["crop_path"]:
            path = crops_dir / str(view["crop_path"])
            if path.resolve().is_relative_to(crops_dir.resolve()) and path.is_file():
                item.crops.append(path)
    item.correction = latest_correction(con, item.part_id)
    return item


def doubtful_parts(
    con: sqlite3.Connection, crops_dir: str | Path, *, limit: int = 100, pending_only: bool = False
) -> list[ReviewItem]:
    """The newest ``limit`` unknown or low-confidence parts, newest first (``pending_only``: not
    yet corrected)."""
    marks = ", ".join("?" for _ in UNCERTAIN)
    rows = con.execute(
        f"SELECT * FROM parts WHERE status IN ({marks}) ORDER BY id DESC", tuple(sorted(UNCERTAIN))
    )
    items = []
    for row in rows:
        item = _item(con, row, Path(crops_dir))
        if pending_only and item.correction is not None:
            continue
        items.append(item)
        if len(items) >= limit:
            break
    return items


def recorded_part(con: sqlite3.Connection, crops_dir: str | Path, part_id: int) -> ReviewItem:
    """One recorded part by id (any status but in progress); DataFileError when there is none."""
    row = con.execute("SELECT * FROM parts WHERE id = ?", (part_id,)).fetchone()
    if row is None:
        raise DataFileError(f"the decision record has no part {part_id}; see `edge review` for the ids")
    if row["status"] == "in_progress":
        raise DataFileError(f"part {part_id} is still being decided; correct it once it is finished")
    return _item(con, row, Path(crops_dir))


def add_correction(
    con: sqlite3.Connection,
    part_id: int,
    part_num: str,
    color_id: int | None,
    *,
    enrolled_views: int = 0,
    note: str | None = None,
) -> int:
    """Insert a correction of decision ``part_id`` (a new row; nothing is overwritten); its id."""
    if not part_num.strip():
        raise ValueError("a correction needs a part number")
    con.execute("BEGIN IMMEDIATE")
    try:
        for statement in CORRECTIONS_SQL:
            con.execute(statement)
        if con.execute("SELECT count(*) FROM parts WHERE id = ?", (part_id,)).fetchone()[0] == 0:
            raise DataFileError(f"the decision record has no part {part_id}; see `edge review` for the ids")
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        cur = con.execute(
            "INSERT INTO corrections (part_id, corrected_at, part_num, color_id, enrolled_views, note) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (part_id, now, part_num.strip(), color_id, int(enrolled_views), note),
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(cur.lastrowid or 0)


def read_crop(path: Path) -> np.ndarray:
    """A kept crop (PNG written by the record) as RGB."""
    from edge.imagefile import read_image

    return read_image(path)


def crop_masks(segmenter: Any, crops: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(crop, mask) pairs for enrolment: the segmenter's mask of each kept crop, else the whole crop
    (a segmenter fitted to full frames, such as ``bgdiff``, cannot cut a crop)."""
    pairs = []
    for crop in crops:
        mask = None
        if segmenter is not None:
            try:
                mask = np.asarray(segmenter.mask(crop), np.uint8)
            except (ValueError, ImageError, cv2.error):
                mask = None
        if mask is None or mask.shape != crop.shape[:2] or not np.any(mask):
            mask = np.full(crop.shape[:2], 255, np.uint8)
        pairs.append((crop, np.where(mask > 0, 255, 0).astype(np.uint8)))
    return pairs


def _label(item: ReviewItem, color_name: Any) -> list[str]:
    conf = "-" if item.confidence is None else f"{item.confidence:.2f}"
    lines = [
        f"#{item.part_id} {item.status}",
        f"guess {item.guess or '?'} / {color_name(item.color_id)}",
        f"conf {conf}",
    ]
    if item.correction:
        lines.append(f"-> {item.correction['part_num']} / {color_name(item.correction['color_id'])}")
    return lines


def write_contact_sheet(
    items: Sequence[ReviewItem], path: str | Path, color_name: Any, thumb: int = 112
) -> Path:
    """One row per part: its label, then its crops as ``thumb`` px squares. Written atomically."""
    label_w, pad = 330, 6
    views = max([len(i.crops) for i in items] + [1])
    width = label_w + views * (thumb + pad) + pad
    height = max(1, len(items)) * (thumb + pad) + pad
    sheet = np.full((height, width, 3), 255, np.uint8)
    if not items:
        cv2.putText(
            sheet, "nothing to review", (pad, thumb // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1
        )
    for r, item in enumerate(items):
        y = pad + r * (thumb + pad)
        for k, line in enumerate(_label(item, color_name)):
            colour = (0, 110, 0) if line.startswith("->") else (0, 0, 0)
            cv2.putText(
                sheet, line, (pad, y + 20 + 22 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA
            )
        for c, crop_path in enumerate(item.crops):
            try:
                crop = read_crop(crop_path)
            except (DataFileError, ImageError, OSError):
                continue
            x = label_w + c * (thumb + pad)
            sheet[y : y + thumb, x : x + thumb] = cv2.resize(
                crop, (thumb, thumb), interpolation=cv2.INTER_AREA
            )
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageError("OpenCV could not encode the contact sheet")
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fh.write(png.tobytes())
    return path


def write_page(items: Sequence[ReviewItem], path: str | Path, color_name: Any, db_path: str | Path) -> Path:
    """An HTML page of the parts to review, their crops linked relative to the page. Atomic."""
    path = Path(path)
    rows = []
    for item in items:
        imgs = "".join(
            f'<img src="{html.escape(Path(os.path.relpath(c, path.parent)).as_posix())}" width="112">'
            for c in item.crops
        )
        fix = (
            ""
            if item.correction is None
            else html.escape(
                f"{item.correction['part_num']} / {color_name(item.correction['color_id'])}"
                f" ({item.correction['corrected_at']})"
            )
        )
        conf = "-" if item.confidence is None else f"{item.confidence:.2f}"
        rows.append(
            "<tr>"
            f"<td>{item.part_id}</td><td>{html.escape(item.status)}</td>"
            f"<td>{html.escape(item.guess or '?')}</td><td>{html.escape(color_name(item.color_id))}</td>"
            f"<td>{conf}</td><td>{imgs or '(no crops kept)'}</td><td>{fix}</td>"
            f"<td><code>edge relabel {item.part_id} --part P --color C</code></td>"
            "</tr>"
        )
    page = (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>lego-edge review</title>'
        "<style>body{font-family:sans-serif}td{border-bottom:1px solid #ccc;padding:4px;vertical-align:top}"
        "</style></head><body>\n"
        f"<h1>Parts to review</h1><p>{len(items)} unknown or doubtful part(s) from "
        f"{html.escape(str(db_path))}, newest first.</p>\n"
        "<table><tr><th>id</th><th>status</th><th>guess</th><th>colour</th><th>conf</th><th>crops</th>"
        "<th>corrected to</th><th>correct with</th></tr>\n" + "\n".join(rows) + "\n</table></body></html>\n"
    )
    with atomic_write(path, "w") as fh:
        fh.write(page)
    return path
