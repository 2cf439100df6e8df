"""The evaluation report of ``trainer evaluate``: ``report.md``, ``report.json`` and two PNG plots.

- ``artifacts.png``: one group of bars per artifact (part top-1 single view and fused, colour top-1,
  vector-search top-1, unseen-parts top-1).
- ``confusion.png``: the confusion counts among the most confused parts of the first artifact.

:func:`plot_real` draws ``trainer evaluate-real``'s figures (``real.png``) in the same style.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from edge.bench import machine_text
from edge.colors import get_color
from edge.errors import MissingDependencyError, UnknownColorError
from edge.manifest import Manifest
from trainer.real_goals import enrolled_k
from trainer.stats import paired_text

#: (figure key, column / bar label) shown for each artifact.
COLUMNS = (
    ("part_top1", "part top-1"),
    ("part_top5", "part top-5"),
    ("fused_part_top1", "fused top-1"),
    ("fused_part_top5", "fused top-5"),
    ("color_top1", "colour top-1"),
    ("fused_color_top1", "fused colour"),
    ("vector_top1", "vector top-1"),
    ("vector_fused_top1", "vector fused"),
    ("unseen_top1", "unseen top-1"),
    ("unseen_fused_top1", "unseen fused"),
)
BARS = ("part_top1", "fused_part_top1", "color_top1", "vector_top1", "unseen_top1")


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on a training box
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("matplotlib", "train", "evaluation plots") from None
    return plt


def _fmt(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def plot_artifacts(report: dict[str, Any], path: Path) -> Path:
    """Grouped bar chart of the headline figures of every artifact."""
    plt = _pyplot()
    labels = dict(COLUMNS)
    keys = list(report["artifacts"])
    shown = [k for k in BARS if any(k in f for f in report["artifacts"].values())]
    fig, ax = plt.subplots(
        figsize=(max(6.0, 1.6 * len(keys) * max(1, len(shown)) / 3), 4), constrained_layout=True
    )
    try:
        width = 0.8 / max(1, len(shown))
        for j, key in enumerate(shown):
            xs = [i + (j - (len(shown) - 1) / 2) * width for i in range(len(keys))]
            ys = [report["artifacts"][a].get(key, math.nan) for a in keys]
            bars = ax.bar(xs, ys, width, label=labels[key])
            ax.bar_label(bars, labels=[_fmt(y) for y in ys], fontsize=7, rotation=90, padding=2)
        ax.set_xticks(range(len(keys)), keys, rotation=15)
        ax.set_ylim(0, 1.15)
        ax.set_ylabel("top-1 accuracy")
        ax.set_title(f"{report['architecture']}: {report['split']} split, {report['test_images']} images")
        ax.legend(fontsize=8, ncols=min(5, max(1, len(shown))), loc="upper center")
        ax.grid(axis="y", alpha=0.3)
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path


def plot_confusion(figures: dict[str, Any], title: str, path: Path) -> Path:
    """Heat map of ``figures['confusion']`` (true part rows, predicted columns, plus 'other')."""
    plt = _pyplot()
    conf = figures.get("confusion") or {"parts": [], "matrix": [], "other": []}
    parts = conf["parts"]
    fig, ax = plt.subplots(figsize=(2 + 0.55 * max(3, len(parts)), 1.5 + 0.5 * max(3, len(parts))))
    try:
        if parts:
            rows = [[*row, other] for row, other in zip(conf["matrix"], conf["other"], strict=True)]
            image = ax.imshow(rows, cmap="Blues")
            for i, row in enumerate(rows):
                for j, n in enumerate(row):
                    ax.text(j, i, str(n), ha="center", va="center", fontsize=8)
            ax.set_xticks(range(len(parts) + 1), [*parts, "other"], rotation=45, ha="right", fontsize=8)
            ax.set_yticks(range(len(parts)), parts, fontsize=8)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true part")
            fig.colorbar(image, ax=ax, shrink=0.8)
        else:
            ax.text(0.5, 0.5, "no confusions", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path


def plot_real(report: dict[str, Any], path: Path) -> Path:
    """Bars of ``trainer evaluate-real``'s figures: one panel per photo set.

    Rows: every artifact on all known-part photos (with the majority guess marked), then the first
    artifact's decision with the size prior and the part prior where measured, each part and each
    enrolment figure. Light bar: top-5; dark bar over it: top-1.
    The dashed line is a constant guess's top-1 mean over parts (1 / number of known parts); green
    dots mark the report's goals (``--goal``) on the rows they hold to (:func:`goal_marks`).
    """
    plt = _pyplot()
    panels = [(name, f, rows) for name, f in report["sets"].items() if (rows := real_rows(f))]
    if not panels:
        raise ValueError("the real-photo report has no figures to plot (no known part, no enrolment)")
    heights = [len(rows) for _, _, rows in panels]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(7.5, 1.2 + 0.28 * sum(heights) + 0.6 * len(panels)),
        height_ratios=heights,
        squeeze=False,
        constrained_layout=True,
    )
    try:
        for ax, (name, figures, rows) in zip(axes[:, 0], panels, strict=True):
            ys = range(len(rows))
            top5 = [r[2] if r[2] is not None else math.nan for r in rows]
            top1 = [r[1] if r[1] is not None else math.nan for r in rows]
            ax.barh(ys, top5, color="#b8d3ea", label="top-5")
            bars = ax.barh(ys, top1, color="#2c6fa8", label="top-1")
            ax.bar_label(bars, labels=[f"{100 * v:.1f}%" if v == v else "" for v in top1], fontsize=7)
            for y, (_, _, _, majority) in enumerate(rows):
                if majority is not None:
                    ax.plot([majority] * 2, [y - 0.4, y + 0.4], color="#c0392b", linewidth=2)
            goals = [g for g in report.get("goals", []) if g["set"] == name]
            for i, (y, share) in enumerate(goal_marks(rows, goals)):
                ax.plot(
                    [share] * 2, [y - 0.45, y + 0.45], color="#2ecc71", linewidth=3, linestyle=":",
                    zorder=3, label="goal" if i == 0 else None,
                )  # fmt: skip
            first = next(iter(figures["artifacts"].values()))
            per_part = first.get("known", {}).get("per_part", {})
            if per_part:
                ax.axvline(1 / len(per_part), color="grey", linestyle="--", linewidth=1)
            ax.set_yticks(list(ys), [r[0] for r in rows], fontsize=8)
            ax.invert_yaxis()
            ax.set_xlim(0, 1.08)
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(
                f"{name}: {figures['photos']} photos, segmenter {figures['segmenter'].get('type')}; "
                f"per part: {next(iter(figures['artifacts']))}",
                fontsize=10,
            )
        axes[-1, 0].set_xlabel(
            "share named right\n(red: majority guess; dashed: constant guess per part; green dots: goal)"
        )
        for ax in axes[:, 0]:
            ax.legend(fontsize=8, loc="lower right")
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


def goal_marks(
    rows: list[tuple[str, float | None, float | None, float | None]], goals: list[dict[str, Any]]
) -> list[tuple[int, float]]:
    """``(row, share)`` for each goal of one set (:func:`trainer.real_goals.measure_goals`) on the
    :func:`real_rows` it holds to: top-1/top-5 on each artifact's "all" row, ``enrolledK`` on the
    enrolled parts' decision row; goals with no row here (colour) get no mark."""
    marks = []
    for goal in goals:
        figure, k = goal["figure"], enrolled_k(goal["figure"])
        for y, (label, *_) in enumerate(rows):
            if figure in ("top1", "top5"):
                hit = label.endswith(": all")
            elif k is not None:
                hit = label.endswith(f" enrolled k={k} (decision)") and not label.startswith("every part")
            else:
                hit = False
            if hit:
                marks.append((y, float(goal["goal"])))
    return marks


