"""The sorting daemon: a part on the turntable -> views -> decision -> chute -> record -> cleared.

States (shown on the panel LEDs): ``idle`` (waiting for START), ``running``, ``paused``, ``error``
(camera gone or part stuck: retried with exponential backoff / polled until it clears). START/PAUSE
toggles running and paused, STOP returns to idle (ends a simulation), a long STOP press shuts down
(``systemctl poweroff`` only on a real Pi with ``poweroff_on_shutdown``).

Each part: wait until the frames show a part lying still (:class:`~edge.presence.PresenceDetector`,
not a timer), capture the views while turning the turntable between them, recognise (one engine
batch; or view by view while the turntable turns, stopping once sure: ``capture.overlap`` and
``capture.adaptive``, :mod:`edge.views`), record the decision
(:class:`~edge.record.DecisionRecord`, committed *before* anything moves), route
(``chute.select``), clear (the :class:`~edge.feeder.Feeder`'s ``remove_part()``: sim, the part is
lifted off; rig, a sweep turn) and wait until the turntable is empty again. Whenever the turntable
is empty the feeder's ``next_part()`` may place the next part (the sim camera does, the real rig's
:class:`~edge.feeder.HandFeeder` leaves that to a person); ``parts`` stops the run.

Start-up refuses to run (raising the library's errors) on a bad config, missing or mismatched model
files or index, a memory estimate over budget, or a record another daemon holds (its
:class:`~edge.record_lock.RecordLock`, held until ``close()``); parts left in progress by a power
cut are marked abandoned. SIGTERM (via :meth:`Daemon.request_stop`) abandons a part still being
captured, puts the rig in its safe state and notifies systemd ``STOPPING=1``.

A full disk (:class:`~edge.errors.DiskFullError` from the record) halts the daemon: the turntable
stops, the error LED lights, the part in hand stays where it is (its row stays ``in_progress`` for the
next start-up to mark abandoned), systemd gets ``STATUS=halted: ...`` with ``ERRNO=28``, and the error
propagates (``edge run`` exits :data:`~edge.service.EXIT_DISK_FULL`). Errors while shutting down are
logged and never replace the error that stopped the loop.
"""

from __future__ import annotations

import errno
import logging
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from edge import service
from edge.camera import CameraSource, EndOfStream, Frame
from edge.errors import ConfigError, DiskFullError, HardwareError, ImageError
from edge.feeder import Feeder, HandFeeder, simulated_rig
from edge.manifest import open_manifest
from edge.memory import check_estimate, check_resident, estimate_memory
from edge.part import PartRecord, RunStats
from edge.pipeline import Pipeline
from edge.presence import Presence, PresenceDetector
from edge.record import DecisionRecord
from edge.record_lock import RecordLock
from edge.rig import Rig, pi_model
from edge.settings import EdgeConfig
from edge.sorting import Sorter, load_categories
from edge.views import TakenViews, take_part_views

log = logging.getLogger(__name__)


class _Abandon(Exception):
    """The part in hand cannot be finished; the reason goes into the record."""


