"""Config files that cannot be read are a ConfigError naming the file, never a traceback.

Found by the hostile probe: a file that is not UTF-8 gave a UnicodeDecodeError traceback, deeply
nested YAML a RecursionError, and ``--config /dev/zero`` a MemoryError (after eating the memory).
Calibration files (read by the segmenter and camera) go through the same reader; a model set's
manifest.json gets the same guards as a ModelError.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.calibration_file import read_calibration
from edge.config import MAX_CONFIG_BYTES, MAX_DEPTH
from edge.errors import ConfigError, DataFileError, ModelError
from edge.manifest import MAX_MANIFEST_BYTES, load_manifest
from edge.settings import load_edge_config
from tests.faults.test_config_bombs import load_in_child


def _refused(path: Path, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_edge_config(path)
    text = str(info.value)
    assert str(path) in text
    for fragment in fragments:
        assert fragment in text, text
    return text


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("camera: {type: sim}\n# Kurbelgehäuse\n".encode("latin-1"))
    _refused(path, "not UTF-8", "line 2", "0xe4")


def test_deep_nesting(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("camera: " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    _refused(path, f"nested deeper than {MAX_DEPTH} levels", "line 1")
    path.write_text("camera:" + "".join(f"\n{' ' * i}k{i}:" for i in range(1, 200)) + " 1\n")
    _refused(path, f"nested deeper than {MAX_DEPTH} levels")
    path.write_text("camera: " + "[" * 20 + "]" * 20 + "\n", encoding="utf-8")  # deep enough for no config
    _refused(path, "camera")


def test_dev_zero_and_big_files(tmp_path: Path) -> None:
    child = load_in_child(Path("/dev/zero"))  # 2 GB limit: the old reader dies of MemoryError
    assert child.returncode == 3, child.stderr[-2000:]
    assert "larger than 1 MB" in child.stdout and "/dev/zero" in child.stdout
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1), encoding="utf-8")
    _refused(big, "larger than 1 MB")
    _refused(tmp_path, "is a directory")


def test_unreadable_values(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text("memory_budget_mb: " + "9" * 5000 + "\n", encoding="utf-8")
    _refused(path, "cannot be read as YAML")
    path.write_text("autostart: 2024-13-45\n", encoding="utf-8")
    _refused(path, "cannot be read as YAML", "month")
    # Found by the fuzz test: PyYAML itself raises AttributeError, KeyError or IndexError here.
    for tagged in ("!!timestamp x", "!!bool maybe", "!!float"):
        path.write_text(f"autostart: {tagged}\n", encoding="utf-8")
        _refused(path, "cannot be read as YAML", "drop the '!!' tag")
    path.write_text("autostart: tr\x00ue\n", encoding="utf-8")  # PyYAML's reader refuses it at once
    _refused(path, "not valid YAML", "special characters are not allowed")


def test_calibration_files_share_the_reader(tmp_path: Path) -> None:
    bad = tmp_path / "cal.yaml"
    bad.write_bytes(b"background_hsv: \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_calibration(bad)
    bad.write_text("a: &x 1\nb: *x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="anchor"):
        read_calibration(bad)
    deep = tmp_path / "cal.json"
    deep.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(ConfigError, match="nested deeper"):
        read_calibration(deep)
    with pytest.raises(DataFileError, match="does not exist"):
        read_calibration(tmp_path / "none.json")


def test_a_manifest_nested_too_deeply_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(ModelError, match="nested too deeply"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_bytes(b"{" + b" " * (MAX_MANIFEST_BYTES + 1) + b"}")
    with pytest.raises(ModelError, match="larger than 32 MB"):
        load_manifest(tmp_path)


def test_files_a_config_names_share_the_reader(tmp_path: Path) -> None:
    from edge.camera.sim import SimConfig, _parts
    from edge.sorting import read_categories_file

    latin1 = tmp_path / "parts.txt"
    latin1.write_bytes("3001\n3003 # Stein 2x2, gr\xfcn\n".encode("latin-1"))  # was a UnicodeDecodeError
    config = SimConfig(ldraw=str(tmp_path), parts_file=str(latin1))
    with pytest.raises(ConfigError, match=r"parts list .*parts\.txt.* is not UTF-8"):
        _parts(config)
    huge = tmp_path / "huge.txt"  # a regular file: a regression reads 17 MB, not /dev/zero forever
    huge.write_bytes(b"3001\n" * (17 << 18))
    with pytest.raises(ConfigError, match=r"parts list .*huge\.txt.* is larger than 1 MB"):
        _parts(SimConfig(ldraw=str(tmp_path), parts_file=str(huge)))
    with pytest.raises(ConfigError, match=r"categories file .*huge\.txt.* is larger than 16 MB"):
        read_categories_file(huge)
    with pytest.raises(DataFileError, match=r"does not exist; fix sorting\.categories_file"):
        read_categories_file(tmp_path / "none.csv")
