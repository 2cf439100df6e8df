"""tools/pose_readability.py: per-pose renders named by a model set, on the project's demo library.

The model set is ``test_evaluate``'s hand-weighted classifier (it names a crop by its mean colour:
red 3001, green 3003, blue 3004), with its first part renamed to the demo library's 2x4 brick so
the probe can ask for it; rendered red, the brick is named when red dominates its crop.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from edge.manifest import load_manifest, write_manifest
from tests.tools.load import load_tool
from tests.trainer.test_evaluate import write_known_model_set

REPO = Path(__file__).resolve().parents[2]


def _tool() -> ModuleType:
    return load_tool("pose_readability")


def _model_set(folder: Path) -> Path:
    write_known_model_set(folder)
    manifest = load_manifest(folder)
    write_manifest(folder, manifest.model_copy(update={"parts": ["demo-3001", *manifest.parts[1:]]}))
    return folder


def test_every_pose_is_rendered_and_named(
    demo_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_set = _model_set(tmp_path / "set")
    tool = _tool()
    out = tmp_path / "rows.json"
    argv = [
        "--ldraw", str(demo_library), "--model-set", str(model_set), "--part", "demo-3001",
        "--seeds", "3", "--randomization", "off", "--colors", "4", "--artifact", "onnxruntime/fp32",
        "--json", str(out),
    ]  # fmt: skip
    assert tool.main(argv) == 0
    rows = json.loads(out.read_text())
    # one row per stable pose of the brick, whose chances sum to 1
    assert len(rows) >= 2 and {r["pose"] for r in rows} == set(range(len(rows)))
    assert sum(r["chance"] for r in rows) == pytest.approx(1.0, abs=0.01)
    for r in rows:
        assert r["renders"] == 3 and 0 <= r["named"] <= 3
        assert sum(n for _, n in r["answers"]) == 3  # every render answered by one of the parts
        assert {p for p, _ in r["answers"]} <= {"demo-3001", "3003", "3004"}
    # The weighted share is the poses' shares weighted by their chances.
    expected = sum(r["chance"] * r["named"] / 3 for r in rows) / sum(r["chance"] for r in rows)
    assert tool.weighted(rows)[("off", "demo-3001")] == pytest.approx(expected)
    text = capsys.readouterr().out
    assert "| off | demo-3001 | 0 (" in text and "demo-3001, off: " in text


def test_a_part_the_model_set_does_not_know_is_named(demo_library: Path, tmp_path: Path) -> None:
    model_set = _model_set(tmp_path / "set")
    with pytest.raises(_tool().ProbeError, match="demo-3024 are not among"):
        _tool().probe(demo_library, model_set, ["demo-3024"], artifact="onnxruntime/fp32")
    with pytest.raises(_tool().ProbeError, match=r"--artifact onnxruntime/int8: .* has onnxruntime/fp32"):
        _tool().probe(demo_library, model_set, ["demo-3001"])
