"""The whole model-building chain on tiny data, as CI runs it: render -> train -> export -> quantize ->
index -> evaluate, every artifact then loaded and run through edge's engines.

Needs the ``train`` extra (torch, timm) and onnxconverter-common; skipped without them.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from edge.engines import create_engine
from edge.index import EmbeddingIndex
from edge.manifest import load_manifest, verify_file
from studio.demo_library import DEMO_PARTS
from trainer.render import run_render
from trainer.render_worker import RenderJob

NEEDED = ("torch", "timm", "safetensors", "albumentations", "matplotlib", "onnxconverter_common")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(importlib.util.find_spec(m) for m in NEEDED),
        reason=f"the chain needs {', '.join(NEEDED)} (train and convert extras)",
    ),
]
FIGURES = (
    "part_top1",
    "part_top5",
    "fused_part_top1",
    "color_top1",
    "fused_color_top1",
    "vector_top1",
    "vector_fused_top1",
    "unseen_top1",
    "unseen_fused_top1",
)


def test_render_train_export_quantize_index_evaluate(demo_library: Path, tmp_path: Path) -> None:
    from trainer.evaluate import evaluate_model_set
    from trainer.export import export_checkpoint
    from trainer.index import build_index
    from trainer.quantize import quantize_model_set
    from trainer.train import train
    from trainer.train_config import TrainConfig

    data = tmp_path / "renders"
    job = RenderJob(str(demo_library), "legacy", str(data), 4, 2, (4, 1, 14), 0, "train", 1, 64)
    assert not [r.error for r in run_render(job, list(DEMO_PARTS)) if r.error]

    cfg = TrainConfig(
        sources=[{"path": str(data)}],
        split=(0.5, 0.25, 0.25),
        holdout_parts=1,
        input_size=64,
        pretrained=False,
        embedding_dim=16,
        epochs=1,
        batch_size=8,
        device="cpu",
        threads=2,
        cache={"mode": "off"},
        out=str(tmp_path / "run"),
    )
    result = train(cfg, "stage1", max_steps=1, progress=False)
    assert result["steps"] == 1

    folder = tmp_path / "set"
    export_checkpoint(result["best"], folder, parity_images=8)
    quantize_model_set(folder, [data], "onnx-int8,onnx-fp16", calib_count=16, eval_count=32)
    build_index(folder, [data], precision="int8")
    report = evaluate_model_set(folder, [data], tmp_path / "report", views=2)

    manifest = load_manifest(folder)
    holdout = json.loads((tmp_path / "run" / "holdout_parts.json").read_text())["parts"]
    assert manifest.build["data"]["holdout_parts"] == holdout and holdout[0] not in manifest.parts
    assert [f.key for f in manifest.files] == ["onnxruntime/fp32", "onnxruntime/int8", "onnxruntime/fp16"]
    x = np.zeros((3, 3, 64, 64), np.float32)
    for entry in manifest.files:
        verify_file(folder, entry)
        with create_engine(entry.runtime, folder, precision=entry.precision) as engine:
            out = engine.run(x)
        assert out["part_logits"].shape == (3, len(manifest.parts))
        assert out["embedding"].shape == (3, 16)
    assert manifest.index is not None
    index = EmbeddingIndex.load(folder / manifest.index.path, expect=manifest.index)
    assert len(index) == manifest.index.count > 0

    evaluation = manifest.evaluation
    assert set(evaluation) == {"export_parity", "temperature_scaling", "quantization", "index", "evaluate"}
    assert set(evaluation["quantization"]["artifacts"]) == {f.key for f in manifest.files}
    assert evaluation["index"]["recall_at_1"] == 1.0  # a gallery this small is searched exactly
    assert report["unseen"]["parts"] == holdout and not report["unseen"]["seen_in_training"]
    for key in (f.key for f in manifest.files):
        figures = evaluation["evaluate"]["artifacts"][key]
        for name in FIGURES:
            assert 0.0 <= figures[name] <= 1.0, (key, name)
    for name in ("report.md", "report.json", "artifacts.png", "confusion.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert all(key in md for key in ("onnxruntime/fp32", "onnxruntime/int8", "onnxruntime/fp16"))
