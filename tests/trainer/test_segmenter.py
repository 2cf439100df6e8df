"""``trainer segmenter``: learns masks from image/mask pairs, exports what edge's mobileseg loads, resumes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from edge.errors import ConfigError, DataFileError
from edge.segment import create_segmenter
from trainer.cli import main
from trainer.segmenter.cli import parse_size
from trainer.segmenter.config import SegConfig
from trainer.segmenter.data import find_pairs, split_pairs
from trainer.segmenter.evaluate import reference_iou
from trainer.segmenter.train import train_segmenter


def write_renders(
    folder: Path, count: int, seed: int = 0, *, ground: tuple[float, ...] | None = None, part: bool = True
) -> None:
    """Frames of a bright ellipse ("part") on a dim, noisy, unevenly lit ground, masks beside."""
    rng = np.random.default_rng(seed)
    sub = folder / "raw" / "3001" / "4"
    sub.mkdir(parents=True)
    for i in range(count):
        ground = np.asarray(ground) if ground is not None else rng.uniform(20, 90, size=3)
        image = np.empty((96, 128, 3), np.float32)
        image[:] = ground
        image *= np.linspace(0.7, 1.2, 128, dtype=np.float32)[None, :, None]
        image += rng.normal(0, 6, size=image.shape)
        mask = np.zeros((96, 128), np.uint8)
        centre = (int(rng.integers(30, 98)), int(rng.integers(25, 71)))
        axes = (int(rng.integers(10, 24)), int(rng.integers(8, 18)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        if not part:
            mask[:] = 0
        image[mask > 0] = rng.uniform(150, 250, size=3)
        cv2.imwrite(str(sub / f"3001_4_{i}.jpg"), np.clip(image, 0, 255).astype(np.uint8))
        cv2.imwrite(str(sub / f"3001_4_{i}_mask.png"), mask)


def test_learns_exports_and_edge_loads(tmp_path: Path) -> None:
    write_renders(tmp_path / "data", 120)
    cfg = SegConfig(height=64, width=96, epochs=4, batch_size=8, swap=0.3, val_share=0.15, lr=1e-2)
    report = train_segmenter([tmp_path / "data"], tmp_path / "seg", cfg, progress=False)
    iou = report["iou"]["validation"]
    # Calling every pixel "part" scores the part's share of the frame: about 0.07 here.
    assert iou["images"] == report["images"]["validation"] > 5
    assert iou["mean"] > 0.6
    assert report["export_parity_max_abs"] < 1e-3
    sidecar = json.loads((tmp_path / "seg" / "seg.json").read_text())
    assert sidecar["input_size"] == [64, 96] and sidecar["output"] == "mask_logits"
    segmenter = create_segmenter({"type": "mobileseg", "model": str(tmp_path / "seg" / "seg.onnx")})
    frame = cv2.cvtColor(cv2.imread(str(tmp_path / "data/raw/3001/4/3001_4_0.jpg")), cv2.COLOR_BGR2RGB)
    mask = segmenter.mask(frame)
    assert mask.shape == frame.shape[:2] and mask.dtype == np.uint8
    segmenter.close()

    # Photos of a "rig" and frames of its empty stage: scored against the background-difference masks.
    write_renders(tmp_path / "rig", 12, seed=5, ground=(50.0, 60.0, 55.0))
    write_renders(tmp_path / "empty", 3, seed=6, ground=(50.0, 60.0, 55.0), part=False)
    photos = tmp_path / "rig" / "raw"
    for m in photos.rglob("*_mask.png"):
        m.unlink()  # real photos come without masks
    real = reference_iou(
        tmp_path / "seg" / "seg.onnx", photos, tmp_path / "empty/raw/3001/4", tmp_path / "ref"
    )
    assert real["images"] == 12
    assert real["mean"] > 0.5
    assert 0.01 < real["reference_median_mask_share"] < 0.2  # the reference found the part, not the frame
    # The same with the empty stage learned: nothing is found there, so the figures hold.
    calibrated = reference_iou(
        tmp_path / "seg" / "seg.onnx",
        photos,
        tmp_path / "empty/raw/3001/4",
        tmp_path / "ref",
        calibrated=True,
    )
    assert calibrated["images"] == 12 and calibrated["mean"] > 0.5


def test_resumes_after_the_last_finished_epoch(tmp_path: Path) -> None:
    write_renders(tmp_path / "data", 40)
    one = SegConfig(height=32, width=32, epochs=1, batch_size=8, swap=0.0, val_share=0.2)
    first = train_segmenter([tmp_path / "data"], tmp_path / "seg", one, progress=False)
    assert [h["epoch"] for h in first["history"]] == [1]
    two = SegConfig(height=32, width=32, epochs=2, batch_size=8, swap=0.0, val_share=0.2)
    second = train_segmenter([tmp_path / "data"], tmp_path / "seg", two, progress=False)
    assert [h["epoch"] for h in second["history"]] == [1, 2]
    assert second["history"][0] == first["history"][0]  # epoch 1 was not trained again
    other = SegConfig(height=64, width=64, epochs=3, batch_size=8, swap=0.0, val_share=0.2)
    with pytest.raises(ConfigError, match="other settings"):
        train_segmenter([tmp_path / "data"], tmp_path / "seg", other, progress=False)


def test_bad_input_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match=r"_mask\.png"):
        find_pairs([tmp_path / "empty"])
    with pytest.raises(DataFileError, match="does not exist"):
        find_pairs([tmp_path / "missing"])
    with pytest.raises(ConfigError, match="WIDTHxHEIGHT"):
        parse_size("320")
    with pytest.raises(ConfigError, match="multiples of 16"):
        parse_size("300x200")
    assert parse_size("320x240") == (240, 320)
    # The split depends on the renders' own names, not on where the folder lies.
    names = [Path(f"raw/3001/4/3001_4_{i}.jpg") for i in range(50)]
    here = split_pairs([(Path("/a") / n, Path("/a") / n) for n in names], 0.2)
    there = split_pairs([(Path("/b/c") / n, Path("/b/c") / n) for n in names], 0.2)
    assert [p[0].name for p in here[1]] == [p[0].name for p in there[1]] and here[1]
    write_renders(tmp_path / "few", 2)
    with pytest.raises(ConfigError, match="validation"):
        split_pairs(find_pairs([tmp_path / "few"]), 0.01)
    assert main(["segmenter", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "_mask.png" in caplog.text


def test_lite0_encoder_keeps_the_input_size_and_unknown_encoders_are_named() -> None:
    import torch

    from trainer.segmenter.network import build_model

    model = build_model(1.0, "lite0", pretrained=False).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 96, 128))
    assert tuple(out.shape) == (2, 1, 96, 128)
    with pytest.raises(ConfigError, match="unknown"):
        build_model(1.0, "resnet")


def test_int8_copy_is_measured_shipped_and_checked_against_the_manifest(tmp_path: Path) -> None:
    from edge.errors import ModelError
    from edge.manifest import load_manifest
    from tests.helpers.onnx_models import write_model_set

    write_renders(tmp_path / "data", 60)
    model_set = tmp_path / "set"
    write_model_set(model_set)
    args = ["segmenter", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "seg"), "--size", "64x48"]
    args += ["--epochs", "2", "--batch-size", "8", "--val-share", "0.2", "--lr", "1e-2", "--no-progress"]
    assert main([*args, "--int8", "--ship-to", str(model_set)]) == 0

    report = json.loads((tmp_path / "seg" / "report.json").read_text())
    fp32, int8 = report["iou"]["validation"], report["iou_int8"]["validation"]
    assert fp32["images"] == int8["images"] > 5
    assert int8["mean"] > fp32["mean"] - 0.1  # the int8 copy segments about as well
    names = {i.op_type for i in __import__("onnx").load(str(tmp_path / "seg" / "seg_int8.onnx")).graph.node}
    assert "QuantizeLinear" in names and "DequantizeLinear" in names

    (entry,) = load_manifest(model_set).segmenters
    assert (entry.path, entry.sidecar, entry.precision) == ("seg_int8.onnx", "seg_int8.json", "int8")
    assert entry.evaluation["mask_iou"]["validation"] == int8
    assert load_manifest(model_set).files  # the classifier's entries are kept
    shipped = create_segmenter({"type": "mobileseg", "model": str(model_set / "seg_int8.onnx")})
    assert shipped.shipped == entry  # type: ignore[attr-defined]
    frame = cv2.cvtColor(cv2.imread(str(tmp_path / "data/raw/3001/4/3001_4_0.jpg")), cv2.COLOR_BGR2RGB)
    assert shipped.mask(frame).shape == frame.shape[:2]
    shipped.close()
    # A model outside a model set is not checked; a shipped one that changed is refused, named.
    assert (
        create_segmenter({"type": "mobileseg", "model": str(tmp_path / "seg" / "seg.onnx")}).shipped is None
    )  # type: ignore[attr-defined]
    sidecar = model_set / "seg_int8.json"
    sidecar.write_text(sidecar.read_text() + " ")
    with pytest.raises(ModelError, match=r"seg_int8\.json.*sha256.*--ship-to"):
        create_segmenter({"type": "mobileseg", "model": str(model_set / "seg_int8.onnx")})

    # Shipping again replaces the entry; an int8 ship without --int8 is refused before training.
    assert main([*args, "--int8", "--ship-to", str(model_set)]) == 0
    assert len(load_manifest(model_set).segmenters) == 1
    assert main([*args, "--ship-to", str(model_set)]) == 2
    # A second segmenter (another rig's) ships beside it under its own name, checked the same way.
    named = [*args, "--ship-to", str(model_set), "--ship-precision", "fp32", "--ship-name", "seg_close"]
    assert main(named) == 0
    paths = {(e.path, e.sidecar, e.precision) for e in load_manifest(model_set).segmenters}
    assert paths == {("seg_int8.onnx", "seg_int8.json", "int8"), ("seg_close.onnx", "seg_close.json", "fp32")}
    close = create_segmenter({"type": "mobileseg", "model": str(model_set / "seg_close.onnx")})
    assert close.shipped is not None and close.shipped.path == "seg_close.onnx"  # type: ignore[attr-defined]
    close.close()
    assert main([*args, "--ship-to", str(model_set), "--ship-precision", "fp32", "--ship-name", "../x"]) == 2
    # A name that would overwrite the classifier's file or the manifest is refused, and nothing is copied.
    classifier = load_manifest(model_set).files[0].path
    before = {f.name: f.read_bytes() for f in model_set.iterdir()}
    for stem in (Path(classifier).stem, "manifest"):
        clash = [*args, "--ship-to", str(model_set), "--ship-precision", "fp32", "--ship-name", stem]
        assert main(clash) == 2
    assert {f.name: f.read_bytes() for f in model_set.iterdir()} == before


def test_zoom_enlarges_the_part_and_keeps_image_and_mask_aligned() -> None:
    from trainer.segmenter.data import zoom_to_part

    rgb = np.full((96, 128, 3), 40, np.uint8)
    mask = np.zeros((96, 128), bool)
    mask[70:78, 100:110] = True  # a small part near a corner
    rgb[mask] = 220
    rng = np.random.default_rng(0)
    grown = []
    for _ in range(20):
        big_rgb, big_mask = zoom_to_part(rgb, mask, rng, 4.0)
        assert big_rgb.shape == rgb.shape and big_mask.shape == mask.shape
        assert big_mask.any()  # the window always holds the part's centre
        bright = big_rgb[..., 0] > 130
        assert (bright == big_mask).mean() > 0.99  # image and mask moved together
        grown.append(big_mask.sum() / mask.sum())
    assert min(grown) >= 0.9 and max(grown) > 4  # up to 16x the area at zoom 4
    empty = np.zeros_like(mask)
    assert zoom_to_part(rgb, empty, rng, 4.0)[0] is rgb  # nothing to zoom to


def test_the_help_explains_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["segmenter", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "Learned from the studio's exact masks" in out and "--ship-to" in out
