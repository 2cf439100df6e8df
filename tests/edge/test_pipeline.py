"""The pipeline composes segmenter, preprocessing, engine and recognizer; presence from the frames."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.camera import Frame
from edge.errors import ImageError
from edge.pipeline import STAGES, Pipeline, PresenceDetector
from edge.preprocess import prepare_batch
from edge.segment import create_segmenter
from edge.settings import PresenceSettings, load_edge_config
from tests.edge.test_settings import SIM_PARTS, add_index, write_sim_setup
from tests.helpers.onnx_models import ClassifierWeights

HSV = {
    "type": "hsv",
    "background_lower": [142, 90, 60],
    "background_upper": [170, 255, 255],
    "min_area_px": 20,
}
#: For the drawn grey turntable of the presence tests: low saturation is background.
GREY_HSV = {
    "type": "hsv",
    "background_lower": [0, 0, 0],
    "background_upper": [179, 60, 255],
    "min_area_px": 20,
}


class CountingEngine:
    """Passes calls to the real engine and keeps the batch size of every ``run``."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.batches = engine, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def run(self, batch: np.ndarray) -> Any:
        self.batches.append(len(batch))
        return self.engine.run(batch)


@pytest.fixture
def pipeline(tmp_path: Path, demo_library: Path):
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    pipe = Pipeline.from_config(cfg)
    pipe.engine = CountingEngine(pipe.engine)
    with pipe.camera:
        yield pipe
    pipe.close()


def _views(pipe: Pipeline, count: int = 4) -> tuple[list[Frame], float]:
    camera: Any = pipe.camera
    camera.set_angle(0)
    camera.next_part()
    return pipe.capture_views(count, lambda i: camera.set_angle(i * 360 / count))


def test_views_run_as_one_batch_and_match_the_stages_done_by_hand(pipeline: Pipeline) -> None:
    frames, capture_ms = _views(pipeline)
    decision, timings = pipeline.process_views(frames, capture_ms)
    assert pipeline.engine.batches == [4]  # all four views in ONE engine run
    # The same stages by hand: the configured segmenter's masks, prepare_batch, the model's maths.
    segmenter = create_segmenter(HSV)
    batch = prepare_batch([(f.image, segmenter.mask(f.image)) for f in frames], pipeline.manifest.input)
    expected = pipeline.recognizer.decide(ClassifierWeights.for_manifest(pipeline.manifest).reference(batch))
    assert decision.part_topk[0][0] == expected.part_topk[0][0]
    assert decision.confidence == pytest.approx(expected.confidence, abs=1e-4)
    assert decision.color_id == expected.color_id and decision.status == expected.status
    assert len(decision.per_view) == 4
    assert set(timings) == {*STAGES, "total"} and all(v >= 0 for v in timings.values())
    assert timings["capture"] == capture_ms > 0
    assert timings["segment"] > 0 and timings["infer"] > 0
    assert timings["search"] == 0.0  # classifier mode searches no index
    assert timings["total"] == pytest.approx(sum(timings[s] for s in STAGES))


def test_part_result_has_truth_crops_and_object_counts(pipeline: Pipeline) -> None:
    frames, _ = _views(pipeline, 2)
    result = pipeline.process(frames)
    assert result.truth is not None and result.truth["part_num"] == SIM_PARTS[0]
    assert result.truth["color_id"] == 4
    assert result.objects == [1, 1]
    assert result.angles == [0.0, 180.0]
    for crop in result.crops:  # a square around the part, much smaller than the frame
        assert crop.ndim == 3 and crop.shape[0] == crop.shape[1] < 120


def test_capture_views_turns_between_views(pipeline: Pipeline) -> None:
    turned: list[int] = []
    camera: Any = pipeline.camera
    camera.next_part()
    frames, spent = pipeline.capture_views(3, lambda i: (turned.append(i), camera.set_angle(i * 90)))
    assert turned == [1, 2] and spent > 0
    assert [f.meta["turntable_angle"] for f in frames] == [0.0, 90.0, 180.0]


def test_vector_mode_times_the_index_search(tmp_path: Path, demo_library: Path) -> None:
    config = write_sim_setup(tmp_path, demo_library, recognition={"mode": "vector", "vector_threshold": 0.5})
    add_index(tmp_path / "models")
    pipe = Pipeline.from_config(load_edge_config(config))
    try:
        with pipe.camera:
            frames, _ = _views(pipe, 2)
            decision, timings = pipe.process_views(frames)
    finally:
        pipe.close()
    assert decision.source == "vector" and decision.part_topk[0][0] in SIM_PARTS
    assert timings["search"] > 0


