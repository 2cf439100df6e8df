"""``trainer color-reference``: the colour calibration's reference bricks as the renders show them.

``edge calibrate color`` fits a correction that makes the rig's camera show its six reference
bricks (:data:`calibration.color.DEFAULT_BRICKS`: White, Black, Red, Blue, Yellow and Light Bluish
Gray) as a reference says. Against the colour table's sRGB, a calibrated camera shows parts brighter
than the renders the colour head learned from (a rendered white brick is about 233 of 255, a light
bluish grey one about 140 against the table's 163): on the test render, passing each image through
the correction a table calibration fits for a camera that sees just the renders' look costs the
colour head 2-3 points (docs/real_transfer.md). This command renders the bricks (a 2 x 4 brick,
3001, in each colour) as the training renders show them (the studio's rig frames, 'train'
preset), measures each brick's median colour as the calibration does
(:func:`calibration.color.patch_color_and_clipping`, on the render's exact mask) and writes them as
the JSON ``edge calibrate color --reference`` reads. Shipped beside a model set as
:data:`FILE_NAME`, it is the calibration's default reference there, so a calibrated camera is
made to look like the renders rather than like the table.

The renders go into ``--work`` (default beside ``--out``), one folder per colour, and are kept: a
stopped run resumes where it stopped, and a re-run only measures.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from calibration.color import REFERENCE_FILE
from edge.errors import DataFileError

log = logging.getLogger(__name__)

#: The reference's file name in a model set folder (``edge calibrate color``'s default there).
FILE_NAME = REFERENCE_FILE
#: The brick rendered in each reference colour.
PART = "3001"


def measure_patches(folder: Path) -> dict[int, list[float]]:
    """``{colour id: median sRGB}`` over the renders in ``folder`` (each image's patch as the
    calibration measures a brick, then the median over a colour's images)."""
    from calibration.color import patch_color_and_clipping
    from trainer.data.sources import load_source, read_sample

    patches: dict[int, list[np.ndarray]] = {}
    for sample in load_source(folder):
        image, mask = read_sample(sample)
        if sample.color_id is None or mask is None or not mask.any():
            continue
        rgb, _ = patch_color_and_clipping(image, mask)
        patches.setdefault(sample.color_id, []).append(rgb)
    if not patches:
        raise DataFileError(
            f"{str(folder)!r} holds no masked renders of the reference bricks; render them again"
        )
    return {
        c: [round(float(v), 2) for v in np.median(np.stack(p), axis=0)] for c, p in sorted(patches.items())
    }


def color_reference(
    ldraw: Path,
    out: Path,
    work: Path,
    *,
    part: str = PART,
    captures: int = 12,
    views: int = 2,
    seed: int = 31,
) -> dict[int, list[float]]:
    """Render ``part`` in each reference colour into ``work``, measure the renders and write ``out``;
    returns the patches."""
    from calibration.color import DEFAULT_BRICKS
    from edge.fileio import write_atomic
    from trainer.render import run_render
    from trainer.render_worker import RenderJob

    patches: dict[int, list[float]] = {}
    for color_id in DEFAULT_BRICKS:  # one render per colour: every colour gets its captures
        folder = work / str(color_id)
        job = RenderJob(
            ldraw=str(ldraw),
            layout="real",
            out=str(folder),
            per_part=captures,
            views=views,
            color_ids=(color_id,),
            seed=seed,
            randomization="train",
            supersample=1,
        )
        failed = [r.error for r in run_render(job, [part]) if r.error]
        if failed:
            raise DataFileError(f"the reference brick {part} did not render: {failed[0]}")
        patches.update(measure_patches(folder))
    write_atomic(out, json.dumps({str(c): rgb for c, rgb in patches.items()}, indent=1) + "\n")
    return patches


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trainer color-reference``."""
    p = sub.add_parser(
        "color-reference",
        help="the colour calibration's reference bricks as the renders show them (for edge calibrate color)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ldraw", required=True, type=Path, help="the LDraw library (parts/, p/)")
    p.add_argument("--out", required=True, type=Path, help=f"the JSON to write (in a model set: {FILE_NAME})")
    p.add_argument("--work", type=Path, help="folder for the renders (default: OUT's folder/color-reference)")
    p.add_argument("--part", default=PART, help=f"the brick rendered in each colour (default {PART})")
    p.add_argument("--captures", type=int, default=12, help="captures per colour (default 12)")
    p.add_argument("--seed", type=int, default=31, help="the renders' seed (default 31)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edge.colors import get_color

    work = args.work or args.out.parent / "color-reference"
    patches = color_reference(
        args.ldraw,
        args.out,
        work,
        part=args.part,
        captures=args.captures,
        seed=args.seed,
    )
    for color_id, rgb in patches.items():
        table = get_color(color_id).rgb
        print(f"{get_color(color_id).name:20s} rendered {rgb}  colour table {list(table)}")
    print(f"wrote {args.out}: edge calibrate color --reference {args.out}")
    return 0
