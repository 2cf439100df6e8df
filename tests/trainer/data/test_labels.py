"""Label maps: ordering, min_samples, the no-colour label, JSON round trip and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.errors import ConfigError, DataFileError
from trainer.data.labels import NO_COLOR, LabelMap, UnknownLabelError, build_label_map
from trainer.data.sources import Sample


def _s(part: str, color: int | None, i: int = 0, source: str = "legacy") -> Sample:
    return Sample(Path(f"/d/{part}_{color}_{i}.png"), None, part, color, f"{part}/{i}", 0, None, source)


SAMPLES = [
    _s("3003", 4),
    _s("3001", 15),
    _s("3001", 4, 1),
    _s("32000", 71),
    _s("3001", 4, 2),
    _s("3003", 15, 1),
]


def test_build_is_sorted_and_independent_of_order() -> None:
    m = build_label_map(SAMPLES)
    assert m.parts == ["3001", "3003", "32000"]
    assert m.colors == [4, 15, 71]
    assert build_label_map(list(reversed(SAMPLES))) == m
    assert [m.part_index(p) for p in ("3001", "3003", "32000")] == [0, 1, 2]
    assert m.color_index(71) == 2
    assert (m.num_parts, m.num_colors) == (3, 3)


def test_min_samples_drops_rare_parts_and_colours() -> None:
    m = build_label_map(SAMPLES, min_samples=2)
    assert m.parts == ["3001", "3003"]
    assert m.colors == [4, 15]
    kept = m.keep(SAMPLES)
    assert len(kept) == 5 and all(s.part_num != "32000" for s in kept)
    with pytest.raises(ConfigError, match=r"no part has min_samples=4 samples.*most any part has is 3"):
        build_label_map(SAMPLES, min_samples=4)
    with pytest.raises(ConfigError, match="min_samples must be a whole number >= 1, got 0"):
        build_label_map(SAMPLES, min_samples=0)


def test_colourless_source_trains_the_part_head_only() -> None:
    b200c = [_s("3001", None, i, "b200c") for i in range(3)] + [_s("3004", None, 0, "b200c")]
    m = build_label_map(b200c)
    assert m.parts == ["3001", "3004"] and m.colors == []
    assert m.encode(b200c[3]) == (1, NO_COLOR) == (1, -1)
    assert m.color_index(None) == -1
    # Mixed with a coloured source, colourless samples still add no colour.
    mixed = build_label_map([*b200c, _s("3001", 4)])
    assert mixed.colors == [4]
    assert mixed.encode(b200c[0]) == (0, -1)
    assert mixed.encode(_s("3001", 4)) == (0, 0)


def test_unknown_labels() -> None:
    m = build_label_map(SAMPLES)
    with pytest.raises(UnknownLabelError, match="part '3626' is not in the label map") as err:
        m.part_index("3626")
    assert isinstance(err.value, KeyError)
    with pytest.raises(UnknownLabelError, match="colour id 0 is not in the label map"):
        m.encode(_s("3001", 0))
    assert m.encode(_s("3001", 0), unknown_color="ignore") == (0, NO_COLOR)


def test_json_round_trip_and_format(tmp_path: Path) -> None:
    m = build_label_map(SAMPLES)
    path = tmp_path / "maps" / "45345-1.json"
    m.to_json(path)
    data = json.loads(path.read_text())
    assert data == {"format_version": 1, "parts": ["3001", "3003", "32000"], "colors": [4, 15, 71]}
    back = LabelMap.from_json(path)
    assert back == m and back.part_index("32000") == 2
    assert [p.name for p in path.parent.iterdir()] == ["45345-1.json"]  # no temporary file left
    # Overwriting replaces the whole file.
    LabelMap(["3001"], []).to_json(path)
    assert LabelMap.from_json(path).parts == ["3001"]


def _map(**changes: object) -> str:
    data = {"format_version": 1, "parts": ["3001"], "colors": [4], **changes}
    return json.dumps({k: v for k, v in data.items() if v is not None})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{oops", "is not valid JSON"),
        (_map(format_version=2), r"format_version: 2 is not valid"),
        (_map(colors=None), "colors: required but missing"),
        (_map(x=1), "x: unknown key"),
        (_map(parts=["3001", "3001"]), "'3001' is listed 2 times"),
        (_map(colors=[9999]), "colour id 9999 is not in"),
        (_map(parts=[]), "has no parts"),
        (json.dumps([1, 2]), "expected a mapping"),
    ],
)
def test_from_json_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        LabelMap.from_json(path)
    assert "map.json" in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"label map '.*absent.json' does not exist"):
        LabelMap.from_json(tmp_path / "absent.json")


def test_construction_checks() -> None:
    with pytest.raises(ConfigError, match="colour 4 is listed 2 times"):
        LabelMap(["3001"], [4, 4])
    with pytest.raises(ConfigError, match="part ' ' is not a non-blank string"):
        LabelMap(["3001", " "], [])
