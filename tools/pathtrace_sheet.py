"""Side-by-side sheet of the rasteriser and the path tracer: docs/pathtrace_vs_raster.png.

    python tools/pathtrace_sheet.py --ldraw ../shared/ldraw --out docs/pathtrace_vs_raster.png \
        [--backgrounds ../shared/real/backgrounds] [--spp 64]

Per part, three crops of one placement (same seed, pose, light direction and colour; logo
studs for both renderers, so the poses agree): the rasteriser on the rig's magenta turntable, the
path tracer on the same turntable, and the path tracer on a ground drawn from those real rigs have.
The camera effects (noise, blur, JPEG) are off, to compare the renderers themselves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARTS = ["3001", "3003", "3004", "3020", "3021", "3022", "3023", "3039", "3660", "2540", "15712", "43857"]
COLOURS = [
    "Red",
    "Yellow",
    "Blue",
    "White",
    "Black",
    "Light Bluish Gray",
    "Trans-Clear",
    "Green",
    "Dark Bluish Gray",
    "Orange",
    "Tan",
    "Trans-Red",
]


def main(argv: list[str] | None = None) -> int:
    """Render the sheet."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ldraw", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("docs/pathtrace_vs_raster.png"))
    ap.add_argument("--backgrounds", type=Path, help="photos of empty rigs for the 'photo' ground")
    ap.add_argument("--spp", type=int, default=64)
    ap.add_argument("--size", type=int, default=224, help="render size (pixels)")
    ap.add_argument("--tile", type=int, default=160, help="tile size on the sheet (pixels)")
    ap.add_argument("--seed", type=int, default=4)
    args = ap.parse_args(argv)

    from edge.colors import color_by_name
    from studio.ldconfig import read_ldconfig
    from studio.ldraw import LDrawLibrary
    from studio.pathtrace import PathTracedSceneRenderer, PathTraceSettings
    from studio.pathtrace_config import DEFAULT_GROUNDS
    from studio.scene import Randomization, SceneRenderer
    from trainer.contact_sheet import contact_sheet, write_png
    from trainer.render import CREDIT

    rnd = Randomization.off()
    for name in ("pose", "placement", "light_direction", "light_intensity", "color_temperature"):
        getattr(rnd, name).enabled = True
    ldconfig = read_ldconfig(args.ldraw / "LDConfig.ldr")
    library = LDrawLibrary(args.ldraw, logo_studs=True)
    raster = SceneRenderer(randomization=rnd, ldconfig=ldconfig, supersample=3)
    same = PathTracedSceneRenderer(
        randomization=rnd, ldconfig=ldconfig, settings=PathTraceSettings(spp=args.spp, grounds=["rig"])
    )
    grounds = [g for g in DEFAULT_GROUNDS if g != "rig"]
    real = PathTracedSceneRenderer(
        randomization=rnd,
        ldconfig=ldconfig,
        settings=PathTraceSettings(spp=args.spp, grounds=grounds).with_backgrounds(args.backgrounds),
    )
    images, labels = [], []
    size = (args.size, args.size)
    for k, (part, colour) in enumerate(zip(PARTS, COLOURS, strict=True)):
        mesh, color = library.part_mesh(part), color_by_name(colour)
        seed = args.seed + k
        shots = [
            r.render_views(mesh, color, [30.0], seed, frame="crop", size=size)[0]
            for r in (raster, same, real)
        ]
        ground = shots[2].meta["pathtrace"]["ground"]["kind"]
        images += [s.image for s in shots]
        labels += [f"{part} raster", f"{part} traced", f"{part} {ground}"]
        print(part, colour, ground, flush=True)
    sheet = np.ascontiguousarray(contact_sheet(images, labels, tile=args.tile, columns=6, footer=CREDIT))
    try:  # a 256-colour palette keeps the PNG small (as docs/contact_sheet_b200c_top200.png)
        from PIL import Image

        palette = Image.fromarray(sheet).quantize(256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        palette.save(args.out, optimize=True)
    except ImportError:
        write_png(args.out, sheet)
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
