"""``trainer categories``: part categories from an LDraw library into a model set's manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import DataFileError
from edge.manifest import load_manifest, sha256_file
from edge.settings import SortingSettings
from edge.sorting import Sorter, load_categories
from tests.helpers.onnx_models import write_model_set
from trainer import cli
from trainer.categories import ldraw_category, part_categories, write_categories

PARTS = {
    "3001": "0 Brick  2 x  4\n0 Name: 3001.dat\n1 16 0 0 0 1 0 0 0 1 0 0 0 1 s\\3001s01.dat\n",
    "3023b": "0 Plate  1 x  2 with Groove\n0 Name: 3023b.dat\n",
    "3023": "0 ~Moved To 3023b\n0 Name: 3023.dat\n1 16 0 0 0 1 0 0 0 1 0 0 0 1 3023b.dat\n",
    "3068b": "0 =Tile  2 x  2 with Groove\n0 Name: 3068b.dat\n",
    "4599b": "0 Tap  1 x  1\n0 Name: 4599b.dat\n0 !CATEGORY Minifig Accessory\n",
    "loop1": "0 ~Moved to loop2\n",
    "loop2": "0 ~Moved to loop1\n",
}


@pytest.fixture
def ldraw(tmp_path: Path) -> Path:
    root = tmp_path / "ldraw"
    (root / "parts").mkdir(parents=True)
    for part, text in PARTS.items():
        (root / "parts" / f"{part}.dat").write_text(text, encoding="utf-8")
    return root


def test_category_is_the_meta_line_or_the_first_word_following_moves(ldraw: Path) -> None:
    assert ldraw_category(ldraw, "3001") == "Brick"
    assert ldraw_category(ldraw, "3023") == "Plate"  # moved to 3023b
    assert ldraw_category(ldraw, "3068b") == "Tile"  # the alias prefix '=' dropped
    assert ldraw_category(ldraw, "4599b") == "Minifig Accessory"  # !CATEGORY wins
    assert ldraw_category(ldraw, "9999") is None
    assert ldraw_category(ldraw, "loop1") is None  # a cycle of moves ends
    assert part_categories(ldraw, ["3001", "9999"]) == ({"3001": "Brick"}, ["9999"])


def test_trainer_categories_writes_the_manifest_and_category_rules_match(
    ldraw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "set"
    write_model_set(folder, parts=["3001", "3023", "3068b", "9999"])
    model_hash = sha256_file(folder / "classifier.onnx")
    assert cli.main(["categories", "--model-set", str(folder), "--ldraw", str(ldraw)]) == 0
    out = capsys.readouterr().out
    assert "3 part(s) categorised" in out and "1 part(s) not found" in out and "9999" in out
    manifest = load_manifest(folder)  # still valid, model file untouched
    assert manifest.categories == {"3001": "Brick", "3023": "Plate", "3068b": "Tile"}
    assert sha256_file(folder / "classifier.onnx") == model_hash
    settings = SortingSettings.model_validate(
        {"rules": [{"category": ["plate"], "bin": "plates"}], "default_bin": "other", "reject_bin": "reject"}
    )
    sorter = Sorter(settings, ["plates", "other", "reject"], load_categories(manifest))
    assert sorter.route("3023", 4).bin == "plates" and sorter.route("3001", 4).bin == "other"
    warnings = sorter.warnings(manifest.parts)
    assert not any("match nothing" in w for w in warnings)
    assert any("1 model part(s) have no category (9999)" in w for w in warnings)


def test_not_an_ldraw_library(tmp_path: Path) -> None:
    write_model_set(tmp_path / "set")
    with pytest.raises(DataFileError, match="not an LDraw library"):
        write_categories(tmp_path / "set", tmp_path)
