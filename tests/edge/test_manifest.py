"""manifest.json: round trip, validation messages, atomic writes, file selection and checksums."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from edge.errors import ModelError
from edge.manifest import (
    MANIFEST_NAME,
    Manifest,
    load_manifest,
    make_file_entry,
    sha256_file,
    verify_file,
    write_manifest,
)
from edge.manifest_entries import FileEntry, IndexEntry, InputSpec
from tests.helpers.onnx_models import write_model_set

H0 = "0" * 64


def _manifest(**changes: object) -> Manifest:
    data: dict[str, object] = {
        "architecture": "tiny",
        "input": {"size": [32, 32]},
        "parts": ["3001", "3003"],
        "colors": [4, 15],
        "embedding_dim": 4,
        "files": [
            {"path": "m.onnx", "runtime": "onnxruntime", "precision": "fp32", "sha256": H0, "bytes": 1},
            {
                "path": "m_int8.tflite",
                "runtime": "litert",
                "precision": "int8",
                "sha256": H0,
                "bytes": 1,
                "layout": "NHWC",
                "input_dtype": "int8",
                "input_quant": {"scale": 0.02, "zero_point": -3},
                "output_order": ["embedding", "part_logits", "color_logits"],
            },
        ],
    }
    data.update(changes)
    return Manifest.model_validate(data)


def test_round_trip_preserves_every_field(tmp_path: Path) -> None:
    m = _manifest(
        index={"path": "index.bin", "sha256": H0, "dim": 4, "count": 10, "labels": "labels.json"},
        evaluation={"top1": 0.93, "per_class": {"3001": 0.9}},
        build={"command": "trainer export", "git": "abc123"},
    )
    path = write_manifest(tmp_path, m)
    assert path == tmp_path / MANIFEST_NAME
    loaded = load_manifest(tmp_path)
    assert loaded == m
    assert loaded.files[1].input_quant is not None and loaded.files[1].input_quant.zero_point == -3
    assert load_manifest(path) == m  # the manifest's own path works too
    assert json.loads(path.read_text())["input"]["layout"] == "NCHW"


def test_write_is_atomic_when_replace_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(tmp_path, _manifest())
    before = (tmp_path / MANIFEST_NAME).read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_manifest(tmp_path, _manifest(architecture="other"))
    assert (tmp_path / MANIFEST_NAME).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME]  # no temp file left behind


def test_missing_and_malformed_manifests_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"manifest\.json.*does not exist.*trainer export"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text('{"architecture": "x",\n  oops}')
    with pytest.raises(ModelError, match=r"not valid JSON at line 2, column 3"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("[1, 2]")
    with pytest.raises(ModelError, match="JSON object"):
        load_manifest(tmp_path)


def test_invalid_values_name_the_key_path(tmp_path: Path) -> None:
    data = _manifest().model_dump(mode="json")
    data["input"]["size"] = [32, 0]
    data["files"][0]["runtime"] = "tensorrt"
    data["extra_key"] = 1
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ModelError) as err:
        load_manifest(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / MANIFEST_NAME) in msg
    assert "input.size[1]" in msg and "files[0].runtime" in msg and "'tensorrt'" in msg
    assert "extra_key: unknown key" in msg


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    data = _manifest().model_dump(mode="json") | {"format_version": 2}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ModelError, match="format_version 2 is not supported"):
        load_manifest(tmp_path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"parts": ["3001", "3001"]}, "parts must be unique; repeated: 3001"),
        ({"colors": []}, "color_logits is set but colors is empty"),
        ({"embedding_dim": None}, "embedding_dim is missing"),
        (
            {"index": {"path": "i.bin", "sha256": H0, "dim": 8, "count": 1, "labels": "l.json"}},
            "index.dim 8 differs from embedding_dim 4",
        ),
        (
            {
                "segmenters": [
                    {
                        "path": "m.onnx",
                        "sidecar": "s.json",
                        "precision": "int8",
                        "sha256": H0,
                        "sidecar_sha256": H0,
                        "bytes": 1,
                    }
                ]
            },
            r"segmenters reuse a path listed elsewhere: \['m.onnx'\]",
        ),
        (
            {
                "segmenters": [
                    {
                        "path": "../s.onnx",
                        "sidecar": "s.json",
                        "precision": "int8",
                        "sha256": H0,
                        "sidecar_sha256": H0,
                        "bytes": 1,
                    }
                ]
            },
            "relative path inside the model folder",
        ),
    ],
)
def test_inconsistent_manifests_are_rejected(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _manifest(**changes)


@pytest.mark.parametrize("path", ["../model.onnx", "/abs/model.onnx", "C:/model.onnx", "a\\b.onnx", ""])
def test_file_paths_must_stay_inside_the_folder(path: str) -> None:
    with pytest.raises(ValueError, match="relative path inside the model folder"):
        FileEntry(path=path, runtime="onnxruntime", precision="fp32", sha256=H0, bytes=1)


def test_integer_input_needs_quantisation() -> None:
    with pytest.raises(ValueError, match="needs input_quant"):
        FileEntry(
            path="m.tflite", runtime="litert", precision="int8", sha256=H0, bytes=1, input_dtype="uint8"
        )
    with pytest.raises(ValueError, match="names a role twice"):
        FileEntry(
            path="m.tflite",
            runtime="litert",
            precision="fp32",
            sha256=H0,
            bytes=1,
            output_order=["embedding", "embedding"],
        )


def test_input_spec_bounds() -> None:
    with pytest.raises(ValueError, match="std"):
        InputSpec(size=(32, 32), std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="fill_rgb"):
        InputSpec(size=(32, 32), fill_rgb=(0, 256, 0))


def test_select_picks_runtime_and_precision_and_lists_alternatives() -> None:
    m = _manifest()
    assert m.select("onnxruntime").path == "m.onnx"
    assert m.select("litert", "int8").path == "m_int8.tflite"
    with pytest.raises(ModelError) as err:
        m.select("litert", "fp16")
    msg = str(err.value)
    assert "'litert/fp16'" in msg
    assert "onnxruntime/fp32 (m.onnx)" in msg and "litert/int8 (m_int8.tflite)" in msg


def test_verify_file_accepts_the_right_file_and_names_mismatches(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"model bytes")
    entry = make_file_entry(tmp_path, "m.onnx", "onnxruntime", "fp32")
    assert entry.sha256 == hashlib.sha256(b"model bytes").hexdigest() == sha256_file(tmp_path / "m.onnx")
    assert entry.bytes == len(b"model bytes")
    assert verify_file(tmp_path, entry) == tmp_path / "m.onnx"

    (tmp_path / "m.onnx").write_bytes(b"model byteZ")  # same size, different content
    with pytest.raises(ModelError) as err:
        verify_file(tmp_path, entry)
    msg = str(err.value)
    actual = hashlib.sha256(b"model byteZ").hexdigest()
    assert f"expected {entry.sha256}" in msg and f"actual {actual}" in msg
    assert str(tmp_path / "m.onnx") in msg and "trainer export" in msg

    (tmp_path / "m.onnx").write_bytes(b"model")
    with pytest.raises(ModelError, match="has 5 bytes but the manifest expects 11"):
        verify_file(tmp_path, entry)
    (tmp_path / "m.onnx").unlink()
    with pytest.raises(ModelError, match="is missing"):
        verify_file(tmp_path, entry)


def test_verify_file_reads_large_files_in_chunks(tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 + 17)
    (tmp_path / "big.bin").write_bytes(payload)
    assert sha256_file(tmp_path / "big.bin", chunk_bytes=1024) == hashlib.sha256(payload).hexdigest()
    index = IndexEntry(
        path="big.bin", sha256=hashlib.sha256(payload).hexdigest(), dim=4, count=1, labels="labels.json"
    )
    assert verify_file(tmp_path, index) == tmp_path / "big.bin"


def test_write_model_set_helper_writes_a_verifiable_set(tmp_path: Path) -> None:
    m = write_model_set(tmp_path)
    assert load_manifest(tmp_path) == m
    verify_file(tmp_path, m.select("onnxruntime", "fp32"))


def test_categories_are_optional_and_name_only_known_parts() -> None:
    assert _manifest().categories == {}
    assert _manifest(categories={"3001": "Brick"}).categories == {"3001": "Brick"}
    with pytest.raises(ValueError, match="categories names part"):
        _manifest(categories={"9999": "Plate"})
