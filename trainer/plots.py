"""Training curves: loss and top-1 (part, colour) per epoch, training and validation, as one PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.errors import MissingDependencyError

#: (title, y label, [(history key, legend label), ...]) of each panel.
PANELS = (
    ("loss", "loss", [("train_loss", "train"), ("val_loss", "val")]),
    ("part top-1", "accuracy", [("train_part_top1", "train"), ("val_part_top1", "val")]),
    ("colour top-1", "accuracy", [("train_color_top1", "train"), ("val_color_top1", "val")]),
)


def plot_history(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Draw the curves of ``history`` (``trainer.train`` records, one per epoch) into a PNG at ``path``.

    Missing or None values (no validation images, no colour labels) are left out of their curve.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on a training box
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("matplotlib", "train", "training curves") from None
    path = Path(path)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4), constrained_layout=True)
    try:
        for ax, (title, ylabel, series) in zip(axes, PANELS, strict=True):
            drawn = False
            for key, label in series:
                points = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, marker="o", markersize=3, label=label)
                    drawn = True
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if drawn:
                ax.legend()
            else:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            if ylabel == "accuracy":
                ax.set_ylim(0, 1.02)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=100)
        tmp.replace(path)
    finally:
        plt.close(fig)
    return path