def real_rows(figures: dict[str, Any]) -> list[tuple[str, float | None, float | None, float | None]]:
    """``(label, top-1, top-5, majority guess)`` rows of one photo set's panel."""
    rows: list[tuple[str, float | None, float | None, float | None]] = []
    if not figures["artifacts"]:
        return rows
    for key, f in figures["artifacts"].items():
        known = f.get("known")
        if known:
            rows.append(
                (f"{key}: all", known["part_top1"], known["part_top5"], known.get("majority_baseline"))
            )
    key, first = next(iter(figures["artifacts"].items()))
    # the first artifact's decision with the size prior and/or the part prior (their own photos)
    size, prior = first.get("size"), first.get("prior")
    decided = [
        (size, "with", "size prior"),
        (size, "with_prior", "size + part prior"),
        (prior, "with", "part prior"),
    ]
    for entry, variant, what in decided:
        if entry and entry.get(variant):
            e = entry[variant]
            rows.append((f"{key}: {what} ({entry['photos']})", e["part_top1"], e["part_top5"], None))
    for part, e in sorted(first.get("known", {}).get("per_part", {}).items()):
        rows.append((f"{part} ({e['photos']})", e["top1"], e["top5"], None))
    for name, e in first.items():
        if name.startswith("partial_enroll_"):
            what = f"all but one enrolled k={e['enrolled_per_part']}"
            rows.append((f"{what} (at {e['rig_threshold']})", e["top1_default"], None, None))
            rows.append((f"{what} (fitted)", e["top1_fitted"], None, None))
        if name.startswith("enroll_"):
            every = name.startswith("enroll_all_")
            k = name.rsplit("_", 1)[1]
            what = "every part" if every else ", ".join(e["parts"])
            if e.get("decision_top1") is not None:
                rows.append((f"{what} enrolled k={k} (decision)", e["decision_top1"], None, None))
            rows.append((f"{what} enrolled k={k} (nearest, merged)", e["vector_top1"], None, None))
    return rows


