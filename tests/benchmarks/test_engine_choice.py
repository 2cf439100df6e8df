"""``benchmarks/engine_choice.py``: which runtime options a model set can be measured with."""

from __future__ import annotations

from pathlib import Path

from benchmarks.engine_choice import available_options
from edge.manifest import write_manifest
from tests.helpers.onnx_models import write_model_set


def test_options_follow_the_files_of_the_set_and_say_why_one_is_missing(tmp_path: Path) -> None:
    manifest = write_model_set(tmp_path, filename="model_int8.onnx", precision="int8")
    why = "litert/int8 loses 24.6 points of colour top-1 against fp32 on the held-out split"
    left = [{"path": "model_int8.tflite", "key": "litert/int8", "bytes": 1, "sha256": "0" * 64, "why": why}]
    write_manifest(tmp_path, manifest.model_copy(update={"evaluation": {"not_shipped": left}}))
    options, missing = available_options(tmp_path)
    assert options == [("onnxruntime", "int8")]
    assert missing == {"litert/int8": why, "litert/fp16": "no such file"}
