"""Training throughput of ``trainer stage1`` per device and mode, against the CPU build's mode.

    python benchmarks/train_rate.py [--ldraw DIR --top N] [--steps 30] [--workers W] \
        [--json FILE] [--markdown FILE]

Renders a small training set as the rig sees it (640x480 frames, ``real`` layout, 'train'
randomisation) of the project's demo parts, or of the first ``--top`` parts of ``--ldraw``'s
b200c list, then trains the default model (EfficientNet-Lite0, 128x128, batch 64; random weights,
which train at the same speed) for ``--steps`` steps in each mode the machine can run:

- ``cpu/cached``: the default CPU build (stem and first 5 stages frozen, their output cached once
  from augmented copies): the baseline;
- ``cpu/full``: nothing frozen, augmentation on the fly (what a GPU build would do, on the CPU);
- ``cuda/cached`` and ``cuda/full``: the same on the GPU when torch sees one (``full`` there with
  ``--workers`` data-loader processes, as a GPU needs; the CPU modes use the build's 0).

Each mode's figure is the training loop's own images/s (validation excluded), taken from the
second of two epochs so start-up (cuDNN autotuning, the first batches) is left out; the one-off
caching time of the cached modes is reported beside it. Ratios are against ``cpu/cached`` in the
same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH = 64
SIZE = 128


def render_set(out: Path, ldraw: Path | None, top: int, workers: int) -> tuple[Path, int]:
    """A small real-layout render; returns its folder and image count."""
    from studio.demo_library import DEMO_PARTS, write_demo_library
    from trainer.render import read_parts_list, run_render
    from trainer.render_worker import RenderJob

    if ldraw is None:
        ldraw = out / "demo_ldraw"
        write_demo_library(ldraw)
        parts = list(DEMO_PARTS)
    else:
        parts = read_parts_list(ldraw / "lists" / "b200c_popular.txt", top)
    data = out / "render"
    job = RenderJob(str(ldraw), "real", str(data), 8, 3, (4, 1, 14, 15, 71), 1, "train", 1)
    results = run_render(job, parts, workers=workers)
    failed = [r for r in results if r.error]
    if failed:
        raise SystemExit(f"render failed for {len(failed)} parts, first: {failed[0].part}: {failed[0].error}")
    return data, sum(len(r.records) for r in results)


def run_mode(data: Path, out: Path, device: str, mode: str, steps: int, workers: int) -> dict:
    from trainer.train import train
    from trainer.train_config import TrainConfig

    cached = mode == "cached"
    cfg = TrainConfig.model_validate(
        {
            "sources": [{"path": str(data), "kind": "real"}],
            "split": (0.8, 0.2, 0.0),
            "holdout_parts": 0,
            "input_size": SIZE,
            "pretrained": False,
            "freeze_blocks": 5 if cached else 0,
            "epochs": 2,
            "epoch_size": steps * BATCH,
            "batch_size": BATCH,
            "device": device,
            "workers": workers,
            "cache": {"mode": "on" if cached else "off", "copies": 2},
            "out": str(out / f"{device}-{mode}"),
        }
    )
    started = time.perf_counter()
    result = train(cfg, "stage1", progress=False)
    last = result["history"][-1]
    return {
        "device": device,
        "mode": mode,
        "workers": workers,
        "images_per_second": last["images_per_second"],
        "epoch_seconds": last["seconds"],
        "cache_seconds": round(result["cache_seconds"], 1),
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def machine() -> dict:
    import torch

    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def command(args: argparse.Namespace) -> str:
    words = ["python benchmarks/train_rate.py"]
    if args.ldraw:
        words += ["--ldraw", str(args.ldraw), "--top", str(args.top)]
    return " ".join([*words, "--steps", str(args.steps), "--workers", str(args.workers)])


def markdown(rows: list[dict], info: dict, args: argparse.Namespace, images: int) -> str:
    base = next(r for r in rows if r["device"] == "cpu" and r["mode"] == "cached")
    lines = [
        "# trainer stage1 throughput per device and mode",
        "",
        f"Machine: {info}. Data: {images} rendered 640x480 frames "
        f"({'--ldraw' if args.ldraw else 'demo parts'}); "
        f"EfficientNet-Lite0 at {SIZE}x{SIZE}, batch {BATCH}, {args.steps} steps per epoch, figures from the "
        f"second epoch. Command: `{command(args)}`",
        "",
        "| device/mode | loader workers | images/s | x cpu/cached | epoch s | caching s (once) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ratio = r["images_per_second"] / base["images_per_second"]
        lines.append(
            f"| {r['device']}/{r['mode']} | {r['workers']} | {r['images_per_second']:.0f} | {ratio:.2f} | "
            f"{r['epoch_seconds']:.1f} | {r['cache_seconds'] if r['mode'] == 'cached' else '-'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ldraw", type=Path, help="an LDraw library (default: the project's demo parts)")
    p.add_argument("--top", type=int, default=20, help="parts of the b200c list with --ldraw (default 20)")
    p.add_argument("--steps", type=int, default=30, help="training steps per epoch (default 30)")
    p.add_argument("--workers", type=int, default=8, help="data-loader processes for cuda/full (default 8)")
    p.add_argument("--render-workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    args = p.parse_args()

    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        data, images = render_set(Path(tmp), args.ldraw, args.top, args.render_workers)
        rows = []
        for device in devices:
            for mode in ("cached", "full"):
                workers = args.workers if (device, mode) == ("cuda", "full") else 0
                rows.append(run_mode(data, Path(tmp), device, mode, args.steps, workers))
                print(json.dumps(rows[-1]), flush=True)
    info = machine()
    text = markdown(rows, info, args, images)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "images": images, "rows": rows}, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
