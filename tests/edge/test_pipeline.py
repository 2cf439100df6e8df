"""The pipeline composes segmenter, preprocessing, engine and recognizer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.camera import Frame
from edge.errors import ImageError
from edge.part import STAGES
from edge.pipeline import Pipeline
from edge.preprocess import prepare_batch
from edge.segment import create_segmenter
from edge.settings import load_edge_config
from tests.edge.test_settings import SIM_PARTS, add_index, write_sim_setup
from tests.helpers.onnx_models import ClassifierWeights

HSV = {
    "type": "hsv",
    "background_lower": [142, 90, 60],
    "background_upper": [170, 255, 255],
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
        self.last = batch
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


@pytest.mark.parametrize("background", ["keep", "fill"])
def test_the_engine_gets_exactly_what_prepare_gives(pipeline: Pipeline, background: str) -> None:
    # The pipeline crops each frame once around the box its segmenter found; training runs
    # prepare() on the whole frame. Both input modes must give the network the same bits.
    pipeline.manifest.input = pipeline.manifest.input.model_copy(update={"background": background})
    frames, capture_ms = _views(pipeline)
    pipeline.process(frames, capture_ms)
    segmenter = create_segmenter(HSV)
    batch = prepare_batch([(f.image, segmenter.mask(f.image)) for f in frames], pipeline.manifest.input)
    assert np.array_equal(pipeline.engine.last, batch)
    other = pipeline.manifest.input.model_copy(
        update={"background": {"keep": "fill", "fill": "keep"}[background]}
    )
    assert not np.array_equal(
        prepare_batch([(f.image, segmenter.mask(f.image)) for f in frames], other), batch
    )


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


def test_capture_views_takes_a_corrupt_frame_again(pipeline: Pipeline) -> None:
    camera: Any = pipeline.camera
    camera.next_part()
    real, calls, seen = camera.capture, [], []

    def flaky() -> Frame:
        calls.append(1)
        if len(calls) in (2, 4, 5):
            raise ImageError("truncated frame")
        return real()

    camera.capture = flaky
    frames, _ = pipeline.capture_views(3, before=seen.append, retries=2, on_frame=seen.append)
    assert len(frames) == 3 and len(calls) == 6
    assert [s if isinstance(s, int) else type(s).__name__ for s in seen] == [
        0,
        "NoneType",
        1,
        "ImageError",
        "NoneType",
        2,
        "ImageError",
        "ImageError",
        "NoneType",
    ]

    def broken() -> Frame:
        raise ImageError("truncated frame")

    camera.capture = broken
    with pytest.raises(ImageError, match="2 corrupt frames in a row at view 1 of 3"):
        pipeline.capture_views(3, retries=1)


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


def test_views_recognised_one_by_one_fuse_to_the_batch_decision(pipeline: Pipeline) -> None:
    frames, capture_ms = _views(pipeline)
    batch = pipeline.process(frames, capture_ms)
    views = [pipeline.process_view(f) for f in frames]
    one_by_one = pipeline.decide_views(views, capture_ms)
    assert pipeline.engine.batches == [4, 1, 1, 1, 1]  # one engine run per view
    a, b = batch.decision, one_by_one.decision
    assert a is not None and b is not None
    assert (b.part_topk[0][0], b.color_id, b.status) == (a.part_topk[0][0], a.color_id, a.status)
    assert b.confidence == pytest.approx(a.confidence, abs=1e-4)
    assert one_by_one.angles == batch.angles and one_by_one.objects == batch.objects
    assert [v.topk[0][0] for v in one_by_one.views] == [v.topk[0][0] for v in batch.views]
    assert all(v.compute_ms is not None and v.compute_ms > 0 for v in one_by_one.views)
    timings = one_by_one.timings
    assert timings["capture"] == capture_ms
    assert timings["infer"] == pytest.approx(sum(v.timings["infer"] for v in views))
    assert timings["total"] == pytest.approx(sum(timings[s] for s in STAGES))
