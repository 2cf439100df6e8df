"""Mixing data sources in one training run with per-source sampling weights.

Weights are per sample and relative: with ``real`` at 3.0 and a synthetic source at 1.0, each real
image is drawn three times as often as each synthetic one, whatever the sources' sizes. Each epoch
draws its indices with replacement from those probabilities, reproducibly from ``(seed, epoch)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from edge.errors import ConfigError
from trainer.data.sources import Sample

#: Weight of a source the caller gives none: real captures count three times a synthetic image.
DEFAULT_WEIGHTS = {"real": 3.0}
DEFAULT_WEIGHT = 1.0


class MixedSampler:
    """Draws sample indices from several sources with per-sample weights.

    Args:
        sources: source name -> its samples. Indices refer to :attr:`samples`, the sources
            concatenated in this mapping's order.
        weights: source name -> per-sample weight (>= 0); missing names get 3.0 for ``"real"`` and
            1.0 otherwise.
        seed: base seed; epoch ``n`` draws from ``(seed, n)``.
        epoch_size: indices per epoch (default: the total number of samples).

    Raises:
        ConfigError: no samples, a weight for a source that is not given, a negative or non-finite
            weight, all weights zero, or an epoch size below 1.
    """

    def __init__(
        self,
        sources: Mapping[str, Sequence[Sample]],
        weights: Mapping[str, float] | None = None,
        seed: int = 0,
        epoch_size: int | None = None,
    ) -> None:
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(sources))
        if unknown:
            raise ConfigError(
                f"weights given for unknown source(s) {unknown!r}; the sources are {sorted(sources)!r}"
            )
        self.weights: dict[str, float] = {}
        for name in sources:
            w = weights.get(name, DEFAULT_WEIGHTS.get(name, DEFAULT_WEIGHT))
            if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0:
                raise ConfigError(f"weight of source {name!r} is {w!r}; give a finite number >= 0")
            self.weights[name] = float(w)
        self.samples: list[Sample] = [s for items in sources.values() for s in items]
        if not self.samples:
            raise ConfigError("no samples in any source; load at least one data source")
        self.source_names: list[str] = list(sources)
        #: Index into :attr:`source_names` of each sample.
        self.source_of = np.repeat(np.arange(len(sources)), [len(v) for v in sources.values()])
        per_sample = np.array([self.weights[name] for name in sources])[self.source_of]
        total = per_sample.sum()
        if total <= 0:
            raise ConfigError(
                f"all source weights are zero ({self.weights!r}); give some source a weight above 0"
            )
        self.probabilities: np.ndarray = per_sample / total
        bad_size = isinstance(epoch_size, bool) or not isinstance(epoch_size, int) or epoch_size < 1
        if epoch_size is not None and bad_size:
            raise ConfigError(f"epoch_size {epoch_size!r} must be a whole number >= 1")
        self.epoch_size = epoch_size or len(self.samples)
        self.seed = seed

    def __len__(self) -> int:
        """Indices per epoch."""
        return self.epoch_size

    def epoch(self, n: int) -> np.ndarray:
        """The sample indices of epoch ``n`` (length :attr:`epoch_size`); the same ``n``, the same draw."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"epoch number {n!r} must be a whole number >= 0")
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, n])
        return rng.choice(len(self.samples), size=self.epoch_size, replace=True, p=self.probabilities)

    def source_shares(self) -> dict[str, float]:
        """The expected share of each source in an epoch (sums to 1)."""
        shares = np.bincount(self.source_of, weights=self.probabilities, minlength=len(self.source_names))
        return {name: float(shares[i]) for i, name in enumerate(self.source_names)}
