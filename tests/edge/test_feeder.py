"""Feeders: the simulated rig places and lifts parts; the real rig's hand feeder sweeps them off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.camera import create_camera
from edge.daemon import Daemon
from edge.errors import ConfigError
from edge.feeder import Feeder, HandFeeder, SimulatedRig, simulated_rig
from edge.settings import load_edge_config
from tests.edge.test_settings import write_sim_setup


class Turntable:
    def __init__(self) -> None:
        self.turns: list[float] = []

    def rotate_by(self, degrees: float) -> None:
        self.turns.append(degrees)


def test_hand_feeder_places_nothing_and_sweeps_when_told() -> None:
    turntable = Turntable()
    feeder = HandFeeder(turntable, 120.0)
    assert isinstance(feeder, Feeder) and not isinstance(feeder, SimulatedRig)
    assert feeder.next_part() is None
    feeder.remove_part()
    assert turntable.turns == [120.0]
    HandFeeder(turntable, 0.0).remove_part()  # 0: taken off by hand, no turn
    assert turntable.turns == [120.0]


def test_only_the_sim_camera_is_the_simulated_rig(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    camera = create_camera(cfg.camera)
    assert simulated_rig(camera) is camera
    with pytest.raises(ConfigError, match="drop --sim"):
        simulated_rig(object())


def test_the_daemon_feeds_and_clears_through_its_feeder(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    camera = create_camera(cfg.camera)

    class Counting:
        def __init__(self) -> None:
            self.placed = self.removed = 0

        def next_part(self) -> dict[str, Any] | None:
            self.placed += 1
            return camera.next_part()  # type: ignore[attr-defined]

        def remove_part(self) -> None:
            self.removed += 1
            camera.remove_part()  # type: ignore[attr-defined]

    feeder = Counting()
    stats = Daemon(cfg, sim=True, parts=2, camera=camera, feeder=feeder).run()
    assert stats.parts == 2 and (feeder.placed, feeder.removed) == (2, 2)
