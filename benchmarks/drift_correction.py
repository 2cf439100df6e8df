"""Colour top-1 on the sim rig when the camera drifts after calibration, with and without drift correction.

The rig is calibrated once as the sim frames show it (the reference bricks' captures, as in
``color_correction.py``: White, Black, Orange for Red, Blue, Yellow, Light Bluish Gray), which also
stores the stage's colour around the bricks. Then, per trial, the camera's exposure and white
balance drift (one random linear-light gain per trial, the same draws as ``color_correction.py``)
and every frame is scored with the calibration left as it was: uncorrected, and with the
pipeline's drift correction (the stage around each view's part measured against the stored colour).
The reference captures are left out of the scores.

``--stage`` says what surrounds each part. ``window`` (default): the frames as shipped, where each
view's window around the part is its own render, lit and coloured by the test split's randomisation,
so the stage around the part changes from capture to capture for reasons other than the camera.
``empty``: each part's pixels (the sim config's HSV mask) pasted onto the set's one ``empty.png``,
so the stage around the part changes only by the camera's drift, as on a rig whose stage and lamp
stay put (the parts keep their randomised lighting).

    python benchmarks/drift_correction.py [--trials 5] [--json benchmarks/results/drift_correction.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.color_correction import BRICKS, camera_error, load_captures, score
from calibration.color import measure_all
from edge.camera.sim import DEFAULT_FRAMES, ReplayStage
from edge.cli import SIM_CONFIG
from edge.color_correction import DriftCorrection
from edge.pipeline import Pipeline
from edge.settings import load_edge_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="random camera drifts (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage", choices=("window", "empty"), default="window", help="see the docstring")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    pipeline = Pipeline.from_config(load_edge_config(SIM_CONFIG), with_camera=False)
    captures = load_captures()
    if args.stage == "empty":
        empty = ReplayStage(DEFAULT_FRAMES).empty(0.0)
        captures = [(t, [on_stage(img, empty, pipeline) for img in imgs]) for t, imgs in captures]
    reference: dict[int, int] = {}
    for index, (truth, _) in enumerate(captures):
        if int(truth["color_id"]) in BRICKS and int(truth["color_id"]) not in reference:
            reference[int(truth["color_id"])] = index
    scored = [c for i, c in enumerate(captures) if i not in reference.values()]
    bricks = {cid: captures[i][1] for cid, i in reference.items()}
    stage = measure_all(bricks, pipeline.segmenter).stage_rgb
    drift = DriftCorrection(stage)
    rng = np.random.default_rng(args.seed)
    rows = []
    for trial in range(args.trials + 1):
        if trial == 0:  # no drift: what drift correction costs on a rig that did not drift
            gains = np.ones(3)
        else:
            exposure = float(np.exp(rng.uniform(np.log(0.6), np.log(1.5))))
            red, blue = np.exp(rng.uniform(np.log(0.7), np.log(1.4), 2))
            gains = exposure * np.array([red, 1.0, blue])
        seen = [(t, [camera_error(img, gains) for img in imgs]) for t, imgs in scored]
        pipeline.drift_correction = None
        plain = score(pipeline, seen)
        pipeline.drift_correction = drift
        pipeline.last_drift = []
        measured: list[np.ndarray] = []
        corrected = score_collecting(pipeline, seen, measured)
        found = np.array(measured) if measured else np.zeros((0, 3))
        row = {
            "trial": trial,
            "gains_rgb": [round(float(g), 3) for g in gains],
            "uncorrected": plain,
            "drift_corrected": corrected,
            "views_measured": f"{len(found)} of {sum(len(imgs) for _, imgs in seen) * 2}",
            "median_drift_gain_x_true_gain": [round(float(v), 3) for v in np.median(found * gains, axis=0)]
            if len(found)
            else None,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    pipeline.close()
    errs = rows[1:]
    summary = {
        key: {
            cond: round(float(np.mean([r[cond][key] for r in errs])), 4)
            for cond in ("uncorrected", "drift_corrected")
        }
        for key in ("view_top1", "part_top1")
    }
    result = {
        "stage": args.stage,
        "captures_scored": len(scored),
        "reference_bricks": reference,
        "stage_rgb": [round(v, 2) for v in stage] if stage else None,
        "trials": rows,
        "mean_with_drift": summary,
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def on_stage(image: np.ndarray, empty: np.ndarray, pipeline: Pipeline) -> np.ndarray:
    """The part's pixels (the pipeline's segmenter) on the empty stage."""
    part = pipeline.segmenter.mask(image) > 0
    out = empty.copy()
    out[part] = image[part]
    return out


def score_collecting(pipeline: Pipeline, seen: list, measured: list[np.ndarray]) -> dict[str, float]:
    """:func:`score`, keeping every view's measured drift gains (views it could not measure left out)."""
    original = pipeline.process

    def process(images: list, capture_ms: float = 0.0):  # type: ignore[no-untyped-def]
        result = original(images, capture_ms)
        measured.extend(g for g in pipeline.last_drift if g is not None)
        return result

    pipeline.process = process  # type: ignore[method-assign]
    try:
        return score(pipeline, seen)
    finally:
        del pipeline.process


if __name__ == "__main__":
    main()
