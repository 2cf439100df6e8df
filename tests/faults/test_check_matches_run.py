"""``edge check`` loads what ``edge run`` loads: what run refuses, check fails.

Found by the hostile probe: check only compared the index file's sha256 with the manifest, so an
index of the wrong dimension, or with bad content whose hash had been written into the manifest,
passed check and was then refused by run. The same held for a record file that is not a record.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge import cli
from edge.daemon import Daemon
from edge.errors import DataFileError, ModelError
from edge.manifest import load_manifest, sha256_file, write_manifest
from edge.settings import load_edge_config
from tests.edge.test_settings import add_index, write_sim_setup


def _rewrite_index(models: Path, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    """Change the arrays of models/index.npz, then write the new file's hash into the manifest."""
    path = models / "index.npz"
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    with path.open("wb") as fh:
        np.savez(fh, **arrays)
    manifest = load_manifest(models)
    assert manifest.index is not None
    index = manifest.index.model_copy(update={"sha256": sha256_file(path)})
    write_manifest(models, manifest.model_copy(update={"index": index}))


def _wider(arrays: dict[str, np.ndarray]) -> None:  # a dimension the manifest does not say
    import json

    meta = json.loads(str(arrays["meta"]))
    meta["dim"] += 1
    arrays["meta"] = np.array(json.dumps(meta))
    arrays["vectors"] = np.hstack([arrays["vectors"], arrays["vectors"][:, :1]])


def _nan(arrays: dict[str, np.ndarray]) -> None:
    arrays["vectors"][3, 0] = np.nan


def _blank_label(arrays: dict[str, np.ndarray]) -> None:
    arrays["labels"][0] = ""


@pytest.mark.parametrize(("change", "why"), [(_wider, "dim"), (_nan, "NaN"), (_blank_label, "empty label")])
def test_check_fails_an_index_that_run_refuses(
    tmp_path: Path,
    demo_library: Path,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[dict[str, np.ndarray]], None],
    why: str,
) -> None:
    config = write_sim_setup(tmp_path, demo_library, recognition={"mode": "hybrid"})
    add_index(tmp_path / "models")
    _rewrite_index(tmp_path / "models", change)
    with pytest.raises(ModelError, match=why):
        Daemon(load_edge_config(config), sim=True, parts=1).run()
    code = cli.main(["check", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 1
    fails = [line for line in out.splitlines() if line.startswith("FAIL index")]
    assert fails and why in fails[0], out


def test_check_passes_a_good_index_and_names_what_it_loaded(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_sim_setup(tmp_path, demo_library, recognition={"mode": "hybrid"})
    add_index(tmp_path / "models")
    assert cli.main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "OK   index: " in out and "12 vectors of 8 dimensions loaded" in out
    assert "OK   recognition: hybrid" in out


def test_without_hnswlib_the_daemon_and_check_search_the_index_exactly(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Pi's install has no hnswlib (no aarch64 wheel): hybrid recognition runs, searching exactly."""
    monkeypatch.setitem(sys.modules, "hnswlib", None)  # stops its import, as if it were not installed
    config = write_sim_setup(tmp_path, demo_library, recognition={"mode": "hybrid"})
    add_index(tmp_path / "models")
    assert cli.main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "12 vectors of 8 dimensions loaded (cosine, exact search)" in out
    stats = Daemon(load_edge_config(config), sim=True, parts=2).run()
    assert stats.parts == 2


def test_check_fails_a_record_that_run_refuses(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    cfg = load_edge_config(config)
    cfg.data.db.parent.mkdir(parents=True)
    cfg.data.db.write_bytes(b"not a database at all, " * 200)
    with pytest.raises(DataFileError, match="corrupt or not a decision record"):
        Daemon(cfg, sim=True, parts=1).run()
    assert cli.main(["check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert any(
        line.startswith("FAIL record") and "corrupt or not a decision record" in line
        for line in out.splitlines()
    ), out


def test_check_names_a_running_daemon(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    daemon = Daemon(load_edge_config(config), sim=True, parts=1)
    daemon.open()
    try:
        code = cli.main(["check", "--config", str(config)])
    finally:
        daemon.close()
    out = capsys.readouterr().out
    assert code == 0, out
    assert any(line.startswith("WARN record") and "in use by" in line for line in out.splitlines()), out
