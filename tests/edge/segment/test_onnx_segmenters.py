"""U-2-Net and mobileseg backends end to end on tiny real ONNX graphs (see seg_models.py)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx", reason="building the test models needs the onnx package")
pytest.importorskip("onnxruntime")

from edge.errors import ConfigError, DataFileError, ImageError, ModelError
from edge.segment import create_segmenter
from edge.segment.mobileseg import MobileSegSegmenter, sigmoid
from edge.segment.u2net import U2NetSegmenter, preprocess
from tests.edge.segment import seg_models

H, W = 240, 320
RECT = (slice(80, 150), slice(120, 220))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def turntable_frame(scale: float = 1.0) -> np.ndarray:
    """Dark surround, a grey turntable disc, a red rectangular part, mild noise."""
    frame = np.full((H, W, 3), 30, np.uint8)
    cv2.circle(frame, (W // 2, H // 2), 115, (150, 150, 150), -1)
    frame[RECT] = (220, 25, 20)
    noise = np.random.default_rng(0).normal(0, 3, frame.shape)
    return np.clip((frame + noise) * scale, 0, 255).astype(np.uint8)


def rect_mask() -> np.ndarray:
    out = np.zeros((H, W), np.uint8)
    out[RECT] = 255
    return out


def assert_matches_rect(mask: np.ndarray, band: int = 4) -> None:
    """Equal to the rectangle except in a band of ``band`` pixels around its outline."""
    kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    truth = rect_mask()
    assert mask.shape == (H, W) and mask.dtype == np.uint8
    assert (mask[cv2.erode(truth, kernel) > 0] == 255).all()
    assert (mask[cv2.dilate(truth, kernel) == 0] == 0).all()


def rembg_normalize(frame: np.ndarray) -> np.ndarray:
    """rembg's BaseSession.normalize for U-2-Net, re-written with numpy (cv2 in place of PIL)."""
    im = cv2.resize(frame, (320, 320), interpolation=cv2.INTER_LANCZOS4)
    im_ary = im / max(np.max(im), 1e-6)
    tmp = np.zeros((320, 320, 3))
    for c in range(3):
        tmp[:, :, c] = (im_ary[:, :, c] - MEAN[c]) / STD[c]
    return np.expand_dims(tmp.transpose((2, 0, 1)), 0).astype(np.float32)


def rembg_mask(pred_out: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """rembg's U2netSession.predict after the session: min-max, to uint8, resize back."""
    pred = pred_out[:, 0, :, :]
    ma, mi = np.max(pred), np.min(pred)
    pred = np.squeeze((pred - mi) / (ma - mi))
    return cv2.resize((pred * 255).astype("uint8"), (size[1], size[0]), interpolation=cv2.INTER_LANCZOS4)


# --- U-2-Net ---


@pytest.fixture(scope="module")
def u2net_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seg_models.make_u2net(tmp_path_factory.mktemp("u2net") / "u2netp.onnx")


def test_u2net_preprocessing_matches_rembg() -> None:
    dim = turntable_frame(scale=0.5)  # max well below 255: rembg divides by the image's max
    ours = preprocess(dim)
    assert ours.shape == (1, 3, 320, 320) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, rembg_normalize(dim), atol=1e-6)
    by_255 = (cv2.resize(dim, (320, 320), interpolation=cv2.INTER_LANCZOS4) / 255.0 - MEAN) / STD
    assert not np.allclose(ours[0].transpose(1, 2, 0), by_255, atol=0.1)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_u2net_mask_end_to_end(u2net_path: Path, scale: float) -> None:
    frame = turntable_frame(scale)
    with create_segmenter({"type": "u2net", "model": str(u2net_path), "threads": 1}) as seg:
        assert isinstance(seg, U2NetSegmenter)
        saliency = seg.saliency(frame)
        mask, count = seg.mask_and_count(frame)
    score = seg_models.u2net_reference_score(rembg_normalize(frame), seg_models.RED_WEIGHTS, 0.0)
    expected = rembg_mask(score, (H, W))
    assert np.abs(saliency.astype(int) - expected).max() <= 1
    assert count == 1
    assert_matches_rect(mask)


