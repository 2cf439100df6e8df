"""Splits: captures never straddle splits, parts are stratified, results are deterministic."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from edge.errors import ConfigError
from trainer.data.sources import Sample
from trainer.data.splits import SPLITS, holdout_parts, split_samples


def _dataset(captures_per_part: dict[str, int], views: int = 4, sources=("real", "legacy")) -> list[Sample]:
    """Samples of several sources; the sources reuse the same capture ids on purpose."""
    out = []
    for source in sources:
        for part, n in captures_per_part.items():
            for c in range(n):
                for v in range(views):
                    image = Path(f"/d/{source}/{part}_{c}_{v}.png")
                    out.append(Sample(image, None, part, 4, f"{part}/4/{c}", v, 90.0 * v, source))
    return out


CAPTURES = {"3001": 1, "3002": 2, "3003": 3, "3004": 5, "3005": 12, "32000": 25}


def _split_of(splits: dict[str, list[Sample]]) -> dict[Sample, str]:
    return {s: name for name, items in splits.items() for s in items}


def test_every_sample_once_and_no_capture_across_splits_over_many_seeds() -> None:
    samples = _dataset(CAPTURES)
    for seed in range(40):
        splits = split_samples(samples, seed=seed)
        assert set(splits) == set(SPLITS)
        assert sorted(map(str, (s.image_path for v in splits.values() for s in v))) == sorted(
            str(s.image_path) for s in samples
        )
        where: dict[tuple[str, str], set[str]] = defaultdict(set)
        for s, name in _split_of(splits).items():
            where[(s.source, s.capture_id)].add(name)
        assert all(len(names) == 1 for names in where.values())
        # Every part with >= 3 captures per source is both learnt and evaluated.
        for part, n in CAPTURES.items():
            if n >= 3:
                assert any(s.part_num == part for s in splits["train"]), (seed, part)
                assert any(s.part_num == part for s in splits["test"]), (seed, part)


def test_group_key_includes_the_source() -> None:
    """The same capture id in two sources is two captures: over seeds they land apart sometimes."""
    samples = _dataset({"3001": 10})
    apart = 0
    for seed in range(20):
        split_of = _split_of(split_samples(samples, seed=seed))
        per_id: dict[str, set[str]] = defaultdict(set)
        for s, name in split_of.items():
            per_id[s.capture_id].add(name)
        apart += sum(len(v) > 1 for v in per_id.values())
    assert apart > 0


def test_fractions_are_met_on_captures() -> None:
    samples = _dataset({f"p{i}": 20 for i in range(30)}, views=2, sources=("real",))
    splits = split_samples(samples, (0.7, 0.2, 0.1), seed=5)
    captures = {name: len({s.capture_id for s in items}) for name, items in splits.items()}
    assert captures == {"train": 420, "val": 120, "test": 60}
    # 6 captures a part: test gets its minimum of 1 (above its 0.6 share) and train and val share
    # the other 5 as 8:1, i.e. 0.556 val captures a part: carried over, not rounded away.
    small = split_samples(_dataset({f"p{i}": 6 for i in range(50)}, 1, ("real",)), seed=1)
    counts = Counter(name for name, items in small.items() for _ in items)
    assert counts["test"] == 50
    assert abs(counts["val"] - 50 * 5 / 9) <= 1
    assert counts["train"] == 300 - counts["test"] - counts["val"]


def test_parts_with_few_captures_are_always_in_train() -> None:
    samples = _dataset({f"p{i}": 1 + i % 2 for i in range(40)}, views=2, sources=("real",))
    for seed in range(10):
        splits = split_samples(samples, seed=seed)
        assert {s.part_num for s in splits["train"]} == {s.part_num for s in samples}
        # Parts with two captures send the second one to val or test now and then.
        assert splits["val"] or splits["test"]


def test_deterministic_and_independent_of_input_order() -> None:
    samples = _dataset(CAPTURES)
    first = _split_of(split_samples(samples, seed=11))
    shuffled = list(samples)
    random.Random(0).shuffle(shuffled)
    again = split_samples(shuffled, seed=11)
    assert _split_of(again) == first
    # Each split keeps the input order.
    positions = {s: i for i, s in enumerate(shuffled)}
    assert all([positions[s] for s in v] == sorted(positions[s] for s in v) for v in again.values())
    assert _split_of(split_samples(samples, seed=12)) != first


def test_zero_fraction_split_stays_empty() -> None:
    splits = split_samples(_dataset(CAPTURES), (0.8, 0.0, 0.2), seed=3)
    assert splits["val"] == [] and splits["test"]


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match="no samples to split"):
        split_samples([])
    samples = _dataset({"3001": 3})
    for bad in [(0.8, 0.1), (0.8, 0.3, 0.1), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)]:
        with pytest.raises(ConfigError, match=r"fractions \("):
            split_samples(samples, bad)
    clash = [*samples, Sample(Path("/d/x.png"), None, "3002", 4, "3001/4/0", 9, None, "real")]
    with pytest.raises(ConfigError, match="capture '3001/4/0' of source 'real' holds parts '3001' and"):
        split_samples(clash)


def test_holdout_by_count() -> None:
    samples = _dataset({f"p{i}": 2 for i in range(10)})
    seen, unseen = holdout_parts(samples, 3, seed=4)
    unseen_parts = {s.part_num for s in unseen}
    assert len(unseen_parts) == 3
    assert not unseen_parts & {s.part_num for s in seen}
    assert len(seen) + len(unseen) == len(samples)
    assert holdout_parts(samples, 3, seed=4) == (seen, unseen)
    chosen = {frozenset(s.part_num for s in holdout_parts(samples, 3, seed=k)[1]) for k in range(10)}
    assert len(chosen) > 1


def test_holdout_by_list_and_errors() -> None:
    samples = _dataset({"3001": 1, "3002": 1, "3003": 1})
    seen, unseen = holdout_parts(samples, ["3002"])
    assert {s.part_num for s in unseen} == {"3002"}
    assert {s.part_num for s in seen} == {"3001", "3003"}
    with pytest.raises(ConfigError, match=r"holdout parts \['9999'\] are not in the samples"):
        holdout_parts(samples, ["3001", "9999"])
    with pytest.raises(ConfigError, match=r"cannot hold out 3 of 3 parts; choose 1\.\.2"):
        holdout_parts(samples, 3)
    with pytest.raises(ConfigError, match="cannot hold out 0"):
        holdout_parts(samples, 0)
    with pytest.raises(ConfigError, match="leave no part on one side"):
        holdout_parts(samples, ["3001", "3002", "3003"])
    with pytest.raises(ConfigError, match="pass a count or a list"):
        holdout_parts(samples, "3001")
