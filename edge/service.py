"""systemd integration without extra dependencies: sd_notify messages, watchdog, stop signals.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``; outside systemd every call here is a
no-op, so the same main loop runs from a terminal. The watchdog is kicked by the main loop itself,
never from a helper thread: a ping must prove the loop is still turning.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)
_warned: set[str] = set()

#: ``edge run``'s exit status when the disk holding the record is full (sysexits' EX_IOERR). The unit
#: lists it in ``RestartPreventExitStatus=``: restarting cannot help until someone frees space, and
#: each restart would take the next part's decision to the same full disk.
EXIT_DISK_FULL = 74


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to ``$NOTIFY_SOCKET``; return whether it was sent.

    A no-op returning False when the variable is unset. A name starting with ``@`` is a Linux
    abstract socket. Send failures are logged (once per kind) rather than raised: losing a status
    message must not stop the rig, and a lost watchdog ping is systemd's to act on. The send never
    blocks: a receiver that stops reading (its queue holds only ``net.unix.max_dgram_qlen``, 10,
    messages) loses messages instead of freezing the main loop.
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        target = "\0" + address[1:]
    elif address.startswith("/"):
        target = address
    else:
        _warn_once("address", f"NOTIFY_SOCKET {address!r} is neither a path nor '@abstract'; not notifying")
        return False
    try:
        kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
        with socket.socket(socket.AF_UNIX, kind) as sock:
            sock.sendto(state.encode("utf-8"), target)
    except OSError as exc:
        _warn_once(f"send:{exc.errno}", f"cannot notify systemd via {address!r}: {exc}")
        return False
    return True


def ready() -> bool:
    """Tell systemd start-up is complete (``READY=1``)."""
    return notify("READY=1")


def stopping() -> bool:
    """Tell systemd the service is shutting down (``STOPPING=1``)."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """Set the one-line status shown by ``systemctl status`` (newlines become spaces)."""
    return notify("STATUS=" + " ".join(str(text).splitlines()))


def halted(text: str, errno: int | None = None) -> bool:
    """Report a fault that stops the service: ``STATUS=halted: ...`` and ``ERRNO=`` in one message."""
    state = "STATUS=halted: " + " ".join(str(text).splitlines())
    return notify(state if errno is None else f"{state}\nERRNO={int(errno)}")


def watchdog_ping() -> bool:
    """Send one watchdog keep-alive (``WATCHDOG=1``); prefer :class:`Watchdog` in a loop."""
    return notify("WATCHDOG=1")


def extend_timeout(seconds: float) -> bool:
    """Ask for ``seconds`` more start-up/stop time (``EXTEND_TIMEOUT_USEC``), e.g. for slow model loads."""
    if not seconds > 0:
        raise ValueError(f"extend_timeout seconds {seconds!r} must be > 0")
    return notify(f"EXTEND_TIMEOUT_USEC={round(seconds * 1_000_000)}")


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds from ``$WATCHDOG_USEC``, or None when not enabled for us.

    None when unset, not a positive integer, or when ``$WATCHDOG_PID`` names another process (the
    variables were inherited by a child, which must not ping on its parent's behalf).
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid:
        if not pid.isdigit():
            _warn_once("pid", f"WATCHDOG_PID {pid!r} is not a process id; watchdog disabled")
            return None
        if int(pid) != os.getpid():
            return None
    if not usec.isdigit() or int(usec) == 0:
        _warn_once("usec", f"WATCHDOG_USEC {usec!r} is not a positive integer; watchdog disabled")
        return None
    return int(usec) / 1_000_000


class Watchdog:
    """Rate-limited watchdog pings, driven by the main loop calling :meth:`kick` each turn.

    ``interval_s`` is systemd's timeout (default: :func:`watchdog_interval`, None = disabled); a
    kick pings at most once per half interval, so a fast loop does not flood the socket while a
    loop that stalls for a whole interval gets the service restarted. ``clock`` is for tests.
    """

    def __init__(
        self, interval_s: float | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if interval_s is None:
            interval_s = watchdog_interval()
        elif not interval_s > 0:
            raise ValueError(f"watchdog interval_s {interval_s!r} must be > 0 (or None to read the env)")
        self.interval_s = interval_s
        self._clock = clock
        self._last: float | None = None

    @property
    def enabled(self) -> bool:
        """Whether systemd expects pings from this process."""
        return self.interval_s is not None

    def kick(self) -> bool:
        """Call once per loop turn; pings when half the interval has passed. Returns True if pinged."""
        if self.interval_s is None:
            return False
        now = self._clock()
        if self._last is not None and now - self._last < self.interval_s / 2:
            return False
        self._last = now
        watchdog_ping()
        return True


class StopFlag:
    """Set from a SIGTERM/SIGINT handler; the main loop polls :meth:`is_set` or sleeps in :meth:`wait`."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def set(self, signum: int) -> None:
        """Record a stop request (called from the signal handler)."""
        self.signum = signum
        self._event.set()

    def is_set(self) -> bool:
        """Whether a stop was requested."""
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early on a stop request; return whether set."""
        return self._event.wait(timeout)

    def restore(self) -> None:
        """Put back the signal handlers that were in place before :func:`install_stop_handlers`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __bool__(self) -> bool:
        return self.is_set()


def install_stop_handlers(callback: Callable[[int], None] | None = None) -> StopFlag:
    """Install SIGTERM/SIGINT handlers that only set a flag, and return that :class:`StopFlag`.

    The handler does no work: the main loop sees the flag, finishes or abandons the part in hand,
    cleans up and exits 0 (within the unit's TimeoutStopSec). ``callback(signum)``, if given, is
    called from the handler too, so it must itself only set a flag (e.g. ``event.set``). A second
    SIGINT raises KeyboardInterrupt so a hung loop can still be stopped from a terminal. Must be
    called from the main thread (a Python rule for signal handlers).
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("install_stop_handlers() must be called from the main thread")
    flag = StopFlag()

    def handler(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and flag.is_set():
            raise KeyboardInterrupt
        flag.set(signum)
        if callback is not None:
            callback(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        flag._previous[signum] = signal.signal(signum, handler)
    return flag
