"""Images/s of the two renderers through the whole scene pipeline, measured in the same run.

    python benchmarks/render_rate_pathtrace.py --ldraw ../shared/ldraw --part 3001 --spp 16 \
        --seconds 20 [--markdown FILE] [--json FILE]

For each image size (crops of 128x128 and 224x224, the rig's 640x480 frame) it alternates
``SceneRenderer.render_views`` (the rasteriser, supersample 2, plain studs) and
``PathTracedSceneRenderer.render_views`` (Mitsuba 3 + Open Image Denoise, logo studs), one view per
call with a new seed each time, so both see the same background load. Everything the trainer does
per image is timed: placement, rendering, mask, camera effects. Mitsuba uses every core it is given;
the rasteriser runs on one. Without ``--ldraw`` the project's demo 2x4 brick stands in.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import cpu_model

SIZES = {"128x128": ("crop", (128, 128)), "224x224": ("crop", (224, 224)), "640x480": ("full", (640, 480))}


def _renderers(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, str]:
    from studio.ldconfig import read_ldconfig
    from studio.ldraw import LDrawLibrary
    from studio.pathtrace import PathTracedSceneRenderer, PathTraceSettings
    from studio.scene import SceneRenderer

    if args.ldraw:
        root, part = args.ldraw, args.part
        source = f"LDraw part {part}"
    else:
        from studio.demo_library import write_demo_library

        root = Path(tempfile.mkdtemp()) / "demo"
        write_demo_library(root)
        part, source = "demo-3001", "demo 2x4 brick (simplified)"
    ldconfig = read_ldconfig(root / "LDConfig.ldr")
    plain = LDrawLibrary(root).part_mesh(part)
    logo = LDrawLibrary(root, logo_studs=True).part_mesh(part)
    raster = SceneRenderer(ldconfig=ldconfig, supersample=2)
    traced = PathTracedSceneRenderer(ldconfig=ldconfig, settings=PathTraceSettings(spp=args.spp))
    return (raster, plain), (traced, logo), len(plain.triangles), len(logo.triangles), source


def main(argv: list[str] | None = None) -> int:
    """Measure, print, and optionally write Markdown / JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ldraw", type=Path, help="LDraw library root (default: the demo library)")
    ap.add_argument("--part", default="3001")
    ap.add_argument("--spp", type=int, default=16, help="path tracer samples per pixel")
    ap.add_argument("--seconds", type=float, default=20.0, help="measuring time per image size")
    ap.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)
    from edge.colors import get_color

    (raster, plain), (traced, logo), n_plain, n_logo, source = _renderers(args)
    color = get_color(4)
    load_before = os.getloadavg()
    rows = []
    for name in args.sizes.split(","):
        frame, size = SIZES[name]
        timings: dict[str, list[float]] = {"raster": [], "pathtrace": []}
        jobs = {"raster": (raster, plain), "pathtrace": (traced, logo)}
        for scene, mesh in jobs.values():  # warm-up: poses, kernels, caches
            for seed in range(2):
                scene.render_views(mesh, color, [0], seed, frame=frame, size=size)
        start, seed = time.perf_counter(), 100
        while time.perf_counter() - start < args.seconds:
            for key, (scene, mesh) in jobs.items():
                t = time.perf_counter()
                scene.render_views(mesh, color, [float(seed % 360)], seed, frame=frame, size=size)
                timings[key].append(time.perf_counter() - t)
            seed += 1
        row = {"size": name, "frame": frame}
        for key, values in timings.items():
            arr = np.array(values)
            row[key] = {
                "images": len(arr),
                "images_per_s": float(len(arr) / arr.sum()),
                "s_p50": float(np.median(arr)),
            }
        rows.append(row)
        print(
            f"{name:>8}: raster {row['raster']['images_per_s']:6.2f} img/s, "
            f"pathtrace {row['pathtrace']['images_per_s']:6.2f} img/s ({args.spp} spp)",
            flush=True,
        )
    res = {
        "source": source,
        "triangles_plain": n_plain,
        "triangles_logo": n_logo,
        "spp": args.spp,
        "variant": traced.tracer.variant,
        "rows": rows,
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
    }
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    if args.markdown:
        _write_markdown(args.markdown, res, argv if argv is not None else sys.argv[1:], args.note)
    return 0


def _write_markdown(path: Path, res: dict[str, Any], argv: list[str], note: str) -> None:
    command = "python benchmarks/render_rate_pathtrace.py " + " ".join(
        f"'{a}'" if " " in a else a for a in argv
    )
    lines = [
        "# Render rate: rasteriser vs path tracer (whole scene pipeline)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {res['platform']}; CPU: {res['cpu']}; {res['cores']} cores; Mitsuba variant "
        f"`{res['variant']}`. Load average before / after: {res['load_before']} / {res['load_after']}.",
        "",
        f"Part: {res['source']}, {res['triangles_plain']} triangles with plain studs (rasteriser), "
        f"{res['triangles_logo']} with logo studs (path tracer). Path tracer: {res['spp']} spp, box "
        "filter, Open Image Denoise with albedo and normals. Rasteriser: supersample 2. Both include "
        "placement, mask, camera effects (train randomisation); one view per call, renderers alternating.",
        "",
        "| image | frame | rasteriser images/s | path tracer images/s | raster s p50 | path tracer s p50 |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        ra, pt = r["raster"], r["pathtrace"]
        lines.append(
            f"| {r['size']} | {r['frame']} | {ra['images_per_s']:.2f} | {pt['images_per_s']:.2f} | "
            f"{ra['s_p50']:.3f} | {pt['s_p50']:.3f} |"
        )
    lines += ["", *([f"Note: {note}", ""] if note else [])]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
