"""Mixed sampling: per-sample source weights, determinism per epoch, bad weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError
from trainer.data.mix import MixedSampler
from trainer.data.sources import Sample


def _samples(source: str, n: int) -> list[Sample]:
    return [
        Sample(Path(f"/d/{source}/{i}.png"), None, f"p{i % 5}", 4, f"c{i}", 0, None, source) for i in range(n)
    ]


def test_real_is_drawn_three_times_as_often_per_sample_by_default() -> None:
    sampler = MixedSampler({"real": _samples("real", 100), "legacy": _samples("legacy", 400)}, seed=2)
    assert sampler.weights == {"real": 3.0, "legacy": 1.0}
    p = sampler.probabilities
    assert p[0] == pytest.approx(3 * p[-1]) and p.sum() == pytest.approx(1.0)
    # Expected shares: 100*3 : 400*1.
    assert sampler.source_shares() == pytest.approx({"real": 300 / 700, "legacy": 400 / 700})

    draws = np.concatenate([sampler.epoch(e) for e in range(100)])  # 50,000 draws
    per_source = np.bincount(sampler.source_of[draws], minlength=2)
    rate_real, rate_legacy = per_source[0] / 100, per_source[1] / 400
    assert rate_real / rate_legacy == pytest.approx(3.0, rel=0.05)
    assert {sampler.samples[i].source for i in draws[:50]} == {"real", "legacy"}


def test_custom_weights_and_zero_weight_excludes_a_source() -> None:
    sources = {"real": _samples("real", 50), "b200c": _samples("b200c", 50), "legacy": _samples("legacy", 50)}
    sampler = MixedSampler(sources, {"real": 1.0, "b200c": 0.0, "legacy": 2.0}, seed=0)
    draws = np.concatenate([sampler.epoch(e) for e in range(40)])
    counts = np.bincount(sampler.source_of[draws], minlength=3)
    assert counts[1] == 0
    assert counts[2] / counts[0] == pytest.approx(2.0, rel=0.08)


def test_epochs_are_reproducible_and_differ() -> None:
    sources = {"real": _samples("real", 30), "legacy": _samples("legacy", 70)}
    a = MixedSampler(sources, seed=7)
    b = MixedSampler(sources, seed=7)
    assert len(a) == 100 and len(a.epoch(0)) == 100
    assert np.array_equal(a.epoch(3), b.epoch(3))
    assert not np.array_equal(a.epoch(3), a.epoch(4))
    assert not np.array_equal(a.epoch(3), MixedSampler(sources, seed=8).epoch(3))
    sized = MixedSampler(sources, seed=7, epoch_size=25)
    assert len(sized.epoch(0)) == 25 and sized.epoch(0).max() < 100


def test_bad_arguments() -> None:
    real = {"real": _samples("real", 3)}
    with pytest.raises(ConfigError, match=r"unknown source\(s\) \['reel'\]; the sources are \['real'\]"):
        MixedSampler(real, {"reel": 2.0})
    with pytest.raises(ConfigError, match=r"weight of source 'real' is -1\.0; give a finite number >= 0"):
        MixedSampler(real, {"real": -1.0})
    with pytest.raises(ConfigError, match="weight of source 'real' is nan"):
        MixedSampler(real, {"real": float("nan")})
    with pytest.raises(ConfigError, match="all source weights are zero"):
        MixedSampler(real, {"real": 0})
    with pytest.raises(ConfigError, match="no samples in any source"):
        MixedSampler({"real": []})
    with pytest.raises(ConfigError, match="epoch_size 0 must be"):
        MixedSampler(real, epoch_size=0)
    with pytest.raises(ConfigError, match="epoch number -1"):
        MixedSampler(real).epoch(-1)
