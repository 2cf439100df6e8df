"""Tests of edge.service against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from edge import service

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def notify_sock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A bound datagram socket; NOTIFY_SOCKET points at it, WATCHDOG_* are cleared."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def _pending(sock: socket.socket) -> list[bytes]:
    """Every datagram already queued on ``sock``."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096))
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(10)


def test_messages_reach_the_socket(notify_sock: socket.socket) -> None:
    assert service.ready()
    assert service.status("sorting\npart 12")
    assert service.watchdog_ping()
    assert service.extend_timeout(2.5)
    assert service.stopping()
    assert [notify_sock.recv(4096) for _ in range(5)] == [
        b"READY=1",
        b"STATUS=sorting part 12",
        b"WATCHDOG=1",
        b"EXTEND_TIMEOUT_USEC=2500000",
        b"STOPPING=1",
    ]


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"lego-edge-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert service.ready()
        assert sock.recv(4096) == b"READY=1"


def test_unset_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert service.ready() is False
    assert service.watchdog_ping() is False


def test_unreachable_socket_does_not_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    assert service.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/path")
    assert service.ready() is False


def test_watchdog_interval_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert service.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert service.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert service.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert service.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    for bad in ("0", "-5", "30s"):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert service.watchdog_interval() is None


def test_watchdog_pings_at_most_every_half_interval(notify_sock: socket.socket) -> None:
    now = [100.0]
    dog = service.Watchdog(10.0, clock=lambda: now[0])
    pinged = []
    for t in (0.0, 1.0, 4.9, 5.0, 6.0, 9.9, 10.0, 30.0, 30.1):
        now[0] = 100.0 + t
        if dog.kick():
            pinged.append(t)
    assert pinged == [0.0, 5.0, 10.0, 30.0]
    assert _pending(notify_sock) == [b"WATCHDOG=1"] * 4


def test_watchdog_reads_env_and_is_silent_when_disabled(
    notify_sock: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    dog = service.Watchdog()
    assert not dog.enabled and dog.kick() is False
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    dog = service.Watchdog()
    assert dog.enabled and dog.interval_s == 2.0
    assert dog.kick() is True
    assert _pending(notify_sock) == [b"WATCHDOG=1"]
    with pytest.raises(ValueError, match="interval_s"):
        service.Watchdog(0)


def test_stop_handler_sets_flag_calls_back_and_restores() -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen: list[int] = []
    flag = service.install_stop_handlers(seen.append)
    try:
        assert not flag
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.wait(5)
        assert flag.signum == signal.SIGTERM and seen == [signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C after a stop request escalates, by design
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        flag.restore()
    assert signal.getsignal(signal.SIGTERM) is before


def test_install_outside_main_thread_is_refused() -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            service.install_stop_handlers()
        except RuntimeError as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert len(errors) == 1 and "main thread" in str(errors[0])


LOOP_CHILD = """
import sys
from pathlib import Path
from edge import service
flag = service.install_stop_handlers()
dog = service.Watchdog()
service.ready()
while not flag.is_set():
    dog.kick()
    flag.wait(0.01)
service.stopping()
Path(sys.argv[1]).write_text(f"cleaned up after signal {flag.signum}")
"""


def test_sigterm_stops_a_looping_child_cleanly(notify_sock: socket.socket, tmp_path: Path) -> None:
    marker = tmp_path / "cleanup.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "WATCHDOG_USEC": "200000"}
    child = subprocess.Popen([sys.executable, "-c", LOOP_CHILD, str(marker)], cwd=REPO, env=env)
    try:
        assert notify_sock.recv(4096) == b"READY=1"
        assert notify_sock.recv(4096) == b"WATCHDOG=1"  # the loop is turning
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    rest = _pending(notify_sock)
    assert rest[-1] == b"STOPPING=1" and set(rest[:-1]) <= {b"WATCHDOG=1"}
    assert marker.read_text() == f"cleaned up after signal {int(signal.SIGTERM)}"
