"""``trainer popularity``: each part's rank in a parts list ordered most common first (the list the
model was trained from, e.g. ``lists/b200c_popular.txt``) into a model set's manifest, for the part
prior (:mod:`edge.prior`, ``recognition.part_prior: popularity``).

Only ``manifest.json`` is rewritten (atomically); no model file changes. The rank is the part's
line in the whole list (blank lines and ``#`` comments skipped, a repeated part keeps its first
line), so a model trained on the first 200 parts of a longer list keeps those parts' ranks. Parts
of the model the list does not name get no rank (the prior gives them the rarest listed part's
weight) and are reported.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from trainer.manifest_tables import write_table
from trainer.render import read_parts_list


def write_popularity(model_set: str | Path, parts_list: str | Path) -> tuple[dict[str, int], list[str]]:
    """Write the ranks of the model set's parts into its manifest; return (ranks, parts unranked)."""
    order = read_parts_list(Path(parts_list))
    rank = {part: i + 1 for i, part in enumerate(order)}

    def ranks(parts: Sequence[str]) -> tuple[dict[str, int], list[str]]:
        return {p: rank[p] for p in parts if p in rank}, [p for p in parts if p not in rank]

    return write_table(model_set, "popularity", ranks)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "popularity",
        help="write each part's rank in a most-common-first parts list into a model set's manifest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model-set", required=True, type=Path, help="model set folder (its manifest.json)")
    p.add_argument(
        "--parts", required=True, type=Path, help="parts list, one part per line, most common first"
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    ranks, missing = write_popularity(args.model_set, args.parts)
    print(f"{len(ranks)} part rank(s) written to {args.model_set / 'manifest.json'}")
    if missing:
        shown = ", ".join(missing[:10]) + (f" ... and {len(missing) - 10} more" if len(missing) > 10 else "")
        print(f"  not in {args.parts}: {shown} (weighted as the rarest listed part)")
    return 0
