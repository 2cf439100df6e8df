"""One part's views taken one at a time: ``capture.overlap`` and ``capture.adaptive``.

Without either, the daemon takes every view (:meth:`~edge.pipeline.Pipeline.capture_views`) and
then recognises them as one engine batch (:meth:`~edge.pipeline.Pipeline.process`). With either,
:func:`take_views` recognises each view as soon as it is taken
(:meth:`~edge.pipeline.Pipeline.process_view`) and fuses the views so far
(:meth:`~edge.pipeline.Pipeline.decide_views`, the same fusion):

- ``overlap``: the turn to the next view starts *before* the view just taken is recognised, so
  recognition runs while the stepper moves (the move runs in a background thread,
  :meth:`~edge.rig.turntable.Turntable.start_rotate_by`). The camera captures only after that move
  has ended, so every view is taken at rest and in turntable order; all recognition stays in the
  calling thread, one view after the other.
- ``adaptive``: from ``min_views`` on, once the fused decision is :func:`confident` no more views
  are taken (with ``overlap``, the turn already started is cancelled: it ends after its current
  step). A part that never gets there is seen from every view, as without ``adaptive``.

:func:`take_part_views` picks between the two ways, as the daemon's config says.

Faults keep today's meaning: a camera fault or a stop request raises out of :func:`take_views`
(the daemon abandons the part); a recognition error ends the views and comes back in
:attr:`TakenViews.error` with the frames taken (the daemon records the part as an error,
:meth:`TakenViews.record`). Whatever ends the views, no move is left running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge.camera import Frame
from edge.errors import ImageError, ModelError
from edge.part import PartRecord, ViewRecord
from edge.pipeline import Pipeline, ViewResult, truth_of
from edge.recognize import Decision
from edge.settings import CaptureSettings

log = logging.getLogger(__name__)


class Move(Protocol):
    """A turn of the turntable under way (:class:`~edge.rig.turntable.TurntableMove`)."""

    def wait(self) -> int:
        """Block until the move has ended; its steps (raises the move's error)."""
        ...

    def cancel(self) -> None:
        """End the move after its current step."""
        ...


class Turntable(Protocol):
    """What taking views needs of the turntable (:class:`~edge.rig.turntable.Turntable`)."""

    def rotate_by(self, degrees: float) -> object:
        """Turn by ``degrees`` and return once the move has ended."""
        ...

    def start_rotate_by(self, degrees: float) -> Move:
        """Start turning by ``degrees`` in the background."""
        ...


@dataclass
class TakenViews:
    """What :func:`take_views` (or the daemon's all-views way) got for one part."""

    frames: list[Frame]
    capture_ms: float
    part: PartRecord | None  # None when recognition failed
    error: ImageError | ModelError | None = None  # why it failed

    def record(self) -> PartRecord:
        """The part's record: the recognizer's, or, when recognition failed, one that holds each
        view's angle, the capture time and the frames' ground truth, rejected with the error."""
        if self.part is not None:
            return self.part
        part = PartRecord(
            None,
            [ViewRecord(f.meta.get("turntable_angle", f.meta.get("angle"))) for f in self.frames],
            {"capture": self.capture_ms},
            truth=truth_of(self.frames[0].meta),
        )
        part.reject(f"recognition failed: {self.error}")
        return part


def confident(decision: Decision, threshold: float) -> bool:
    """Whether the views so far settle the part: it would be sorted, and the fused part probability
    times the fused colour probability (the chance that both are right, taking the two heads as
    independent) reaches ``threshold``."""
    color = decision.color_confidence if decision.color_id is not None else 1.0
    return decision.status == "sorted" and decision.confidence * color >= threshold


def take_part_views(
    pipeline: Pipeline,
    capture: CaptureSettings,
    turntable: Turntable,
    *,
    before: Callable[[int], None] | None = None,
    retries: int = 0,
    on_frame: Callable[[ImageError | None], None] | None = None,
) -> TakenViews:
    """One part's views, turning ``turntable`` by ``capture.step_deg`` between them.

    With neither ``capture.overlap`` nor ``capture.adaptive``: every view
    (:meth:`Pipeline.capture_views`), then one engine batch; else :func:`take_views`. The other
    arguments are :func:`take_views`'s.
    """
    if capture.overlap or capture.adaptive is not None:
        return take_views(
            pipeline,
            capture,
            lambda i: turntable.start_rotate_by(capture.step_deg),
            before=before,
            retries=retries,
            on_frame=on_frame,
        )

    def turn(i: int) -> None:
        turntable.rotate_by(capture.step_deg)
        if capture.settle_s:
            time.sleep(capture.settle_s)

    frames, capture_ms = pipeline.capture_views(
        capture.views, turn, before=before, retries=retries, on_frame=on_frame
    )
    try:
        return TakenViews(frames, capture_ms, pipeline.process(frames, capture_ms))
    except (ImageError, ModelError) as exc:
        return TakenViews(frames, capture_ms, None, exc)


def take_views(
    pipeline: Pipeline,
    capture: CaptureSettings,
    start_turn: Callable[[int], Move],
    *,
    before: Callable[[int], None] | None = None,
    retries: int = 0,
    on_frame: Callable[[ImageError | None], None] | None = None,
) -> TakenViews:
    """Take and recognise one part's views (see the module docstring).

    ``start_turn(i)`` starts the turn to view ``i`` and returns the :class:`Move`; ``before(i)`` is
    called before every view (the daemon kicks its watchdog there and stops by raising);
    ``retries`` and ``on_frame`` are :meth:`Pipeline.capture_views`'s, per view.
    """
    count = capture.views
    adaptive = capture.adaptive
    frames: list[Frame] = []
    results: list[ViewResult] = []
    capture_ms = 0.0
    undecided = {"search": 0.0, "fuse": 0.0}  # fusions that did not settle the part still cost time
    move: Move | None = None
    try:
        for i in range(count):
            if before is not None:
                before(i)
            if i:
                if move is None:  # not overlapped: the turn starts only now
                    move = start_turn(i)
                move.wait()
                move = None
                if capture.settle_s:
                    time.sleep(capture.settle_s)
            frame, ms = _capture_one(pipeline, i, count, retries, on_frame)
            frames.append(frame)
            capture_ms += ms
            last = i == count - 1
            if capture.overlap and not last:
                move = start_turn(i + 1)
            try:
                results.append(pipeline.process_view(frame))
                if last or adaptive is None or i + 1 < adaptive.min_views:
                    continue
                part = pipeline.decide_views(results, capture_ms)
            except (ImageError, ModelError) as exc:  # this part's problem: stop taking its views
                pending, move = move, None
                _end(pending)
                return TakenViews(frames, capture_ms, None, exc)
            assert part.decision is not None
            if confident(part.decision, adaptive.threshold):
                pending, move = move, None
                _end(pending)
                return TakenViews(frames, capture_ms, _add(part, undecided))
            for stage in undecided:
                undecided[stage] += part.timings[stage]
        try:
            part = pipeline.decide_views(results, capture_ms)
        except (ImageError, ModelError) as exc:
            return TakenViews(frames, capture_ms, None, exc)
        return TakenViews(frames, capture_ms, _add(part, undecided))
    except BaseException:
        if move is not None:  # never leave the motor turning behind an error
            try:
                _end(move)
            except Exception as exc:  # the first error is the one raised
                log.warning("error while stopping the turntable after an earlier error: %s", exc)
        raise


def _capture_one(
    pipeline: Pipeline,
    i: int,
    count: int,
    retries: int,
    on_frame: Callable[[ImageError | None], None] | None,
) -> tuple[Frame, float]:
    try:
        frames, ms = pipeline.capture_views(1, retries=retries, on_frame=on_frame)
    except ImageError:  # capture_views numbers its single view 1 of 1
        raise ImageError(f"{retries + 1} corrupt frames in a row at view {i + 1} of {count}") from None
    return frames[0], ms


def _end(move: Move | None) -> None:
    if move is not None:
        move.cancel()
        move.wait()


def _add(part: PartRecord, undecided: dict[str, float]) -> PartRecord:
    for stage, ms in undecided.items():
        part.timings[stage] += ms
        part.timings["total"] += ms
    return part
