"""The markdown section and drawings of ``trainer evaluate-real``'s figures
(:mod:`trainer.real_scores`, :mod:`trainer.real_enrolment`), and their place in a model set's REPORT.md."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.bench import machine_text
from edge.fileio import write_atomic
from trainer.real_enrolment import ENROLL_DEFAULT
from trainer.real_goals import goal_lines
from trainer.stats import paired_text

SECTION_START = "<!-- real-photos:start -->"
SECTION_END = "<!-- real-photos:end -->"


def plot_figures(report: dict[str, Any], path: Path) -> bool:
    """Draw :func:`trainer.report.plot_real` into ``path``; False (and no file) where no set has a
    figure to draw."""
    from trainer.report import plot_real, real_rows

    if not any(real_rows(f) for f in report["sets"].values()):
        return False  # nothing scored: no known part and no enrolment
    return _draw_png(path, lambda tmp: plot_real(report, tmp))


def plot_sweep(report: dict[str, Any], path: Path) -> bool:
    """Draw :func:`trainer.report.plot_rig_sweep` into ``path``; False where no set was enrolled."""
    from trainer.report import plot_rig_sweep

    return _draw_png(path, lambda tmp: plot_rig_sweep(report, tmp))


def _draw_png(path: Path, draw: Callable[[Path], Path | None]) -> bool:
    """Run ``draw`` into a temporary file beside ``path`` and move it there (no half PNG); False
    when ``draw`` drew nothing."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    if draw(tmp) is None:
        return False
    tmp.replace(path)
    return True


# ---- reports ---------------------------------------------------------------------------------------


def pct(x: float | None) -> str:
    """A share as a percentage with one decimal; "-" for none."""
    return "-" if x is None else f"{100 * x:.1f}%"


def render_markdown(
    report: dict[str, Any], command: str | None = None, plot: str | None = None, sweep: str | None = None
) -> str:
    """The report as markdown: one section per photo set, a table per artifact; ``plot``: the file
    name of :func:`trainer.report.plot_real`'s drawing beside the markdown, linked under the command;
    ``sweep``: the same for :func:`trainer.report.plot_rig_sweep`."""
    lines = [SECTION_START, "## Real photos", ""]
    lines += [
        "Single views of real camera photos, through the segmenter named and edge's engines as on the Pi.",
        "Part ids compared on the mould (a final letter after the digits dropped: 3040a ~ 3040b).",
        "",
    ]
    if command:
        lines += ["```sh", command, "```", ""]
    if report.get("machine"):
        lines += [machine_text(report["machine"]), ""]
    if plot:
        lines += [f"![real-photo top-1 and top-5 per set, artifact and part]({plot})", ""]
    if sweep:
        lines += [
            f"![enrolled parts named and known parts taken for them, per rig_threshold]({sweep})",
            "",
        ]
    lines += goal_lines(report.get("goals", []), report.get("goals_tried"))
    for name, figures in report["sets"].items():
        lines += _artifact_lines(name, figures)
        first = next(iter(figures["artifacts"].values()), {})
        if first.get("known"):
            lines += _per_part_lines(next(iter(figures["artifacts"])), first["known"])
            lines += _frame_edge_lines(next(iter(figures["artifacts"])), first["known"].get("frame_edge"))
        lines += _color_family_lines(figures["artifacts"])
        lines += _size_lines(figures["artifacts"])
        lines += _prior_lines(figures["artifacts"])
        lines += _enrolment_lines(first)
        lines.append("")
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