def test_classify_images_one_by_one_or_fused(pipeline: Pipeline, tmp_path: Path) -> None:
    frames, _ = _views(pipeline, 2)
    paths = []
    for i, frame in enumerate(frames):
        paths.append(tmp_path / f"view{i}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    single = pipeline.classify_images(paths)
    assert [row.paths for row in single] == [[paths[0]], [paths[1]]]
    fused = pipeline.classify_images(paths, fuse=True)
    assert len(fused) == 1 and fused[0].paths == paths and fused[0].result is not None
    # Reading the PNG back gives the same pixels, so the decision equals that of the frames.
    direct = pipeline.process(frames)
    assert fused[0].result.decision.part_topk[0] == pytest.approx(direct.decision.part_topk[0])
    assert pipeline.engine.batches == [1, 1, 2, 2]  # each file alone, then both files as one part


def test_classify_names_a_bad_image(pipeline: Pipeline, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    bad, missing = pipeline.classify_images([broken, tmp_path / "missing.png"])
    assert bad.result is None and re.search(r"broken\.jpg.*JPEG header", bad.error or "")
    assert missing.result is None and re.search(r"missing\.png.*does not exist", missing.error or "")


# --- presence -----------------------------------------------------------------------------------


def _disc(shape: tuple[int, int] = (120, 160)) -> np.ndarray:
    """A grey turntable on a dark surround, like the sim's."""
    image = np.full((*shape, 3), 50, np.uint8)
    cv2.circle(image, (shape[1] // 2, shape[0] // 2), 55, (200, 200, 196), -1)
    return image


def _with_part(image: np.ndarray, x: int, y: int, colour: tuple[int, int, int] = (200, 30, 30)) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, (x, y), (x + 14, y + 10), colour, -1)
    return out


def _detector(segmenter: dict[str, Any] | None = None, **settings: Any) -> PresenceDetector:
    seg = create_segmenter(segmenter or GREY_HSV)
    return PresenceDetector(seg, PresenceSettings(**{"min_area_px": 60, "stable_frames": 3, **settings}))


def test_presence_needs_a_part_lying_still_for_n_frames() -> None:
    detector = _detector()
    empty = _disc()
    detector.set_empty(empty)
    readings = [detector.update(empty) for _ in range(3)]
    assert [r.present for r in readings] == [False] * 3
    assert [r.stable for r in readings] == [False, False, True]  # empty, and sure of it
    part = _with_part(empty, 70, 50)
    readings = [detector.update(part) for _ in range(3)]
    assert all(r.present and r.objects == 1 and 120 <= r.area <= 15 * 11 for r in readings)
    assert [r.stable for r in readings] == [False, False, True]


def test_a_moving_part_is_not_stable() -> None:
    detector = _detector(stable_iou=0.8)
    detector.set_empty(_disc())
    readings = [detector.update(_with_part(_disc(), 50 + 8 * i, 50)) for i in range(6)]
    assert all(r.present for r in readings) and not any(r.stable for r in readings)
    still = [detector.update(_with_part(_disc(), 90, 50)) for _ in range(3)]
    assert still[-1].stable


def test_the_empty_turntables_own_mask_does_not_count() -> None:
    # The surround is darker than the HSV range's floor here, so the segmenter marks it as "part";
    # subtracting the empty turntable's mask keeps it from looking like a part.
    detector = _detector({**GREY_HSV, "background_lower": [0, 0, 120], "keep": "all"})
    empty = _disc()
    detector.set_empty(empty)
    assert not detector.update(empty).present
    assert detector.update(_with_part(empty, 70, 50)).present


def test_two_parts_are_counted() -> None:
    detector = _detector()
    detector.set_empty(_disc())
    reading = detector.update(_with_part(_with_part(_disc(), 50, 45), 95, 65, (30, 30, 200)))
    assert reading.present and reading.objects == 2


def test_difference_method_for_the_none_segmenter() -> None:
    detector = _detector({"type": "none"}, stable_frames=1)
    assert detector.method == "difference"  # a full-frame mask cannot tell a part from the disc
    detector.set_empty(_disc())
    assert not detector.update(_disc()).present
    assert detector.update(_with_part(_disc(), 70, 50, (120, 120, 120))).present  # even a grey part


def test_presence_refuses_frames_of_another_size() -> None:
    detector = _detector()
    with pytest.raises(RuntimeError, match="set_empty"):
        detector.update(_disc())
    detector.set_empty(_disc())
    with pytest.raises(ImageError, match="changed resolution"):
        detector.update(_disc((100, 160)))