def test_u2net_min_max_normalisation(tmp_path: Path) -> None:
    # Every d0 value of this model is above 0.85: only rembg's min-max step separates the part.
    weights, bias = tuple(0.1 * w for w in seg_models.RED_WEIGHTS), 2.0
    path = seg_models.make_u2net(tmp_path / "biased.onnx", weights=weights, bias=bias)  # type: ignore[arg-type]
    frame = turntable_frame()
    score = seg_models.u2net_reference_score(rembg_normalize(frame), weights, bias)  # type: ignore[arg-type]
    assert score.min() > 0.85
    seg = create_segmenter({"type": "u2net", "model": str(path)})
    assert isinstance(seg, U2NetSegmenter)
    saliency = seg.saliency(frame)
    assert np.abs(saliency.astype(int) - rembg_mask(score, (H, W))).max() <= 1
    assert_matches_rect(seg.mask(frame))


def test_u2net_accepts_symbolic_batch(tmp_path: Path) -> None:
    path = seg_models.make_u2net(tmp_path / "dyn.onnx", batch="batch")
    assert_matches_rect(create_segmenter({"type": "u2net", "model": str(path)}).mask(turntable_frame()))


def test_u2net_missing_model_names_path_and_fix(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "u2netp.onnx"
    with pytest.raises(DataFileError) as err:
        create_segmenter({"type": "u2net", "model": str(missing)})
    assert repr(str(missing)) in str(err.value)
    assert "u2netp.onnx" in str(err.value) and "segmenter.model" in str(err.value)


def test_u2net_wrong_input_shape(tmp_path: Path) -> None:
    path = seg_models.make_u2net(tmp_path / "small.onnx", size=256)
    with pytest.raises(ModelError) as err:
        create_segmenter({"type": "u2net", "model": str(path)})
    text = str(err.value)
    assert "small.onnx" in text and "(1, 3, 256, 256)" in text and "(1, 3, 320, 320)" in text


def test_u2net_rejects_a_file_that_is_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not a model at all")
    with pytest.raises(ModelError, match=r"broken\.onnx.*cannot be loaded by ONNX Runtime"):
        create_segmenter({"type": "u2net", "model": str(path)})


def test_u2net_bad_frame_and_closed_session(u2net_path: Path) -> None:
    seg = create_segmenter({"type": "u2net", "model": str(u2net_path)})
    with pytest.raises(ImageError, match="uint8"):
        seg.mask(turntable_frame().astype(np.float32))
    seg.close()
    with pytest.raises(RuntimeError, match="closed"):
        seg.mask(turntable_frame())


# --- mobileseg ---


def write_sidecar(path: Path, **overrides: object) -> Path:
    spec = {"input_size": [64, 96], "mean": list(MEAN), "std": list(STD), "output": "mask_logits"}
    path.write_text(json.dumps({**spec, **overrides}))
    return path


def mobileseg_reference(frame: np.ndarray) -> np.ndarray:
    """Probability the fake model gives each frame pixel, recomputed with numpy."""
    small = cv2.resize(frame, (96, 64), interpolation=cv2.INTER_AREA) / 255.0
    x = (small - MEAN) / STD
    score = x @ np.array(seg_models.RED_WEIGHTS)
    pooled = score.reshape(32, 2, 48, 2).mean(axis=(1, 3)) * 4.0
    prob = 1.0 / (1.0 + np.exp(-pooled))
    return cv2.resize(prob.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize("sidecar_name", ["seg.json", "seg.onnx.json"])
def test_mobileseg_mask_end_to_end(tmp_path: Path, sidecar_name: str) -> None:
    model = seg_models.make_mobileseg(tmp_path / "seg.onnx")
    write_sidecar(tmp_path / sidecar_name)
    frame = turntable_frame()
    with create_segmenter({"type": "mobileseg", "model": str(model), "threads": 1}) as seg:
        assert isinstance(seg, MobileSegSegmenter)
        prob = seg.probability(frame)
        mask = seg.mask(frame)
    np.testing.assert_allclose(prob, mobileseg_reference(frame), atol=1e-4)
    assert_matches_rect(mask, band=8)  # one model output pixel spans ~7 frame pixels


def test_mobileseg_sidecar_errors(tmp_path: Path) -> None:
    model = seg_models.make_mobileseg(tmp_path / "seg.onnx")
    with pytest.raises(DataFileError) as err:
        create_segmenter({"type": "mobileseg", "model": str(model)})
    assert "seg.json" in str(err.value) and "seg.onnx.json" in str(err.value) and "sidecar" in str(err.value)
    write_sidecar(tmp_path / "seg.json", std=[0.2, 0.0, 0.2])
    with pytest.raises(ConfigError, match=r"(?s)seg.json.*std\[1\].*greater than 0"):
        create_segmenter({"type": "mobileseg", "model": str(model)})
    write_sidecar(tmp_path / "seg.json", output="logits")
    with pytest.raises(ModelError, match=r"no output 'logits'.*'mask_logits'"):
        create_segmenter({"type": "mobileseg", "model": str(model)})
    write_sidecar(tmp_path / "seg.json", input_size=[128, 128])
    with pytest.raises(ModelError, match=r"seg.onnx.*\(N, 3, 128, 128\)"):
        create_segmenter({"type": "mobileseg", "model": str(model)})


def test_mobileseg_with_calibration_drops_the_empty_stages_own_regions(tmp_path: Path) -> None:
    from edge.segment.bgdiff import BackgroundModel

    model = seg_models.make_mobileseg(tmp_path / "seg.onnx")
    write_sidecar(tmp_path / "seg.json")
    empty = turntable_frame()
    empty[RECT] = (150, 150, 150)  # the turntable without the part ...
    empty[:, 280:] = (210, 30, 25)  # ... and a red machine part along the right edge, larger than it
    rng = np.random.default_rng(1)
    frames = [np.clip(empty + rng.normal(0, 2, empty.shape), 0, 255).astype(np.uint8) for _ in range(3)]
    BackgroundModel.fit(frames).save(tmp_path / "background.npz")
    (tmp_path / "calibration.json").write_text(
        json.dumps({"format_version": 1, "background": {"model": "background.npz", "frames": 3}})
    )
    frame = turntable_frame()
    frame[:, 280:] = (210, 30, 25)
    cfg = {"type": "mobileseg", "model": str(model), "threads": 1}
    with create_segmenter(cfg) as plain:
        mask, count = plain.mask_and_count(frame)
    assert count == 2 and mask[:, 290:].all() and not mask[RECT].any()  # the machine is the largest
    with create_segmenter({**cfg, "calibration": True}, calibration=tmp_path / "calibration.json") as seg:
        mask, count = seg.mask_and_count(frame)
        assert seg.static_regions((H, W))[:, 285:].all()  # type: ignore[attr-defined]
        half = seg.mask(cv2.resize(frame, (W // 2, H // 2), interpolation=cv2.INTER_AREA))
    assert count == 1
    assert_matches_rect(mask, band=8)
    assert half.shape == (H // 2, W // 2) and half[:, 140:].max() == 0  # the stage rescaled to the frame
    with pytest.raises(ConfigError, match="no calibration file was given"):
        create_segmenter({**cfg, "calibration": True})


def test_mobileseg_missing_model(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"nope.onnx.*does not exist.*segmenter.model"):
        create_segmenter({"type": "mobileseg", "model": str(tmp_path / "nope.onnx")})


def test_sigmoid_is_stable_for_extreme_logits() -> None:
    with np.errstate(all="raise"):
        out = sigmoid(np.array([-1e4, 0.0, 1e4], np.float32))
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0], atol=1e-7)


def test_segmenter_sessions_run_without_the_memory_arena(u2net_path: Path, tmp_path: Path) -> None:
    """Segmenters share the engines' session setup, with ONNX Runtime's CPU memory arena off."""
    from edge.engines import create_engine
    from tests.helpers.onnx_models import write_model_set

    with create_segmenter({"type": "u2net", "model": str(u2net_path), "threads": 1}) as seg:
        options = seg._session.get_session_options()
        assert options.enable_cpu_mem_arena is False
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    write_model_set(tmp_path)
    with create_engine("onnxruntime", tmp_path, threads=1) as engine:
        assert engine.backend._session.get_session_options().enable_cpu_mem_arena is True
