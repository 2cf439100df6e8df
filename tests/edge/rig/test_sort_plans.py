"""The shipped sorting plans (config/sim.yaml, and the Pi's config/edge.yaml): realistic, balanced,
the same in both, and the chute reaches every bin.

Reads only files in the repository: the shipped configs, the default model set's manifest (its
part categories) and the replay captures in edge/data/sim. The Pi config names the model set where
it is installed (/opt/lego-edge/models/default); the repository's models/default stands in for it.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

from edge.camera.folder import read_manifest
from edge.camera.sim import group_captures
from edge.manifest import load_manifest
from edge.rig.chute import Chute
from edge.settings import EdgeConfig, load_edge_config
from edge.sorting import Sorter, load_categories

REPO = Path(__file__).resolve().parents[3]
REPLAY = REPO / "edge" / "data" / "sim"
CONFIGS = ("sim.yaml", "edge.yaml")


def _config(name: str) -> EdgeConfig:
    return load_edge_config(REPO / "config" / name)


def _plan(name: str) -> tuple[Sorter, list[str]]:
    cfg = _config(name)
    manifest = load_manifest(REPO / "models" / "default")  # what both configs' model_set holds
    sorter = Sorter(cfg.sorting, cfg.bin_names, load_categories(manifest, cfg.sorting.categories_file))
    return sorter, manifest.parts


@pytest.mark.parametrize("name", CONFIGS)
def test_the_plan_sorts_by_category_and_colour_without_warnings(name: str) -> None:
    sorter, parts = _plan(name)
    rules = sorter.settings.rules
    assert sum(r.category is not None for r in rules) >= 4 and sum(r.color is not None for r in rules) >= 2
    assert 7 <= len(sorter.bin_names) <= 10
    assert sorter.warnings(parts) == []  # every category rule matches model parts


def test_the_pi_sorts_by_the_sim_rigs_plan() -> None:
    sim, pi = _config("sim.yaml"), _config("edge.yaml")
    assert pi.engine.model_set.name == "default" and pi.camera.type == "picamera2"
    assert pi.sorting == sim.sorting
    assert pi.rig.chute.bins == sim.rig.chute.bins


@pytest.mark.parametrize("name", CONFIGS)
def test_no_bin_holds_more_than_a_quarter_of_the_replay_captures(name: str) -> None:
    sorter, _ = _plan(name)
    captures = group_captures(REPLAY, read_manifest(REPLAY))
    assert len(captures) >= 200  # `make run` decides 240 parts, each capture about once
    bins = Counter(sorter.route(c.truth["part_num"], c.truth["color_id"]).bin for c in captures)
    assert max(bins.values()) <= len(captures) / 4, bins
    assert len(bins) >= 7


@pytest.mark.parametrize("name", CONFIGS)
def test_the_chute_reaches_every_bin_of_the_plan(mock_factory, name: str) -> None:
    chute_cfg = _config(name).rig.chute
    assert isinstance(chute_cfg.bins, dict)
    angles = sorted(chute_cfg.bins.values())
    assert min(b - a for a, b in itertools.pairwise(angles)) >= 15  # room for a chute mouth
    pin = mock_factory.pin(chute_cfg.pin)
    with Chute(chute_cfg.pin, chute_cfg.bins, settle_s=0) as chute:
        for bin_name, angle in chute_cfg.bins.items():
            chute.select(bin_name)
            expected = 0.0005 + (angle + 90.0) / 180.0 * 0.002
            assert abs(pin.state * 0.02 - expected) < 1e-9 and chute.current_bin == bin_name
