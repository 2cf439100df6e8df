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

The state it holds, its state changes, panel commands and fault handling are
:class:`~edge.daemon_state.DaemonState`'s, which :class:`Daemon` is built on.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from typing import Any

from edge import service
from edge.camera import EndOfStream
from edge.daemon_state import DaemonState
from edge.errors import DiskFullError, HardwareError, ImageError
from edge.feeder import Feeder, HandFeeder, simulated_rig
from edge.manifest import open_manifest
from edge.memory import check_estimate, check_resident, estimate_memory
from edge.part import RunStats
from edge.pipeline import Pipeline
from edge.presence import Presence, PresenceDetector
from edge.record import DecisionRecord
from edge.record_lock import RecordLock
from edge.rig import Rig, pi_model
from edge.sorting import Sorter, load_categories
from edge.views import TakenViews, take_part_views

log = logging.getLogger(__name__)


class _Abandon(Exception):
    """The part in hand cannot be finished; the reason goes into the record."""


class Daemon(DaemonState):
    """The main loop (see the module docstring). ``run()`` = ``open()``, ``loop()``, ``close()``.

    ``camera`` and ``pin_factory`` replace the configured ones (tests); ``feeder`` replaces the
    default one (``sim``: the sim camera, following the turntable; else a :class:`HandFeeder` with
    ``clearing.sweep_deg``); ``on_part`` is called with each :class:`PartRecord`; ``parts`` stops
    after that many parts.
    """

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
