"""Duplicate YAML keys are refused, naming the key and its line (PyYAML keeps the last silently).

Found by the hostile probe: ``engine:`` twice in one file took the second section without a word,
so an edit further down the file quietly undid the first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.settings import load_edge_config


def test_duplicate_keys_are_refused_naming_the_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("engine: {threads: 1}\ncapture: {views: 2}\nengine: {threads: 2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"duplicate key 'engine' at line 3.*first at line 1"):
        load_edge_config(path)
    path.write_text("camera:\n  type: sim\n  parts: [a]\n  type: folder\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"duplicate key 'type' at line 4.*first at line 2"):
        load_edge_config(path)
    path.write_text("rig: {chute: {bins: {1: -30, 0x1: 30}}}\n", encoding="utf-8")  # the same key, 1
    with pytest.raises(ConfigError, match=r"duplicate key 1 at line 1"):
        load_edge_config(path)
