"""Atomic file writes: a reader (or a power cut) sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(
    path: str | Path, mode: str = "wb", *, perms: int = 0o644, fsync: bool = True
) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on a clean exit fsync it and rename it over ``path``.

    ``fsync=False`` keeps the all-or-nothing rename but skips the flush to disk: enough where a lost
    file is simply made again (rendered data sets), and much faster for thousands of small files.

    ``perms`` is applied before the rename (``mkstemp`` makes 0600 files, which a service running as
    another user could not read). On an exception the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, perms)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(path: str | Path, *, perms: int = 0o644) -> Iterator[Path]:
    """Like :func:`atomic_write` for writers that take a file name, not a file object.

    Yields the name of a temp file beside ``path``; on a clean exit the file (written and closed by
    the caller's writer, e.g. hnswlib's ``save_index``) is fsynced and renamed over ``path``.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, perms)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: bytes | str, *, perms: int = 0o644, fsync: bool = True) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb", perms=perms, fsync=fsync) as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
