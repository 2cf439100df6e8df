"""``trainer footprints``: each part's footprints on the stage, from the LDraw library, into a model
set's manifest, for the size prior (:mod:`edge.size`).

For each part of the manifest: its stable resting poses (:func:`studio.poses.stable_poses`, with
the chance a dropped part lands in each), the part turned into each pose, and the smallest rotated
rectangle around its outline seen from straight above (every vertex projected onto the stage),
in millimetres (1 LDU = 0.4 mm). Only ``manifest.json`` is rewritten; parts the library cannot
build are listed and get no footprint (the prior then neither favours nor rules them out).

``--tilt DEG`` writes the footprints as a camera tilted DEG degrees from vertical sees them (a
turntable rig's camera looks at the stage from the side): the outline is projected along the
camera's axis (orthographically: the part is small against the camera's distance), which shortens
the stage's depth by cos(tilt) and shows the part's height by sin(tilt); the rectangle then
depends on which way the part faces, so each pose is turned through half a turn in
:data:`TILT_TURNS` steps, each step carrying an equal share of the pose's chance. They go into the
manifest's ``footprints_tilted`` under the tilt; the top-down table is left as it is.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge.manifest import MAX_TILT_DEG, load_manifest, tilt_key
from studio.errors import StudioError
from studio.ldraw import LDrawLibrary
from studio.poses import placement, stable_poses
from trainer.manifest_tables import add_ldraw_parser, write_part_table

#: Millimetres per LDraw unit.
MM_PER_LDU = 0.4
#: Steps through half a turn (a view and the view half a turn away outline the same rectangle)
#: at which a tilted camera's footprints are taken: every 15 degrees.
TILT_TURNS = 12
#: The tilts a table may be written for, in degrees from vertical.
TILT_RANGE = (0.0, MAX_TILT_DEG)


def part_footprints(
    library: LDrawLibrary, part: str, tilt_deg: float = 0.0
) -> list[tuple[float, float, float]]:
    """[long mm, short mm, probability] of each stable pose's outline as a camera tilted
    ``tilt_deg`` from vertical sees it (0: from straight above, one row a pose; else a row for
    each of :data:`TILT_TURNS` turns of each pose, equal outlines merged)."""
    if not TILT_RANGE[0] <= tilt_deg <= TILT_RANGE[1]:
        raise ValueError(f"tilt {tilt_deg!r} degrees is outside {TILT_RANGE[0]:g}..{TILT_RANGE[1]:g}")
    mesh = library.part_mesh(part)
    t = math.radians(tilt_deg)
    yaws = [0.0] if tilt_deg == 0 else [180.0 * k / TILT_TURNS for k in range(TILT_TURNS)]
    merged: dict[tuple[float, float], float] = {}
    for pose in stable_poses(mesh):
        for yaw in yaws:
            # LDraw axes, -Y up: the camera's image plane holds X and the stage's depth Z
            # foreshortened, with the height (-Y) showing as the camera tilts.
            p = mesh.transformed(placement(pose, yaw)).triangles.reshape(-1, 3)
            uv = np.stack([p[:, 0], p[:, 2] * math.cos(t) - p[:, 1] * math.sin(t)], axis=1)
            (_, _), (a, b), _ = cv2.minAreaRect(np.ascontiguousarray(uv, np.float32))
            key = (round(max(a, b) * MM_PER_LDU, 2), round(min(a, b) * MM_PER_LDU, 2))
            merged[key] = merged.get(key, 0.0) + pose.probability / len(yaws)
    rows = [(a, b, round(p, 4)) for (a, b), p in merged.items()]
    return [r for r in rows if r[1] > 0 and r[2] > 0]


def footprint_table(
    ldraw: str | Path, parts: Iterable[str], progress: bool = True, tilt_deg: float = 0.0
) -> tuple[dict[str, list[tuple[float, float, float]]], dict[str, str]]:
    """(part -> footprints for the parts built, part -> why for the others), as a camera tilted
    ``tilt_deg`` from vertical sees them."""
    library = LDrawLibrary(ldraw)
    table: dict[str, list[tuple[float, float, float]]] = {}
    failed: dict[str, str] = {}
    for part in tqdm(list(parts), desc="footprints", unit="part", disable=not progress):
        try:
            rows = part_footprints(library, part, tilt_deg)
        except (StudioError, ValueError) as exc:
            failed[part] = str(exc)
            continue
        if rows:
            table[part] = rows
        else:
            failed[part] = "no stable pose with a non-empty outline"
    return table, failed


def write_footprints(
    model_set: str | Path, ldraw: str | Path, progress: bool = True, tilt_deg: float = 0.0
) -> tuple[dict[str, list[tuple[float, float, float]]], dict[str, str]]:
    """Write the footprints of the model set's parts, as a camera tilted ``tilt_deg`` from
    vertical sees them, into its manifest (``footprints`` for 0, else ``footprints_tilted`` under
    the tilt, other tilts' tables kept); return (table, failed)."""
    if tilt_deg == 0:
        return write_part_table(
            model_set, ldraw, "footprints", lambda root, parts: footprint_table(root, parts, progress)
        )
    key = tilt_key(tilt_deg)
    kept = {k: v for k, v in load_manifest(model_set).footprints_tilted.items() if k != key}

    def compute(root: Path, parts: Sequence[str]) -> tuple[dict[str, dict[str, list]], dict[str, str]]:
        table, failed = footprint_table(root, parts, progress, tilt_deg)
        return {**kept, key: table}, failed

    tables, failed = write_part_table(model_set, ldraw, "footprints_tilted", compute)
    return tables[key], failed


def _tilt(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tilt {text!r} is not a number of degrees") from None
    if not TILT_RANGE[0] <= value <= TILT_RANGE[1]:
        raise argparse.ArgumentTypeError(
            f"--tilt {text} is outside {TILT_RANGE[0]:g}..{TILT_RANGE[1]:g} degrees from vertical"
        )
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_ldraw_parser(
        sub,
        "footprints",
        "write each part's footprints on the stage (from the LDraw files) into a model set's manifest",
        __doc__,
        main,
    )
    p.add_argument(
        "--tilt",
        type=_tilt,
        default=0.0,
        help="the rig camera's tilt from vertical in degrees (default 0: straight down); a tilted "
        "table goes beside the top-down one, for `edge calibrate scale --tilt`",
    )


def main(args: argparse.Namespace) -> int:
    tilt = getattr(args, "tilt", 0.0)
    table, failed = write_footprints(args.model_set, args.ldraw, tilt_deg=tilt)
    poses = sum(len(v) for v in table.values())
    seen = "from straight above" if tilt == 0 else f"by a camera tilted {tilt:g} degrees"
    print(
        f"{len(table)} part(s) with footprints {seen} ({poses} rows) written to "
        f"{args.model_set / 'manifest.json'}"
    )
    for part, why in list(failed.items())[:10]:
        print(f"  no footprint for {part}: {why}")
    if len(failed) > 10:
        print(f"  ... and {len(failed) - 10} more")
    return 0
