"""trainer evaluate + report: figures checked by hand on a model whose answers are known.

The model is the tiny ONNX classifier of ``tests.helpers.onnx_models`` with hand-set weights: the
input is not normalised (mean 0, std 1), so its features are the image's mean R, G, B in 0..1; the
part head is ``10 * (R, G, B)`` for parts 3001, 3003, 3004, the colour head the same for colours red
(4), green (2), blue (1), and the embedding is the normalised (R, G, B).

The data are flat-colour images: part 3001 red with its last view of every capture greenish, so
that view alone reads as 3003 (but its embedding has exact twins of part 3001 in the gallery); 3003
pure green; 3004 pure blue. Part 3020 (yellow) is not in the model: it is enrolled from its first
capture; its second capture is yellow too (found), its third reddish (taken for 3001).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from edge.errors import ConfigError
from edge.manifest import Manifest, load_manifest, make_file_entry, write_manifest
from edge.manifest_entries import InputSpec
from tests.helpers.onnx_models import ClassifierWeights, build_classifier
from trainer.evaluate import add_parser, select_artifacts, unseen_protocol
from trainer.model_set import DataProtocol, load_samples, split_like_training

PARTS = ["3001", "3003", "3004"]
COLORS = [4, 2, 1]  # red, green, blue: colour class i is channel i like part class i
RED, GREEN, BLUE = (200, 0, 0), (0, 200, 0), (0, 0, 200)
GREENISH, YELLOW, REDDISH = (40, 200, 0), (200, 200, 0), (250, 30, 0)
VIEWS = 4
FRACTIONS = (0.6, 0.2, 0.2)


def write_data(root: Path) -> Path:
    """The flat-colour data set in the legacy layout (manifest.csv, no masks)."""
    rows = []
    plan = {
        ("3001", 4): [[RED, RED, RED, GREENISH]] * 5,
        ("3003", 2): [[GREEN] * VIEWS] * 5,
        ("3004", 1): [[BLUE] * VIEWS] * 5,
        ("3020", 14): [[YELLOW] * VIEWS, [YELLOW] * VIEWS, [REDDISH] * VIEWS],
    }
    for (part, color), captures in plan.items():
        for capture, views in enumerate(captures):
            for view, rgb in enumerate(views):
                rel = f"images/{part}/{part}_{capture}_{view}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                image = np.zeros((16, 16, 3), np.uint8) + np.asarray(rgb, np.uint8)
                cv2.imwrite(str(root / rel), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                rows.append([rel, part, color, capture, view])
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_path", "part_num", "color_id", "capture", "view"])
        writer.writerows(rows)
    return root


def write_known_model_set(folder: Path) -> Manifest:
    """The hand-weighted classifier as a model set (fp32 ONNX + manifest)."""
    folder.mkdir(parents=True, exist_ok=True)
    eye = np.eye(3, dtype=np.float32)
    zero = np.zeros(3, np.float32)
    weights = ClassifierWeights(10 * eye, zero, 10 * eye, zero, eye, zero)
    onnx.save(build_classifier(weights, (16, 16)), folder / "model_fp32.onnx")
    manifest = Manifest(
        architecture="hand_weighted_gap",
        input=InputSpec(size=(16, 16), mean=(0, 0, 0), std=(1, 1, 1)),
        parts=PARTS,
        colors=COLORS,
        embedding_dim=3,
        files=[make_file_entry(folder, "model_fp32.onnx", "onnxruntime", "fp32")],
        build={"data": DataProtocol(fractions=FRACTIONS, seed=0).as_dict()},
    )
    write_manifest(folder, manifest)
    return manifest


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="plots need matplotlib")
def test_figures_match_the_hand_computed_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_data(tmp_path / "data")
    folder = tmp_path / "set"
    write_known_model_set(folder)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["evaluate", "--model-set", str(folder), "--data", str(data), "--out", str(tmp_path / "report")]
    )
    assert args.func(args) == 0
    assert "part top-1" in capsys.readouterr().out

    # Test captures per known part under the model set's recorded split (0.6/0.2/0.2, seed 0).
    splits, _ = split_like_training(load_samples([data]), DataProtocol(fractions=FRACTIONS))
    n = {p: len({s.capture_id for s in splits["test"] if s.part_num == p}) for p in PARTS}
    assert all(n.values())
    total = sum(n.values())
    # Every 3001 capture has 3 right views out of 4; every other view is right.
    single = (3 * n["3001"] + 4 * n["3003"] + 4 * n["3004"]) / (4 * total)

    report = load_manifest(folder).evaluation["evaluate"]
    f = report["artifacts"]["onnxruntime/fp32"]
    assert report["test_images"] == 4 * total and report["test_captures"] == total
    assert f["part_top1"] == pytest.approx(single)
    assert f["part_top5"] == 1.0  # three classes: always in the top 5
    assert f["fused_part_top1"] == 1.0  # three red views outvote one greenish view
    assert f["color_top1"] == pytest.approx(single)  # the greenish view's colour is wrong as well
    assert f["fused_color_top1"] == 1.0
    assert f["vector_top1"] == 1.0 and f["vector_fused_top1"] == 1.0  # exact twins in the gallery
    assert f["top_confused"] == [
        {"true": "3001", "predicted": "3003", "count": n["3001"], "share_of_true": 0.25}
    ]
    assert f["top_confused_colors"] == [  # the greenish view of red 3001 reads as green
        {"true": 4, "predicted": 2, "count": n["3001"], "share_of_true": 0.25}
    ]
    assert "confusion" not in f  # the matrix stays in the report folder
    assert report["unseen"]["parts"] == ["3020"]
    assert report["unseen"]["enrolled_images"] == 4 and report["unseen"]["query_images"] == 8
    assert report["unseen"]["seen_in_training"] is False
    assert f["unseen_top1"] == 0.5 and f["unseen_fused_top1"] == 0.5  # yellow found, reddish not

    out = tmp_path / "report"
    full = json.loads((out / "report.json").read_text())
    conf = full["artifacts"]["onnxruntime/fp32"]["confusion"]
    assert conf == {
        "parts": ["3001", "3003"],
        "matrix": [[3 * n["3001"], n["3001"]], [0, 4 * n["3003"]]],
        "other": [0, 0],
    }
    md = (out / "report.md").read_text()
    assert "| onnxruntime/fp32 | model_fp32.onnx |" in md and f"{single:.3f}" in md
    assert "| 3001 | 3003 |" in md
    assert f"| Red (4) | Green (2) | {n['3001']} | 0.250 |" in md
    # Where it was measured: the int8 figures depend on the CPU's int8 instructions.
    assert f"int8 dot product: {full['machine']['int8_dot']}" in md and full["machine"]["int8_dot"]
    for png in ("artifacts.png", "confusion.png"):
        image = cv2.imread(str(out / png))
        assert image is not None and image.shape[0] > 100 and image.std() > 0


def test_a_training_folder_found_under_another_path_keeps_its_source_name(tmp_path: Path) -> None:
    """A build that links a training run from another folder names the same renders by another
    path: matched by folder name, they keep training's source name, so they split as training did."""
    import shutil

    trained = write_data(tmp_path / "old" / "render-a")
    moved = tmp_path / "new" / "render-a"
    shutil.copytree(trained, moved)
    protocol = DataProtocol(sources=({"path": str(trained), "kind": "auto", "name": "render-a"},))
    assert {s.source for s in load_samples([trained], protocol)} == {"render-a"}
    assert {s.source for s in load_samples([moved], protocol)} == {"render-a"}
    assert {s.source for s in load_samples([moved])} != {"render-a"}  # no protocol: the kind's name
    twins = DataProtocol(
        sources=(
            {"path": str(tmp_path / "x" / "render-a"), "kind": "auto", "name": "one"},
            {"path": str(tmp_path / "y" / "render-a"), "kind": "auto", "name": "two"},
        )
    )
    assert {s.source for s in load_samples([moved], twins)} - {"one", "two"}  # ambiguous: not guessed


