"""trainer evaluate-real on photos whose answers are known.

The model set is the hand-weighted classifier of ``test_evaluate`` (features: the crop's mean R, G,
B; parts 3001 red, 3003 green, 3004 blue; embedding: the normalised mean colour) with an embedding
index of the three pure colours. Photos are coloured squares on a black cloth (a flat background)
or on a grey, unevenly lit belt whose empty frames are given (a fitted background model); part 3020
(yellow) is not in the model and is scored by enrolment.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import ConfigError, DataFileError
from edge.index import EmbeddingIndex
from edge.manifest import load_manifest, sha256_file, write_manifest
from edge.manifest_entries import IndexEntry
from tests.trainer.test_evaluate import write_known_model_set
from trainer.evaluate import load_segmenter_config
from trainer.evaluate_real import add_parser
from trainer.photo_set import mould, read_photo_set
from trainer.real_report import SECTION_END, SECTION_START, update_report
from trainer.stats import paired_change, wilson_interval

RED, GREEN, BLUE, YELLOW, GREENISH = (200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0), (40, 200, 0)


def write_model_set_with_index(folder: Path) -> None:
    manifest = write_known_model_set(folder)
    vectors = np.eye(3, dtype=np.float32)
    index = EmbeddingIndex(3, threads=1)
    index.add(vectors, ["3001", "3003", "3004"])
    index.save(folder / "index.npz")
    (folder / "index_labels.json").write_text(json.dumps(["3001", "3003", "3004"]))
    entry = IndexEntry(
        path="index.npz",
        sha256=sha256_file(folder / "index.npz"),
        space="cosine",
        dim=3,
        M=16,
        ef_construction=200,
        ef_search=64,
        count=3,
        labels="index_labels.json",
        labels_sha256=sha256_file(folder / "index_labels.json"),
    )
    write_manifest(folder, manifest.model_copy(update={"index": entry}))


def square(background: np.ndarray, rgb: tuple[int, int, int], at: tuple[int, int]) -> np.ndarray:
    image = background.copy()
    y, x = at
    image[y : y + 20, x : x + 24] = rgb
    return image


def save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def write_cloth_photos(root: Path) -> None:
    """On black: 3001 red (one photo greenish: read as 3003), 3003 green, 3020 yellow (unknown)."""
    black = np.zeros((64, 80, 3), np.uint8)
    plan = {"3001": [RED] * 5 + [GREENISH], "3003b": [GREEN] * 4, "3020": [YELLOW] * 7}
    for part, colours in plan.items():
        for i, rgb in enumerate(colours):
            save(root / part / f"{i:02d}.png", square(black, rgb, (10 + 3 * i, 12 + 2 * i)))
    (root / "_empty").mkdir()  # skipped: folders starting with '_' are not parts


def belt(rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    xs = np.arange(80, dtype=np.float32)[None, :, None]
    light = 1.0 - 0.3 * xs / 80
    frame = np.array([120, 120, 125], np.float32) * light * gain + rng.normal(0, 1.5, (64, 80, 3))
    return np.clip(frame, 0, 255).astype(np.uint8)


def write_belt_photos(root: Path, empty: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(3):
        save(empty / f"empty{i}.png", belt(rng))
    for i in range(4):
        save(root / "3004" / f"{i}.png", square(belt(rng, gain=0.9), BLUE, (20, 10 + 10 * i)))


def test_mould_drops_a_single_letter_suffix() -> None:
    assert mould("3040a") == mould("3040b") == "3040"
    assert mould("3062B") == "3062"
    assert mould("3626bpr0001") == "3626bpr0001"  # prints are not merged
    assert mould("973c01") == "973c01"
    assert mould("3001") == "3001"


def test_photo_set_layouts(tmp_path: Path) -> None:
    save(tmp_path / "3001" / "a.jpg", np.zeros((4, 4, 3), np.uint8))
    save(tmp_path / "3003" / "4" / "b.png", np.zeros((4, 4, 3), np.uint8))
    save(tmp_path / "_empty" / "c.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "3003" / "notes.txt").write_text("not a photo")
    photos = read_photo_set(tmp_path)
    assert [(p.part, p.color_id, p.path.name) for p in photos] == [
        ("3001", None, "a.jpg"),
        ("3003", 4, "b.png"),
    ]
    with pytest.raises(DataFileError, match="no photos"):
        read_photo_set(_empty_dir(tmp_path))
    with pytest.raises(DataFileError, match="does not exist"):
        read_photo_set(tmp_path / "missing")


def _empty_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "nothing"
    (folder / "3001").mkdir(parents=True)
    return folder


def test_cli_scores_known_parts_and_enrols_unknown_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_set = tmp_path / "set"
    write_model_set_with_index(model_set)
    cloth, belt_photos, empty = tmp_path / "cloth", tmp_path / "belt", tmp_path / "empty"
    write_cloth_photos(cloth)
    write_belt_photos(belt_photos, empty)
    (tmp_path / "cloth.yaml").write_text("segmenter: {type: bgdiff, background_rgb: [0, 0, 0]}\n")
    (tmp_path / "belt.yaml").write_text("segmenter: {type: bgdiff, calibration: true}\n")
    report_md = tmp_path / "REPORT.md"
    report_md.write_text("# Evaluation\n\nrender figures\n")
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    argv = [
        "evaluate-real", "--model-set", str(model_set), "--out", str(tmp_path / "out"),
        "--set", f"cloth={cloth}:{tmp_path / 'cloth.yaml'}",
        "--set", f"belt={belt_photos}:{tmp_path / 'belt.yaml'}:{empty}",
        "--enroll", "1,5", "--report", str(report_md), "--record", "--enroll-every-part",
        "--rig-threshold", "0.85",
    ]  # fmt: skip
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    assert "part top-1" in capsys.readouterr().out

    report = json.loads((tmp_path / "out" / "real.json").read_text())
    cloth_fig = report["sets"]["cloth"]
    assert cloth_fig["unknown_parts"] == ["3020"]
    f = cloth_fig["artifacts"]["onnxruntime/fp32"]
    known = f["known"]
    # 10 known photos: 5 red + 1 greenish (wrong) of 3001, 4 green of "3003b" (same mould as 3003).
    assert known["photos"] == 10 and known["part_top1"] == pytest.approx(0.9)
    assert known["part_top5"] == 1.0  # three classes: always in the top 5
    assert known["majority_baseline"] == pytest.approx(0.6)
    assert known["part_top1_mean_over_parts"] == pytest.approx((5 / 6 + 1.0) / 2, abs=1e-4)  # each part once
    assert known["per_part"]["3003b"]["top1"] == 1.0
    assert known["confused"] == [{"true": "3001", "predicted": "3003", "photos": 1}]
    assert known["per_part"]["3001"]["colors"][0] == ["Red (4)", 5]
    # 3020: 7 yellow photos; with 1 (or 5) enrolled the other 6 (2) are all found by vector search.
    assert f["enroll_1"]["queries"] == 6 and f["enroll_1"]["vector_top1"] == 1.0
    assert f["enroll_5"]["queries"] == 2 and f["enroll_5"]["vector_top1"] == 1.0
    # The daemon's decisions, the enrolled yellow views searched first (--rig-threshold 0.85): the
    # yellow part is named, the known ones keep theirs, none is taken for the enrolled one.
    e1 = f["enroll_1"]
    assert e1["rig_threshold"] == 0.85 and e1["decision_top1"] == 1.0
    assert e1["hybrid_top1_per_part"]["3020"] == 1.0
    assert e1["hybrid_top1_per_part"]["3003b"] == 1.0
    assert e1["known_taken_for_enrolled"] == {"3001": 0.0, "3003b": 0.0}
    # One merged search decides the same here (the shipped index holds a green vector for 3003).
    assert e1["merged_known_taken_for_enrolled"] == {"3001": 0.0, "3003b": 0.0}
    assert e1["merged_decision_top1"] == 1.0
    # The sweep: in this colour-mean embedding the greenish 3001 photo's cosine to the yellow view
    # is 0.83 and a red or green one's 0.71, so at 0.7 every known photo goes to the enrolled part.
    sweep = {r["threshold"]: r for r in e1["rig_sweep"]}
    assert sweep[0.85]["known_taken"] == 0.0 and sweep[0.8]["known_taken"] == pytest.approx(0.1)
    assert sweep[0.75]["known_taken"] == pytest.approx(0.1) and sweep[0.7]["known_taken"] == 1.0
    assert all(r["enrolled_top1"] == 1.0 for r in e1["rig_sweep"])
    # Every part enrolled from its first photo: all three parts are queried on their other photos.
    every = f["enroll_all_1"]
    assert every["parts"] == ["3001", "3003b", "3020"] and every["queries"] == (6 - 1) + (4 - 1) + (7 - 1)
    assert every["known_taken_for_enrolled"] == {} and every["hybrid_top1_per_part"]["3020"] == 1.0
    # rig_threshold fitted to the 3 enrolled photos alone (none for one enrolled part)
    assert every["fitted"]["views"] == 3 and every["fitted"]["parts"] == 3 and e1["fitted"] is None
    assert 0 < every["fitted"]["threshold"] <= 1 and every["fitted"]["decision_top1"] is not None
    fitted_per_part = every["fitted"]["top1_per_part"]
    assert set(fitted_per_part) == {"3001", "3003b", "3020"}
    counts = {"3001": 6 - 1, "3003b": 4 - 1, "3020": 7 - 1}  # each part's scored photos
    assert every["fitted"]["decision_top1"] == pytest.approx(
        sum(fitted_per_part[p] * n for p, n in counts.items()) / sum(counts.values()), abs=1e-3
    )
    assert "fitted to the enrolled photos alone" in (tmp_path / "out" / "real.md").read_text()
    assert "Every part enrolled from its first 1 photo(s)" in (tmp_path / "out" / "real.md").read_text()
    assert (
        "known parts' photos named as an enrolled part: 3001 0.0%"
        in (tmp_path / "out" / "real.md").read_text()
    )

    belt_fig = report["sets"]["belt"]
    assert belt_fig["background_fit"]["frames"] == 3
    assert belt_fig["segmentation"]["empty_masks"] == 0
    assert belt_fig["artifacts"]["onnxruntime/fp32"]["known"]["part_top1"] == 1.0  # blue on grey: 3004

    # The drawing: in the output folder, and beside the report, linked from its section.
    for png in (
        tmp_path / "out" / "real.png",
        tmp_path / "real_photos.png",
        tmp_path / "out" / "rig_threshold.png",
        tmp_path / "real_rig_threshold.png",
    ):
        drawn = cv2.imread(str(png))
        assert drawn is not None and drawn.shape[0] > 200 and drawn.shape[1] > 400, png
    assert "](real.png)" in (tmp_path / "out" / "real.md").read_text()
    assert "](rig_threshold.png)" in (tmp_path / "out" / "real.md").read_text()

    text = report_md.read_text()
    assert "](real_photos.png)" in text and "](real_rig_threshold.png)" in text
    assert text.startswith("# Evaluation\n\nrender figures\n")
    assert (
        text.count(SECTION_START) == 1
        and "| onnxruntime/fp32 | 10 | 90.0% | 100.0% | 60.0% | 91.7% |" in text
    )
    assert "a constant guess scores 1 / 2 = 50.0%" in text
    # Where it was measured: int8 figures depend on the CPU's int8 instructions (edge.bench).
    assert report["machine"]["cores"] == os.cpu_count() and report["machine"]["int8_dot"]
    assert f"cores ({report['machine']['cpu']}); int8 dot product: {report['machine']['int8_dot']}" in text
    # The command that remakes the section: model set, sets, report and record, no local output path.
    assert f"trainer evaluate-real --model-set {model_set} --out OUT --set cloth=" in text
    assert f"--report {report_md} --enroll-every-part --rig-threshold 0.85 --record\n" in text
    update_report(report_md, f"{SECTION_START}\nnew\n{SECTION_END}\n")  # a second run replaces it
    assert report_md.read_text().count(SECTION_START) == 1 and "\nnew\n" in report_md.read_text()
    recorded = load_manifest(model_set).evaluation["real"]
    assert recorded["cloth"]["onnxruntime/fp32"]["part_top1"] == pytest.approx(0.9)
    assert recorded["cloth"]["onnxruntime/fp32"]["part_top1_mean_over_parts"] == pytest.approx(0.9167)


def test_bad_set_spec_is_a_clear_error(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate-real", "--model-set", "x", "--out", "y", "--set", "no-equals-sign"])


def test_segmenter_yaml_paths_are_taken_from_its_folder(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    yaml_file = tmp_path / "real" / "belt.yaml"
    yaml_file.write_text("segmenter: {type: mobileseg, model: ../models/seg.onnx, calibration: true}\n")
    section = load_segmenter_config(yaml_file)
    assert Path(section["model"]).resolve() == (tmp_path / "models" / "seg.onnx").resolve()
    assert section["calibration"] is True
    shipped = load_segmenter_config(Path(__file__).parents[2] / "config" / "real" / "belt-mobileseg.yaml")
    assert Path(shipped["model"]).resolve() == (Path(__file__).parents[2] / "models" / "default" / "seg.onnx")


@pytest.mark.parametrize("name", ["belt.yaml", "belt-mobileseg.yaml"])
def test_real_configs_name_segmenters_the_default_set_ships(name: str) -> None:
    """The trained segmenters the real-photo configs name are in models/default, listed and intact."""
    from edge.segment import create_segmenter

    section = load_segmenter_config(Path(__file__).parents[2] / "config" / "real" / name)
    model = Path(section["model"])
    assert model.parent.resolve() == (Path(__file__).parents[2] / "models" / "default").resolve()
    segmenter = create_segmenter({"type": "mobileseg", "model": str(model)})
    try:
        assert segmenter.shipped is not None and segmenter.shipped.path == model.name  # type: ignore[attr-defined]
        frame = np.full((480, 640, 3), 235, np.uint8)
        assert segmenter.mask(frame).shape == (480, 640)
    finally:
        segmenter.close()


def write_cloth_set(tmp_path: Path) -> tuple[Path, Path]:
    """The hand-weighted model set with an index and footprints, and three photos each of a blue 1x2 brick
    (3004, 48 x 24 px) and a bluish-green 2x2 brick (3003, 48 x 48 px) on black cloth at 3 px/mm;
    returns (model set, photos)."""
    model_set = tmp_path / "set"
    write_model_set_with_index(model_set)
    manifest = load_manifest(model_set)
    footprints = {"3001": [(32.0, 16.0, 1.0)], "3003": [(16.0, 16.0, 1.0)], "3004": [(16.0, 8.0, 1.0)]}
    write_manifest(model_set, manifest.model_copy(update={"footprints": footprints}))
    photos, black = tmp_path / "photos", np.zeros((120, 160, 3), np.uint8)
    for i in range(3):  # 3 px/mm: a 1x2 brick is 48 x 24 px, a 2x2 brick 48 x 48 px
        blue = black.copy()
        blue[30 + 5 * i : 54 + 5 * i, 40 + 10 * i : 88 + 10 * i] = BLUE
        save(photos / "3004" / f"{i}.png", blue)
        teal = black.copy()
        teal[30 + 5 * i : 78 + 5 * i, 40 + 10 * i : 88 + 10 * i] = (0, 140, 160)
        save(photos / "3003" / f"{i}.png", teal)
    (tmp_path / "cloth.yaml").write_text("segmenter: {type: bgdiff, background_rgb: [0, 0, 0]}\n")
    return model_set, photos


def test_scale_from_a_reference_part_scores_known_parts_with_the_size_prior(tmp_path: Path) -> None:
    """A bluish-green 2x2 brick (3003) reads as blue (3004, a 1x2) to the colour classifier; its
    16 x 16 mm footprint, at the scale fitted from two 3004 photos (then left out), names it."""
    model_set, photos = write_cloth_set(tmp_path)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    argv = [
        "evaluate-real", "--model-set", str(model_set), "--out", str(tmp_path / "out"),
        "--set", f"cloth={photos}:{tmp_path / 'cloth.yaml'}", "--scale-from", "3004:2", "--enroll", "",
    ]  # fmt: skip
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    f = json.loads((tmp_path / "out" / "real.json").read_text())["sets"]["cloth"]["artifacts"][
        "onnxruntime/fp32"
    ]
    assert f["known"]["photos"] == 6 and f["known"]["part_top1"] == pytest.approx(0.5)  # every photo
    size = f["size"]
    assert size["reference"] == "3004" and size["reference_photos"] == 2 and size["photos"] == 4
    # bgdiff's masks reach a pixel or two past the part: the fitted scale takes that in (3.0 drawn)
    assert 2.9 <= size["px_per_mm"] <= 3.4
    assert size["without"]["part_top1"] == pytest.approx(0.25)  # the third 3004 photo alone
    assert size["with"]["part_top1"] == 1.0
    assert "Size prior (onnxruntime/fp32" in (tmp_path / "out" / "real.md").read_text()
    for bad in ("3004", "3004:0", ":2"):
        with pytest.raises(SystemExit):
            parser.parse_args([*argv[:-4], "--scale-from", bad])
    unknown = parser.parse_args([*argv[:-4], "--scale-from", "3020:2"])
    with pytest.raises(ConfigError, match="no footprint"):
        unknown.func(unknown)


def test_part_prior_figures_with_and_without_the_size_prior(tmp_path: Path) -> None:
    """A parts file that makes 3003 a hundred times as common as 3004: alone it names every photo
    3003 (the network finds the blue 1x2 only e^2.3 = 10 times likelier 3004, its crop being half
    black cloth); with the size prior too, the 1x2's footprint (under a 2x2's by e^-9 or less)
    gives the blue photo back to 3004."""
    model_set, photos = write_cloth_set(tmp_path)
    (tmp_path / "parts.txt").write_text("3003 100\n3004 1\n3001 1\n")
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "evaluate-real", "--model-set", str(model_set), "--out", str(tmp_path / "out"),
            "--set", f"cloth={photos}:{tmp_path / 'cloth.yaml'}", "--scale-from", "3004:2", "--enroll", "",
            "--part-prior", str(tmp_path / "parts.txt"), "--part-prior-strength", "1",
            "--report", str(tmp_path / "REPORT.md"), "--enroll", "1", "--enroll-every-part",
        ]
    )  # fmt: skip
    assert args.func(args) == 0
    f = json.loads((tmp_path / "out" / "real.json").read_text())["sets"]["cloth"]["artifacts"][
        "onnxruntime/fp32"
    ]
    prior = f["prior"]
    assert prior["photos"] == 6 and "parts.txt" in prior["source"]
    assert prior["without"]["part_top1"] == pytest.approx(0.5)  # the blue photos only
    assert prior["with"]["part_top1"] == pytest.approx(0.5)  # the bluish-green photos only
    assert prior["with"]["per_part"]["3003"]["top1"] == 1.0 and prior["with"]["per_part"]["3004"]["top1"] == 0
    assert f["size"]["with"]["part_top1"] == 1.0 and f["size"]["with_prior"]["part_top1"] == 1.0
    # Paired against the same photos without: the prior swaps which three photos are right.
    assert prior["paired"]["with"] == {"gained": 3, "lost": 3, "p": 1.0}
    assert f["size"]["paired"]["with"] == {"gained": 3, "lost": 0, "p": 0.25}
    assert f["size"]["paired"]["with_prior"] == {"gained": 0, "lost": 0, "p": 1.0}  # against the size prior
    assert "hits" not in prior["with"] and "hits" not in f["size"]["without"]
    report = (tmp_path / "REPORT.md").read_text()
    assert "parts.txt --part-prior-strength 1\n" in report and "Part prior (onnxruntime/fp32" in report
    with_both = "**100.0%** (0 photos gained, 0 lost against the size prior alone; McNemar p = 1)"
    assert with_both in report
    assert "95% intervals (Wilson) of part top-1: onnxruntime/fp32 " in report
    # Every part enrolled from its first photo: each other photo is a flat-colour twin of its own
    # part's enrolled view, so the rig's views answer before the classifier (priors or not).
    every = f["enroll_all_1"]
    assert every["with_priors"]["decision_top1"] == every["decision_top1"] == 1.0
    assert set(every["with_priors"]["top1_per_part"]) == {"3003", "3004"}
    assert every["with_priors"]["fitted_decision_top1"] == every["fitted"]["decision_top1"]
    assert "With the priors (size and/or part, as above)" in report


def score_cloth(tmp_path: Path, *options: str) -> dict:
    """The cloth photos scored by the model set with an index, with ``options``; the fp32 figures."""
    model_set = tmp_path / "set"
    write_model_set_with_index(model_set)
    cloth = tmp_path / "cloth"
    write_cloth_photos(cloth)
    (tmp_path / "cloth.yaml").write_text("segmenter: {type: bgdiff, background_rgb: [0, 0, 0]}\n")
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    argv = [
        "evaluate-real", "--model-set", str(model_set), "--out", str(tmp_path / "out"),
        "--set", f"cloth={cloth}:{tmp_path / 'cloth.yaml'}", *options,
    ]  # fmt: skip
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    report = json.loads((tmp_path / "out" / "real.json").read_text())
    return report["sets"]["cloth"]["artifacts"]["onnxruntime/fp32"]


def test_enroll_turns_enrols_each_photo_at_four_quarter_turns(tmp_path: Path) -> None:
    f = score_cloth(tmp_path, "--enroll", "1", "--enroll-every-part", "--enroll-turns")
    assert f["enroll_1"]["turns_per_photo"] == 4
    every = f["enroll_all_1"]
    # three parts, one photo each, four turns of it: the fit sees 12 enrolled views
    assert every["turns_per_photo"] == 4 and every["fitted"]["views"] == 12
    # the colour-mean embedding does not change when the crop turns: the same decisions as unturned
    assert f["enroll_1"]["decision_top1"] == 1.0 and every["hybrid_top1_per_part"]["3020"] == 1.0


def test_enroll_partial_leaves_each_part_out_and_shows_what_a_fitted_threshold_takes(tmp_path: Path) -> None:
    f = score_cloth(tmp_path, "--enroll", "1", "--enroll-partial", "--rig-threshold", "0.85")
    e = f["partial_enroll_1"]
    # 17 photos of 3 parts; each subset enrols one photo of each of the other two and decides 15
    assert e["subsets"] == 3 and e["decisions"] == 3 * 15 and e["rig_threshold"] == 0.85
    assert set(e["fitted_thresholds"]) == {"3001", "3003b", "3020"}
    change = e["fitted_vs_default"]
    assert round((e["top1_fitted"] - e["top1_default"]) * 45) == change["gained"] - change["lost"]
    # With red and green enrolled, their views are orthogonal in this colour-mean embedding, so the
    # fit drops to its floor; every yellow photo is named as an enrolled part (by the rig's views at
    # the fit, by the classifier, which knows 3001 and 3003, at 0.85).
    assert e["fitted_thresholds"]["3020"] == 0.01
    assert e["left_out_taken_per_part"]["3020"] == [1.0, 1.0]
    # every fit lies below 0.85, and a lower threshold can only name more photos as enrolled parts
    assert all(t < 0.85 for t in e["fitted_thresholds"].values())
    assert all(0 <= d <= f <= 1 for d, f in e["left_out_taken_per_part"].values())
    text = (tmp_path / "out" / "real.md").read_text()
    assert (
        "All parts but one enrolled from their first 1 photo(s), each part left out in turn (3 subsets"
        in text
    )
    assert "3020 100.0% -> 100.0%" in text


def test_intervals_and_paired_changes_are_the_textbook_ones() -> None:
    assert wilson_interval(8, 10) == pytest.approx([0.4902, 0.9433], abs=1e-4)
    assert wilson_interval(0, 5)[0] == 0.0
    # ten photos gained and none lost: 2 * 0.5 ** 10 under a change that does nothing
    assert paired_change([False] * 12, [True] * 10 + [False] * 2) == {"gained": 10, "lost": 0, "p": 0.00195}
    assert paired_change([True, False], [True, False]) == {"gained": 0, "lost": 0, "p": 1.0}
    with pytest.raises(ValueError, match="same photos"):
        paired_change([True], [True, False])


def test_the_exact_index_backend_gives_the_same_enrolment_figures_here(tmp_path: Path) -> None:
    """A gallery this small is searched exactly by hnswlib too: the two backends agree, and the
    report says which one it used."""
    options = ("--enroll", "1", "--enroll-every-part", "--enroll-partial")
    auto = score_cloth(tmp_path / "auto", *options)
    exact = score_cloth(tmp_path / "exact", *options, "--index-backend", "exact")
    for key in ("enroll_1", "enroll_all_1"):
        assert exact[key]["decision_top1"] == auto[key]["decision_top1"]
        assert exact[key]["vector_top1"] == auto[key]["vector_top1"]
    assert exact["partial_enroll_1"]["top1_fitted"] == auto["partial_enroll_1"]["top1_fitted"]
    report = json.loads((tmp_path / "exact" / "out" / "real.json").read_text())
    assert report["index_backend"] == "exact"
    assert "index_backend" not in json.loads((tmp_path / "auto" / "out" / "real.json").read_text())


def test_crops_that_leave_the_frame_are_scored_apart(tmp_path: Path) -> None:
    """A part at the frame's edge (its crop padded as on the Pi) is counted apart from the rest."""
    model_set = tmp_path / "set"
    write_model_set_with_index(model_set)
    black = np.zeros((64, 80, 3), np.uint8)
    photos = tmp_path / "cloth"
    at_edge, inside = (44, 56), (20, 30)  # the first square touches the bottom right corner
    plan = {
        "3001": [(RED, inside), (RED, inside), (GREENISH, at_edge), (RED, at_edge)],
        "3003": [(GREEN, inside), (GREEN, inside)],
    }
    for part, shots in plan.items():
        for i, (rgb, at) in enumerate(shots):
            save(photos / part / f"{i}.png", square(black, rgb, at))
    (tmp_path / "cloth.yaml").write_text("segmenter: {type: bgdiff, background_rgb: [0, 0, 0]}\n")
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["evaluate-real", "--model-set", str(model_set), "--out", str(tmp_path / "out"),
         "--set", f"cloth={photos}:{tmp_path / 'cloth.yaml'}", "--enroll", ""]
    )  # fmt: skip
    assert args.func(args) == 0
    figures = json.loads((tmp_path / "out" / "real.json").read_text())["sets"]["cloth"]
    assert figures["segmentation"]["crops_leaving_frame"] == 2
    edge = figures["artifacts"]["onnxruntime/fp32"]["known"]["frame_edge"]
    assert edge["edge"] == {"photos": 2, "top1": 0.5}  # the greenish one is read as 3003
    assert edge["inside"] == {"photos": 4, "top1": 1.0}
    assert edge["per_part"]["3003"]["edge"] == {"photos": 0, "top1": None}
    text = (tmp_path / "out" / "real.md").read_text()
    assert "Crops that leave the frame (onnxruntime/fp32" in text
    assert "2 known-part photos, top-1 50.0% against 100.0% for the 4 inside" in text
    assert "3001 50.0% of 2 against 100.0% of 2; 3003 - of 0 against 100.0% of 2" in text