def _artifact_lines(name: str, figures: dict[str, Any]) -> list[str]:
    """A photo set's heading, its segmentation, and a row of figures per artifact."""
    seg = figures["segmenter"]
    lines = [f"### {name} (`{figures['folder']}`)", ""]
    lines.append(
        f"{figures['photos']} photos of {len(figures['parts'])} parts; segmenter `{json.dumps(seg)}`"
        f" ({figures['segmentation']['empty_masks']} empty masks, median mask "
        f"{pct(figures['segmentation']['median_mask_share'])} of the frame)"
        + (
            f"; background fitted from {figures['background_fit']['frames']} empty frames"
            if "background_fit" in figures
            else ""
        )
        + "."
    )
    lines.append("")
    lines.append(
        "| artifact | known-part photos | part top-1 | part top-5 | majority guess "
        "| top-1 mean over parts | enrolled k=1 | enrolled k=5 |"
    )
    # enrolled columns: the daemon's decision (the rig's own views first), one merged search's
    # nearest neighbour in brackets
    lines += ["|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, f in figures["artifacts"].items():
        known = f.get("known", {})
        lines.append(
            f"| {key} | {known.get('photos', 0)} | {pct(known.get('part_top1'))} "
            f"| {pct(known.get('part_top5'))} | {pct(known.get('majority_baseline'))} "
            f"| {pct(known.get('part_top1_mean_over_parts'))} "
            f"| {_enrolled_cell(f.get('enroll_1'))} | {_enrolled_cell(f.get('enroll_5'))} |"
        )
    intervals = ", ".join(
        f"{key} {pct(f['known']['part_top1_ci95'][0])}-{pct(f['known']['part_top1_ci95'][1])}"
        for key, f in figures["artifacts"].items()
        if "part_top1_ci95" in f.get("known", {})
    )
    if intervals:
        lines += ["", f"95% intervals (Wilson) of part top-1: {intervals}."]
    return lines


def _per_part_lines(key: str, known: dict[str, Any]) -> list[str]:
    """What the enrolled and mean-over-parts columns mean, and the first artifact's figures per part."""
    lines = [
        "",
        "Enrolled k: the first k photos of each unknown part enrolled as the rig's own views; "
        "top-1 of the daemon's decision on the part's other photos (the rig's views searched "
        "first, taken at a fused similarity >= rig_threshold), and in brackets the nearest "
        "neighbour of one search over the shipped index and the enrolled views together.",
        "",
        "Top-1 mean over parts: each part's top-1 averaged, so a part with many photos counts no "
        f"more than one with few; a constant guess scores 1 / {len(known['per_part'])} = "
        f"{pct(1 / len(known['per_part']))}.",
        "",
        f"Per part ({key}):",
        "",
        "| part | photos | top-1 | top-5 | most often predicted | predicted colours |",
        "|---|---:|---:|---:|---|---|",
    ]
    for part, e in sorted(known["per_part"].items()):
        predicted = ", ".join(f"{p} ({n})" for p, n in e["predicted"])
        colours = ", ".join(f"{c} ({n})" for c, n in e["colors"])
        lines.append(
            f"| {part} | {e['photos']} | {pct(e['top1'])} | {pct(e['top5'])} | {predicted} | {colours} |"
        )
    colours = ", ".join(f"{c} ({n})" for c, n in known.get("predicted_colors", []))
    if colours:
        lines += ["", f"Colours predicted most often (all known-part photos): {colours}."]
    return lines


def _frame_edge_lines(key: str, edge: dict[str, Any] | None) -> list[str]:
    """The known parts' top-1 where the crop leaves the frame (padded as on the Pi) against the rest."""
    if not edge:
        return []
    parts = "; ".join(
        f"{part} {pct(e['edge']['top1'])} of {e['edge']['photos']} against {pct(e['inside']['top1'])}"
        f" of {e['inside']['photos']}"
        for part, e in edge["per_part"].items()
    )
    return [
        "",
        f"Crops that leave the frame ({key}; the part at the frame's edge, its crop padded as on the Pi):"
        f" {edge['edge']['photos']} known-part photos, top-1 {pct(edge['edge']['top1'])} against"
        f" {pct(edge['inside']['top1'])} for the {edge['inside']['photos']} inside; per part {parts}.",
    ]


def _color_family_lines(artifacts: dict[str, dict[str, Any]]) -> list[str]:
    """The colour head on the photos labelled by eye (:mod:`trainer.color_families`): family top-1
    per artifact beside the commonest family's share, then the first artifact's figures per family."""
    scored = {key: f["color_family"] for key, f in artifacts.items() if "color_family" in f}
    if not scored:
        return []
    first_key, first = next(iter(scored.items()))
    per_artifact = ", ".join(f"{key} {pct(f['family_top1'])}" for key, f in scored.items())
    lines = [
        "",
        f"Colour on {first['photos']} photos labelled by eye with a colour family "
        f"({first['unlabelled']} left unlabelled, their colour unclear): family top-1 {per_artifact}; "
        f"mean over families ({first_key}) {pct(first['family_top1_mean_over_families'])}; always "
        f"guessing the commonest family ({first['majority_family']}) {pct(first['majority_baseline'])}.",
        "",
        f"Per colour family ({first_key}):",
        "",
        "| family | photos | top-1 | most often predicted |",
        "|---|---:|---:|---|",
    ]
    for family, e in first["per_family"].items():
        predicted = ", ".join(f"{p} ({n})" for p, n in e["predicted"])
        lines.append(f"| {family} | {e['photos']} | {pct(e['top1'])} | {predicted} |")
    return lines


def _enrolment_lines(first: dict[str, Any]) -> list[str]:
    """The first artifact's enrolment figures: unknown parts enrolled, every part, all but one."""
    lines: list[str] = []
    for k in ENROLL_DEFAULT:
        e = first.get(f"enroll_{k}")
        if e:
            lines += ["", _enrolled_text(k, e)]
        e = first.get(f"enroll_all_{k}")
        if e:
            lines += ["", _every_part_text(k, e)]
        e = first.get(f"partial_enroll_{k}")
        if e:
            lines += ["", _partial_text(e)]
    return lines


def _enrolled_text(k: int, e: dict[str, Any]) -> str:
    harmed = _per_part_pct(e["hybrid_top1_per_part"])
    taken = _per_part_pct(e.get("known_taken_for_enrolled", {}))
    return (
        f"Enrolled {k} photo(s) of {', '.join(e['parts'])}: {e['queries']} queries; "
        f"decision top-1 {pct(e.get('decision_top1'))} at rig_threshold "
        f"{e.get('rig_threshold', '-')} ({pct(e.get('merged_decision_top1'))} from one merged "
        f"search; its nearest neighbour {pct(e['vector_top1'])}); decisions top-1 per part: "
        f"{harmed}"
        + (f"; known parts' photos named as an enrolled part: {taken}" if taken else "")
        + "."
        + _with_priors_text(e)
    )


def _every_part_text(k: int, e: dict[str, Any]) -> str:
    text = (
        f"Every part enrolled from its first {k} photo(s) (a rig taught on its own stage): "
        f"{e['queries']} queries; decision top-1 {pct(e.get('decision_top1'))} "
        f"({pct(e.get('merged_decision_top1'))} from one merged search; its nearest neighbour "
        f"{pct(e['vector_top1'])}); decisions top-1 per part: {_per_part_pct(e['hybrid_top1_per_part'])}."
    )
    fit = e.get("fitted")
    if fit:
        text += (
            f" With rig_threshold fitted to the enrolled photos alone (`edge enrolled "
            f"--fit-threshold`: {fit['threshold']}), decision top-1 {pct(fit['decision_top1'])}"
            + (f" (per part: {_per_part_pct(fit['top1_per_part'])})" if fit.get("top1_per_part") else "")
            + "."
        )
    return text + _with_priors_text(e)


def _partial_text(e: dict[str, Any]) -> str:
    """The paragraph of :func:`partial_enrolment_scores`' figures."""
    thresholds = list(e["fitted_thresholds"].values())
    change = e["fitted_vs_default"]
    per_part = ", ".join(f"{p} {pct(d)} -> {pct(f)}" for p, (d, f) in e["left_out_taken_per_part"].items())
    return (
        f"All parts but one enrolled from their first {e['enrolled_per_part']} photo(s), each part "
        f"left out in turn ({e['subsets']} subsets; a rig taught all but one of its parts): "
        f"{e['decisions']} decisions (the classifier's answers weighed by the priors where given); "
        f"top-1 {pct(e['top1_default'])} at rig_threshold {e['rig_threshold']}, "
        f"**{pct(e['top1_fitted'])}** at the threshold fitted to each subset's enrolled photos "
        f"({min(thresholds):.3f}-{max(thresholds):.3f}; "
        f"{change['gained']} photos gained, {change['lost']} lost against the default; McNemar p = "
        f"{change['p']:.2g}); "
        f"the left-out part's photos taken for an enrolled part {pct(e['left_out_taken_default'])} "
        f"-> {pct(e['left_out_taken_fitted'])} (per part: {per_part})."
    )


def _size_lines(artifacts: dict[str, Any]) -> list[str]:
    """The size prior's figures (``--scale-from``), one line per artifact."""
    out: list[str] = []
    for key, f in artifacts.items():
        size = f.get("size")
        if not size:
            continue
        before, after = size["without"], size["with"]
        paired = size.get("paired", {})
        per_part = ", ".join(
            f"{p} {pct(before['per_part'][p]['top1'])} -> {pct(e['top1'])}"
            for p, e in sorted(after["per_part"].items())
        )
        out += [
            "",
            f"Size prior ({key}; `edge/size.py`): scale {size['px_per_mm']:g} px/mm fitted from the first "
            f"{size['reference_photos']} photos of {size['reference']} (as `edge calibrate scale` does; "
            f"left out), sigma {size['sigma']:g}; on the other {size['photos']} known-part photos part "
            f"top-1 {pct(before['part_top1'])} -> **{pct(after['part_top1'])}**"
            f"{paired_text(paired.get('with'))}, top-5 "
            f"{pct(before['part_top5'])} -> {pct(after['part_top5'])}; per part {per_part}.",
        ]
        both = size.get("with_prior")
        if both:
            out[-1] += (
                f" With the part prior as well: top-1 **{pct(both['part_top1'])}**"
                f"{paired_text(paired.get('with_prior'), against=' against the size prior alone')}, top-5 "
                f"{pct(both['part_top5'])}; per part {_per_part(both)}."
            )
    return out


def _prior_lines(artifacts: dict[str, Any]) -> list[str]:
    """The part prior's figures (``--part-prior``), one line per artifact."""
    out: list[str] = []
    for key, f in artifacts.items():
        prior = f.get("prior")
        if not prior:
            continue
        before, after = prior["without"], prior["with"]
        out += [
            "",
            f"Part prior ({key}; `edge/prior.py`, {prior['source']}): on the {prior['photos']} known-part "
            f"photos part top-1 {pct(before['part_top1'])} -> **{pct(after['part_top1'])}**"
            f"{paired_text(prior.get('paired', {}).get('with'))}, top-5 "
            f"{pct(before['part_top5'])} -> {pct(after['part_top5'])}; per part {_per_part(after)}.",
        ]
    return out


def _with_priors_text(e: dict[str, Any]) -> str:
    """The enrolment decisions with the classifier's answers weighed by the size and part priors."""
    w = e.get("with_priors")
    if not w:
        return ""
    text = (
        f" With the priors (size and/or part, as above) weighing the classifier's answers: decision "
        f"top-1 {pct(w['decision_top1'])} (per part: {_per_part_pct(w['top1_per_part'])})"
    )
    if w.get("fitted_decision_top1") is not None:
        text += (
            f"; at the fitted threshold {pct(w['fitted_decision_top1'])} "
            f"(per part: {_per_part_pct(w['fitted_top1_per_part'])})"
        )
    return text + "."


def _per_part_pct(top1: dict[str, float]) -> str:
    """``part share, ...`` of a per-part figure."""
    return ", ".join(f"{p} {pct(v)}" for p, v in top1.items())


def _per_part(figures: dict[str, Any]) -> str:
    """The top-1 per part of :func:`classifier_scores`' figures, by part."""
    return _per_part_pct({p: e["top1"] for p, e in sorted(figures["per_part"].items())})


def _enrolled_cell(e: dict[str, Any] | None) -> str:
    if not e:
        return "-"
    return f"{pct(e.get('decision_top1'))} ({pct(e['vector_top1'])})"


def update_report(path: Path, section: str) -> None:
    """Put ``section`` into the markdown file at ``path``, replacing an earlier real-photos section."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if SECTION_START in text and SECTION_END in text:
        head, rest = text.split(SECTION_START, 1)
        tail = rest.split(SECTION_END, 1)[1]
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    write_atomic(path, text)