def test_unseen_protocol_options(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    manifest = write_known_model_set(tmp_path / "set")
    samples = load_samples([data])
    none = unseen_protocol(samples, manifest, 0, 1, 0)
    assert none["parts"] == [] and none["queries"] == []
    two = unseen_protocol(samples, manifest, None, 2, 0)
    assert two["parts"] == ["3020"] and len(two["enrolled"]) == 8 and len(two["queries"]) == 4
    assert unseen_protocol(samples, manifest, None, 3, 0)["skipped"] == ["3020"]  # no capture left
    # Without unknown parts, known ones stand in, and the figure is flagged as optimistic.
    known = [s for s in samples if s.part_num != "3020"]
    fallback = unseen_protocol(known, manifest, 1, 1, 0)
    assert fallback["seen_in_training"] is True and len(fallback["parts"]) == 1


def test_artifact_selection(tmp_path: Path) -> None:
    manifest = write_known_model_set(tmp_path / "set")
    assert [f.key for f in select_artifacts(manifest, "all")] == ["onnxruntime/fp32"]
    assert [f.key for f in select_artifacts(manifest, "onnxruntime/fp32")] == ["onnxruntime/fp32"]
    with pytest.raises(ConfigError, match="litert/int8"):
        select_artifacts(manifest, "litert/int8")


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="plots need matplotlib")
def test_split_all_evaluates_an_independent_test_set(tmp_path: Path) -> None:
    gallery = write_data(tmp_path / "train-data")
    test = write_data(tmp_path / "test-data")
    folder = tmp_path / "set"
    write_known_model_set(folder)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    common = ["evaluate", "--model-set", str(folder), "--data", str(test), "--split", "all"]

    # Every image of the known parts is a test image: 5 captures x 4 views x 3 parts.
    args = parser.parse_args([*common, "--gallery", str(gallery), "--out", str(tmp_path / "r1")])
    assert args.func(args) == 0
    report = load_manifest(folder).evaluation["evaluate"]
    f = report["artifacts"]["onnxruntime/fp32"]
    assert report["split"] == "all" and report["test_images"] == 60 and report["test_captures"] == 15
    assert report["gallery_images"] == 60  # the gallery folder's known-part images, none of the test's
    assert report["gallery_data"] == [str(gallery.resolve())]
    assert f["part_top1"] == pytest.approx((15 + 20 + 20) / 60)  # one greenish view per 3001 capture
    assert f["fused_part_top1"] == 1.0
    assert f["vector_top1"] == 1.0 and f["vector_gallery"] == 60
    # The unseen part 3020 comes from the test data: its first capture enrolled, two queried.
    assert report["unseen"]["parts"] == ["3020"] and report["unseen"]["query_images"] == 8
    assert f["unseen_top1"] == 0.5 and f["unseen_gallery"] == 64
    md = (tmp_path / "r1" / "report.md").read_text()
    assert f"gallery of 60 images from `{gallery.resolve()}`" in md and "split: **all**" in md

    # Without --gallery, an independent test set gives no vector-search figures (no gallery).
    args = parser.parse_args([*common, "--out", str(tmp_path / "r2")])
    assert args.func(args) == 0
    f = load_manifest(folder).evaluation["evaluate"]["artifacts"]["onnxruntime/fp32"]
    assert f["part_top1"] == pytest.approx(55 / 60) and "vector_top1" not in f


