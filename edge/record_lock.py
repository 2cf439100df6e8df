"""The decision record's lock: one daemon per record, for the daemon's whole life (``<db>.lock``)."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from edge.errors import DataFileError

log = logging.getLogger(__name__)

__all__ = ["RecordLock"]


class RecordLock:
    """An exclusive lock on a decision record for one daemon's life: ``flock`` on ``<db>.lock``.

    SQLite's own locks last one transaction; this one lasts as long as the daemon, so a second
    ``edge run`` on the same record is refused before its start-up recovery can mark the first
    daemon's part in hand abandoned. The kernel drops the lock when the process dies (a crash or
    power cut leaves no stale lock); the file itself stays and holds the holder's pid for messages.
    Use as a context manager, or :meth:`acquire` and :meth:`release`.
    """

    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)
        self.path = self.db_path.with_name(self.db_path.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`DataFileError` naming the holder's pid and the fix."""
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DataFileError(
                f"cannot create the lock file {str(self.path)!r} of decision record {str(self.db_path)!r}: "
                f"{exc.strerror or exc}; make its folder writable by this user or choose another data.db"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _lock_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise DataFileError(
                    f"cannot lock {str(self.path)!r}: {exc.strerror or exc}; keep the record on a local disk"
                ) from None
            raise DataFileError(
                f"decision record {str(self.db_path)!r} is in use by another 'edge run' ({holder}, lock "
                f"file {str(self.path)!r}); stop that daemon first (sudo systemctl stop lego-edge, or kill "
                "the pid above), or point data.db at another file. Only one daemon may use a record"
            ) from None
        try:
            os.ftruncate(fd, 0)
            _write_all(fd, f"{os.getpid()} {datetime.now(UTC).isoformat(timespec='milliseconds')}\n".encode())
        except OSError as exc:  # a full disk must not stop the daemon: the pid is only for messages
            log.warning("could not write the pid into %s: %s", self.path, exc)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent). The file stays: removing it would race a waiting daemon."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> RecordLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def holder(self) -> str | None:
        """Who holds the lock now ('pid 1234, since ...'), or None when nobody does (read-only probe)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None  # no lock file: no daemon has run here
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _lock_holder(fd)
        finally:
            os.close(fd)  # also drops the shared lock just taken
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _lock_holder(fd: int) -> str:
    """'pid 1234, since <time>' from a lock file's text, or 'pid unknown'."""
    try:
        text = os.pread(fd, 200, 0).decode("ascii", "replace").split()
    except OSError:
        text = []
    if text and text[0].isdigit():
        return f"pid {text[0]}" + (f", since {text[1]}" if len(text) > 1 else "")
    return "pid unknown"