def plot_rig_sweep(report: dict[str, Any], path: Path) -> Path | None:
    """What ``rig_threshold`` trades, per photo set of ``trainer evaluate-real``: the enrolled parts'
    decision top-1 (solid) and the share of known parts' photos taken for an enrolled part (dashed)
    at each threshold, one colour per enrolment; the dotted line is the threshold used. None (and no
    file) when no set has a sweep."""
    panels = [
        (name, [(key, e) for key, e in first.items() if key.startswith("enroll_") and e.get("rig_sweep")])
        for name, f in report["sets"].items()
        if (first := next(iter(f["artifacts"].values()), {}))
    ]
    panels = [(name, runs) for name, runs in panels if runs]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels), 4.0), squeeze=False, constrained_layout=True
    )
    try:
        for ax, (name, runs) in zip(axes[0], panels, strict=True):
            for i, (key, e) in enumerate(runs):
                color = f"C{i}"
                every = key.startswith("enroll_all_")
                what = "every part" if every else ", ".join(e["parts"])
                label = f"{what}, k={e['enrolled_per_part']}"
                xs = [r["threshold"] for r in e["rig_sweep"]]
                ax.plot(xs, [r["enrolled_top1"] for r in e["rig_sweep"]], color=color, label=label)
                taken = [r["known_taken"] for r in e["rig_sweep"]]
                if any(t is not None for t in taken):
                    ax.plot(xs, [math.nan if t is None else t for t in taken], color=color, linestyle="--")
            ax.axvline(runs[0][1]["rig_threshold"], color="grey", linestyle=":", linewidth=1)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("rig_threshold")
            ax.set_ylabel("share of photos")
            ax.grid(alpha=0.3)
            ax.set_title(f"{name}: enrolled parts named (solid), known parts taken (dashed)", fontsize=9)
            ax.legend(fontsize=7, loc="best")
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