def test_part_prior_figures_sit_beside_the_plain_ones(tmp_path: Path) -> None:
    """A prior 1000 times for 3001: the greenish 3001 view (3003 by e^6.3 = 528 times) flips to
    3001; pure green and blue views (e^7.8 = 2,545 times) keep their answers."""
    test = write_data(tmp_path / "test-data")
    folder = tmp_path / "set"
    write_known_model_set(folder)
    (tmp_path / "parts.txt").write_text("3001 1000\n3003 1\n3004 1\n")
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    argv = ["evaluate", "--model-set", str(folder), "--data", str(test), "--split", "all", "--out"]
    prior = ["--part-prior", str(tmp_path / "parts.txt")]
    assert parser.parse_args([*argv, "r", *prior]).part_prior_strength == 0.25  # the daemon's default
    args = parser.parse_args([*argv, str(tmp_path / "r"), *prior, "--part-prior-strength", "1"])
    assert args.func(args) == 0
    f = load_manifest(folder).evaluation["evaluate"]["artifacts"]["onnxruntime/fp32"]
    assert f["part_top1"] == pytest.approx(55 / 60) and f["prior_part_top1"] == 1.0
    assert f["prior_paired"] == {"gained": 5, "lost": 0, "p": 0.0625}  # the five greenish views
    assert f["fused_part_top1"] == 1.0 and f["prior_fused_part_top1"] == 1.0
    assert "parts.txt" in f["prior_source"]
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Part prior (onnxruntime/fp32" in md
    assert "0.917 -> 1.000 (5 images gained, 0 lost; McNemar p = 0.062)" in md
    # At strength 0.5 the 3001 weight is sqrt(1000) = 32: too little to outweigh the greenish view.
    args = parser.parse_args(
        [
            *argv,
            str(tmp_path / "r3"),
            "--part-prior",
            str(tmp_path / "parts.txt"),
            "--part-prior-strength",
            "0.5",
        ]
    )
    assert args.func(args) == 0
    f = load_manifest(folder).evaluation["evaluate"]["artifacts"]["onnxruntime/fp32"]
    assert f["prior_part_top1"] == pytest.approx(55 / 60) and "strength 0.5" in f["prior_source"]
    args = parser.parse_args([*argv, str(tmp_path / "r2"), "--part-prior", "popularity"])
    with pytest.raises(ConfigError, match="trainer popularity"):
        args.func(args)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="plots need matplotlib")
