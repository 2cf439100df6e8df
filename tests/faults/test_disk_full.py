"""A full disk: the decision is committed before the chute moves, and the part in hand stays put.

Found by the hostile probe: the chute moved before the decision was committed, so on a full disk the
part went into a bin with no record of it, and an error while shutting down hid the first error.
SQLite's ``PRAGMA max_page_count`` (capped at the record's size when it is opened) stands in for
the full disk: every write that needs a new page fails with 'database or disk is full'.
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge import cli, service
from edge.camera import create_camera
from edge.daemon import Daemon
from edge.errors import DiskFullError, HardwareError
from edge.record import DecisionRecord
from edge.rig import Rig
from edge.rig.chute import Chute
from edge.settings import load_edge_config
from tests.edge.test_settings import write_sim_setup

ERROR_LED = 26


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every DecisionRecord opened from now on can hold no more pages than it has."""
    real = DecisionRecord._open

    def capped(self: DecisionRecord, verify: bool) -> None:
        real(self, verify)
        con = self._connection()
        con.execute(f"PRAGMA max_page_count = {con.execute('PRAGMA page_count').fetchone()[0]}")

    monkeypatch.setattr(DecisionRecord, "_open", capped)


@pytest.fixture
def chute_moves(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The bins the chute is sent to, in order."""
    moves: list[str] = []
    real = Chute.select

    def select(self: Chute, name: str) -> Any:
        moves.append(name)
        return real(self, name)

    monkeypatch.setattr(Chute, "select", select)
    return moves


@pytest.fixture
def notified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Messages sent to NOTIFY_SOCKET, read as they come (a full queue would drop some)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    received: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                received.append(sock.recv(65536).decode())
            except TimeoutError:
                continue

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def messages() -> list[str]:
        done.set()
        reader.join()
        return received

    yield messages
    done.set()
    sock.close()


def _parts(cfg: Any) -> list[dict[str, Any]]:
    with DecisionRecord(cfg.data.db, cfg.data.crops_dir) as record:
        return list(reversed(record.recent(1000)))


def test_a_full_disk_stops_the_rig_with_the_part_in_hand(
    tmp_path: Path, demo_library: Path, full_disk: None, chute_moves: list[str], notified: Any
) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    camera = create_camera(cfg.camera)
    factory = MockFactory(pin_class=MockPWMPin)
    daemon = Daemon(cfg, sim=True, parts=40, camera=camera, pin_factory=factory)
    with pytest.raises(DiskFullError) as info:
        daemon.run()
    assert "disk is full" in str(info.value) and str(cfg.data.db) in str(info.value)
    parts = _parts(cfg)
    decided = [p for p in parts if p["status"] != "in_progress"]
    assert 1 <= len(decided) < 40
    # Every chute move follows a committed decision, in order; the part in hand moved nowhere.
    names = cfg.bin_names
    assert chute_moves == [names[p["bin"]] for p in decided]
    assert parts[-1]["status"] == "in_progress"  # left for the next start-up to mark abandoned
    assert camera.part is not None  # still on the turntable: not cleared
    assert 1 in [s.state for s in factory.pin(ERROR_LED).states]  # the error LED was lit
    messages = notified()
    halt = [m for m in messages if "disk is full" in m]
    assert halt and "STATUS=halted" in halt[0] and "ERRNO=28" in halt[0]
    assert "STOPPING=1" in messages


def test_a_shutdown_error_does_not_hide_the_first(
    tmp_path: Path,
    demo_library: Path,
    full_disk: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))

    def broken(self: Rig) -> None:
        raise HardwareError("servo gone while shutting down")

    monkeypatch.setattr(Rig, "safe_state", broken)
    with caplog.at_level(logging.WARNING), pytest.raises(DiskFullError):
        Daemon(cfg, sim=True, parts=40).run()
    assert "servo gone while shutting down" in caplog.text


def test_edge_run_exits_with_the_code_the_unit_does_not_restart_on(
    tmp_path: Path, demo_library: Path, full_disk: None, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    assert cli.main(["run", "--sim", "--config", str(config), "--parts", "40"]) == service.EXIT_DISK_FULL
    assert "disk is full" in caplog.text


def test_a_notify_socket_nobody_reads_never_blocks_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found while writing the test above: sendto blocked once the receiver's queue (10 messages) was full.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "deaf.sock"))
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "deaf.sock"))
        sent = [service.status(f"part {i}") for i in range(100)]  # would hang at the 11th
        assert sent[0] and not all(sent)
        assert sock.recv(4096) == b"STATUS=part 0"


def test_halted_sends_status_and_errno_in_one_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "n.sock"))
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "n.sock"))
        assert service.halted("disk is full\nfree space", 28)
        assert sock.recv(4096) == b"STATUS=halted: disk is full free space\nERRNO=28"


def test_a_disk_full_at_start_up_is_reported_too(
    tmp_path: Path, demo_library: Path, monkeypatch: pytest.MonkeyPatch, notified: Any
) -> None:
    config = write_sim_setup(tmp_path, demo_library)

    def full(self: DecisionRecord) -> int:
        raise DiskFullError(f"decision record {str(self.db_path)!r}: database or disk is full")

    monkeypatch.setattr(DecisionRecord, "recover", full)
    assert cli.main(["run", "--sim", "--config", str(config)]) == service.EXIT_DISK_FULL
    assert any(m.startswith("STATUS=halted: ") and "ERRNO=28" in m for m in notified())
