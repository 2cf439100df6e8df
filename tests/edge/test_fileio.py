"""Atomic writes: all or nothing, readable permissions, nothing left behind on failure."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edge.fileio import atomic_path, atomic_write, write_atomic


def test_write_replaces_whole_file_with_readable_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    write_atomic(target, "old")
    write_atomic(target, b"new", fsync=False)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # mkstemp's 0600 would lock out the service user
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as fh:
        fh.write("half")
        raise RuntimeError("disk pulled")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_atomic_path_renames_what_a_writer_wrote_by_name_or_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "g.bin"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"new")  # as a library writing to a file name (hnswlib's save_index) would
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o644
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk pulled")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["g.bin"]