def test_segmenter_masks_replace_the_images_own_and_are_recorded_apart(tmp_path: Path) -> None:
    """Red 3001s on a wide blue ground, with no mask of their own: cropped by the whole frame the
    model reads blue (3004); cropped by an HSV segmenter that keys the blue out, it reads red."""
    root = tmp_path / "data"
    rows = []
    for capture in range(3):
        for view in range(VIEWS):
            rel = f"images/3001/3001_{capture}_{view}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            image = np.zeros((32, 32, 3), np.uint8) + np.asarray(BLUE, np.uint8)
            image[6:26, 6:26] = RED  # 39% of the frame, 69% of the square crop around it
            cv2.imwrite(str(root / rel), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            rows.append([rel, "3001", 4, capture, view])
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_path", "part_num", "color_id", "capture", "view"])
        writer.writerows(rows)
    seg = tmp_path / "seg.yaml"
    seg.write_text(
        "segmenter:\n  type: hsv\n  background_lower: [100, 100, 50]\n  background_upper: [140, 255, 255]\n"
        "  blur_px: 0\n  min_area_px: 10\n"
    )
    folder = tmp_path / "set"
    write_known_model_set(folder)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    common = ["evaluate", "--model-set", str(folder), "--data", str(root), "--split", "all", "--unseen", "0"]

    args = parser.parse_args([*common, "--out", str(tmp_path / "own")])
    assert args.func(args) == 0
    args = parser.parse_args([*common, "--segmenter", str(seg), "--out", str(tmp_path / "seg")])
    assert args.func(args) == 0
    evaluation = load_manifest(folder).evaluation
    own, segmented = evaluation["evaluate"], evaluation["evaluate_segmented"]
    assert own["masks"] == "own" and segmented["masks"]["segmenter"]["type"] == "hsv"
    assert own["artifacts"]["onnxruntime/fp32"]["part_top1"] == 0.0
    assert segmented["artifacts"]["onnxruntime/fp32"]["part_top1"] == 1.0
    md = (tmp_path / "seg" / "report.md").read_text()
    assert f"masks: what the `hsv` segmenter of `{seg}` finds" in md
    assert "masks: each image's own" in (tmp_path / "own" / "report.md").read_text()
