"""``trainer demo``: the studio end to end on a fresh clone, with no download.

Writes the project's own small LDraw library (simplified parts, see :mod:`studio.demo_library`)
unless ``--ldraw`` names a real one, renders a few turntable captures of each part in the rig's
``real`` layout, and writes a contact sheet. It is what ``make run`` shows until the daemon lands.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from trainer.render import CREDIT, read_parts_list, run_render, write_sample_sheet
from trainer.render_worker import RenderJob

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="render turntable captures of a few parts (no download needed)")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    p.add_argument("--ldraw", type=Path, help="a real LDraw library (default: the project's own demo parts)")
    p.add_argument("--parts", type=Path, help="parts list for --ldraw (default: the demo parts)")
    p.add_argument("--top", type=int, default=12, help="parts from the list (default 12)")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edge.colors import common_colors
    from studio.demo_library import write_demo_library

    args.out.mkdir(parents=True, exist_ok=True)
    if args.ldraw is None:
        ldraw = args.out / "demo-ldraw"
        parts = write_demo_library(ldraw)
        log.info("wrote the project's demo LDraw library (%d simplified parts) to %s", len(parts), ldraw)
    else:
        ldraw = args.ldraw
        if args.parts is None:
            raise SystemExit("--ldraw needs --parts (a text file of part numbers)")
        parts = read_parts_list(args.parts, args.top)
    job = RenderJob(
        ldraw=str(ldraw),
        layout="real",
        out=str(args.out / "captures"),
        per_part=2,
        views=4,
        color_ids=tuple(c.id for c in common_colors(8)),
        seed=7,
        randomization="train",
        supersample=2,
    )
    results = run_render(job, parts, workers=max(1, min(args.workers, len(parts))))
    for res in results:
        if res.error:
            print(f"{res.part:>12}  FAILED  {res.error}")
            continue
        for rec in res.records:
            print(
                f"{rec['part_num']:>12}  colour {rec['color_id']:>3} {rec['color_name']:<22} "
                f"angle {rec['angle']:>3}  {rec['image_path']}"
            )
    # The demo parts are the project's own files; only a real LDraw library earns the credit line.
    footer = CREDIT if args.ldraw is not None else "Simplified demo parts written by lego-edge"
    sheet = write_sample_sheet(Path(job.out), results, limit=len(parts), tile=160, footer=footer)
    ok = sum(1 for r in results if not r.error)
    print(
        f"\n{ok}/{len(results)} parts rendered, {sum(len(r.records) for r in results)} images "
        f"under {job.out}; contact sheet: {sheet}"
    )
    return 0 if ok == len(results) else 1
