"""The daemon's state, its state machine and its faults: what :class:`~edge.daemon.Daemon` is built on.

:class:`DaemonState` holds what the daemon knows (set up from :class:`~edge.daemon.Daemon`'s
arguments), changes its state (``idle``, ``running``, ``paused``, ``error``: the panel LEDs, the
light and the systemd status line follow), takes panel commands and stop requests (thread and signal
safe: they only queue and set flags) and writes events to the record. Its faults: a corrupt frame
(counted, one event per streak), a lost camera (``error``, reconnected with exponential backoff), a
part stuck on the turntable (``error`` until the frames show it empty) and a full disk (halted).
Start-up, the main loop, one part's handling and shut-down are :mod:`edge.daemon`'s.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from edge import service
from edge.camera import CameraSource, EndOfStream, Frame
from edge.errors import ConfigError, DiskFullError, HardwareError, ImageError
from edge.feeder import Feeder
from edge.part import PartRecord, RunStats
from edge.pipeline import Pipeline
from edge.presence import PresenceDetector
from edge.record import DecisionRecord
from edge.record_lock import RecordLock
from edge.settings import EdgeConfig
from edge.sorting import Sorter

log = logging.getLogger("edge.daemon")  # the daemon's own logger: its lines keep one name


class DaemonState:
    """The daemon's state, its changes and its faults (see the module docstring). Made as a
    :class:`~edge.daemon.Daemon`, whose docstring describes the arguments."""

    def __init__(
        self,
        cfg: EdgeConfig,
        *,
        sim: bool = False,
        parts: int | None = None,
        camera: CameraSource | None = None,
        feeder: Feeder | None = None,
        pin_factory: Any = None,
        on_part: Callable[[PartRecord], None] | None = None,
    ) -> None:
        if parts is not None and parts < 1:
            raise ConfigError(f"--parts {parts!r} must be at least 1")
        if sim:
            if cfg.camera.type != "sim":
                raise ConfigError(
                    f"--sim needs camera type 'sim' but the config has {cfg.camera.type!r}; "
                    "drop --sim or use config/sim.yaml"
                )
            cfg = cfg.model_copy(update={"rig": cfg.rig.model_copy(update={"pins": "mock"})})
        cfg.check_bins()
        self.cfg, self.sim, self.parts_limit, self.on_part = cfg, sim, parts, on_part
        self._camera_override, self._feeder_override, self._pin_factory = camera, feeder, pin_factory
        self.stats = RunStats()
        self.state = "idle"
        self.state_history: list[str] = []
        self.watchdog = service.Watchdog()
        self.record: DecisionRecord | None = None
        self.lock: RecordLock | None = None
        self.rig: Any = None
        self.pipeline: Pipeline | None = None
        self.memory_mb: float | None = None
        self.sorter: Sorter  # set by open()
        self.presence: PresenceDetector  # set by open()
        self.feeder: Feeder  # set by open()
        self.model_id: str | None = None
        self._commands: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop_requested = False
        self._quit = False
        self._shutdown = False
        self._in_hand: int | None = None
        self._halted: DiskFullError | None = None
        self._fed = 0
        self._fed_truth: dict[str, Any] | None = None
        self._empty_confirmed = False
        self._bad_streak = 0
        self._error_kind = ""
        self._resume = "running"
        self._retry_delay = 0.0
        self._retry_at = 0.0

    # --- outside control ---------------------------------------------------------------------

    def request_stop(self, signum: int | None = None) -> None:
        """Stop after the part in hand (safe from a signal handler: only sets flags)."""
        self._stop_requested = True
        self._wake.set()

    def command(self, name: str) -> None:
        """Queue a panel command: ``toggle`` (START/PAUSE), ``stop`` or ``shutdown`` (thread safe)."""
        self._commands.put(name)
        self._wake.set()

    @property
    def shutdown_requested(self) -> bool:
        """Whether a long STOP press asked for a shutdown."""
        return self._shutdown

    @property
    def camera(self) -> CameraSource:
        """The pipeline's camera."""
        assert self.pipeline is not None and self.pipeline.camera is not None
        return self.pipeline.camera

    # --- states and commands ----------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self._wake.wait(seconds):
            self._wake.clear()

    def _set_state(self, state: str) -> None:
        if state == self.state and self.state_history:
            return
        log.info("state: %s", state)
        self.state = state
        self.state_history.append(state)
        if self.rig is not None:
            self.rig.panel.show(state)
            if state in ("running", "error"):
                self.rig.light.on()
            else:
                self.rig.light.off()
        service.status(self.stats.status_line(state))

    def _drain_commands(self) -> None:
        while True:
            try:
                name = self._commands.get_nowait()
            except queue.Empty:
                return
            log.info("panel: %s", name)
            if name == "toggle":
                if self.state == "running":
                    self._set_state("paused")
                elif self.state in ("paused", "idle"):
                    self._set_state("running")
                else:
                    self._retry_at = 0.0  # error: START retries now
            elif name == "stop":  # the sim has no START to press again: STOP ends it
                if self.sim:
                    self._quit = True
                else:
                    self._set_state("idle")
            elif name == "shutdown":
                self._shutdown = self._quit = True

    def _log_event(self, level: str, kind: str, message: str) -> None:
        getattr(log, level if level != "critical" else "error")("%s: %s", kind, message)
        if self.record is not None:
            self.record.log_event(level, kind, message)

    # --- frames and faults ------------------------------------------------------------------

    def _grab(self) -> Frame | None:
        """One frame, or None after handling a fault (bad frame, camera gone, stream ended)."""
        try:
            frame = self.camera.capture()
        except EndOfStream as exc:
            self._log_event("info", "end_of_stream", str(exc))
            self._quit = True
            return None
        except HardwareError as exc:
            self._camera_lost(exc)
            return None
        except ImageError as exc:
            self._frame_seen(exc)
            return None
        self._frame_seen(None)
        return frame

    def _frame_seen(self, exc: ImageError | None) -> None:
        """Count a corrupt frame (None: a good one, which ends a streak of corrupt ones)."""
        if exc is None:
            self._bad_streak = 0
            return
        self.stats.bad_frames += 1
        self._bad_streak += 1
        if self._bad_streak == 1:  # one event per streak: a broken camera must not flood the record
            self._log_event("warning", "bad_frame", f"corrupt or empty frame skipped: {exc}")

    def _camera_lost(self, exc: Exception) -> None:
        self.stats.camera_faults += 1
        self._log_event("error", "camera_lost", f"{exc}; reconnecting with backoff")
        self._enter_error("camera", self.cfg.timeouts.camera_retry_s)

    def _enter_error(self, kind: str, delay: float) -> None:
        if self.state != "error":
            self._resume = self.state if self.state in ("running", "paused", "idle") else "running"
        self._error_kind, self._retry_delay = kind, delay
        self._retry_at = time.monotonic() + delay
        self._set_state("error")

    def _error_turn(self) -> None:
        now = time.monotonic()
        if now < self._retry_at:
            self._wait(min(self._retry_at - now, 1.0))
            return
        if self._error_kind == "camera":
            try:
                self.camera.reconnect()
                self.camera.capture()
            except (HardwareError, ImageError) as exc:
                t = self.cfg.timeouts
                self._retry_delay = min(self._retry_delay * 2, t.camera_retry_max_s)
                self._retry_at = time.monotonic() + self._retry_delay
                log.warning("camera still unavailable (%s); next try in %.3g s", exc, self._retry_delay)
                return
            self._log_event("info", "camera_recovered", f"{self.camera.name} is back")
        else:  # a part stuck on the turntable: resume once the frames show it empty
            frame = self._grab()
            if frame is None:
                return
            reading = self.presence.update(frame.image)
            if reading.present or not reading.stable:
                self._wait(max(self.cfg.presence.poll_s, 0.1))
                return
            self._empty_confirmed = True
            self._log_event("info", "turntable_cleared", "the turntable is empty again; resuming")
        self.presence.reset()
        self._set_state(self._resume)

    def _halt(self, exc: DiskFullError) -> None:
        """The record cannot be written: stop the turntable and show the error; the part stays put."""
        self._halted = exc
        log.critical("halting: %s", exc)
        if self.rig is not None:
            try:
                self.rig.turntable.stop()
                self.rig.turntable.release()
                self.rig.light.off()
                self.rig.panel.show("error")
            except Exception as rig_exc:  # the halt must still be reported
                log.warning("error while stopping the rig: %s", rig_exc)
        self.state = "error"
        self.state_history.append("error")
        service.halted(
            f"{exc}. The part in hand stays on the turntable; free disk space, then restart the service",
            errno.ENOSPC,
        )
