"""Colour top-1 on the simulated rig's replay frames with a camera colour error, uncorrected vs corrected.

The shipped sim frames (60 captures x 4 views) are the rig as the default model set expects it. A rig
whose camera is off is simulated by one random white-balance and exposure error per trial, applied to
every frame in linear light. `edge calibrate color` is then run as on a rig: one capture of each
reference colour (the sim set has no Red, so Orange stands in) is "placed", cut out by the sim
config's HSV segmenter, and the correction fitted from them; those captures are left out of the
scores. Colour top-1 is scored per view and per part (4 views fused) with the sim config's int8 model.

Where the calibration finds reference bricks clipped (over-exposed: `edge calibrate color` warns and
advises lowering the exposure), the trial is also run as a rig owner who follows that advice: the
exposure is lowered by EXPOSURE_STEP at a time (at most MAX_STEPS) and the bricks photographed again,
until none is clipped; frames are then taken at that exposure (column `..._exposure_lowered`).

    python benchmarks/color_correction.py [--trials 5] [--json benchmarks/results/color_correction.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from calibration.color import fit_color_correction, measure_all
from edge.calibration_file import CLIPPED_SHARE
from edge.camera.sim import DEFAULT_FRAMES, Arrival, ReplayStage
from edge.cli import SIM_CONFIG
from edge.color_correction import linear_to_srgb, srgb_to_linear
from edge.pipeline import Pipeline
from edge.settings import load_edge_config

#: The sim set's reference bricks: White, Black, Orange (for Red), Blue, Yellow, Light Bluish Gray.
BRICKS = (15, 0, 25, 1, 14, 71)
#: Exposure factor of one step down when the calibration finds clipped bricks (about half a stop).
EXPOSURE_STEP = 0.7
MAX_STEPS = 4


def camera_error(image: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """``image`` as a camera with these linear RGB gains (exposure x white balance) would see it."""
    lut = srgb_to_linear(np.arange(256) / 255.0)
    return np.round(linear_to_srgb(lut[image] * gains) * 255).astype(np.uint8)


def captures_seen(
    captures: list[tuple[dict[str, Any], list[np.ndarray]]], gains: np.ndarray
) -> list[tuple[dict[str, Any], list[np.ndarray]]]:
    """Every capture's views as a camera with ``gains`` photographs them."""
    return [(truth, [camera_error(img, gains) for img in images]) for truth, images in captures]


def bricks_seen(
    captures: list[tuple[dict[str, Any], list[np.ndarray]]], reference: dict[int, int], gains: np.ndarray
) -> dict[int, list[np.ndarray]]:
    """The reference bricks' views as a camera with ``gains`` photographs them."""
    return {cid: [camera_error(img, gains) for img in captures[i][1]] for cid, i in reference.items()}


def load_captures() -> list[tuple[dict[str, Any], list[np.ndarray]]]:
    stage = ReplayStage(DEFAULT_FRAMES)
    out = []
    for key, capture in enumerate(stage.captures):
        arrival = Arrival(truth=dict(capture.truth), key=key)
        out.append((capture.truth, [stage.view(arrival, angle)[0] for angle, _ in capture.views]))
    return out


def score(pipeline: Pipeline, captures: list[tuple[dict[str, Any], list[np.ndarray]]]) -> dict[str, float]:
    views = parts = views_ok = parts_ok = 0
    for truth, images in captures:
        want = int(truth["color_id"])
        for image in images:
            views += 1
            views_ok += pipeline.process([image]).decision.color_id == want
        parts += 1
        parts_ok += pipeline.process(images).decision.color_id == want
    return {"view_top1": round(views_ok / views, 4), "part_top1": round(parts_ok / parts, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="random camera errors (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    cfg = load_edge_config(SIM_CONFIG)
    pipeline = Pipeline.from_config(cfg, with_camera=False)
    captures = load_captures()
    reference = {}
    for index, (truth, _) in enumerate(captures):
        if int(truth["color_id"]) in BRICKS and int(truth["color_id"]) not in reference:
            reference[int(truth["color_id"])] = index
    scored = [c for i, c in enumerate(captures) if i not in reference.values()]
    rng = np.random.default_rng(args.seed)
    rows = []
    for trial in range(args.trials + 1):
        if trial == 0:  # the rig as the model set expects it
            gains = np.ones(3)
        else:
            exposure = float(np.exp(rng.uniform(np.log(0.6), np.log(1.5))))
            red, blue = np.exp(rng.uniform(np.log(0.7), np.log(1.4), 2))
            gains = exposure * np.array([red, 1.0, blue])
        seen = captures_seen(scored, gains)
        found = measure_all(bricks_seen(captures, reference, gains), pipeline.segmenter)
        if trial == 0:
            rig_look = found.colors  # the bricks as the error-free sim rig shows them
        fit = fit_color_correction(found.colors, clipped=found.clipped)
        relative = fit_color_correction(found.colors, reference=rig_look)
        pipeline.color_correction = None
        plain = score(pipeline, seen)
        pipeline.color_correction = fit.correction
        corrected = score(pipeline, seen)
        pipeline.color_correction = relative.correction
        to_rig = score(pipeline, seen)
        # The advice followed: lower the exposure until no brick is clipped, photograph them again.
        steps, lowered = 0, gains
        while max(found.clipped.values()) > CLIPPED_SHARE and steps < MAX_STEPS:
            steps, lowered = steps + 1, lowered * EXPOSURE_STEP
            found = measure_all(bricks_seen(captures, reference, lowered), pipeline.segmenter)
        if steps:
            pipeline.color_correction = fit_color_correction(found.colors, reference=rig_look).correction
            to_rig_lowered = score(pipeline, captures_seen(scored, lowered))
        else:
            to_rig_lowered = to_rig
        before, after = fit.mean_delta_e
        row = {
            "trial": trial,
            "gains_rgb": [round(float(g), 3) for g in gains],
            "clipped_bricks": {str(p.color_id): p.clipped for p in fit.clipped},
            "uncorrected": plain,
            "corrected": corrected,
            "corrected_to_sim_rig": to_rig,
            "exposure_steps_down": steps,
            "corrected_to_sim_rig_exposure_lowered": to_rig_lowered,
            "patch_delta_e": [round(before, 2), round(after, 2)],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    pipeline.close()
    errs = rows[1:]
    summary = {
        key: {
            cond: round(float(np.mean([r[cond][key] for r in errs])), 4)
            for cond in (
                "uncorrected",
                "corrected",
                "corrected_to_sim_rig",
                "corrected_to_sim_rig_exposure_lowered",
            )
        }
        for key in ("view_top1", "part_top1")
    }
    result = {
        "captures_scored": len(scored),
        "reference_bricks": reference,
        "trials": rows,
        "mean_with_error": summary,
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
