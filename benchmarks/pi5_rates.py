"""Published Raspberry Pi 5 figures (:data:`SOURCES`, each with its address and the figure as
written there) and the rates and scale factors :mod:`benchmarks.pi5_projection` derives from them:
network throughput per runtime and precision (:func:`pi5_rates`) and the per-core range for image
work (:func:`generic_factors`, with ``sysbench`` here when it is installed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

#: Published figures, each with where it was published and the figure as written there.
SOURCES: dict[str, dict[str, Any]] = {
    "ultralytics_rpi5": {
        "url": "https://docs.ultralytics.com/guides/raspberry-pi/",
        "what": "Ultralytics' YOLO11 benchmarks on a Raspberry Pi 5 (FP32, 640 px, batch 1, "
        "benchmark_version 8.3.39; docs/en/guides/raspberry-pi.md in the ultralytics repository)",
        "figure": "YOLO11n: ONNX 168.082 ms/im, PyTorch 405.238 ms/im; YOLO11s: ONNX 324.17 ms/im, "
        "PyTorch 1011.60 ms/im",
        "values_ms": {
            "yolo11n/onnx": 168.082,
            "yolo11n/pytorch": 405.238,
            "yolo11s/onnx": 324.17,
            "yolo11s/pytorch": 1011.60,
        },
    },
    "ultralytics_yolo11_flops": {
        "url": "https://docs.ultralytics.com/models/yolo11/",
        "what": "YOLO11 detection models' size (docs/en/models/yolo11.md)",
        "figure": "YOLO11n 640 px: FLOPs 6.5 B; YOLO11s 640 px: FLOPs 21.5 B",
        "values_gflops": {"yolo11n": 6.5, "yolo11s": 21.5},
    },
    "ultralytics_get_flops": {
        "url": "https://github.com/ultralytics/ultralytics/blob/main/ultralytics/utils/torch_utils.py",
        "what": "how Ultralytics counts FLOPs (get_flops)",
        "figure": "flops = thop.profile(deepcopy(model), inputs=[im], verbose=False)[0] / 1e9 * 2  "
        "(thop counts multiply-accumulates, so MACs = FLOPs / 2)",
    },
    "arm_inception_v3_int8_ort": {
        "url": "https://huggingface.co/Arm/inception-v3-int8-mlas-onnx-raspberrypi5",
        "what": "Arm's INT8 Inception V3 (static PTQ, per-channel weights) in ONNX Runtime on a "
        "Raspberry Pi 5 (Cortex-A76, Raspberry Pi OS 64-bit, Debian 13)",
        "figure": "Primary performance result: 113.11 ms p50 latency, 8.84 frames/sec",
        "value_ms": 113.11,
    },
    "torchvision_inception_v3_ops": {
        "url": "https://github.com/pytorch/vision/blob/main/torchvision/models/inception.py",
        "what": "torchvision's size of Inception V3 at 299 px (Inception_V3_Weights.IMAGENET1K_V1 meta)",
        "figure": '"_ops": 5.713 (torchvision\'s GFLOPS, which count one multiply-accumulate as one '
        "operation; checked here on EfficientNet-B0, see efficientnet_b0_check)",
        "value_gmacs": 5.713,
    },
    "tinymembench_pi5": {
        "url": "https://github.com/raspberrypi/firmware/issues/1876",
        "what": "tinymembench on Raspberry Pi 5 boards (comment of 2024-04-02 comparing a 4 GB and an "
        "8 GB board at the same software versions)",
        "figure": "C copy: 6155.2 MB/s (4GB) / 5557.4 MB/s (8GB); C scan 64: 9407.4 MB/s / 9122.2 MB/s",
        "values_mb_s": {"copy_8gb": 5557.4, "copy_4gb": 6155.2, "scan64_8gb": 9122.2, "scan64_4gb": 9407.4},
    },
    "sysbench_pi5_leoncode": {
        "url": "https://leoncode.co.uk/articles/raspberry-pi-benchmarks",
        "what": "sysbench 1.0.20, `sysbench cpu --threads=1 --time=60 run` (primes up to 10,000)",
        "figure": "Raspberry Pi 5: 2737.49 events/s single core, 10945.45 events/s 4 cores",
        "value_eps": 2737.49,
    },
    "sysbench_pi5_zbotic": {
        "url": "https://zbotic.in/raspberry-pi-5-benchmarks-real-performance-numbers-vs-pi-4/",
        "what": "Sysbench CPU (single thread, 10 s) on a Raspberry Pi 5 8GB, Raspberry Pi OS 64-bit",
        "figure": "Pi 5 (2.4GHz): 1,847 events/second",
        "value_eps": 1847.0,
    },
}


SYSBENCH_COMMAND = ["sysbench", "cpu", "--threads=1", "--time=10", "run"]


def gmacs_per_s(gmacs: float, ms: float) -> float:
    """Billions of multiply-accumulates per second of ``gmacs`` done in ``ms`` milliseconds."""
    return gmacs / (ms / 1000.0)


def pi5_rates() -> dict[str, dict[str, Any]]:
    """Published Pi 5 throughput per runtime and precision, in GMAC/s (all four cores, batch 1)."""
    u = SOURCES["ultralytics_rpi5"]["values_ms"]
    g = SOURCES["ultralytics_yolo11_flops"]["values_gflops"]
    n, s = g["yolo11n"] / 2, g["yolo11s"] / 2  # FLOPs = 2 x MACs (ultralytics_get_flops)
    inception = SOURCES["torchvision_inception_v3_ops"]["value_gmacs"]
    inception_ms = SOURCES["arm_inception_v3_int8_ort"]["value_ms"]
    return {
        "onnxruntime/fp32": {
            "low": gmacs_per_s(n, u["yolo11n/onnx"]),
            "high": gmacs_per_s(s, u["yolo11s/onnx"]),
            "how": f"YOLO11n {n:.2f} GMACs / {u['yolo11n/onnx']} ms; YOLO11s {s:.2f} GMACs / "
            f"{u['yolo11s/onnx']} ms",
            "sources": ["ultralytics_rpi5", "ultralytics_yolo11_flops", "ultralytics_get_flops"],
        },
        "pytorch/fp32": {
            "low": gmacs_per_s(n, u["yolo11n/pytorch"]),
            "high": gmacs_per_s(s, u["yolo11s/pytorch"]),
            "how": f"YOLO11n {n:.2f} GMACs / {u['yolo11n/pytorch']} ms; YOLO11s {s:.2f} GMACs / "
            f"{u['yolo11s/pytorch']} ms",
            "sources": ["ultralytics_rpi5", "ultralytics_yolo11_flops", "ultralytics_get_flops"],
        },
        "onnxruntime/int8": {
            # One published ONNX Runtime int8 figure for a Pi 5; the slow end is the fp32 rate of the
            # same runtime (MLAS's int8 depthwise kernels are not much faster than its fp32 ones, and
            # small layers are overhead-bound either way).
            "low": gmacs_per_s(n, u["yolo11n/onnx"]),
            "high": gmacs_per_s(inception, inception_ms),
            "how": f"fast: Inception V3 {inception} GMACs / {inception_ms} "
            "ms (ONNX Runtime int8); slow: ONNX Runtime's fp32 rate on YOLO11n",
            "sources": ["arm_inception_v3_int8_ort", "torchvision_inception_v3_ops", "ultralytics_rpi5"],
        },
    }


def run_sysbench() -> dict[str, Any] | None:
    """``sysbench cpu`` on one thread for 10 s here (None when sysbench is not installed)."""
    if shutil.which("sysbench") is None:
        return None
    out = subprocess.run(SYSBENCH_COMMAND, capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"events per second:\s*([0-9.]+)", out.stdout)
    if out.returncode or match is None:
        return None
    version = re.search(r"sysbench ([0-9.]+)", out.stdout)
    return {
        "command": " ".join(SYSBENCH_COMMAND),
        "events_per_s": float(match.group(1)),
        "version": version.group(1) if version else None,
        "loadavg_1min": os.getloadavg()[0],
        "niceness": os.nice(0),
    }


def generic_factors(
    x86_fp32_gmacs_s: float, rates: dict[str, Any], sysbench: dict[str, Any] | None
) -> dict[str, Any]:
    """Pi 5 / x86 time for one core's image work (OpenCV, numpy, Python): no published figure for
    these calls on a Pi 5 was found, so the range spans two per-core proxies.

    - SIMD float: this machine's ONNX Runtime fp32 rate on one thread (U-2-Net, plan_pipeline.json)
      over a Pi 5 core's (the published four-core rate / 4, which assumes perfect scaling and so
      errs towards a slower Pi core).
    - scalar integer: sysbench's one-thread prime test here over the published Pi 5 figures (with
      ``--sysbench``, when sysbench is installed).
    """
    fp32 = rates["onnxruntime/fp32"]
    candidates = {
        "simd_fp32_per_core_fast_pi": x86_fp32_gmacs_s / (fp32["high"] / 4),
        "simd_fp32_per_core_slow_pi": x86_fp32_gmacs_s / (fp32["low"] / 4),
    }
    sources = list(fp32["sources"])
    if sysbench is not None:
        for key in ("sysbench_pi5_leoncode", "sysbench_pi5_zbotic"):
            candidates[f"sysbench_vs_{key.rsplit('_', 1)[1]}"] = (
                sysbench["events_per_s"] / SOURCES[key]["value_eps"]
            )
            sources.append(key)
    return {
        "low": min(candidates.values()),
        "high": max(candidates.values()),
        "candidates": candidates,
        "x86_fp32_gmacs_per_s_one_thread": x86_fp32_gmacs_s,
        "sysbench_here": sysbench,
        "sources": sources,
    }
