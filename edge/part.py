"""One part's record, from the pipeline to the decision record: :class:`PartRecord`.

The pipeline fills in what the views show (:meth:`edge.pipeline.Pipeline.process`: the decision,
each view's angle, top predictions and crop, the objects seen, the stage timings, the ground truth
the frames carry); the daemon adds what happened to the part (its status after the fault checks,
the bin, the note) and hands the same object to :meth:`edge.record.DecisionRecord.finish_part`, to
the run's statistics (:class:`RunStats`) and to the ``on_part`` callback (the ``edge run`` line).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from edge.recognize import Decision

#: A decided part's status (``abandoned`` parts were never decided: they have no record of this kind).
Status = Literal["sorted", "unknown", "low_confidence", "error"]
STATUSES: tuple[Status, ...] = get_args(Status)

#: The pipeline's timed stages, in order (ms each; ``total`` is timed beside them).
STAGES: tuple[str, ...] = ("capture", "segment", "preprocess", "infer", "search", "fuse")


@dataclass
class ViewRecord:
    """One camera view of a part: the turntable angle, the model's top parts (best first), the crop."""

    angle: float | None
    topk: list[tuple[str, float]] = field(default_factory=list)
    crop: np.ndarray | None = field(default=None, repr=False)  # RGB uint8, (H, W, 3)
    compute_ms: float | None = None  # its own recognition time, when recognised on its own (not stored)


@dataclass
class PartRecord:
    """Everything known about one part (see the module docstring).

    ``decision`` is the recognizer's (None when recognition failed); ``status``, ``part_num``,
    ``color_id`` and ``confidence`` start as its verdict, and :meth:`reject` overrules them (two
    parts at once, recognition failed). ``timings`` are ms per stage.
    """

    decision: Decision | None
    views: list[ViewRecord]
    timings: dict[str, float]
    objects: list[int] = field(default_factory=list)  # regions found in each view (2+: two parts?)
    truth: dict[str, Any] | None = None  # ground truth from the frames' meta (sim, replay)
    status: Status = "error"
    part_num: str | None = None
    color_id: int | None = None
    confidence: float | None = None
    part_name: str | None = None
    # Filled in by the daemon:
    number: int = 0  # the part's number in this run
    part_id: int | None = None  # its row in the decision record
    bin: str | None = None
    bin_index: int | None = None  # the bin's position among the configured bins (stored)
    truth_bin: str | None = None  # where its true identity belongs
    reason: str = ""  # why it went where it did (the line's text)
    note: str = ""  # the record's note
    mode: str | None = None  # recognition mode
    model_set_id: str | None = None

    @classmethod
    def decided(
        cls,
        decision: Decision,
        views: list[ViewRecord],
        timings: dict[str, float],
        objects: list[int],
        truth: dict[str, Any] | None,
    ) -> PartRecord:
        """The record of a part the recognizer decided: status, part, colour and confidence are its."""
        return cls(
            decision,
            views,
            timings,
            objects,
            truth,
            status=decision.status,
            part_num=decision.part_num,
            color_id=decision.color_id,
            confidence=decision.confidence,
        )

    def reject(self, note: str) -> None:
        """Make it an ``error`` (it goes to the reject bin): no part number, ``note`` says why."""
        self.status, self.part_num, self.note = "error", None, note

    def sees_two_parts(self, first_look: int) -> bool:
        """Whether most looks, the presence frame's (``first_look`` objects) and every view's, see
        more than one object."""
        looks = [first_look, *self.objects]
        return sum(n > 1 for n in looks) * 2 > len(looks)

    @property
    def crops(self) -> list[np.ndarray | None]:
        """Each view's crop."""
        return [v.crop for v in self.views]

    @property
    def angles(self) -> list[float | None]:
        """Each view's turntable angle."""
        return [v.angle for v in self.views]

    @property
    def right_bin(self) -> bool | None:
        """Whether it went where its true identity belongs (None without ground truth)."""
        return None if self.truth_bin is None else self.bin == self.truth_bin

    @property
    def correct(self) -> bool | None:
        """Whether part and colour match the ground truth (None without it)."""
        if not self.truth:
            return None
        return self.part_num == self.truth.get("part_num") and self.color_id == self.truth.get("color_id")


@dataclass
class RunStats:
    """Counts and latencies of this run (the record holds every run)."""

    parts: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    with_truth: int = 0
    right_bin: int = 0
    correct: int = 0
    bad_frames: int = 0
    camera_faults: int = 0
    two_parts: int = 0
    missed: int = 0
    timings: dict[str, deque[float]] = field(
        default_factory=lambda: {s: deque(maxlen=10_000) for s in (*STAGES, "total")}
    )

    def add(self, outcome: PartRecord) -> None:
        """Count one part."""
        self.parts += 1
        self.by_status[outcome.status] += 1
        if outcome.truth_bin is not None:
            self.with_truth += 1
            self.right_bin += bool(outcome.right_bin)
            self.correct += bool(outcome.correct)
        for stage, ms in outcome.timings.items():
            if stage in self.timings:
                self.timings[stage].append(ms)

    def latency(self) -> dict[str, tuple[float, float]]:
        """Stage -> (p50, p95) in ms over the parts with timings."""
        return {
            s: (float(np.percentile(v, 50)), float(np.percentile(v, 95)))
            for s, v in self.timings.items()
            if v
        }

    def status_line(self, state: str) -> str:
        """One line for ``systemctl status``."""
        s = self.by_status
        unknown = s["unknown"] + s["low_confidence"]
        return (
            f"{state}: {self.parts} parts ({s['sorted']} sorted, {unknown} unknown, "
            f"{s['error']} errors, {s['abandoned']} abandoned); bad frames {self.bad_frames}, "
            f"camera faults {self.camera_faults}"
        )
