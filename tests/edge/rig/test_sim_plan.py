"""The simulated rig's sorting plan (config/sim.yaml): realistic, balanced, and the chute reaches it.

Reads only files in the repository: the shipped config, the default model set's manifest (its
part categories) and the replay captures in edge/data/sim.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

from edge.camera.folder import read_manifest
from edge.camera.sim import group_captures
from edge.manifest import load_manifest
from edge.rig.chute import Chute
from edge.settings import load_edge_config
from edge.sorting import Sorter, load_categories

REPO = Path(__file__).resolve().parents[3]
REPLAY = REPO / "edge" / "data" / "sim"


def _sim() -> tuple[Sorter, list[str]]:
    cfg = load_edge_config(REPO / "config" / "sim.yaml")
    manifest = load_manifest(cfg.engine.model_set)
    sorter = Sorter(cfg.sorting, cfg.bin_names, load_categories(manifest, cfg.sorting.categories_file))
    return sorter, manifest.parts


def test_the_plan_sorts_by_category_and_colour_without_warnings() -> None:
    sorter, parts = _sim()
    rules = sorter.settings.rules
    assert sum(r.category is not None for r in rules) >= 4 and sum(r.color is not None for r in rules) >= 2
    assert 7 <= len(sorter.bin_names) <= 10
    assert sorter.warnings(parts) == []  # every category rule matches model parts


def test_no_bin_holds_more_than_a_quarter_of_the_replay_captures() -> None:
    sorter, _ = _sim()
    captures = group_captures(REPLAY, read_manifest(REPLAY))
    assert len(captures) >= 200  # `make run` decides 240 parts, each capture about once
    bins = Counter(sorter.route(c.truth["part_num"], c.truth["color_id"]).bin for c in captures)
    assert max(bins.values()) <= len(captures) / 4, bins
    assert len(bins) >= 7


def test_the_chute_reaches_every_bin_of_the_plan(mock_factory) -> None:
    cfg = load_edge_config(REPO / "config" / "sim.yaml")
    chute_cfg = cfg.rig.chute
    assert isinstance(chute_cfg.bins, dict)
    angles = sorted(chute_cfg.bins.values())
    assert min(b - a for a, b in itertools.pairwise(angles)) >= 15  # room for a chute mouth
    pin = mock_factory.pin(chute_cfg.pin)
    with Chute(chute_cfg.pin, chute_cfg.bins, settle_s=0) as chute:
        for name, angle in chute_cfg.bins.items():
            chute.select(name)
            expected = 0.0005 + (angle + 90.0) / 180.0 * 0.002
            assert abs(pin.state * 0.02 - expected) < 1e-9 and chute.current_bin == name
