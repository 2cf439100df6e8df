"""The training runs on the two real photo sets, one point a run: docs/runs.png.

    python tools/plot_runs.py [--runs docs/runs.csv] [--out docs/runs.png]

Reads docs/runs.csv (the figures of docs/real_transfer.md's tables, one row a run) and draws the
belt's known parts against the cut-outs (top-1, ONNX int8, the network alone), runs of one recipe
joined by a line (they differ only in the seed), the shipped sets marked, beside the issue's goals
(belt >= 80%, cut-outs >= 70%) and what a majority guess scores on each set.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The issue's goals and a majority guess's top-1 on each set (docs/real_transfer.md).
GOAL_BELT, GOAL_CUTOUTS = 80.0, 70.0
MAJORITY_BELT, MAJORITY_CUTOUTS = 50.8, 24.3
FIELDS = ("run", "recipe", "seed", "belt", "cutouts", "shipped", "what")


class RunsError(ValueError):
    """A row of the runs table that cannot be drawn; the message names the file and line."""


def read_runs(path: Path) -> list[dict[str, str | float | bool]]:
    """The table's rows ('#' lines are comments), figures as numbers in [0, 100]."""
    text = Path(path).read_text(encoding="utf-8").splitlines()
    numbered = [(n, line) for n, line in enumerate(text, 1) if line.strip() and not line.startswith("#")]
    if not numbered or tuple(next(csv.reader([numbered[0][1]]))) != FIELDS:
        raise RunsError(f"{path}: the first row must be the header {','.join(FIELDS)}")
    rows = []
    for n, cells in zip(
        (n for n, _ in numbered[1:]), csv.reader(line for _, line in numbered[1:]), strict=True
    ):
        if len(cells) != len(FIELDS):
            raise RunsError(f"{path}:{n}: {len(cells)} cells, expected {len(FIELDS)} ({','.join(FIELDS)})")
        row: dict[str, str | float | bool] = dict(zip(FIELDS, cells, strict=True))
        for key in ("belt", "cutouts"):
            try:
                value = float(cells[FIELDS.index(key)])
            except ValueError:
                raise RunsError(f"{path}:{n}: {key} {cells[FIELDS.index(key)]!r} is not a number") from None
            if not 0.0 <= value <= 100.0:
                raise RunsError(f"{path}:{n}: {key} {value} is not a percentage in [0, 100]")
            row[key] = value
        if row["shipped"] not in ("yes", "no"):
            raise RunsError(f"{path}:{n}: shipped {row['shipped']!r} must be yes or no")
        row["shipped"] = row["shipped"] == "yes"
        rows.append(row)
    if not rows:
        raise RunsError(f"{path}: no runs below the header")
    return rows


def plot_runs(rows: list[dict[str, str | float | bool]], out: Path) -> Path:
    """Draw the runs (PNG at ``out``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 6.0), dpi=120)
    ax.axvspan(GOAL_CUTOUTS, 100, ymin=GOAL_BELT / 100, color="tab:green", alpha=0.12, lw=0)
    ax.text(GOAL_CUTOUTS + 1, GOAL_BELT + 1, "the issue's goals", color="tab:green", fontsize=9)
    ax.axhline(MAJORITY_BELT, color="grey", ls=":", lw=1)
    ax.axvline(MAJORITY_CUTOUTS, color="grey", ls=":", lw=1)
    ax.text(1, MAJORITY_BELT + 1, f"belt: majority guess {MAJORITY_BELT}%", color="grey", fontsize=8)
    ax.text(
        MAJORITY_CUTOUTS + 0.5,
        2,
        f"cut-outs: majority guess {MAJORITY_CUTOUTS}%",
        color="grey",
        fontsize=8,
        rotation=90,
    )
    recipes: dict[str, list[dict[str, str | float | bool]]] = defaultdict(list)
    for row in rows:
        recipes[str(row["recipe"])].append(row)
    for runs in recipes.values():
        if len(runs) > 1:
            ax.plot(
                [r["cutouts"] for r in runs], [r["belt"] for r in runs], color="tab:blue", lw=1, alpha=0.6
            )
    for row in rows:
        shipped = bool(row["shipped"])
        ax.scatter(
            row["cutouts"],
            row["belt"],
            s=60 if shipped else 30,
            zorder=3,
            color="tab:red" if shipped else "tab:blue",
            marker="*" if shipped else "o",
        )
        ax.annotate(
            str(row["run"]),
            (float(row["cutouts"]), float(row["belt"])),
            xytext=(4, 3),
            textcoords="offset points",
            fontsize=9,
        )
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("cut-outs top-1 (%), 308 photos of 10 parts")
    ax.set_ylabel("belt known parts top-1 (%), 388 frames, network alone")
    ax.set_title(
        "Training runs on real photos (ONNX int8; lines join seeds of one recipe;\nstars: sets that shipped)",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=REPO / "docs" / "runs.csv")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "runs.png")
    args = parser.parse_args(argv)
    try:
        rows = read_runs(args.runs)
    except (OSError, RunsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(rows)} runs drawn into {plot_runs(rows, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
