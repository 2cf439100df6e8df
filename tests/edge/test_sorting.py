"""Routing rules: first match wins, every criterion of a rule must match, categories from a table."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edge.config import validate_config
from edge.errors import ConfigError, DataFileError
from edge.settings import SortingSettings
from edge.sorting import Sorter, categories_from_manifest, load_categories, read_categories_file

BINS = ["reject", "red", "bricks", "red_bricks", "plates", "other", "doubt"]


def _sorter(rules: list[dict[str, Any]], categories: dict[str, str] | None = None, **extra: Any) -> Sorter:
    settings = validate_config(
        SortingSettings, {"rules": rules, "default_bin": "other", "reject_bin": "reject", **extra}
    )
    return Sorter(settings, BINS, categories)


def test_first_matching_rule_wins_and_all_criteria_must_match() -> None:
    sorter = _sorter(
        [
            {"part": ["3001"], "color": ["Red"], "bin": "red_bricks"},
            {"color": [4], "bin": "red"},
            {"part": ["3001", "3003"], "bin": "bricks"},
        ]
    )
    assert sorter.route("3001", 4).bin == "red_bricks"  # both criteria of rule 0
    assert sorter.route("3003", 4).bin == "red"  # rule 0 needs part 3001
    assert sorter.route("3001", 1).bin == "bricks"  # rule 0 needs red
    route = sorter.route("3023", 1)
    assert route.bin == "other" and "default" in route.reason
    assert sorter.route("3001", 4).reason == "rule 0"


def test_unknown_low_confidence_and_errors_bypass_the_rules() -> None:
    sorter = _sorter([{"color": [4], "bin": "red"}])
    assert sorter.route(None, 4, "unknown").bin == "reject"  # unknown_bin defaults to the reject bin
    assert sorter.route("3001", 4, "low_confidence").bin == "reject"
    assert sorter.route("3001", 4, "error").bin == "reject"
    doubtful = _sorter([{"color": [4], "bin": "red"}], unknown_bin="doubt")
    assert doubtful.route(None, 4, "unknown").bin == "doubt"
    assert doubtful.route("3001", 4, "error").bin == "reject"


def test_place_writes_the_route_and_the_true_bin_on_the_record() -> None:
    from edge.part import PartRecord
    from edge.recognize import Decision

    sorter = _sorter([{"color": [4], "bin": "red"}])
    decision = Decision("3001", 4, 0.9, 0.8, "sorted", "classifier", [], [("3001", 0.9)])
    part = PartRecord.decided(decision, [], {}, [], {"part_num": "3001", "color_id": 1})
    route = sorter.place(part)
    assert (route.bin, part.bin, part.bin_index) == ("red", "red", BINS.index("red"))
    assert part.reason == "rule 0" and part.note == "bin 'red' (rule 0)"
    assert part.truth_bin == "other" and part.right_bin is False  # its true colour has no rule
    part.reject("two parts at once")  # rejected: the reject bin, its own note as the reason
    assert sorter.place(part).bin == "reject" and part.reason == "two parts at once"
    assert part.note.endswith("; two parts at once")
    failed = PartRecord(None, [], {})  # recognition failed: no decision, no truth
    failed.reject("recognition failed: bad output")
    assert sorter.place(failed).bin == "reject" and failed.truth_bin is None


def test_categories_match_case_insensitively_and_need_the_table() -> None:
    rules = [{"category": ["Plates"], "bin": "plates"}, {"category": "bricks", "bin": "bricks"}]
    table = {"3023": "Plates", "3001": "Bricks"}
    sorter = _sorter(rules, table)
    assert sorter.route("3023", 1).bin == "plates"
    assert sorter.route("3001", 1).bin == "bricks"
    assert sorter.route("3062b", 1).bin == "other"  # not in the table: category rules skip it
    assert sorter.category_of("3023") == "Plates" and sorter.category_of("x") is None
    blind = _sorter(rules)  # no table at all: category rules match nothing
    assert blind.route("3023", 1).bin == "other"


def test_bins_must_exist_on_the_chute() -> None:
    settings = validate_config(
        SortingSettings, {"rules": [{"color": [4], "bin": "red"}], "default_bin": "x", "reject_bin": "reject"}
    )
    with pytest.raises(ConfigError, match=r"\['red', 'x'\].*rig.chute.bins"):
        Sorter(settings, ["reject", "other"])


def test_bin_index_is_the_position_among_the_chute_bins() -> None:
    sorter = _sorter([])
    assert [sorter.bin_index(b) for b in ("reject", "other")] == [0, 5]


def test_warnings_for_rules_that_cannot_match() -> None:
    rules = [{"category": ["Plates"], "bin": "plates"}, {"part": ["3001", "9999"], "bin": "bricks"}]
    blind = _sorter(rules).warnings(["3001", "3023"])
    assert any("rules [0] match by category" in w and "categories_file" in w for w in blind)
    assert any("rules[1].part ['9999']" in w for w in blind)
    partial = _sorter([{"category": ["Plates", "Slopes"], "bin": "plates"}], {"3023": "Plates"})
    notes = partial.warnings(["3001", "3023"])
    assert any("1 model part(s) have no category (3001)" in w for w in notes)
    assert any("['Slopes']" in w for w in notes)
    assert _sorter([{"color": [4], "bin": "red"}]).warnings(["3001"]) == []


def test_category_table_from_manifest_and_csv(tmp_path: Path) -> None:
    manifest = SimpleNamespace(build={"part_categories": {"3001": "Bricks", "3023": "Plates"}})
    assert categories_from_manifest(manifest) == {"3001": "Bricks", "3023": "Plates"}
    assert categories_from_manifest(SimpleNamespace(build={})) == {}
    csv_path = tmp_path / "cats.csv"
    csv_path.write_text("part_num,category\n3023,Plates Special\n3062b,Bricks Round\n", encoding="utf-8")
    assert read_categories_file(csv_path) == {"3023": "Plates Special", "3062b": "Bricks Round"}
    merged = load_categories(manifest, csv_path)  # the file overrides the manifest entry by entry
    assert merged == {"3001": "Bricks", "3023": "Plates Special", "3062b": "Bricks Round"}
    with pytest.raises(ConfigError, match="must map part numbers"):
        categories_from_manifest(SimpleNamespace(build={"part_categories": ["Bricks"]}))


def test_bad_category_files(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="does not exist"):
        read_categories_file(tmp_path / "missing.csv")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("part,cat\n3001,Bricks\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="needs the columns part_num and category"):
        read_categories_file(wrong)
    blank = tmp_path / "blank.csv"
    blank.write_text("part_num,category\n3001,\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="line 2: empty"):
        read_categories_file(blank)


def _decision(parts: list[tuple[str, float]], colours: list[tuple[int, float]], **kw: Any) -> Any:
    """A classifier verdict as recognise() makes it: fused top-k parts and colours."""
    from edge.recognize import Decision

    best, p = parts[0]
    fields: dict[str, Any] = {
        "part_num": best if p >= 0.6 else None,
        "color_id": colours[0][0] if colours else None,
        "confidence": p,
        "color_confidence": colours[0][1] if colours else 0.0,
        "status": "sorted" if p >= 0.6 else ("low_confidence" if p >= 0.3 else "unknown"),
        "source": "classifier",
        "per_view": [],
        "part_topk": parts,
        "color_topk": colours,
    }
    return Decision(**(fields | kw))


def test_route_by_bin_adds_up_the_parts_that_share_a_bin() -> None:
    rules = [{"color": ["Red"], "bin": "red"}, {"part": ["3001", "3003"], "bin": "bricks"}]
    by_part, by_bin = _sorter(rules), _sorter(rules, route_by="bin")
    # Unsure which plate (0.5 / 0.4), sure it is red: by part it is low confidence, by bin it is red.
    plates = _decision([("3023", 0.5), ("3710", 0.4), ("3001", 0.05)], [(4, 0.97), (320, 0.03)])
    assert by_part.route_decision(plates).bin == "reject"
    route = by_bin.route_decision(plates)
    assert route.bin == "red" and "0.92" in route.reason  # 0.95 x 0.97
    # Unsure between a brick (bricks bin) and a plate (default bin), in blue: no bin reaches 0.75.
    split = _decision([("3001", 0.5), ("3023", 0.45)], [(1, 0.99)])
    route = by_bin.route_decision(split)
    assert route.bin == "reject" and "no bin reaches 0.75" in route.reason
    # Two bricks in blue: 0.5 + 0.45 of the mass goes to 'bricks'.
    bricks = _decision([("3001", 0.5), ("3003", 0.45)], [(1, 0.99)])
    assert by_bin.route_decision(bricks).bin == "bricks"
    # The colour counts too: a brick that is red or blue (0.5 / 0.5) goes nowhere for sure.
    unsure_colour = _decision([("3001", 0.99)], [(4, 0.5), (1, 0.5)])
    assert by_part.route_decision(unsure_colour).bin == "red"  # by part: the top colour decides
    assert by_bin.route_decision(unsure_colour).bin == "reject"


def test_route_by_bin_keeps_errors_and_vector_answers_on_the_part_path() -> None:
    by_bin = _sorter([{"color": ["Red"], "bin": "red"}], route_by="bin", bin_threshold=0.5)
    red = _decision([("3023", 0.9)], [(4, 0.99)])
    assert by_bin.route_decision(red, "error").bin == "reject"  # e.g. two parts at once
    vector = _decision([("3023", 0.4), ("3710", 0.39)], [(4, 0.99)], source="vector")
    assert by_bin.route_decision(vector).bin == "reject"  # similarities are not probabilities
    with pytest.raises(ConfigError, match="bin_threshold"):
        _sorter([], route_by="bin", bin_threshold=0)


def test_route_by_bin_uses_the_whole_distribution_when_the_decision_has_it() -> None:
    from edge.recognize import Distribution

    parts = [f"p{i}" for i in range(40)] + ["3001"]
    # Forty plates at 2% each and a brick at 20%: no top-5 list sees that 80% is 'other'.
    probs = np.array([0.02] * 40 + [0.2])
    dist = Distribution(parts, probs, [4, 1], np.array([0.1, 0.9]))
    top = sorted(zip(parts, probs, strict=True), key=lambda t: -t[1])[:5]
    decision = _decision([(p, float(q)) for p, q in top], [(1, 0.9), (4, 0.1)], distribution=dist)
    rules = [{"color": ["Red"], "bin": "red"}, {"part": ["3001"], "bin": "bricks"}]
    sorter = _sorter(rules, route_by="bin", bin_threshold=0.7)
    route = sorter.route_decision(decision)
    assert route.bin == "other" and "0.72" in route.reason  # 0.8 x 0.9 (red goes to 'red')
    without = _decision([(p, float(q)) for p, q in top], [(1, 0.9), (4, 0.1)])
    assert sorter.route_decision(without).bin == "reject"


def test_recognizer_decisions_carry_the_fused_distribution() -> None:
    import tempfile

    from edge.recognize import Recognizer
    from tests.helpers.onnx_models import write_model_set

    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_model_set(Path(tmp), parts=("a", "b", "c"), colors=(4, 1), embedding_dim=4)
    logits = np.array([[3.0, 1.0, 0.0], [2.0, 2.0, 0.0]], np.float32)
    colours = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    d = Recognizer(manifest).decide({"part_logits": logits, "color_logits": colours})
    assert d.distribution is not None and list(d.distribution.parts) == ["a", "b", "c"]
    assert d.distribution.part_probs.sum() == pytest.approx(1.0)
    assert d.distribution.part_probs[0] == pytest.approx(d.part_topk[0][1])
    assert d.distribution.color_probs is not None and list(d.distribution.colors) == [4, 1]
