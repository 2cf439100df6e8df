"""Small statistics for the evaluations: how far a share measured on a few photos can be trusted,
and whether one change to the decision moved the same photos more than chance would (scipy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scipy.stats import binomtest


def wilson_interval(hits: int, n: int) -> list[float]:
    """The 95% Wilson score interval of a share of ``hits`` in ``n`` photos (scipy's binomtest)."""
    ci = binomtest(int(hits), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def paired_change(before: Sequence[bool], after: Sequence[bool]) -> dict[str, Any]:
    """How one change moved the same photos' top-1: photos it gained and lost, and the two-sided
    exact McNemar p-value (a binomial test on the photos that changed), the chance of a split at
    least this uneven were the change doing nothing."""
    if len(before) != len(after):
        raise ValueError(f"paired figures need the same photos: {len(before)} != {len(after)}")
    gained = sum(1 for b, a in zip(before, after, strict=True) if a and not b)
    lost = sum(1 for b, a in zip(before, after, strict=True) if b and not a)
    p = binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
    return {"gained": gained, "lost": lost, "p": float(f"{p:.3g}")}


def paired_text(change: dict[str, Any] | None, unit: str = "photos", against: str = "") -> str:
    """A :func:`paired_change` as text to follow a top-1: the ``unit`` gained and lost (``against``
    after "lost") and McNemar's p; empty where none was kept (figures recorded before it was)."""
    if not change:
        return ""
    return (
        f" ({change['gained']} {unit} gained, {change['lost']} lost{against}; McNemar p = {change['p']:.2g})"
    )
