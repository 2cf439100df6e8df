"""benchmarks/index_backends.py: both backends measured on one saved index, and the table drawn."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.index_backends import markdown, measure, synthetic_index  # noqa: E402


def test_both_backends_are_measured_and_agree_on_a_small_index(tmp_path: Path) -> None:
    entry = synthetic_index(tmp_path, 300, 16)
    result = measure("tiny", tmp_path, entry, repeats=3)
    assert result["count"] == 300 and set(result["search_ms_per_part"]) == {"hnswlib", "exact"}
    assert all(ms > 0 for ms in result["search_ms_per_part"].values())
    assert result["memory_added_mb"]["exact"] >= 0
    assert result["top1_agreement"] >= 0.9  # a small index: hnswlib is all but exact
    text = markdown(
        {"command": "python benchmarks/index_backends.py", "machine": "test", "indexes": [result]}
    )
    assert "| tiny | 300 x 16 |" in text and "hnswlib recall@5" in text
