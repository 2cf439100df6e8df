"""Files of a model set must lie inside its folder once symlinks are resolved.

Found by the hostile probe: ``model_int8.onnx`` as a symlink to ``/etc/passwd``, with that file's
hash written into the manifest, was read (and hashed) by the runtime. The manifest's paths were
already refused when absolute or holding '..'; a symlink inside the folder escaped that check.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge import cli
from edge.daemon import Daemon
from edge.engines import create_engine
from edge.errors import ModelError
from edge.manifest import load_manifest, sha256_file, verify_file, write_manifest
from edge.settings import load_edge_config
from tests.edge.test_settings import add_index, write_sim_setup


def _point_outside(models: Path, name: str, target: Path) -> None:
    """Replace models/name by a symlink to ``target`` and write ``target``'s hash into the manifest."""
    (models / name).unlink()
    (models / name).symlink_to(target)
    manifest = load_manifest(models)
    files = [
        f.model_copy(update={"sha256": sha256_file(target), "bytes": target.stat().st_size})
        if f.path == name
        else f
        for f in manifest.files
    ]
    index = manifest.index
    if index is not None and index.path == name:
        index = index.model_copy(update={"sha256": sha256_file(target)})
    write_manifest(models, manifest.model_copy(update={"files": files, "index": index}))


def test_a_model_file_linked_to_etc_passwd_is_refused_unread(
    tmp_path: Path, demo_library: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    models = tmp_path / "models"
    _point_outside(models, "classifier.onnx", Path("/etc/passwd"))
    manifest = load_manifest(models)
    hashed: list[str] = []
    real = sha256_file
    monkeypatch.setattr("edge.manifest.sha256_file", lambda p, *a: hashed.append(str(p)) or real(p, *a))
    with pytest.raises(ModelError) as info:
        verify_file(models, manifest.files[0])
    text = str(info.value)
    assert "outside the model set folder" in text and "/etc/passwd" in text and "classifier.onnx" in text
    assert hashed == []  # refused before a byte of it was read
    with pytest.raises(ModelError, match="outside the model set folder"):
        create_engine("onnxruntime", models, manifest, precision="fp32", verify=False)
    with pytest.raises(ModelError, match="outside the model set folder"):
        Daemon(load_edge_config(config), sim=True, parts=1).run()
    assert cli.main(["check", "--config", str(config)]) == 1
    assert "outside the model set folder" in capsys.readouterr().out


def test_an_index_or_manifest_linked_outside_is_refused(tmp_path: Path, demo_library: Path) -> None:
    config = write_sim_setup(tmp_path, demo_library, recognition={"mode": "hybrid"})
    models = tmp_path / "models"
    add_index(models)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(models / "index.npz", elsewhere / "index.npz")  # the very same bytes
    _point_outside(models, "index.npz", elsewhere / "index.npz")
    with pytest.raises(ModelError, match=r"index\.npz.*outside the model set folder"):
        Daemon(load_edge_config(config), sim=True, parts=1).run()
    shutil.move(models / "manifest.json", elsewhere / "manifest.json")
    (models / "manifest.json").symlink_to(elsewhere / "manifest.json")
    with pytest.raises(ModelError, match=r"manifest\.json.*outside the model set folder"):
        load_manifest(models)


def test_links_inside_the_folder_and_a_linked_folder_are_fine(tmp_path: Path, demo_library: Path) -> None:
    config = write_sim_setup(tmp_path / "real", demo_library)
    models = tmp_path / "real" / "models"
    (models / "v1").mkdir()
    shutil.move(models / "classifier.onnx", models / "v1" / "classifier.onnx")
    (models / "classifier.onnx").symlink_to(Path("v1") / "classifier.onnx")  # a link within the set
    (tmp_path / "linked").symlink_to(tmp_path / "real")  # the set's folder reached through a link
    assert Daemon(load_edge_config(tmp_path / "linked" / config.name), sim=True, parts=1).run().parts == 1
