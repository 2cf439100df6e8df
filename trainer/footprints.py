"""``trainer footprints``: each part's footprints on the stage, from the LDraw library, into a model
set's manifest, for the size prior (:mod:`edge.size`).

For each part of the manifest: its stable resting poses (:func:`studio.poses.stable_poses`, with
the chance a dropped part lands in each), the part turned into each pose, and the smallest rotated
rectangle around its outline seen from straight above (every vertex projected onto the stage),
in millimetres (1 LDU = 0.4 mm). Only ``manifest.json`` is rewritten; parts the library cannot
build are listed and get no footprint (the prior then neither favours nor rules them out).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from studio.errors import StudioError
from studio.ldraw import LDrawLibrary
from studio.poses import placement, stable_poses
from trainer.manifest_tables import add_ldraw_parser, write_part_table

#: Millimetres per LDraw unit.
MM_PER_LDU = 0.4


def part_footprints(library: LDrawLibrary, part: str) -> list[tuple[float, float, float]]:
    """[long mm, short mm, probability] of each stable pose's top-down outline."""
    mesh = library.part_mesh(part)
    rows = []
    for pose in stable_poses(mesh):
        points = mesh.transformed(placement(pose)).triangles.reshape(-1, 3)[:, [0, 2]]
        (_, _), (a, b), _ = cv2.minAreaRect(np.ascontiguousarray(points, np.float32))
        rows.append(
            (round(max(a, b) * MM_PER_LDU, 2), round(min(a, b) * MM_PER_LDU, 2), round(pose.probability, 4))
        )
    return [r for r in rows if r[1] > 0 and r[2] > 0]


def footprint_table(
    ldraw: str | Path, parts: Iterable[str], progress: bool = True
) -> tuple[dict[str, list[tuple[float, float, float]]], dict[str, str]]:
    """(part -> footprints for the parts built, part -> why for the others)."""
    library = LDrawLibrary(ldraw)
    table: dict[str, list[tuple[float, float, float]]] = {}
    failed: dict[str, str] = {}
    for part in tqdm(list(parts), desc="footprints", unit="part", disable=not progress):
        try:
            rows = part_footprints(library, part)
        except (StudioError, ValueError) as exc:
            failed[part] = str(exc)
            continue
        if rows:
            table[part] = rows
        else:
            failed[part] = "no stable pose with a non-empty outline"
    return table, failed


def write_footprints(
    model_set: str | Path, ldraw: str | Path, progress: bool = True
) -> tuple[dict[str, list[tuple[float, float, float]]], dict[str, str]]:
    """Write the footprints of the model set's parts into its manifest; return (table, failed)."""
    return write_part_table(
        model_set, ldraw, "footprints", lambda root, parts: footprint_table(root, parts, progress)
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    add_ldraw_parser(
        sub,
        "footprints",
        "write each part's footprints on the stage (from the LDraw files) into a model set's manifest",
        __doc__,
        main,
    )


def main(args: argparse.Namespace) -> int:
    table, failed = write_footprints(args.model_set, args.ldraw)
    poses = sum(len(v) for v in table.values())
    print(
        f"{len(table)} part(s) with footprints ({poses} poses) written to {args.model_set / 'manifest.json'}"
    )
    for part, why in list(failed.items())[:10]:
        print(f"  no footprint for {part}: {why}")
    if len(failed) > 10:
        print(f"  ... and {len(failed) - 10} more")
    return 0