class Daemon:
    """The main loop (see the module docstring). ``run()`` = ``open()``, ``loop()``, ``close()``.

    ``camera`` and ``pin_factory`` replace the configured ones (tests); ``feeder`` replaces the
    default one (``sim``: the sim camera, following the turntable; else a :class:`HandFeeder` with
    ``clearing.sweep_deg``); ``on_part`` is called with each :class:`PartRecord`; ``parts`` stops
    after that many parts.
    """

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

    # --- life cycle --------------------------------------------------------------------------

    def run(self) -> RunStats:
        """Start up, sort until stopped, shut down; return this run's statistics.

        When start-up or the loop fails, errors while closing are logged, not raised: the first
        error is the one the caller sees.
        """
        try:
            self.open()
            self.loop()
        except BaseException as exc:
            if isinstance(exc, DiskFullError) and self._halted is None:  # full already at start-up
                self._halt(exc)
            try:
                self.close()
            except Exception as exc:
                log.error("error while shutting down after an earlier error (logged, not raised): %s", exc)
            raise
        self.close()
        if self._shutdown:
            self._power_off()
        return self.stats

    def open(self) -> None:
        """Check memory, open the record (recovering a crash), the rig, the models and the camera."""
        cfg = self.cfg
        report = check_estimate(estimate_memory(cfg, open_manifest(cfg.engine.model_set)))
        self.lock = RecordLock(cfg.data.db)
        self.lock.acquire()  # before recover(): a second daemon must not touch the first one's part
        self.record = DecisionRecord(cfg.data.db, cfg.data.crops_dir, keep_crops=cfg.data.keep_crops)
        recovered = self.record.recover()
        if recovered:
            log.warning(
                "%d part(s) left in progress by the last run (power cut?) marked abandoned", recovered
            )
        self.rig = Rig.from_config(cfg.rig, self._pin_factory, calibration=cfg.calibration)
        self.pipeline = Pipeline.from_config(cfg, camera=self._camera_override)
        self.memory_mb = check_resident(cfg.memory_budget_mb, report)
        manifest = self.pipeline.manifest
        self.sorter = Sorter(
            cfg.sorting, cfg.bin_names, load_categories(manifest, cfg.sorting.categories_file)
        )
        entry = getattr(self.pipeline.engine, "entry", None)
        self.model_id = f"{cfg.engine.model_set.name}:{entry.sha256[:12]}" if entry is not None else None
        self.presence = PresenceDetector(self.pipeline.segmenter, cfg.presence)
        self.feeder = self._feeder_override or self._default_feeder()
        panel = self.rig.panel
        panel.on_start_pause = lambda: self.command("toggle")
        panel.on_stop = lambda: self.command("stop")
        panel.on_shutdown = lambda: self.command("shutdown")
        self._set_state("idle")
        start = "running" if cfg.autostart or self.sim else "idle"
        try:
            self.camera.open()
        except HardwareError as exc:  # e.g. the camera is not up yet: retried like a lost one
            self._camera_lost(exc)
            self._resume = start
        service.ready()
        log.info(
            "ready: model %s, %.0f MB resident, budget %g MB",
            self.model_id,
            self.memory_mb,
            cfg.memory_budget_mb,
        )
        if self.state == "idle":
            self._set_state(start)

    def _default_feeder(self) -> Feeder:
        if self.sim:
            rig = simulated_rig(self.camera)
            rig.follow(self.rig.turntable)  # the sim camera sees the turntable's angle
            return rig
        return HandFeeder(self.rig.turntable, self.cfg.clearing.sweep_deg)

    def close(self) -> None:
        """Abandon a part still in hand, put the rig in its safe state, tell systemd, release all.

        Every step runs even when an earlier one fails; the first failure is raised at the end.
        After a full disk the part in hand is left as it is (nothing more can be recorded).
        """
        first: Exception | None = None

        def step(what: str, action: Callable[[], Any]) -> None:
            nonlocal first
            try:
                action()
            except Exception as exc:  # shutting down must go on to the next step
                log.warning("error while %s: %s", what, exc)
                first = first or exc

        if self.record is not None and self._in_hand is not None:
            if self._halted is None:
                step("abandoning the part in hand", self._abandon_in_hand)
            else:
                log.warning("part %d stays on the turntable, undecided (the disk is full)", self._in_hand)
        if self.rig is not None:
            step("putting the rig in its safe state", self.rig.safe_state)
        service.stopping()
        for thing in (self.pipeline, self.rig, self.record):
            if thing is not None:
                step(f"closing {type(thing).__name__}", thing.close)
        self.pipeline = self.rig = self.record = None
        if self.lock is not None:
            self.lock.release()  # after the record is closed
            self.lock = None
        if first is not None:
            raise first

    def _abandon_in_hand(self) -> None:
        assert self.record is not None and self._in_hand is not None
        self.record.abandon_part(self._in_hand, "the daemon stopped while the part was in hand")
        self.stats.by_status["abandoned"] += 1
        self._in_hand = None

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

    def _power_off(self) -> None:
        if self.cfg.poweroff_on_shutdown and not self.sim and pi_model() is not None:
            log.warning("long STOP press: powering the Pi off")
            subprocess.run(["systemctl", "poweroff"], check=False)
        else:
            log.info("long STOP press: stopped (poweroff_on_shutdown is off, or not a real Pi)")

    # --- the loop ----------------------------------------------------------------------------

    def loop(self) -> None:
        """Turn until stopped: each turn kicks the watchdog, handles buttons and does one step.

        A full disk halts the rig (see the module docstring) and ends the loop with the error.
        """
        try:
            while True:
                self.watchdog.kick()
                self._drain_commands()
                if self._quit or self._stop_requested:
                    break
                if self.state == "running":
                    self._running_turn()
                elif self.state == "error":
                    self._error_turn()
                else:
                    self._wait(0.2)
        except DiskFullError as exc:
            self._halt(exc)
            raise
        if self.state in ("running", "paused"):
            self._set_state("idle")

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

    # --- one part ----------------------------------------------------------------------------

    def _running_turn(self) -> None:
        if not self.presence.calibrated:
            frame = self._grab()
            if frame is not None:  # start-up: the turntable is expected to be empty now
                self.presence.set_empty(frame.image)
                self._empty_confirmed = True
            return
        if self._empty_confirmed and self.parts_limit is not None and self.stats.parts >= self.parts_limit:
            log.info("%d part(s) done; stopping", self.stats.parts)
            self._quit = True
            return
        if self._empty_confirmed:
            try:
                truth = self.feeder.next_part()
            except EndOfStream as exc:
                self._log_event("info", "end_of_stream", str(exc))
                self._quit = True
                return
            if truth is not None:  # the feeder placed a part (None: a person will)
                self._fed += 1
                self._fed_truth = truth
                self._empty_confirmed = False
                self.presence.reset()
                log.debug("feeder: part %d arrives (%s)", self._fed, truth)
        frame = self._grab()
        if frame is None:
            return
        reading = self.presence.update(frame.image)
        if not reading.present and reading.stable and not self._empty_confirmed:
            self._empty_confirmed = True
            if self._fed_truth is not None:  # the feeder placed a part the frames do not show
                self.stats.missed += 1
                self._log_event(
                    "warning",
                    "part_missed",
                    f"sim part {self._fed_truth} was not detected (below presence.min_area_px "
                    f"{self.cfg.presence.min_area_px}, or keyed out by the segmenter)",
                )
                self._fed_truth = None
        if not (reading.present and reading.stable):
            self._wait(self.cfg.presence.poll_s)
            return
        self._handle_part(reading)

    def _take_views(self) -> TakenViews:
        """The part's views and their recognition (:func:`edge.views.take_part_views`); a fault
        that ends the part is _Abandon, a recognition error comes back in :attr:`TakenViews.error`."""
        assert self.pipeline is not None
        views = self.cfg.capture.views

        def before(i: int) -> None:
            if self._stop_requested:
                raise _Abandon(f"stopped while capturing ({i} of {views} views taken)")
            self.watchdog.kick()

        try:
            return take_part_views(
                self.pipeline,
                self.cfg.capture,
                self.rig.turntable,
                before=before,
                retries=self.cfg.timeouts.bad_frame_retries,
                on_frame=self._frame_seen,
            )
        except EndOfStream as exc:
            self._quit = True
            raise _Abandon(f"camera stream ended: {exc}") from None
        except HardwareError as exc:
            self._camera_lost(exc)
            raise _Abandon(f"camera lost: {exc}") from None
        except ImageError as exc:  # too many corrupt frames in a row
            raise _Abandon(str(exc)) from None

    def _handle_part(self, reading: Presence) -> None:
        assert self.record is not None and self.pipeline is not None
        self._fed_truth = None
        number = self.stats.parts + 1
        part_id = self.record.begin_part()
        self._in_hand = part_id
        try:
            taken = self._take_views()
        except _Abandon as exc:
            self.record.abandon_part(part_id, str(exc))
            self._in_hand = None
            self._log_event("warning", "part_abandoned", f"part {part_id}: {exc}")
            self.stats.by_status["abandoned"] += 1
            self.presence.reset()
            return
        part = taken.record()
        if taken.part is None:
            self._log_event("error", "recognition_failed", f"part {part_id}: {taken.error}")
        part.number, part.part_id = number, part_id
        if part.decision is not None and part.sees_two_parts(reading.objects):
            part.reject("two parts at once")
            self.stats.two_parts += 1
            self._log_event(
                "warning", "two_parts", f"part {part_id}: two parts at once; sent to the reject bin"
            )
        route = self.sorter.place(part)
        part.mode, part.model_set_id = self.cfg.recognition.mode, self.model_id
        self.record.finish_part(part)
        self._in_hand = None
        # Only now the part moves: a decision that could not be committed (a full disk) never
        # sends a part into a bin with no record of it.
        self.rig.chute.select(route.bin)
        self.stats.add(part)
        service.status(self.stats.status_line(self.state))
        if self.on_part is not None:
            self.on_part(part)
        self._clear_part()

    def _clear_part(self) -> None:
        """Send the part off the turntable and wait until the frames show it empty."""
        self.feeder.remove_part()
        self.presence.reset()
        deadline = time.monotonic() + self.cfg.timeouts.clear_s
        while not (self._stop_requested or self._quit):
            self.watchdog.kick()
            frame = self._grab()
            if frame is None:
                if self.state == "error":
                    return
            else:
                reading = self.presence.update(frame.image)
                if not reading.present and reading.stable:
                    self._empty_confirmed = True
                    return
            if time.monotonic() > deadline:
                self._log_event(
                    "error",
                    "part_stuck",
                    f"the turntable is not empty {self.cfg.timeouts.clear_s:g} s after clearing; "
                    "remove the part by hand (sorting resumes when the turntable is empty)",
                )
                self._enter_error("stuck", 0.0)
                return
            self._wait(self.cfg.presence.poll_s)
