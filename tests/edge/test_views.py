"""Views taken one at a time: adaptive stopping, recognition overlapped with the turn, faults.

A scripted engine decides how sure each view is (the tiny model's own answers are irrelevant); the
turntable is the ULN2003 driver on gpiozero's mock pins, the sim camera following it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.daemon import Daemon
from edge.errors import HardwareError, ModelError
from edge.part import PartRecord
from edge.pipeline import Pipeline
from edge.rig import ULN2003Turntable
from edge.settings import AdaptiveViews, CaptureSettings, load_edge_config
from edge.views import take_part_views, take_views
from tests.edge.test_settings import BINS, SIM_PARTS, write_sim_setup

SURE = (0, 0)  # a view that is sure of part 0 (demo-3001) in colour 0 (Red)
UNSURE = None  # a view that cannot tell the parts or colours apart
STEPS = 64  # steps per turn of the test turntable: 16 per quarter turn


class ScriptedEngine:
    """The real engine's outputs with the part and colour logits replaced, view by view.

    ``script`` gives each view in turn: (part index, colour index) for a sure view, None for an
    unsure one, or an exception to raise. ``when_run`` is called before each engine run.
    """

    def __init__(self, engine: Any, script: list[Any], when_run: Callable[[], None] | None = None) -> None:
        self.engine, self.script, self.when_run = engine, list(script), when_run
        self.runs = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self.when_run is not None:
            self.when_run()
        outputs = dict(self.engine.run(batch))
        for row in range(len(batch)):
            say = self.script[(self.runs + row) % len(self.script)]
            if isinstance(say, Exception):
                raise say
            for role, index in zip(("part_logits", "color_logits"), say or (None, None), strict=True):
                logits = np.zeros(outputs[role].shape[1], np.float32)
                if index is not None:
                    logits[index] = 30.0
                outputs[role][row] = logits
        self.runs += len(batch)
        return outputs


def _moves_alive() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "turntable-move" and t.is_alive()]


@pytest.fixture
def rig(tmp_path: Path, demo_library: Path) -> Iterator[tuple[Pipeline, ULN2003Turntable]]:
    """The tiny pipeline with its sim camera following a turntable on mock pins, a part placed."""
    factory = MockFactory()
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    pipe = Pipeline.from_config(cfg)
    turntable = ULN2003Turntable((17, 27, 22, 23), steps_per_turn=STEPS, step_delay=0.0, pin_factory=factory)
    camera: Any = pipe.camera
    with camera:
        camera.follow(turntable)
        camera.next_part()
        yield pipe, turntable
    turntable.close()
    pipe.close()
    factory.reset()


def _take(pipe: Pipeline, turntable: ULN2003Turntable, capture: CaptureSettings, **kwargs: Any) -> Any:
    return take_views(pipe, capture, lambda i: turntable.start_rotate_by(capture.step_deg), **kwargs)


def _adaptive(min_views: int = 1, threshold: float = 0.9, **kwargs: Any) -> CaptureSettings:
    return CaptureSettings(
        views=4, adaptive=AdaptiveViews(min_views=min_views, threshold=threshold), **kwargs
    )


# --- adaptive ----------------------------------------------------------------------------------


@pytest.mark.parametrize("overlap", [False, True])
def test_adaptive_stops_once_the_views_agree_confidently(rig: Any, overlap: bool) -> None:
    pipe, turntable = rig
    pipe.engine = ScriptedEngine(pipe.engine, [SURE])
    taken = _take(pipe, turntable, _adaptive(min_views=2, overlap=overlap))
    part = taken.part
    assert taken.error is None and len(taken.frames) == 2 and pipe.engine.runs == 2
    assert part.angles == [0.0, 90.0] and part.objects == [1, 1]
    assert (part.status, part.part_num, part.color_id) == ("sorted", SIM_PARTS[0], 4)
    assert part.confidence == pytest.approx(1.0)
    if overlap:  # the turn to a third view had started; it was cancelled, never waited out
        assert STEPS // 4 <= turntable.position <= STEPS // 2
    else:
        assert turntable.position == STEPS // 4  # one turn between the two views, no more
    assert not _moves_alive()


def test_adaptive_takes_every_view_when_unsure(rig: Any) -> None:
    pipe, turntable = rig
    pipe.engine = ScriptedEngine(pipe.engine, [UNSURE])
    part = _take(pipe, turntable, _adaptive(min_views=1)).part
    assert part.angles == [0.0, 90.0, 180.0, 270.0] and pipe.engine.runs == 4
    assert part.status == "low_confidence" and part.part_num is None  # 1/3: below the 0.6 threshold
    assert turntable.position == 3 * STEPS // 4


def test_adaptive_goes_on_while_the_views_disagree(rig: Any) -> None:
    pipe, turntable = rig
    # Views 1 and 2 are each sure, of different parts: together unsure. View 3 sides with part 0,
    # which settles it (two sure views against one).
    pipe.engine = ScriptedEngine(pipe.engine, [SURE, (1, 0), SURE, SURE])
    part = _take(pipe, turntable, _adaptive(min_views=2, threshold=0.99)).part
    assert [v.topk[0][0] for v in part.views] == [SIM_PARTS[0], SIM_PARTS[1], SIM_PARTS[0]]
    assert (part.status, part.part_num) == ("sorted", SIM_PARTS[0])


def test_adaptive_takes_min_views_even_when_the_first_is_sure(rig: Any) -> None:
    pipe, turntable = rig
    pipe.engine = ScriptedEngine(pipe.engine, [SURE])
    assert len(_take(pipe, turntable, _adaptive(min_views=3)).frames) == 3
    assert turntable.position == 2 * STEPS // 4


def test_min_views_above_views_is_refused() -> None:
    with pytest.raises(ValueError, match="min_views 5 is more than views 4"):
        CaptureSettings(views=4, adaptive={"min_views": 5, "threshold": 0.9})


# --- overlap -----------------------------------------------------------------------------------


def test_overlap_recognises_each_view_while_the_turntable_turns(rig: Any) -> None:
    pipe, turntable = rig
    turning: list[bool] = []

    def until_turning() -> None:
        # The view just taken is being recognised: is the turntable leaving it? (Sequentially it
        # would stand still here until the wait runs out.)
        at_capture = pipe.engine.runs * STEPS // 4  # view i is taken a quarter turn after view i-1
        for _ in range(200):
            if turntable.position != at_capture:
                break
            time.sleep(0.005)
        turning.append(turntable.position != at_capture)

    pipe.engine = ScriptedEngine(pipe.engine, [SURE], when_run=until_turning)
    taken = _take(pipe, turntable, CaptureSettings(views=4, overlap=True))
    assert turning == [True, True, True, False]  # no turn after the last view
    # Every view taken at rest, in turntable order, one record per view.
    assert [f.meta["turntable_angle"] for f in taken.frames] == [0.0, 90.0, 180.0, 270.0]
    assert taken.part.angles == [0.0, 90.0, 180.0, 270.0] and turntable.position == 3 * STEPS // 4


def test_overlap_gives_the_batch_decision(rig: Any) -> None:
    pipe, turntable = rig
    taken = _take(pipe, turntable, CaptureSettings(views=4, overlap=True))
    batch = pipe.process(taken.frames)
    a, b = batch.decision, taken.part.decision
    assert (b.part_topk[0][0], b.color_id, b.status) == (a.part_topk[0][0], a.color_id, a.status)
    assert b.confidence == pytest.approx(a.confidence, abs=1e-4)


# --- faults ------------------------------------------------------------------------------------


def test_recognition_error_ends_the_views_and_the_turn(rig: Any) -> None:
    pipe, turntable = rig
    turntable._step_delay = 0.02  # a slow turn, so the error comes while it is under way
    pipe.engine = ScriptedEngine(pipe.engine, [UNSURE, ModelError("bad output")])
    taken = _take(pipe, turntable, _adaptive(overlap=True))
    assert isinstance(taken.error, ModelError) and taken.part is None
    assert len(taken.frames) == 2  # the frames taken so far, for the error record
    assert STEPS // 4 <= turntable.position <= STEPS // 2 and not _moves_alive()  # ended, not left running


def test_without_overlap_or_adaptive_every_view_goes_into_one_batch(rig: Any) -> None:
    pipe, turntable = rig
    batches: list[int] = []
    pipe.engine = ScriptedEngine(pipe.engine, [SURE], when_run=lambda: batches.append(1))
    taken = take_part_views(pipe, CaptureSettings(views=4), turntable)
    assert taken.error is None and len(taken.frames) == 4
    assert len(batches) == 1 and pipe.engine.runs == 4  # one engine run of the four views
    assert taken.record() is taken.part and taken.part.angles == [0.0, 90.0, 180.0, 270.0]
    assert turntable.position == 3 * STEPS // 4  # three turns between four views, none after


def test_a_failed_recognition_is_recorded_with_the_views_it_took(rig: Any) -> None:
    pipe, turntable = rig
    pipe.engine = ScriptedEngine(pipe.engine, [ModelError("bad output")])
    taken = take_part_views(pipe, CaptureSettings(views=4), turntable)
    assert isinstance(taken.error, ModelError) and taken.part is None
    part = taken.record()
    assert part.decision is None and part.status == "error" and part.part_num is None
    assert part.angles == [0.0, 90.0, 180.0, 270.0] and part.timings["capture"] == taken.capture_ms
    assert part.note == "recognition failed: bad output"
    assert part.truth is not None and part.truth["part_num"] in SIM_PARTS  # the sim frames' truth


def test_stop_request_or_camera_fault_leaves_no_turn_running(rig: Any) -> None:
    pipe, turntable = rig
    turntable._step_delay = 0.02

    def stop_at_view_3(i: int) -> None:
        if i == 2:
            raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        _take(pipe, turntable, CaptureSettings(views=4, overlap=True), before=stop_at_view_3)
    assert not _moves_alive() and not turntable.energized

    camera: Any = pipe.camera
    camera._grab = lambda: (_ for _ in ()).throw(HardwareError("camera unplugged"))
    with pytest.raises(HardwareError):
        _take(pipe, turntable, CaptureSettings(views=4, overlap=True))
    assert not _moves_alive()


# --- the daemon --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "views", "status", "bin"),
    [([SURE], 2, "sorted", "red"), ([UNSURE], 4, "low_confidence", "reject")],
)
def test_daemon_records_and_routes_adaptive_parts_as_before(
    tmp_path: Path, demo_library: Path, script: list[Any], views: int, status: str, bin: str
) -> None:
    capture = {"views": 4, "overlap": True, "adaptive": {"min_views": 2, "threshold": 0.9}}
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library, capture=capture))
    outcomes: list[PartRecord] = []
    factory = MockFactory(pin_class=MockPWMPin)
    daemon = Daemon(cfg, sim=True, parts=3, pin_factory=factory, on_part=outcomes.append)
    try:
        daemon.open()
        assert daemon.pipeline is not None
        daemon.pipeline.engine = ScriptedEngine(daemon.pipeline.engine, script)
        daemon.loop()
    finally:
        daemon.close()
        factory.reset()
    assert [len(o.views) for o in outcomes] == [views] * 3
    assert [(o.status, o.bin) for o in outcomes] == [(status, bin)] * 3
    assert [o.correct for o in outcomes] == [
        o.truth["part_num"] == SIM_PARTS[0] and status == "sorted" for o in outcomes
    ]
    with sqlite3.connect(cfg.data.db) as con:
        rows = con.execute("SELECT id, status, bin FROM parts ORDER BY id").fetchall()
        counts = [
            con.execute("SELECT count(*) FROM views WHERE part_id = ?", (r[0],)).fetchone()[0] for r in rows
        ]
    assert [(s, b) for _, s, b in rows] == [(status, list(BINS).index(bin))] * 3
    assert counts == [views] * 3
