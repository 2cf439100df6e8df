"""The size prior (edge/size.py): footprints measured on masks, the scale fitted from a reference
part, and the classifier's answer weighed by a part's size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import ConfigError
from edge.manifest import Manifest
from edge.recognize import Recognizer
from edge.size import SizePrior, fit_scale, measure, reference_footprints
from tests.helpers.onnx_models import write_model_set

#: Two resting poses of a 2x4 brick (on its base, on its side) and a 1x2 plate's, as
#: `trainer footprints` writes them: long mm, short mm, probability.
BRICK = [(32.0, 16.0, 0.7), (32.0, 11.2, 0.3)]
PLATE = [(16.0, 8.0, 0.9), (16.0, 4.8, 0.1)]


def rectangle_mask(
    long_px: float, short_px: float, angle: float, shape: tuple[int, int] = (400, 500)
) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    corners = cv2.boxPoints(((250.0, 200.0), (long_px, short_px), angle))
    cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 255)
    return mask


@pytest.mark.parametrize("angle", [0.0, 30.0, 75.0])
def test_measure_finds_a_turned_rectangles_sides(angle: float) -> None:
    long_px, short_px = measure(rectangle_mask(160, 80, angle))  # type: ignore[misc]
    assert long_px == pytest.approx(160, abs=3) and short_px == pytest.approx(80, abs=3)
    assert measure(np.zeros((10, 10), np.uint8)) is None
    one = np.zeros((10, 10), bool)
    one[5, 5] = True
    assert measure(one) == (1.0, 1.0)  # a pixel is the least a side can measure


def test_fit_scale_recovers_the_scale_from_views_in_either_pose() -> None:
    rng = np.random.default_rng(0)
    views = [(32 * 7.5, 16 * 7.5), (32 * 7.5, 11.2 * 7.5), (32 * 7.5, 16 * 7.5)]
    noisy = [(a * rng.uniform(0.97, 1.03), b * rng.uniform(0.97, 1.03)) for a, b in views]
    assert fit_scale(noisy, BRICK, 0.15) == pytest.approx(7.5, rel=0.03)
    assert fit_scale([(80.0, 160.0)], BRICK, 0.15) == pytest.approx(5.0, rel=0.02)  # sides in any order
    with pytest.raises(ConfigError, match="no footprint was measured"):
        fit_scale([], BRICK, 0.15)
    with pytest.raises(ConfigError, match="sigma"):
        fit_scale(views, BRICK, 0.0)


def test_a_plate_sized_footprint_turns_a_brick_answer_into_the_plate() -> None:
    prior = SizePrior(["3001", "3023", "9999"], {"3001": BRICK, "3023": PLATE}, px_per_mm=10.0, sigma=0.15)
    probs = np.array([0.7, 0.2, 0.1])  # the network: a brick
    plate_sized = prior.update(probs, [(160.0, 80.0), None])  # a view without a mask adds nothing
    assert plate_sized.argmax() == 1 and plate_sized.sum() == pytest.approx(1.0)
    brick_sized = prior.update(probs, [(320.0, 160.0)])
    assert brick_sized.argmax() == 0 and brick_sized[0] > probs[0]
    # A part without a footprint scores the median: neither the best nor ruled out.
    ll = prior.log_likelihood([(160.0, 80.0)])
    assert ll is not None and ll[1] == 0.0 and ll[0] < ll[2] < 0.0
    assert prior.update(probs, [None, None]) is probs  # nothing measured: unchanged


def test_bad_priors_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="edge calibrate scale"):
        SizePrior(["3001"], {"3001": BRICK}, px_per_mm=0.0, sigma=0.15)
    with pytest.raises(ConfigError, match="trainer footprints"):
        SizePrior(["3001"], {}, px_per_mm=5.0, sigma=0.15)
    with pytest.raises(ConfigError, match="positive"):
        SizePrior(["3001"], {"3001": [(32.0, -1.0, 1.0)]}, px_per_mm=5.0, sigma=0.15)


def test_recognizer_weighs_the_fused_classifier_by_the_views_footprints(tmp_path: Path) -> None:
    manifest: Manifest = write_model_set(tmp_path, parts=["3001", "3023"], colors=[4])
    manifest = manifest.model_copy(update={"footprints": {"3001": BRICK, "3023": PLATE}})
    assert reference_footprints(manifest, "3001") == BRICK
    with pytest.raises(ConfigError, match="no footprint"):
        reference_footprints(manifest, "3003")
    prior = SizePrior(manifest.parts, manifest.footprints, px_per_mm=10.0, sigma=0.15)
    outputs = {"part_logits": np.array([[2.0, 0.0], [1.5, 0.0]], np.float32)}
    plain = Recognizer(manifest, threshold=0.5).decide(outputs, [(160.0, 80.0)] * 2)
    assert plain.part_num == "3001"  # no prior: the footprints are ignored
    sized = Recognizer(manifest, threshold=0.5, size=prior)
    decision = sized.decide(outputs, [(162.0, 79.0), (158.0, 82.0)])
    assert decision.part_num == "3023" and decision.distribution is not None
    assert decision.distribution.part_probs.sum() == pytest.approx(1.0)
    assert sized.decide(outputs).part_num == "3001"  # no footprints measured: the classifier's answer
    other = SizePrior(["3023", "3001"], manifest.footprints, px_per_mm=10.0, sigma=0.15)
    with pytest.raises(ConfigError, match="parts differ"):
        Recognizer(manifest, size=other)
