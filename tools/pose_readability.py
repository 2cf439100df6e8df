"""How well a model set names a part in each of its resting poses, on the studio's own renders.

    python tools/pose_readability.py --ldraw ../shared/ldraw --model-set models/default \
        --part 3023 --part 15712 --tilt 0 --seeds 28 [--randomization train test] [--json OUT.json]

For each part and each stable pose (``studio.poses``: the ways a dropped part comes to rest, with
the chance of each), the studio renders ``--seeds`` frames with that pose forced, the camera
``--tilt`` degrees from vertical, colours taken in turn from ``--colors``; each frame is cropped
by its exact mask as the Pi crops (``edge.preprocess``) and named by one artifact (the network
alone, single view). The table says, per pose, how often the part is named and what it is taken
for: a pose whose look other parts share (a 1x2 plate upside down, seen from above) reads badly
even in the renders' own domain, which bounds what any single view of it can score on a rig.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

DEFAULT_COLORS = "15,71,14,1,72,0,4"  # white, light bluish grey, yellow, blue, dark bluish grey, black, red


class ProbeError(ValueError):
    """Bad input to the probe; the message names it and the fix."""


def probe(
    ldraw: Path,
    model_set: Path,
    parts: list[str],
    *,
    tilt: float = 0.0,
    seeds: int = 28,
    presets: tuple[str, ...] = ("train", "test"),
    colors: list[int] | None = None,
    artifact: str = "onnxruntime/int8",
) -> list[dict[str, Any]]:
    """One row per preset, part and pose: the pose's chance, its down vector, how many of ``seeds``
    renders were named right and the three commonest answers."""
    import numpy as np

    from edge.engines import create_engine
    from edge.manifest import load_manifest
    from edge.preprocess import crop_for, prepare_crop
    from studio.ldraw import LDrawLibrary
    from studio.scene import SceneRenderer
    from studio.scene_config import Randomization, RigGeometry

    manifest = load_manifest(model_set)
    unknown = [p for p in parts if p not in manifest.parts]
    if unknown:
        raise ProbeError(
            f"part(s) {', '.join(unknown)} are not among {model_set}'s parts: probe parts it knows"
        )
    runtime, _, precision = artifact.partition("/")
    if not any(f.runtime == runtime and f.precision == precision for f in manifest.files):
        have = ", ".join(f"{f.runtime}/{f.precision}" for f in manifest.files)
        raise ProbeError(f"--artifact {artifact}: {model_set} has {have}")
    colors = colors or [int(c) for c in DEFAULT_COLORS.split(",")]
    library = LDrawLibrary(ldraw)
    rows = []
    with create_engine(
        runtime, model_set, manifest, precision=precision, threads=os.cpu_count() or 1
    ) as engine:
        for preset in presets:
            scene = SceneRenderer(RigGeometry(camera_tilt_deg=tilt), getattr(Randomization, preset)())
            for part in parts:
                mesh = library.part_mesh(part)
                for index, pose in enumerate(scene.poses(mesh)):
                    inputs = []
                    for seed in range(seeds):
                        view = scene.render_views(
                            mesh, colors[seed % len(colors)], [0.0], seed, pose_index=index, name=part
                        )[0]
                        crop = crop_for(view.image, view.mask > 0, manifest.input)
                        inputs.append(prepare_crop(crop, manifest.input))
                    logits = engine.run(np.stack(inputs))["part_logits"]
                    answers = [manifest.parts[int(i)] for i in np.asarray(logits).argmax(axis=1)]
                    rows.append(
                        {
                            "randomization": preset,
                            "part": part,
                            "pose": index,
                            "chance": round(float(pose.probability), 3),
                            "down": [round(float(d), 2) for d in pose.down],
                            "named": sum(a == part for a in answers),
                            "renders": seeds,
                            "answers": Counter(answers).most_common(3),
                        }
                    )
    return rows


def table(rows: list[dict[str, Any]], tilt: float, artifact: str) -> str:
    """The rows as a markdown table."""
    lines = [
        f"Camera {tilt:g} degrees from vertical; {artifact}, the network alone, single views.",
        "",
        "| randomisation | part | pose (chance) | down | named | taken for |",
        "|---|---|---|---|---:|---|",
    ]
    for r in rows:
        answers = ", ".join(f"{p} ({n})" for p, n in r["answers"])
        lines.append(
            f"| {r['randomization']} | {r['part']} | {r['pose']} ({r['chance']:.2f}) | {tuple(r['down'])} "
            f"| {r['named']} of {r['renders']} ({r['named'] / r['renders']:.2f}) | {answers} |"
        )
    lines.append("")
    for (preset, part), share in weighted(rows).items():
        lines.append(
            f"{part}, {preset}: {share:.2f} named, each pose weighted by its chance of coming to rest."
        )
    return "\n".join(lines)


def weighted(rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """Per randomisation and part: the share named, each pose weighted by its chance (what a stream
    of dropped parts would score from this camera, in the renders' own domain)."""
    totals: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        t = totals.setdefault((r["randomization"], r["part"]), [0.0, 0.0])
        t[0] += r["chance"] * r["named"] / r["renders"]
        t[1] += r["chance"]
    return {key: named / chance for key, (named, chance) in totals.items() if chance > 0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ldraw", required=True, type=Path, help="LDraw library folder (holds parts/ and p/)")
    p.add_argument("--model-set", required=True, type=Path)
    p.add_argument(
        "--part", dest="parts", action="append", required=True, help="a part it knows (repeatable)"
    )
    p.add_argument("--tilt", type=float, default=0.0, help="camera tilt from vertical in degrees (0: above)")
    p.add_argument("--seeds", type=int, default=28, help="renders per pose")
    p.add_argument("--randomization", nargs="+", default=["train", "test"], choices=["off", "train", "test"])
    p.add_argument("--colors", default=DEFAULT_COLORS, help="colour ids taken in turn, comma separated")
    p.add_argument("--artifact", default="onnxruntime/int8", help="runtime/precision of the model set")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)
    try:
        if args.seeds < 1:
            raise ProbeError("--seeds must be at least 1")
        try:
            colors = [int(c) for c in args.colors.split(",") if c.strip()]
        except ValueError:
            raise ProbeError(f"--colors {args.colors!r} must be colour ids separated by commas") from None
        rows = probe(
            args.ldraw, args.model_set, args.parts, tilt=args.tilt, seeds=args.seeds,
            presets=tuple(args.randomization), colors=colors, artifact=args.artifact,
        )  # fmt: skip
    except ProbeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(rows, args.tilt, args.artifact))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
