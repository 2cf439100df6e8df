"""Each photo's answers from trainer evaluate-real, and trainer compare-real pairing two of them."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest

from edge.errors import DataFileError
from tests.trainer.test_evaluate_real import write_cloth_set
from trainer.evaluate_real import add_parser
from trainer.real_compare import (
    COLUMNS,
    compare_predictions,
    comparison_markdown,
    read_predictions,
    write_predictions,
)


def _score(tmp_path: Path, out: str, *options: str) -> Path:
    """The blue 1x2 / bluish-green 2x2 cloth photos scored into ``tmp_path / out``."""
    model_set, photos = tmp_path / "set", tmp_path / "photos"
    if not model_set.exists():
        write_cloth_set(tmp_path)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    argv = [
        "evaluate-real", "--model-set", str(model_set), "--out", str(tmp_path / out),
        "--set", f"cloth={photos}:{tmp_path / 'cloth.yaml'}", "--enroll", "", *options,
    ]  # fmt: skip
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return tmp_path / out


def test_evaluate_real_writes_each_photos_answers(tmp_path: Path) -> None:
    """A parts file that makes 3003 a hundred times as common as 3004: the network names the three
    blue photos (3004) and not the bluish-green ones; with the prior every photo is named 3003."""
    (tmp_path / "parts.txt").write_text("3003 100\n3004 1\n3001 1\n")
    out = _score(tmp_path, "out", "--part-prior", str(tmp_path / "parts.txt"), "--part-prior-strength", "1")
    with (out / "predictions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 6
    assert {r["photo"] for r in rows} == {f"{p}/{i}.png" for p in ("3003", "3004") for i in range(3)}
    by_photo = {r["photo"]: r for r in rows}
    for i in range(3):
        blue, teal = by_photo[f"3004/{i}.png"], by_photo[f"3003/{i}.png"]
        assert blue["top5"].split()[0] == "3004" and blue["hit1"] == "1" and teal["hit1"] == "0"
        assert blue["prior_top1"] == teal["prior_top1"] == "3003"
        assert blue["prior_hit1"] == "0" and teal["prior_hit1"] == "1"
    # The same photos as the figures: the per-photo answers add up to the report's top-1s.
    figures = json.loads((out / "real.json").read_text())["sets"]["cloth"]["artifacts"]["onnxruntime/fp32"]
    assert sum(r["hit1"] == "1" for r in rows) / 6 == pytest.approx(figures["known"]["part_top1"])
    assert sum(r["prior_hit1"] == "1" for r in rows) / 6 == pytest.approx(
        figures["prior"]["with"]["part_top1"]
    )
    assert all(r["set"] == "cloth" and r["artifact"] == "onnxruntime/fp32" for r in rows)
    # the colour answer on every row; whether it is right only where a colour family is labelled
    assert all(r["color"] in {"4", "2", "1"} and r["color_hit"] == "" for r in rows)


def test_two_runs_compared_on_the_same_photos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "parts.txt").write_text("3003 100\n3004 1\n3001 1\n")
    prior = ["--part-prior", str(tmp_path / "parts.txt"), "--part-prior-strength", "1"]
    first, second = _score(tmp_path, "a", *prior), _score(tmp_path, "b", *prior)
    from trainer.cli import main

    capsys.readouterr()  # what evaluate-real printed
    table = tmp_path / "c.md"
    assert main(["compare-real", str(first), str(second / "predictions.csv"), "--out", str(table)]) == 0
    printed = capsys.readouterr().out
    assert "| cloth | onnxruntime/fp32 | network | 6 | 50.0% | 50.0% | 0 | 0 | 1 |" in printed
    assert "| cloth | onnxruntime/fp32 | with the part prior | 6 | 50.0% | 50.0% | 0 | 0 | 1 |" in printed
    assert table.read_text() == printed
    assert main(["compare-real", str(first), str(tmp_path / "nowhere")]) == 2  # named, no trace


def _rows(hits: list[int], prior: list[int] | None = None, photos: str = "p{}.png") -> list[dict[str, str]]:
    return [
        {
            "set": "belt",
            "artifact": "onnxruntime/int8",
            "photo": photos.format(i),
            "part": "3023",
            "top5": "3023 3024",
            "hit1": str(h),
            "prior_top1": "" if prior is None else "3023",
            "prior_hit1": "" if prior is None else str(prior[i]),
        }
        for i, h in enumerate(hits)
    ]


def test_the_pairing_counts_gained_and_lost_photos(tmp_path: Path) -> None:
    write_predictions(tmp_path / "a.csv", _rows([1, 0, 0, 1, 0], prior=[1, 1, 0, 0, 0]))
    write_predictions(tmp_path / "b.csv", _rows([1, 1, 1, 0], prior=None))  # one photo fewer, no prior
    [network] = compare_predictions(
        read_predictions(tmp_path / "a.csv"), read_predictions(tmp_path / "b.csv")
    )
    # Paired on the 4 shared photos: p1 and p2 gained, p3 lost; the prior is left out (b has none).
    assert network["figure"] == "network" and network["photos"] == 4
    assert (network["gained"], network["lost"]) == (2, 1)
    assert network["before_top1"] == 0.5 and network["after_top1"] == 0.75
    assert network["p"] == pytest.approx(1.0)
    assert "| belt | onnxruntime/int8 | network | 4 | 50.0% | 75.0% | 2 | 1 | 1 |" in comparison_markdown(
        [network], "a", "b"
    )
    write_predictions(tmp_path / "c.csv", _rows([1, 1], photos="other{}.png"))
    with pytest.raises(DataFileError, match="share no photo"):
        compare_predictions(read_predictions(tmp_path / "a.csv"), read_predictions(tmp_path / "c.csv"))
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataFileError, match="columns"):
        read_predictions(tmp_path / "bad.csv")
    with pytest.raises(DataFileError, match="evaluate-real --out"):
        read_predictions(tmp_path / "missing")


def test_colour_families_are_paired_on_the_photos_both_label_and_old_files_still_read(tmp_path: Path) -> None:
    before, after = _rows([1, 0, 1, 1]), _rows([1, 0, 1, 1])
    for row, a in zip(before, ["1", "0", "0", ""], strict=True):
        row.update(color="4", color_hit=a)
    for row, b in zip(after, ["1", "1", "1", ""], strict=True):
        row.update(color="4", color_hit=b)
    # a photo of a part the model does not know: colour alone, no part answer
    after.append({**after[0], "photo": "u.png", "part": "43857", "top5": "", "hit1": "", "color_hit": "0"})
    before.append({**after[-1], "color_hit": "1"})
    write_predictions(tmp_path / "a.csv", before)
    write_predictions(tmp_path / "b.csv", after)
    network, colour = compare_predictions(
        read_predictions(tmp_path / "a.csv"), read_predictions(tmp_path / "b.csv")
    )
    assert network["photos"] == 4 and (network["gained"], network["lost"]) == (0, 0)  # u.png: no part answer
    assert colour["figure"] == "colour family" and colour["photos"] == 4  # p3 unlabelled, u.png labelled
    assert (colour["gained"], colour["lost"]) == (2, 1) and colour["after_top1"] == 0.75
    # a file written before the colour columns: read, the colour figure left out
    old = tmp_path / "old.csv"
    with old.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS[:8], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(before)
    figures = [
        r["figure"] for r in compare_predictions(read_predictions(old), read_predictions(tmp_path / "b.csv"))
    ]
    assert figures == ["network"]
