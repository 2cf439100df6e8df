"""Per-photo answers of ``trainer evaluate-real`` and ``trainer compare-real``: two model sets on the
same photos, paired.

``trainer evaluate-real`` writes ``predictions.csv`` beside ``real.json``: one row per photo of a
known part and artifact, with the network's five best parts (the mould compared as the figures
compare it), whether the first is right, and the first with the part prior where one was given;
its colour answer (a colour id) and, for a photo labelled with a colour family (``--colors``),
whether the family is right; a labelled photo of a part the model does not know gets a row with
its colour columns alone. Two such files (two model sets, or one set before and after a change)
are compared photo by photo: the photos one gets right and the other wrong, and McNemar's exact
test on them. That says whether a difference between two sets is more than the photos' luck; it
cannot say whether it is more than a training seed's (``docs/real_transfer.md``: runs of one
recipe differ by several points).
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataFileError
from edge.fileio import write_atomic
from edge.manifest import Manifest
from trainer.color_families import guessed_families
from trainer.photo_set import Photo, mould
from trainer.stats import paired_change

PREDICTIONS = "predictions.csv"
COLUMNS = (
    "set",
    "artifact",
    "photo",
    "part",
    "top5",
    "hit1",
    "prior_top1",
    "prior_hit1",
    "color",
    "color_hit",
)
#: The columns every predictions file has (the colour columns came later: empty where absent).
REQUIRED = COLUMNS[:8]
#: The figures a comparison pairs: the network alone, with the part prior, and the colour family,
#: each on the photos both files score it on.
FIGURES = {"network": "hit1", "with the part prior": "prior_hit1", "colour family": "color_hit"}


def photo_rows(
    set_name: str,
    artifact: str,
    photos: Sequence[Photo],
    folder: Path | None,
    logits: np.ndarray,
    manifest: Manifest,
    prior_log_probs: np.ndarray | None,
) -> list[dict[str, str]]:
    """One row per photo (of a known part): its answers from ``logits`` and, where given, from the
    part prior's decisions (:func:`trainer.real_scores.decided_log_probs`); the photo's path
    relative to ``folder`` (the photo set's) where given."""
    names = list(manifest.parts)
    top5 = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    decided = None if prior_log_probs is None else np.argmax(prior_log_probs, axis=1)
    rows = []
    for i, photo in enumerate(photos):
        truth = mould(photo.part)
        guesses = [names[j] for j in top5[i]]
        row = {
            "set": set_name,
            "artifact": artifact,
            "photo": (photo.path.relative_to(folder) if folder else photo.path).as_posix(),
            "part": photo.part,
            "top5": " ".join(guesses),
            "hit1": str(int(mould(guesses[0]) == truth)),
            "prior_top1": "",
            "prior_hit1": "",
        }
        if decided is not None:
            row["prior_top1"] = names[decided[i]]
            row["prior_hit1"] = str(int(mould(names[decided[i]]) == truth))
        rows.append(row)
    return rows


def with_color_columns(
    rows: Sequence[dict[str, str]],
    set_name: str,
    artifact: str,
    photos: Sequence[Photo],
    relative: Sequence[str],
    colors: np.ndarray,
    color_ids: Sequence[int],
    labels: dict[str, str],
) -> list[dict[str, str]]:
    """``rows`` (:func:`photo_rows`, paths as ``relative``) with each photo's colour answer and, where
    ``labels`` names the photo, whether its family is right; a labelled photo of a part the model
    does not know gets a row of its own, its part columns empty."""
    best = np.argmax(colors, axis=1)
    families = guessed_families(colors, color_ids)
    answers = {}
    for rel, j, family in zip(relative, best, families, strict=True):
        truth = labels.get(rel)
        answers[rel] = {
            "color": str(color_ids[j]),
            "color_hit": "" if truth is None else str(int(family == truth)),
        }
    out = [{**row, **answers[row["photo"]]} for row in rows]
    scored = {row["photo"] for row in rows}
    for photo, rel in zip(photos, relative, strict=True):
        if rel not in scored and rel in labels:
            blank = dict.fromkeys(COLUMNS, "")
            out.append(
                {
                    **blank,
                    "set": set_name,
                    "artifact": artifact,
                    "photo": rel,
                    "part": photo.part,
                    **answers[rel],
                }
            )
    return out


def write_predictions(path: Path, rows: Sequence[dict[str, str]]) -> None:
    """``rows`` as a CSV file (written whole or not at all)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue())


def read_predictions(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    """A ``predictions.csv`` (or the folder holding one) by (set, artifact, photo)."""
    path = Path(path)
    if path.is_dir():
        path = path / PREDICTIONS
    if not path.is_file():
        raise DataFileError(
            f"{str(path)!r} does not exist; run trainer evaluate-real --out FOLDER (it writes {PREDICTIONS})"
        )
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not set(REQUIRED) <= set(reader.fieldnames):
            raise DataFileError(f"{str(path)!r} is not a {PREDICTIONS} of trainer evaluate-real (columns)")
        return {(r["set"], r["artifact"], r["photo"]): {c: r.get(c) or "" for c in COLUMNS} for r in reader}


def compare_predictions(
    before: dict[tuple[str, str, str], dict[str, str]], after: dict[tuple[str, str, str], dict[str, str]]
) -> list[dict[str, Any]]:
    """Per set, artifact and figure: both top-1s on the photos the two share, and the paired change."""
    shared = sorted(before.keys() & after.keys())
    if not shared:
        raise DataFileError("the two predictions files share no photo (set, artifact and file name)")
    out = []
    for (set_name, artifact), group in groupby(shared, key=lambda k: k[:2]):
        group_keys = list(group)
        for figure, column in FIGURES.items():
            keys = [k for k in group_keys if before[k][column] != "" and after[k][column] != ""]
            if not keys:
                continue
            a = [before[k][column] == "1" for k in keys]
            b = [after[k][column] == "1" for k in keys]
            out.append(
                {
                    "set": set_name,
                    "artifact": artifact,
                    "figure": figure,
                    "photos": len(keys),
                    "before_top1": round(float(np.mean(a)), 4),
                    "after_top1": round(float(np.mean(b)), 4),
                    **paired_change(a, b),
                }
            )
    return out


def comparison_markdown(rows: Sequence[dict[str, Any]], before: str, after: str) -> str:
    """The comparison as a Markdown table."""
    lines = [
        f"Before: `{before}`; after: `{after}`. The photos both files score (known parts; colour: the",
        "photos labelled with a colour family); McNemar's exact test on the photos that changed.",
        "",
        "| set | artifact | figure | photos | before | after | gained | lost | McNemar p |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['artifact']} | {r['figure']} | {r['photos']} | {r['before_top1']:.1%} | "
            f"{r['after_top1']:.1%} | {r['gained']} | {r['lost']} | {r['p']:.2g} |"
        )
    return "\n".join(lines) + "\n"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trainer compare-real``."""
    p = sub.add_parser(
        "compare-real",
        help="two evaluate-real results on the same photos, paired (gained, lost, McNemar p)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("before", type=Path, help="an evaluate-real --out folder (or its predictions.csv)")
    p.add_argument("after", type=Path, help="the other one")
    p.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run ``trainer compare-real``."""
    rows = compare_predictions(read_predictions(args.before), read_predictions(args.after))
    text = comparison_markdown(rows, str(args.before), str(args.after))
    print(text, end="")
    if args.out:
        write_atomic(args.out, text)
    return 0
