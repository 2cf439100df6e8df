"""Hostile config files: YAML alias bombs are refused, and error messages quote only short previews.

Found by the hostile probe: a 342-byte config of nested aliases took 84 s and 9.3 GB (the aliases
expand when the data is validated and quoted), a 10 MB unknown key gave a 10.7 MB message, and an
index-dimension mismatch printed the whole manifest. The full bomb runs in a child process under a
2 GB address-space limit, so a regression fails the test instead of the machine.
"""

from __future__ import annotations

import itertools
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edge.errors import ConfigError, ModelError
from edge.manifest import load_manifest
from edge.settings import load_edge_config
from tests.edge.test_settings import sim_settings
from tests.helpers.onnx_models import write_model_set

REPO = Path(__file__).resolve().parents[2]
SHORT = 2_000  # no config or manifest error needs more characters than this


def alias_bomb(levels: int = 9) -> str:
    """The probe's 'billion laughs': level n is a list of nine aliases of level n - 1."""
    names = "abcdefghijklmnop"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in itertools.pairwise(names[:levels]):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def load_in_child(path: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``load_edge_config(path)`` in a child limited to 2 GB; prints the ConfigError's length and text."""
    code = (
        "import sys\nfrom edge.settings import load_edge_config\nfrom edge.errors import ConfigError\n"
        "try:\n    load_edge_config(sys.argv[1])\nexcept ConfigError as exc:\n"
        "    print(len(str(exc)), str(exc)[:500])\n    sys.exit(3)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limited,
    )


def test_the_probes_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(9), encoding="utf-8")
    assert len(path.read_bytes()) < 400
    start = time.perf_counter()
    child = load_in_child(path)
    assert child.returncode == 3, child.stderr[-2000:]
    assert time.perf_counter() - start < 30
    length, _, text = child.stdout.partition(" ")
    assert int(length) < SHORT and "alias" in text and str(path) in text


def test_aliases_and_anchors_are_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "small_bomb.yaml"
    path.write_text(alias_bomb(5), encoding="utf-8")  # 59049 'lol's once expanded
    with pytest.raises(ConfigError) as info:
        load_edge_config(path)
    text = str(info.value)
    assert len(text) < SHORT and str(path) in text
    assert "anchor" in text and "line 1" in text  # the first anchor, &a
    path.write_text("camera: &cam {type: sim}\nsegmenter: {type: none}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"anchor '&cam' at line 1.*write the values out"):
        load_edge_config(path)
    path.write_text("camera: {type: sim}\nsegmenter: *cam\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"alias '\*cam' at line 2"):
        load_edge_config(path)


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False, width=1 << 30), encoding="utf-8")
    return path


def test_a_huge_unknown_key_or_value_is_quoted_as_a_short_preview(tmp_path: Path) -> None:
    raw = sim_settings(Path("lib"))
    raw["presence"]["k" * 200_000] = 1  # the file must stay under the 1 MB cap
    raw["capture"]["views"] = "v" * 200_000
    raw["camera"]["parts"] = ["p" * 100] * 2000
    raw["camera"]["supersample"] = list(range(20_000))
    with pytest.raises(ConfigError) as info:
        load_edge_config(_write(tmp_path, raw))
    text = str(info.value)
    assert len(text) < SHORT, text[:3000]
    assert "presence.kkkk" in text and "unknown key" in text and "capture.views: 'vvvv" in text


def test_many_errors_are_summarised(tmp_path: Path) -> None:
    raw = sim_settings(Path("lib"))
    raw["sorting"]["rules"] = [{"bin": "red"} for _ in range(5000)]  # each lacks a criterion
    with pytest.raises(ConfigError) as info:
        load_edge_config(_write(tmp_path, raw))
    text = str(info.value)
    assert len(text) < 4 * SHORT and "5000 bad setting(s)" in text and "and 4980 more" in text


def test_an_index_dimension_mismatch_does_not_print_the_manifest(tmp_path: Path) -> None:
    parts = [f"part-{i:05d}" for i in range(5000)]
    folder = tmp_path / "models"
    write_model_set(folder, parts=parts[:3], colors=[4, 1, 14], size=(16, 16))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["parts"] = parts
    manifest["index"] = {
        "path": "index.npz",
        "sha256": "0" * 64,
        "dim": 7,
        "count": 1,
        "labels": "labels.json",
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError) as info:
        load_manifest(folder)
    text = str(info.value)
    assert len(text) < SHORT and "index.dim 7 differs from embedding_dim" in text
