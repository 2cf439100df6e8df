"""The trainer on a GPU: ``device: auto`` picks CUDA, training runs there (with and without the
feature cache), and what it saves loads, runs and exports on a CPU, as the Pi needs.

Skipped where torch sees no GPU (CI has none); run on a machine with one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("albumentations")

from edge.engines import create_engine  # noqa: E402
from edge.manifest import load_manifest  # noqa: E402
from studio.demo_library import DEMO_PARTS  # noqa: E402
from trainer.checkpoint import load_checkpoint  # noqa: E402
from trainer.render import run_render  # noqa: E402
from trainer.render_worker import RenderJob  # noqa: E402
from trainer.train import train  # noqa: E402
from trainer.train_build import resolve_device  # noqa: E402
from trainer.train_config import TrainConfig  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)"),
]


@pytest.fixture(scope="module")
def renders(demo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cuda_renders")
    job = RenderJob(str(demo_library), "legacy", str(out), 4, 2, (4, 1, 14), 0, "train", 1, 64)
    assert not [r.error for r in run_render(job, list(DEMO_PARTS)) if r.error]
    return out


def _config(data: Path, out: Path, cache: str) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "sources": [{"path": str(data)}],
            "split": (0.5, 0.25, 0.25),
            "input_size": 64,
            "pretrained": False,
            "embedding_dim": 16,
            "freeze_blocks": 3,
            "epochs": 2,
            "batch_size": 8,
            "device": "auto",
            "cache": {"mode": cache, "copies": 2},
            "out": str(out),
        }
    )


def test_auto_picks_the_gpu() -> None:
    assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize("cache", ["off", "on"])
def test_training_on_the_gpu_gives_a_checkpoint_that_runs_and_exports_on_a_cpu(
    renders: Path, tmp_path: Path, cache: str
) -> None:
    from trainer.export import export_checkpoint

    result = train(_config(renders, tmp_path / "run", cache), "stage1", progress=False)
    assert result["device"] == "cuda" and result["cached"] == (cache == "on")
    assert [r["epoch"] for r in result["history"]] == [1, 2] and all(r["complete"] for r in result["history"])
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in result["history"])

    on_cpu, meta = load_checkpoint(result["best"], device="cpu")
    on_gpu, _ = load_checkpoint(result["best"], device="cuda")
    assert next(on_cpu.parameters()).device.type == "cpu" and meta.stage == "stage1"
    x = torch.rand(4, 3, 64, 64)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # full fp32 convolutions, so the two devices agree closely
    try:
        with torch.no_grad():
            want, got = on_cpu(x), on_gpu(x.cuda())
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    for key in want:
        torch.testing.assert_close(got[key].cpu(), want[key], atol=1e-4, rtol=1e-4)

    folder = tmp_path / "set"
    export_checkpoint(result["best"], folder, parity_images=8)  # its parity check runs on a CPU
    manifest = load_manifest(folder)
    with create_engine("onnxruntime", folder, precision="fp32") as engine:
        out = engine.run(x.numpy())
    logits = torch.from_numpy(out["part_logits"])
    torch.testing.assert_close(logits, want["part_logits"], atol=1e-3, rtol=1e-3)
    assert out["part_logits"].shape == (4, len(manifest.parts))