def markdown(report: dict[str, Any], manifest: Manifest) -> str:
    """The report as markdown: protocol, a table of figures per artifact, the confused pairs."""
    u = report["unseen"]
    lines = [
        f"# Evaluation of {manifest.architecture} "
        f"({len(manifest.parts)} parts, {len(manifest.colors)} colours)",
        "",
        f"- model set: `{report['model_set']}`",
        "- masks: "
        + (
            "each image's own (a render's exact mask)"
            if report.get("masks", "own") == "own"
            else f"what the `{report['masks']['segmenter'].get('type')}` segmenter of "
            f"`{report['masks']['file']}` finds, as the rig crops"
        ),
        f"- split: **{report['split']}**: {report['test_images']} images, "
        f"{report['test_captures']} captures, "
        f"{report['test_parts']} parts; fused figures use up to {report['views']} views per capture",
        f"- vector search: gallery of {report['gallery_images']} images from "
        + ", ".join(
            ([] if report["split"] == "all" else ["the other splits"])
            + [f"`{p}`" for p in report.get("gallery_data", [])]
        )
        + " (no capture shared with the queries)",
        f"- unseen parts: {len(u['parts'])} ({', '.join(u['parts']) or 'none'}), enrolled from "
        f"{u['enrolled_captures_per_part']} capture(s) each ({u['enrolled_images']} images), "
        f"{u['query_images']} query images"
        + (
            " — **these parts were seen in training: the figure is optimistic**"
            if u["seen_in_training"]
            else ""
        ),
        f"- built {report['build']['date']} at commit {report['build'].get('git_commit') or 'unknown'}",
        *([f"- {machine_text(report['machine'])}"] if report.get("machine") else []),
        "",
        "## Figures per artifact",
        "",
        "| artifact | file | MB | " + " | ".join(label for _, label in COLUMNS) + " |",
        "|---|---|---:|" + "---:|" * len(COLUMNS),
    ]
    for key, f in report["artifacts"].items():
        cells = [_fmt(f.get(k)) for k, _ in COLUMNS]
        lines.append(f"| {key} | {f['file']} | {f['bytes'] / 1e6:.2f} | " + " | ".join(cells) + " |")
    first = next(iter(report["artifacts"]))
    for key, f in report["artifacts"].items():
        if f.get("prior_part_top1") is not None:
            lines += [
                "",
                f"Part prior ({key}; `edge/prior.py`, {f['prior_source']}): part top-1 "
                f"{_fmt(f['part_top1'])} -> {_fmt(f['prior_part_top1'])}"
                f"{paired_text(f.get('prior_paired'), 'images')}, fused top-1 "
                f"{_fmt(f.get('fused_part_top1'))} -> {_fmt(f.get('prior_fused_part_top1'))} (every part "
                "is equally common in this test, so the prior is expected to cost here).",
            ]
    lines += [
        "",
        "![figures per artifact](artifacts.png)",
        "",
        f"## Most confused parts ({first}, single view)",
        "",
    ]
    top = report["artifacts"][first].get("top_confused", [])
    if top:
        lines += ["| true | predicted as | images | share of true |", "|---|---|---:|---:|"]
        lines += [
            f"| {p['true']} | {p['predicted']} | {p['count']} | {p['share_of_true']:.3f} |" for p in top
        ]
    else:
        lines.append("No part was confused.")
    lines += ["", "![confusion of the most confused parts](confusion.png)", ""]
    colors = report["artifacts"][first].get("top_confused_colors")
    if colors is not None:
        lines += [f"## Most confused colours ({first}, single view)", ""]
        if colors:
            lines += ["| true | predicted as | images | share of true |", "|---|---|---:|---:|"]
            for c in colors:
                true, predicted = _color(c["true"]), _color(c["predicted"])
                lines.append(f"| {true} | {predicted} | {c['count']} | {c['share_of_true']:.3f} |")
        else:
            lines.append("No colour was confused.")
        lines.append("")
    return "\n".join(lines)


def _color(color_id: int) -> str:
    """``"Red (4)"``: the colour table's name and the id, or the bare id when the table lacks it."""
    try:
        return f"{get_color(color_id).name} ({color_id})"
    except UnknownColorError:
        return str(color_id)


def write_report(out: Path, report: dict[str, Any], manifest: Manifest) -> dict[str, Path]:
    """Write ``report.md``, ``report.json``, ``artifacts.png`` and ``confusion.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "report.json": out / "report.json",
        "report.md": out / "report.md",
        "artifacts.png": out / "artifacts.png",
        "confusion.png": out / "confusion.png",
    }
    plot_artifacts(report, paths["artifacts.png"])
    first = next(iter(report["artifacts"]))
    plot_confusion(report["artifacts"][first], f"{first}: most confused parts", paths["confusion.png"])
    _write_text(paths["report.json"], json.dumps(report, indent=1, default=str) + "\n")
    _write_text(paths["report.md"], markdown(report, manifest))
    return paths
