"""What the size prior and the part prior cost per part: the daemon's pipeline with them against
without, in one run.

    python benchmarks/size_prior.py [--belt ../shared/real/belt] [--frames 200] \\
        [--json FILE] [--markdown FILE]

The pipeline of a belt rig: the default model set's ONNX int8 network (classifier mode, one view
per part), the belt's segmenter (``config/real/belt.yaml``: ``seg_close`` with the empty belt
learned from ``_empty/``), and a calibration file whose scale ``edge calibrate scale`` fitted from
the first 5 frames of 15712 (``calibration.scale.calibrate_scale``). The frames are read in place
(timing only; nothing is kept). Each frame is processed by three pipelines (no prior, the size
prior, the size prior and the part prior ``popularity``), the order rotating from frame to frame
so all see the same background load; the medians per part and their ratios to the first, and each
prior's own work (the mask's footprint and the size update; the part prior's update) timed alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.machine import machine_line, write_results  # noqa: E402


def run(belt: Path, frames: int, note: str = "") -> dict[str, Any]:
    import numpy as np

    from calibration.scale import calibrate_scale
    from edge.imagefile import read_image
    from edge.pipeline import Pipeline
    from edge.segment import create_segmenter
    from edge.settings import load_edge_config
    from trainer.evaluate import load_segmenter_config
    from trainer.photo_set import fit_background, read_photo_set

    photos = read_photo_set(belt)
    reference = [p for p in photos if p.part == "15712"][:5]
    scored = [p for p in photos if p not in reference][:frames]
    with tempfile.TemporaryDirectory() as tmp:
        calibration, _ = fit_background(belt / "_empty", Path(tmp))
        seg_cfg = load_segmenter_config(REPO / "config" / "real" / "belt.yaml")
        base = load_edge_config(REPO / "config" / "sim.yaml").model_copy(
            update={"segmenter": seg_cfg, "calibration": calibration}
        )
        with create_segmenter(seg_cfg, calibration=calibration) as segmenter:
            from edge.manifest import open_manifest

            manifest = open_manifest(base.engine.model_set)
            fit = calibrate_scale(
                [read_image(p.path) for p in reference], segmenter, manifest, "15712", calibration
            )
        settings = {
            "off": {"size_prior": False, "part_prior": "none"},
            "size": {"size_prior": True, "part_prior": "none"},
            "size+part": {"size_prior": True, "part_prior": "popularity"},
        }
        pipelines = {}
        for name, update in settings.items():
            rec = base.recognition.model_copy(update=update)
            pipelines[name] = Pipeline.from_config(
                base.model_copy(update={"recognition": rec}), with_camera=False
            )
        assert pipelines["off"].recognizer.size is None and pipelines["size"].recognizer.prior is None
        images = [read_image(p.path) for p in scored]
        times: dict[str, list[float]] = {name: [] for name in settings}
        size_ms: list[float] = []
        part_ms: list[float] = []
        names = list(settings)
        try:
            for image in images[:3]:  # warm-up
                for pipeline in pipelines.values():
                    pipeline.process([image])
            for i, image in enumerate(images):
                for name in names[i % 3 :] + names[: i % 3]:
                    start = time.perf_counter()
                    pipelines[name].process([image])
                    times[name].append((time.perf_counter() - start) * 1000)
            size, part = pipelines["size+part"].recognizer.size, pipelines["size+part"].recognizer.prior
            assert size is not None and part is not None
            probs = np.full(len(manifest.parts), 1.0 / len(manifest.parts))
            masks = [pipelines["size"].segmenter.mask(image) for image in images[:50]]
            from edge.size import measure

            for mask in masks:
                start = time.perf_counter()
                size.update(probs, [measure(mask)])
                size_ms.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                part.update(probs)
                part_ms.append((time.perf_counter() - start) * 1000)
        finally:
            for pipeline in pipelines.values():
                pipeline.close()
    med = {name: statistics.median(t) for name, t in times.items()}
    return {
        "machine": machine_line(note),
        "frames": len(images),
        "frame_size": list(images[0].shape[:2]),
        "scale_px_per_mm": round(fit.px_per_mm, 3),
        "parts_with_footprints": size.covered,
        "parts_ranked": part.covered,
        "median_ms_per_part": {
            "no_prior": round(med["off"], 2),
            "size_prior": round(med["size"], 2),
            "size_and_part_prior": round(med["size+part"], 2),
        },
        "ratio_size_to_none": round(med["size"] / med["off"], 3),
        "ratio_both_to_none": round(med["size+part"] / med["off"], 3),
        "size_prior_alone_ms": round(statistics.median(size_ms), 3),
        "part_prior_alone_ms": round(statistics.median(part_ms), 4),
    }


def markdown(r: dict[str, Any]) -> str:
    ms = r["median_ms_per_part"]
    return (
        "# The size prior's and the part prior's cost per part\n\n"
        f"`python benchmarks/size_prior.py` on {r['machine']}.\n\n"
        f"{r['frames']} real belt frames ({r['frame_size'][1]}x{r['frame_size'][0]}), one view per part, "
        "the default set's ONNX int8 network and the belt's `seg_close` segmenter; scale "
        f"{r['scale_px_per_mm']} px/mm from `edge calibrate scale` on 5 frames of 15712; footprints of "
        f"{r['parts_with_footprints']} parts; part prior `popularity` ({r['parts_ranked']} parts "
        "ranked).\n\n"
        "| pipeline | median ms per part | ratio to no prior |\n|---|---:|---:|\n"
        f"| no prior (baseline) | {ms['no_prior']} | 1 |\n"
        f"| size prior | {ms['size_prior']} | {r['ratio_size_to_none']} |\n"
        f"| size prior and part prior | {ms['size_and_part_prior']} | {r['ratio_both_to_none']} |\n\n"
        "Same run, the order rotating per frame. Each prior's own work: the size prior (the mask's "
        f"footprint and the update over every part's poses) {r['size_prior_alone_ms']} ms; the part prior "
        f"(one weighted renormalisation) {r['part_prior_alone_ms']} ms.\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--belt", type=Path, default=REPO.parent / "shared" / "real" / "belt")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--note", default="", help="what else ran on the machine, for the results")
    args = parser.parse_args()
    if not (args.belt / "_empty").is_dir():
        parser.error(f"{args.belt} has no _empty/ folder of empty-belt frames; pass --belt")
    write_results(run(args.belt, args.frames, args.note), args.json, args.markdown, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
