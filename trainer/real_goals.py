"""Goals for ``trainer evaluate-real``: a figure of a photo set that should reach a share
(``--goal belt:top1=80``), and for each artifact whether it does and by how many points it is missed.

A goal names its set, one of :data:`FIGURES` and a percentage. Goals are checked against the sets
and enrolment sizes before anything runs; a figure the run could not measure (no known part in the
set, no colour labels) is reported as not measured rather than failing after the photos are scored.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge.errors import ConfigError

#: figure name -> (what it is, in words; how to read it from one artifact's figures, or None).
FIGURES: dict[str, tuple[str, Callable[[dict[str, Any]], float | None]]] = {
    "top1": ("known parts' top-1", lambda f: f.get("known", {}).get("part_top1")),
    "top5": ("known parts' top-5", lambda f: f.get("known", {}).get("part_top5")),
    "family": ("colour family top-1", lambda f: f.get("color_family", {}).get("family_top1")),
}
_ENROLLED = re.compile(r"enrolled(\d+)$")


def enrolled_k(figure: str) -> int | None:
    """K of an ``enrolledK`` figure (unknown parts enrolled from K photos); None for the others."""
    m = _ENROLLED.match(figure)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Goal:
    """``set_name``'s ``figure`` should reach ``share`` (0..1)."""

    set_name: str
    figure: str
    share: float

    def describe(self) -> str:
        """The goal in words, e.g. "belt: known parts' top-1 >= 80%"."""
        return f"{self.set_name}: {figure_words(self.figure)} >= {100 * self.share:g}%"

    def read(self, figures: dict[str, Any]) -> float | None:
        """The goal's figure in one artifact's figures; None where it was not measured."""
        k = enrolled_k(self.figure)
        if k is not None:
            value = figures.get(f"enroll_{k}", {}).get("decision_top1")
        else:
            value = FIGURES[self.figure][1](figures)
        return None if value is None else float(value)


def figure_words(figure: str) -> str:
    """What ``figure`` measures, in words."""
    k = enrolled_k(figure)
    if k is not None:
        return f"unknown parts enrolled from {k} photos, decision top-1"
    return FIGURES[figure][0]


def parse_goal(spec: str) -> Goal:
    """``SET:FIGURE=PERCENT`` (argparse type), e.g. ``belt:top1=80`` or ``belt:enrolled5=80``."""
    head, sep, number = spec.partition("=")
    set_name, colon, figure = head.partition(":")
    known = ", ".join([*FIGURES, "enrolledK"])
    if not sep or not colon or not set_name or not figure:
        raise argparse.ArgumentTypeError(
            f"--goal {spec!r} must be SET:FIGURE=PERCENT, e.g. belt:top1=80 (figures: {known})"
        )
    if figure not in FIGURES and enrolled_k(figure) is None:
        raise argparse.ArgumentTypeError(f"--goal {spec!r}: unknown figure {figure!r} (figures: {known})")
    try:
        percent = float(number)
    except ValueError:
        percent = float("nan")
    if not 0 < percent <= 100:
        raise argparse.ArgumentTypeError(f"--goal {spec!r}: the goal must be a percentage in (0, 100]")
    return Goal(set_name, figure, percent / 100)


def check_goals(goals: Sequence[Goal], set_names: Sequence[str], enroll: Sequence[int]) -> None:
    """Refuse, before anything runs, a goal on a set no ``--set`` names or on an enrolment size
    ``--enroll`` does not measure."""
    for goal in goals:
        if goal.set_name not in set_names:
            raise ConfigError(
                f"--goal {goal.describe()!r} names set {goal.set_name!r}, which no --set names "
                f"(sets: {', '.join(set_names)})"
            )
        k = enrolled_k(goal.figure)
        if k is not None and k not in enroll:
            raise ConfigError(
                f"--goal on {goal.figure} needs --enroll to include {k} "
                f"(it is {','.join(map(str, enroll)) or 'empty'})"
            )


def measure_goals(goals: Sequence[Goal], report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal with, per artifact of its set, the figure, whether it is met and the points it
    is missed by (0 where met; None where not measured)."""
    out = []
    for goal in goals:
        artifacts = {}
        for key, figures in report["sets"][goal.set_name]["artifacts"].items():
            value = goal.read(figures)
            artifacts[key] = {
                "value": value,
                "met": None if value is None else value >= goal.share,
                "missed_by_points": None if value is None else round(max(0.0, 100 * (goal.share - value)), 1),
            }
        out.append(
            {
                "set": goal.set_name,
                "figure": goal.figure,
                "goal": goal.share,
                "goal_text": goal.describe(),
                "artifacts": artifacts,
            }
        )
    return out


def goal_lines(measured: Sequence[dict[str, Any]], tried: str | None = None) -> list[str]:
    """The goals as a markdown table (a row per goal, a column per artifact), and ``tried``, where
    some goal is missed, as the line that says what was tried toward it."""
    if not measured:
        return []
    keys = list(dict.fromkeys(k for g in measured for k in g["artifacts"]))
    lines = ["### Goals", "", "| goal | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for g in measured:
        cells = [_goal_cell(g["artifacts"].get(k)) for k in keys]
        lines.append(f"| {g['goal_text']} | " + " | ".join(cells) + " |")
    lines.append("")
    missed = any(a["met"] is False for g in measured for a in g["artifacts"].values())
    if missed and tried:
        lines += [f"What was tried toward the goals missed: {tried}", ""]
    return lines


def goal_summary(measured: Sequence[dict[str, Any]]) -> list[str]:
    """A line per goal for the console: the goal, then each artifact's figure, met or missed."""
    return [
        f"goal {g['goal_text']}: " + "; ".join(f"{k} {_goal_cell(a)}" for k, a in g["artifacts"].items())
        for g in measured
    ]


def _goal_cell(a: dict[str, Any] | None) -> str:
    if a is None or a["value"] is None:
        return "not measured"
    value = f"{100 * a['value']:.1f}%"
    return f"{value} met" if a["met"] else f"{value}, missed by {a['missed_by_points']:.1f} points"
