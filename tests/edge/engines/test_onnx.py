"""ONNX Runtime engine on real tiny .onnx files: numerics, batching, layouts, integer I/O, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge.engines import Engine, backend_class, create_engine, register_engine
from edge.errors import ConfigError, ImageError, ModelError
from edge.manifest import load_manifest, make_file_entry, write_manifest
from edge.preprocess import prepare_batch
from tests.helpers.onnx_models import ClassifierWeights, build_classifier, write_model_set


def _batch(n: int, layout: str = "NCHW", size: int = 16, seed: int = 0) -> np.ndarray:
    shape = (n, 3, size, size) if layout == "NCHW" else (n, size, size, 3)
    return np.random.default_rng(seed).normal(0.0, 1.0, shape).astype(np.float32)


def _assert_matches(out: dict[str, np.ndarray], ref: dict[str, np.ndarray], atol: float = 1e-5) -> None:
    assert set(out) == {"part_logits", "color_logits", "embedding"}
    for role, expected in ref.items():
        assert out[role].dtype == np.float32 and out[role].shape == expected.shape, role
        np.testing.assert_allclose(out[role], expected, atol=atol, err_msg=role)


def test_outputs_match_numpy_reference(tmp_path: Path) -> None:
    manifest = write_model_set(tmp_path)
    x = _batch(3)
    with create_engine("onnxruntime", tmp_path, threads=1) as engine:
        assert isinstance(engine, Engine) and engine.input_shape == (3, 16, 16)
        assert engine.max_batch is None  # dynamic batch: one call
        _assert_matches(engine.run(x), ClassifierWeights.for_manifest(manifest).reference(x))
        np.testing.assert_allclose(np.linalg.norm(engine.run(x)["embedding"], axis=1), 1.0, rtol=1e-5)


def test_prepared_images_run_end_to_end(tmp_path: Path) -> None:
    manifest = write_model_set(tmp_path, size=(24, 24))
    rng = np.random.default_rng(3)
    items = []
    for _ in range(2):
        image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
        mask = np.zeros((60, 80), np.uint8)
        mask[10:40, 20:70] = 255
        items.append((image, mask))
    x = prepare_batch(items, manifest.input)
    with create_engine("onnxruntime", tmp_path, threads=1) as engine:
        out = engine.run(x)
    _assert_matches(out, ClassifierWeights.for_manifest(manifest).reference(x))


@pytest.mark.parametrize("batch", [None, 1, 3])
def test_batch_of_four_equals_four_single_runs(tmp_path: Path, batch: int | None) -> None:
    manifest = write_model_set(tmp_path, batch=batch)
    x = _batch(4, seed=5)
    with create_engine("onnxruntime", tmp_path, threads=1) as engine:
        assert engine.max_batch == batch  # a fixed batch makes the wrapper loop (and pad to 3)
        together = engine.run(x)
        singles = [engine.run(x[i : i + 1]) for i in range(4)]
    for role in together:
        np.testing.assert_allclose(together[role], np.concatenate([s[role] for s in singles]), atol=1e-6)
    _assert_matches(together, ClassifierWeights.for_manifest(manifest).reference(x))


@pytest.mark.parametrize(
    ("spec_layout", "file_layout"), [("NCHW", "NHWC"), ("NHWC", "NCHW"), ("NHWC", "NHWC")]
)
def test_layout_is_converted_to_the_files(tmp_path: Path, spec_layout: str, file_layout: str) -> None:
    manifest = write_model_set(tmp_path, spec={"layout": spec_layout}, file_layout=file_layout)
    x = _batch(2, spec_layout)
    with create_engine("onnxruntime", tmp_path, threads=1) as engine:
        assert engine.input_shape == ((3, 16, 16) if spec_layout == "NCHW" else (16, 16, 3))
        _assert_matches(engine.run(x), ClassifierWeights.for_manifest(manifest).reference(x, spec_layout))


@pytest.mark.parametrize(("dtype", "quant"), [("uint8", (0.02, 128)), ("int8", (0.025, -4))])
def test_integer_input_is_quantised_and_integer_outputs_dequantised(
    tmp_path: Path, dtype: str, quant: tuple[float, int]
) -> None:
    out_quant = {"part_logits": (0.05, 3)}
    manifest = write_model_set(tmp_path, input_dtype=dtype, input_quant=quant, output_quant=out_quant)
    x = _batch(4, seed=9)
    x[0, 0, 0, 0] = 1e6  # far out of range: must saturate, not wrap around
    info = np.iinfo(dtype)
    q = np.clip(np.rint(x / np.float32(quant[0])) + quant[1], info.min, info.max)
    dequantised = ((q - quant[1]) * np.float32(quant[0])).astype(np.float32)
    ref = ClassifierWeights.for_manifest(manifest).reference(dequantised)
    with create_engine("onnxruntime", tmp_path, threads=1) as engine:
        out = engine.run(x)
    np.testing.assert_allclose(out["part_logits"], ref["part_logits"], atol=0.05 / 2 + 1e-5)  # one step
    np.testing.assert_allclose(out["color_logits"], ref["color_logits"], atol=1e-4)
    assert not np.allclose(
        out["color_logits"], ClassifierWeights.for_manifest(manifest).reference(x)["color_logits"]
    )


def test_output_order_maps_unnamed_outputs(tmp_path: Path) -> None:
    order = ["embedding", "part_logits", "color_logits"]
    manifest = write_model_set(
        tmp_path,
        output_order=order,
        output_names={role: f"out{i}" for i, role in enumerate(order)},
        entry_fields={"output_order": order},
    )
    x = _batch(2)
    with create_engine("onnxruntime", tmp_path, threads=1) as engine:
        _assert_matches(engine.run(x), ClassifierWeights.for_manifest(manifest).reference(x))


def test_output_name_mismatch_is_reported(tmp_path: Path) -> None:
    write_model_set(tmp_path, output_names={"part_logits": "logits"})
    with pytest.raises(ModelError) as err:
        create_engine("onnxruntime", tmp_path, threads=1)
    msg = str(err.value)
    assert "classifier.onnx" in msg and "['part_logits'] not found" in msg and "'logits'" in msg


def test_output_width_mismatch_is_reported(tmp_path: Path) -> None:
    manifest = write_model_set(tmp_path)
    wider = manifest.model_copy(update={"parts": [*manifest.parts, "99999"]})
    with pytest.raises(
        ModelError, match=r"'part_logits' \(part_logits\) has shape \(None, 5\), expected \(N, 6\)"
    ):
        create_engine("onnxruntime", tmp_path, wider, threads=1)


def test_input_shape_and_name_mismatches_are_reported(tmp_path: Path) -> None:
    manifest = write_model_set(tmp_path)
    bigger = manifest.model_copy(update={"input": manifest.input.model_copy(update={"size": (32, 32)})})
    with pytest.raises(ModelError, match=r"input 'image' has shape \(None, 3, 16, 16\).*\('N', 3, 32, 32\)"):
        create_engine("onnxruntime", tmp_path, bigger, threads=1)
    write_model_set(tmp_path, entry_fields={"input_name": "pixels"})
    with pytest.raises(ModelError, match="named 'image', the manifest expects 'pixels'"):
        create_engine("onnxruntime", tmp_path, threads=1)


def test_two_inputs_are_refused(tmp_path: Path) -> None:
    manifest = write_model_set(tmp_path)
    model = build_classifier(ClassifierWeights.for_manifest(manifest), (16, 16))
    model.graph.input.append(onnx.helper.make_tensor_value_info("extra", onnx.TensorProto.FLOAT, [1]))
    onnx.save(model, tmp_path / "classifier.onnx")
    fixed = manifest.model_copy(
        update={"files": [make_file_entry(tmp_path, "classifier.onnx", "onnxruntime", "fp32")]}
    )
    with pytest.raises(ModelError, match=r"has 2 inputs \['image', 'extra'\]"):
        create_engine("onnxruntime", tmp_path, fixed, threads=1)


def test_checksum_is_verified_before_loading(tmp_path: Path) -> None:
    write_model_set(tmp_path)
    path = tmp_path / "classifier.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupt or was replaced: sha256 expected"):
        create_engine("onnxruntime", tmp_path, threads=1)
    path.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="cannot be loaded by ONNX Runtime"):
        create_engine("onnxruntime", tmp_path, threads=1, verify=False)


def test_run_rejects_bad_batches(tmp_path: Path) -> None:
    write_model_set(tmp_path)
    with create_engine("onnxruntime", tmp_path, threads=1) as engine:
        with pytest.raises(ImageError, match=r"expected \(N, 3, 16, 16\).*x\[None\]"):
            engine.run(_batch(1)[0])
        with pytest.raises(ImageError, match="expected"):
            engine.run(_batch(2, "NHWC"))
        with pytest.raises(ImageError, match="float numpy batch"):
            engine.run(np.zeros((1, 3, 16, 16), np.uint8))


def test_selection_and_registry_errors(tmp_path: Path) -> None:
    write_model_set(tmp_path)
    with pytest.raises(
        ConfigError, match="unknown inference runtime 'tensorrt'; known runtimes: litert, onnxruntime"
    ):
        create_engine("tensorrt", tmp_path)
    with pytest.raises(ModelError, match=r"no file for 'onnxruntime/int8'; available: onnxruntime/fp32"):
        create_engine("onnxruntime", tmp_path, precision="int8")
    with pytest.raises(ModelError, match="no file for 'litert'"):
        create_engine("litert", tmp_path)
    with pytest.raises(ConfigError, match="threads 0"):
        create_engine("onnxruntime", tmp_path, threads=0)
    assert backend_class("onnxruntime").__name__ == "OnnxBackend"


def test_a_file_left_out_when_shipped_is_named_with_why(tmp_path: Path) -> None:
    manifest = write_model_set(tmp_path)
    why = "litert/int8 loses 24.6 points of colour top-1 against fp32 on the held-out split"
    left = [{"path": "model_int8.tflite", "key": "litert/int8", "bytes": 1, "sha256": "0" * 64, "why": why}]
    write_manifest(tmp_path, manifest.model_copy(update={"evaluation": {"not_shipped": left}}))
    with pytest.raises(
        ModelError,
        match=r"no file for 'litert/int8' \(left out when the set was shipped: "
        r"model_int8\.tflite: litert/int8 loses 24\.6 points.*available: onnxruntime/fp32",
    ):
        create_engine("litert", tmp_path, precision="int8")


def test_precision_selects_among_several_files(tmp_path: Path) -> None:
    manifest = write_model_set(tmp_path)
    other = ClassifierWeights.random(len(manifest.parts), len(manifest.colors), 8, seed=42)
    onnx.save(build_classifier(other, (16, 16)), tmp_path / "classifier_fp16.onnx")
    entry = make_file_entry(tmp_path, "classifier_fp16.onnx", "onnxruntime", "fp16")
    write_manifest(tmp_path, manifest.model_copy(update={"files": [*manifest.files, entry]}))
    x = _batch(2)
    with create_engine("onnxruntime", tmp_path, precision="fp16", threads=1) as engine:
        assert engine.entry.path == "classifier_fp16.onnx"
        _assert_matches(engine.run(x), other.reference(x))
    assert load_manifest(tmp_path).select("onnxruntime").path == "classifier.onnx"


def test_importing_engines_loads_no_backend() -> None:
    code = (
        "import sys, edge.engines, edge.preprocess, edge.manifest; "
        "bad = [m for m in ('onnxruntime', 'edge.engines.onnx', 'edge.engines.litert', 'ai_edge_litert', "
        "'torch', 'tensorflow') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_register_engine_adds_a_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.engines import base

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    @register_engine("tensorrt")
    class TensorRTBackend(base.Backend):  # registration only; never instantiated here
        pass

    assert backend_class("tensorrt") is TensorRTBackend
    with pytest.raises(ConfigError, match="known runtimes: litert, onnxruntime, tensorrt"):
        backend_class("coreml")
