"""trainer.color_families: the colour families, the labels files and the family scores."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError, DataFileError
from tests.trainer.test_evaluate_real import write_cloth_photos, write_model_set_with_index
from trainer.color_families import FAMILIES, family_of, family_scores, read_color_labels
from trainer.evaluate_real import add_parser

REPO = Path(__file__).resolve().parents[2]


def test_every_colour_of_the_table_is_in_exactly_one_family() -> None:
    lines = (REPO / "edge" / "data" / "colors.csv").read_text().splitlines()
    table = {int(row["id"]) for row in csv.DictReader(line for line in lines if not line.startswith("#"))}
    listed = [c for colors in FAMILIES.values() for c in colors]
    assert len(listed) == len(set(listed))  # none in two families
    assert set(listed) == table
    assert family_of(4) == "red" and family_of(320) == "dark-red" and family_of(71) == family_of(7)
    assert family_of(99999) is None


def write_labels(path: Path, rows: list[str], header: str = "photo,family") -> Path:
    path.write_text("# labelled by eye\n" + header + "\n" + "".join(f"{r}\n" for r in rows))
    return path


def test_a_labels_file_is_read_and_its_mistakes_are_named(tmp_path: Path) -> None:
    good = write_labels(tmp_path / "good.csv", ["3001/a.jpg,red", "# a comment", "3003/b.png, light-grey"])
    assert read_color_labels(good) == {"3001/a.jpg": "red", "3003/b.png": "light-grey"}
    cases = {
        "header": (["3001/a.jpg,red"], "part,colour", "must start with the header 'photo,family'"),
        "family": (["3001/a.jpg,red", "3001/b.jpg,crimson"], "photo,family", "line 4: 'crimson' is no"),
        "twice": (["3001/a.jpg,red", "3001/a.jpg,blue"], "photo,family", "'3001/a.jpg' is labelled twice"),
        "fields": (["3001/a.jpg,red,4"], "photo,family", "line 3: expected 'photo,family', got 3 fields"),
        "empty": ([], "photo,family", "label no photo"),
    }  # fmt: skip
    for name, (rows, header, message) in cases.items():
        with pytest.raises(DataFileError, match=message):
            read_color_labels(write_labels(tmp_path / f"{name}.csv", rows, header))
    with pytest.raises(DataFileError, match="cannot be read"):
        read_color_labels(tmp_path / "missing.csv")


def test_family_scores_count_a_colour_of_the_right_family_as_right() -> None:
    # colour classes: Light Gray (7), Light Bluish Gray (71), Red (4)
    logits = np.array([[0, 5, 0], [5, 0, 0], [0, 0, 5], [5, 0, 0], [0, 0, 5]], np.float32)
    photos = ["a", "b", "c", "d", "e"]
    labels = {"a": "light-grey", "b": "light-grey", "c": "red", "d": "red"}  # e: unlabelled
    f = family_scores(photos, logits, [7, 71, 4], labels)
    assert f["photos"] == 4 and f["unlabelled"] == 1
    assert f["family_top1"] == pytest.approx(0.75)  # d, red, read as Light Gray
    assert f["majority_family"] == "light-grey" and f["majority_baseline"] == 0.5
    assert f["family_top1_mean_over_families"] == pytest.approx((1.0 + 0.5) / 2)
    assert f["per_family"]["red"] == {"photos": 2, "top1": 0.5, "predicted": [("red", 1), ("light-grey", 1)]}
    # a colour outside every family is a wrong answer, named "other"
    assert family_scores(["a"], np.array([[0, 0, 5]], np.float32), [7, 71, 99999], {"a": "red"})[
        "per_family"
    ]["red"]["predicted"] == [("other", 1)]
    with pytest.raises(DataFileError, match="name photos the set does not hold: x"):
        family_scores(photos, logits, [7, 71, 4], {"x": "red"})


@pytest.mark.parametrize("name", ["belt", "cutouts"])
def test_the_real_sets_labels_files_read(name: str) -> None:
    labels = read_color_labels(REPO / "config" / "real" / f"{name}_colors.csv")
    assert len(labels) > 200
    assert all(photo.count("/") == 1 for photo in labels)  # {part}/FILE, relative to the set


def test_evaluate_real_scores_the_colour_head_on_the_labelled_photos(tmp_path: Path) -> None:
    """The hand-weighted model's colour classes are red, green and blue by channel: the greenish
    photo of red 3001 reads as green, and the yellow 3020 (unknown part, scored for colour all the
    same) as red or green, never yellow."""
    model_set, cloth = tmp_path / "set", tmp_path / "cloth"
    write_model_set_with_index(model_set)
    write_cloth_photos(cloth)
    (tmp_path / "cloth.yaml").write_text("segmenter: {type: bgdiff, background_rgb: [0, 0, 0]}\n")
    rows = [f"3001/{i:02d}.png,red" for i in range(6)] + [f"3003b/{i:02d}.png,green" for i in range(4)]
    labels = write_labels(tmp_path / "cloth_colors.csv", [*rows, "3020/00.png,yellow"])
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    argv = [
        "evaluate-real", "--model-set", str(model_set), "--out", str(tmp_path / "out"),
        "--set", f"cloth={cloth}:{tmp_path / 'cloth.yaml'}", "--enroll", "",
        "--artifacts", "onnxruntime/fp32", "--colors", f"cloth={labels}",
    ]  # fmt: skip
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    f = json.loads((tmp_path / "out" / "real.json").read_text())["sets"]["cloth"]["artifacts"][
        "onnxruntime/fp32"
    ]
    family = f["color_family"]
    assert family["photos"] == 11 and family["unlabelled"] == 6  # six more 3020 photos
    assert family["family_top1"] == pytest.approx(9 / 11, abs=1e-4)
    assert family["majority_family"] == "red" and family["majority_baseline"] == pytest.approx(
        6 / 11, abs=1e-4
    )
    assert family["per_family"]["red"]["top1"] == pytest.approx(5 / 6, abs=1e-4)
    assert family["per_family"]["green"]["top1"] == 1.0 and family["per_family"]["yellow"]["top1"] == 0.0
    with (tmp_path / "out" / "predictions.csv").open(newline="") as f:
        rows = {r["photo"]: r for r in csv.DictReader(f)}
    assert rows["3001/05.png"]["color_hit"] == "0" and rows["3001/00.png"]["color"] == "4"  # Red
    assert sum(r["color_hit"] == "1" for r in rows.values()) == 9
    assert rows["3020/00.png"]["hit1"] == "" and rows["3020/00.png"]["color_hit"] == "0"  # colour alone
    assert "3020/01.png" not in rows  # unknown part, no colour label: no row
    md = (tmp_path / "out" / "real.md").read_text()
    assert "Colour on 11 photos labelled by eye" in md and "| yellow | 1 | 0.0% |" in md
    other = parser.parse_args([*argv[:-2], "--colors", f"belt={labels}"])
    with pytest.raises(ConfigError, match="--colors names belt, which no --set names"):
        other.func(other)
    with pytest.raises(SystemExit):
        parser.parse_args([*argv[:-2], "--colors", str(labels)])
