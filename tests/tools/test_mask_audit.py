"""tools/mask_audit.py: a blind sample of real photos drawn with their masks, and the judgements tallied.

The photos and model set are ``test_evaluate_real``'s: coloured squares on black cloth, cut out by
a background difference against black.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from tests.tools.load import load_tool
from tests.trainer.test_evaluate_real import write_cloth_photos, write_model_set_with_index

REPO = Path(__file__).resolve().parents[2]


def _tool() -> ModuleType:
    return load_tool("mask_audit")


def _predictions(path: Path, photos: Path) -> Path:
    """Rows as `trainer evaluate-real` writes them: each cloth photo, right unless it is red's last."""
    rows = []
    for photo in sorted(photos.glob("*/*.png")):
        name = photo.relative_to(photos).as_posix()
        wrong = name.startswith("3001/") and int(photo.stem) >= 4  # two wrongly named photos
        for artifact in ("onnxruntime/int8", "litert/int8"):
            rows.append(
                {"set": "cloth", "artifact": artifact, "photo": name, "part": photo.parent.name,
                 "hit1": "0" if wrong else "1"}
            )  # fmt: skip
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_seeded_sample_holds_the_asked_share_of_wrong_and_right_photos(tmp_path: Path) -> None:
    photos = tmp_path / "cloth"
    write_cloth_photos(photos)
    csv_path = _predictions(tmp_path / "predictions.csv", photos)
    tool = _tool()
    sample = tool.sample_rows(csv_path, "cloth", "onnxruntime/int8", wrong=2, right=5, seed=3)
    assert [r["kind"] for r in sample].count("wrong") == 2 and len(sample) == 7
    assert all(r["hit1"] == ("0" if r["kind"] == "wrong" else "1") for r in sample)
    assert all(r["artifact"] == "onnxruntime/int8" for r in sample)
    again = tool.sample_rows(csv_path, "cloth", "onnxruntime/int8", wrong=2, right=5, seed=3)
    assert [r["photo"] for r in again] == [r["photo"] for r in sample]  # the seed repeats it
    only = tool.sample_rows(csv_path, "cloth", "onnxruntime/int8", wrong=0, right=3, seed=0, parts={"3003b"})
    assert {r["part"] for r in only} == {"3003b"}  # --parts: those parts' photos alone
    with pytest.raises(tool.AuditError, match="--wrong 3: only 2 wrongly named photos"):
        tool.sample_rows(csv_path, "cloth", "onnxruntime/int8", wrong=3, right=1, seed=0)
    with pytest.raises(tool.AuditError, match="no photo of set 'belt'"):
        tool.sample_rows(csv_path, "belt", "onnxruntime/int8", wrong=1, right=1, seed=0)
    with pytest.raises(tool.AuditError, match="no such file"):
        tool.sample_rows(tmp_path / "none.csv", "cloth", "onnxruntime/int8", wrong=1, right=1, seed=0)


def test_draw_then_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos, model_set, out = tmp_path / "cloth", tmp_path / "set", tmp_path / "audit"
    write_cloth_photos(photos)
    write_model_set_with_index(model_set)
    (tmp_path / "cloth.yaml").write_text("segmenter: {type: bgdiff, background_rgb: [0, 0, 0]}\n")
    csv_path = _predictions(tmp_path / "predictions.csv", photos)
    tool = _tool()
    assert tool.main([
        "draw", "--predictions", str(csv_path), "--set", "cloth", "--photos", str(photos),
        "--segmenter", str(tmp_path / "cloth.yaml"), "--model-set", str(model_set),
        "--wrong", "2", "--right", "11", "--out", str(out),
    ]) == 0  # fmt: skip
    key = json.loads((out / "key.json").read_text())
    assert len(key) == 13 and sorted(k["tile"] for k in key) == list(range(13))
    # 13 tiles: a full sheet of 12 and one more
    sheets = [cv2.imread(str(out / f"sheet{i}.png")) for i in range(2)]
    assert all(s is not None and s.shape == (4 * 240, 3 * 320, 3) for s in sheets)
    first = sheets[0][:240, :320].astype(int)  # tile 0: its mask's outline is drawn in green
    assert ((first[..., 1] > 200) & (first[..., 0] < 60) & (first[..., 2] < 60)).sum() > 20
    assert (sheets[1][:240, 320:] == 255).all()  # the second sheet's empty places are blank

    judged = {str(k["tile"]): ("W" if k["kind"] == "wrong" else "G") for k in key}
    judged[str(next(k["tile"] for k in key if k["kind"] == "right"))] = "E"
    (tmp_path / "judged.json").write_text(json.dumps(judged))
    assert tool.main(["score", "--out", str(out), "--judged", str(tmp_path / "judged.json")]) == 0
    result = json.loads((out / "tally.json").read_text())
    assert result["by_kind"]["wrong"] == {"G": 0, "P": 0, "E": 0, "W": 2}
    assert result["by_kind"]["right"] == {"G": 10, "P": 0, "E": 1, "W": 0}
    assert result["by_part"]["3001"]["wrong"]["W"] == 2
    assert "wrong    2 photos: G 0, P 0, E 0, W 2" in capsys.readouterr().out


def test_judgements_must_cover_every_tile_with_a_known_category() -> None:
    tool = _tool()
    key = [{"tile": 0, "part": "3001", "kind": "wrong"}, {"tile": 1, "part": "3001", "kind": "right"}]
    with pytest.raises(tool.AuditError, match="tiles 1 are not judged"):
        tool.tally(key, {"0": "G"})
    with pytest.raises(tool.AuditError, match="unknown judgements"):
        tool.tally(key, {"0": "G", "1": "X"})
    assert np.isclose(sum(tool.tally(key, {"0": "G", "1": "P"})["by_kind"]["right"].values()), 1)
