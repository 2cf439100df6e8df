"""Train/val/test splits grouped by capture and stratified by part; the unseen-parts hold-out.

Views of one capture are near-duplicates, so a capture (``(source, capture_id)``) never straddles
two splits: splitting is done on captures, part by part, and every part with at least three
captures lands in both train and test. The result depends only on the samples and the seed, not on
the order the samples come in.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from edge.errors import ConfigError
from trainer.data.sources import Sample

SPLITS = ("train", "val", "test")
GroupKey = tuple[str, str]


def _rng(seed: int, *keys: object) -> np.random.Generator:
    """A generator that depends only on the seed and keys (``hash`` is salted per process)."""
    return np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32("/".join(map(str, keys)).encode())])


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(not math.isfinite(f) or f < 0 for f in values):
        raise ConfigError(f"fractions {tuple(fractions)!r} must be three numbers >= 0 (train, val, test)")
    if abs(sum(values) - 1.0) > 1e-6 or values[0] == 0:
        raise ConfigError(
            f"fractions {tuple(fractions)!r} must sum to 1, train above 0; e.g. (0.8, 0.1, 0.1)"
        )
    return values  # type: ignore[return-value]


def _groups_by_part(samples: Sequence[Sample]) -> dict[str, list[GroupKey]]:
    """Each part's capture groups, sorted; a capture holding two parts is an error."""
    part_of: dict[GroupKey, str] = {}
    for s in samples:
        key = (s.source, s.capture_id)
        other = part_of.setdefault(key, s.part_num)
        if other != s.part_num:
            raise ConfigError(
                f"capture {s.capture_id!r} of source {s.source!r} holds parts {other!r} and {s.part_num!r}; "
                "a capture is one placement of one part, so give the captures distinct ids"
            )
    by_part: dict[str, list[GroupKey]] = defaultdict(list)
    for key, part in part_of.items():
        by_part[part].append(key)
    return {p: sorted(keys) for p, keys in sorted(by_part.items())}


def _share(n: int, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(minimum counts, fair share)`` of a part's ``n`` captures.

    Every part with a capture has one in train, and every part with three or more has one in test.
    A split whose share is below its minimum gets the minimum; the others share the rest in
    proportion to their fractions.
    """
    mins = np.array([n >= 1, False, n >= 3 and frac[2] > 0], dtype=float)
    share = frac * n
    bound = share < mins
    for _ in range(3):  # binding one minimum can push another split below its own
        rest = n - mins[bound].sum()
        free = ~bound & (frac > 0)
        share = np.where(bound, mins, np.where(free, frac * rest / max(frac[free].sum(), 1e-12), 0.0))
        if not np.any(share < mins - 1e-9):
            break
        bound |= share < mins - 1e-9
    return mins.astype(int), share


def _allocate(n: int, mins: np.ndarray, target: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Whole counts summing to ``n``, at least ``mins``, near ``target`` (largest shortfall first)."""
    counts = mins + np.where(allowed, np.clip(np.floor(target - mins), 0, n), 0).astype(int)
    while counts.sum() > n:  # carried-over targets can ask for more than the part has
        counts[int(np.argmax(np.where(counts > mins, counts - target, -np.inf)))] -= 1
    while counts.sum() < n:
        counts[int(np.argmax(np.where(allowed, target - counts, -np.inf)))] += 1
    return counts


def split_samples(
    samples: Sequence[Sample], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[Sample]]:
    """Split samples into ``{"train", "val", "test"}`` by capture, stratified per part.

    Fractions count captures, not images. Every part has a capture in train, and every part with
    three or more captures has one in test (which can lift the test share of parts with few
    captures). Rounding is carried from part to part (parts in sorted order), so the overall
    fractions stay close even when each part has only a few captures. Each split keeps the samples
    in their input order.

    Raises:
        ConfigError: no samples, bad fractions, or one capture id shared by two parts.
    """
    if not samples:
        raise ConfigError("no samples to split; load a data source first")
    frac = np.array(_check_fractions(fractions))
    split_of: dict[GroupKey, int] = {}
    carry = np.zeros(3)
    for part, keys in _groups_by_part(samples).items():
        mins, share = _share(len(keys), frac)
        target = share + carry
        counts = _allocate(len(keys), mins, target, frac > 0)
        carry = np.clip(target - counts, -1.0, 1.0)  # bounded: one odd part must not skew the rest
        order = _rng(seed, part).permutation(len(keys))
        labels = np.repeat(np.arange(3), counts)
        for idx, label in zip(order, labels, strict=True):
            split_of[keys[idx]] = int(label)
    out: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    for s in samples:
        out[SPLITS[split_of[(s.source, s.capture_id)]]].append(s)
    return out


def holdout_parts(
    samples: Sequence[Sample], n: int | Sequence[str], seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """``(seen, unseen)``: the samples of all but some parts, and those of the held-out parts.

    ``n`` is either how many parts to hold out (chosen at random with ``seed``) or the part numbers.

    Raises:
        ConfigError: ``n`` leaves no part on one side, or names parts that are not in the samples.
    """
    parts = sorted({s.part_num for s in samples})
    if isinstance(n, str | bool):
        raise ConfigError(f"holdout parts {n!r}: pass a count or a list of part numbers")
    if isinstance(n, int):
        if not 1 <= n < len(parts):
            raise ConfigError(f"cannot hold out {n!r} of {len(parts)} parts; choose 1..{len(parts) - 1}")
        chosen = _rng(seed, "holdout").choice(len(parts), size=n, replace=False)
        unseen = {parts[i] for i in chosen}
    else:
        unseen = set(n)
        unknown = sorted(unseen.difference(parts))
        if unknown:
            raise ConfigError(f"holdout parts {unknown!r} are not in the samples; check the part numbers")
        if not unseen or len(unseen) == len(parts):
            raise ConfigError(
                f"holdout parts {sorted(unseen)!r} leave no part on one side; hold out 1..{len(parts) - 1}"
            )
    seen_samples = [s for s in samples if s.part_num not in unseen]
    unseen_samples = [s for s in samples if s.part_num in unseen]
    return seen_samples, unseen_samples
