"""Two daemons on one record: the second is refused and the first keeps its part in hand.

Found by the hostile probe: a second ``edge run`` on the same record.db ran its start-up recovery,
marked the first daemon's live part abandoned, and the first daemon then died finishing it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edge.daemon import Daemon
from edge.errors import DataFileError
from edge.record import DecisionRecord
from edge.record_lock import RecordLock
from edge.settings import load_edge_config
from tests.edge.test_settings import write_sim_setup

REPO = Path(__file__).resolve().parents[2]


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except OSError:  # closed or timed out: the test is over
        pass


def test_a_second_daemon_on_the_same_record_is_refused(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    first = Daemon(cfg, sim=True, parts=1)
    first.open()
    try:
        assert first.record is not None
        live = first.record.begin_part()  # the part the first daemon has in hand
        second = Daemon(cfg, sim=True, parts=1)
        with pytest.raises(DataFileError) as info:
            second.run()
        text = str(info.value)
        assert str(cfg.data.db) in text and f"pid {os.getpid()}" in text
        assert "record.db.lock" in text and "stop" in text  # the holder, the lock file and the fix
        # The first daemon's part is untouched and it can still finish it.
        first.record.abandon_part(live, "test over")
    finally:
        first.close()
    with DecisionRecord(cfg.data.db, cfg.data.crops_dir) as record:
        (part,) = record.recent(5)
        assert part["note"] == "test over"  # not 'the program stopped before this part was decided'
    # Once the first has closed, a new daemon may take the record.
    assert Daemon(cfg, sim=True, parts=1).run().parts == 1


def test_the_lock_is_released_and_reports_a_missing_folder(tmp_path: Path) -> None:
    db = tmp_path / "new" / "record.db"
    with RecordLock(db) as lock:
        assert lock.path == tmp_path / "new" / "record.db.lock"
        assert lock.path.read_text().split()[0] == str(os.getpid())
        with pytest.raises(DataFileError, match=r"in use by another .edge run. \(pid \d+"):
            RecordLock(db).acquire()
    with RecordLock(db):  # released on exit
        pass


def test_two_real_processes(tmp_path: Path, demo_library: Path) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(60)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("WATCHDOG_USEC", None)
    argv = [sys.executable, "-m", "edge.cli", "run", "--sim", "--config", str(config)]
    first = subprocess.Popen(
        argv, env={**env, "NOTIFY_SOCKET": str(sock_path)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        messages: list[str] = []
        while not any(m.startswith("STATUS=running: 1 parts") for m in messages):
            messages.append(sock.recv(4096).decode())
        # Keep reading: a full notify socket would block the first daemon's next STATUS= message.
        threading.Thread(target=_drain, args=(sock,), daemon=True).start()
        second = subprocess.run([*argv, "--parts", "1"], env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"pid {first.pid}" in second.stderr and "record.db.lock" in second.stderr
        assert first.poll() is None  # the first daemon runs on
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
        sock.close()
    assert first.returncode == 0, err.decode()
    cfg = load_edge_config(config)
    with DecisionRecord(cfg.data.db, cfg.data.crops_dir) as record:
        parts = record.recent(1000)
        assert all("crash or power cut" not in (p["note"] or "") for p in parts)
        assert record.summary()["by_status"]["in_progress"] == 0
