"""The per-stage rows of the Pi 5 projection (:mod:`benchmarks.pi5_projection`), and their totals.

A row is one stage of one part, of the project's pipeline or of the plan's: its operation count
(pixel-steps of the image work from the per-view sizes the projection measures, MACs of the
networks, bytes the plan's search reads), its x86 milliseconds from the recorded results with their
source, and the projected Pi 5 milliseconds (low, high and their geometric mean) with the factor
that gives them: MACs over the published Pi 5 rates, image work by the generic per-core factors,
the search by the Pi 5's memory bandwidth. Arithmetic only: nothing here measures or reads a file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmarks.pi5_measured import bench_row
from benchmarks.pi5_rates import SOURCES

# --- operation counts of the image work ------------------------------------------------------------


def hsv_pixel_steps(v: dict[str, int]) -> int:
    """Pixels passed through the HSV path's OpenCV/numpy calls for one view (``edge/segment/hsv.py``,
    ``regions.py``): on the shrunk frame resize, RGB->HSV, inRange, not, findContours (5 passes); on the
    box keyed at full size blur, RGB->HSV, inRange, not, binarise, opening (erode + dilate), closing
    (erode + dilate), labelling (9 passes); the zeroed output mask (1 pass of the frame); on the part's
    box the bounding box, pixel count, hole filling and copy-out (4 passes)."""
    return 5 * v["coarse_px"] + 9 * v["fine_px"] + v["frame_px"] + 4 * v["part_box_px"]


def crop_pixel_steps(v: dict[str, int], size: tuple[int, int]) -> int:
    """Pixels through ``edge.preprocess`` for one view: the crop square copied and read by the resize
    (2 passes of side^2), then the network input split and normalised by look-up (2 passes)."""
    return 2 * v["crop_side"] ** 2 + 2 * size[0] * size[1]


# --- the rows --------------------------------------------------------------------------------------


def _row(
    stage: str,
    ops: dict[str, Any],
    x86_ms: float,
    x86_source: str,
    pi_low: float,
    pi_high: float,
    factor_source: str,
) -> dict[str, Any]:
    return {
        "stage": stage,
        "ops": ops,
        "x86_ms": x86_ms,
        "x86_source": x86_source,
        "factor": {
            "low": pi_low / x86_ms if x86_ms > 0 else None,
            "high": pi_high / x86_ms if x86_ms > 0 else None,
            "source": factor_source,
        },
        "pi5_ms": {"low": pi_low, "high": pi_high, "mid": math.sqrt(pi_low * pi_high)},
    }


def _nn_ms(
    macs: int, int8_macs: int, fp_rate: dict[str, Any], int8_rate: dict[str, Any] | None
) -> tuple[float, float]:
    """Milliseconds (fast, slow) for ``macs`` of which ``int8_macs`` run in int8."""
    float_g, int8_g = (macs - int8_macs) / 1e9, int8_macs / 1e9
    if int8_rate is None:
        float_g, int8_g = macs / 1e9, 0.0
        int8_rate = fp_rate
    fast = 1000 * (float_g / fp_rate["high"] + int8_g / int8_rate["high"])
    slow = 1000 * (float_g / fp_rate["low"] + int8_g / int8_rate["low"])
    return fast, slow


def _sum_rows(rows: list[dict[str, Any]]) -> dict[str, float]:
    low = sum(r["pi5_ms"]["low"] for r in rows)
    high = sum(r["pi5_ms"]["high"] for r in rows)
    return {"low": low, "high": high, "mid": math.sqrt(low * high), "x86": sum(r["x86_ms"] for r in rows)}


def _ops(value: int | None, unit: str, detail: str) -> dict[str, Any]:
    """A row's operation count: how many of what (None: not counted), and how it was counted."""
    return {"value": value, "unit": unit, "detail": detail}


def _generic_row(
    stage: str, ops: dict[str, Any], x86_ms: float, x86_source: str, gen: dict[str, Any]
) -> dict[str, Any]:
    """A row of image work: its x86 time scaled by the generic per-core factors' range."""
    source = "per-core proxies (generic): " + ", ".join(
        f"{k} {val:.2f}x" for k, val in gen["candidates"].items()
    )
    return _row(stage, ops, x86_ms, x86_source, x86_ms * gen["low"], x86_ms * gen["high"], source)


def _project_rows(
    bench: dict[str, Any],
    bench_path: Path,
    v: dict[str, int],
    manifest: Any,
    macs: Any,
    rates: dict[str, Any],
    gen: dict[str, Any],
) -> list[dict[str, Any]]:
    """The project's stages per part: ``edge bench``'s hsv row (p50) scaled to a Pi 5."""
    hsv = bench_row(bench, "hsv", bench_path)["stages"]
    views = int(bench["views"])
    size = tuple(manifest.input.size)
    src = f"{bench_path.name}: hsv row, p50 per part ({bench['threads']} threads)"

    seg_px, crop_px = hsv_pixel_steps(v), crop_pixel_steps(v, size)
    fast, slow = _nn_ms(macs.total, macs.int8, rates["onnxruntime/fp32"], rates["onnxruntime/int8"])
    parts, colors = len(manifest.parts), len(manifest.colors)
    rows = [
        _generic_row(
            "segment (HSV keying)",
            _ops(views * seg_px, "pixel-steps", f"{views} views x {seg_px:,}"),
            hsv["segment"]["p50"],
            src,
            gen,
        ),
        _generic_row(
            "preprocess (crop, resize, normalise)",
            _ops(views * crop_px, "pixel-steps", f"{views} views x {crop_px:,}"),
            hsv["preprocess"]["p50"],
            src,
            gen,
        ),
        _row(
            f"infer (EfficientNet-Lite0 int8, {size[0]} px, one batch)",
            _ops(macs.total, "MACs", f"{macs.int8:,} int8 + {macs.float:,} float"),
            hsv["infer"]["p50"],
            src,
            fast,
            slow,
            "MACs / Pi 5 ONNX Runtime rates: float MACs at fp32, int8 MACs at int8 (rates table)",
        ),
        _generic_row(
            "fuse (classifier + fusion)",
            _ops(views * (parts + colors), "logits", f"{views} views x ({parts} parts + {colors} colours)"),
            hsv["fuse"]["p50"],
            src,
            gen,
        ),
    ]
    if hsv["search"]["p50"] > 0:
        ops = _ops(None, "index queries", "not counted")
        rows.append(_generic_row("search", ops, hsv["search"]["p50"], src, gen))
    return rows


def _plan_rows(
    plan: dict[str, Any],
    views: int,
    v: dict[str, int],
    u2: Any,
    eff: Any,
    rates: dict[str, Any],
    gen: dict[str, Any],
) -> list[dict[str, Any]]:
    """The plan's stages per part: plan_pipeline.json's per-view milliseconds x the part's views."""
    ps = plan["plan_stages"]  # ms per view, one thread
    src = f"plan_pipeline.json: plan_stages x {views} views (1 thread)"
    count = int(plan["plan"]["count"])
    dim = 1280
    search_bytes = count * dim * 4
    bw = SOURCES["tinymembench_pi5"]["values_mb_s"]
    u2_fast, u2_slow = _nn_ms(views * u2.total, 0, rates["onnxruntime/fp32"], None)
    eff_fast, eff_slow = _nn_ms(views * eff.total, 0, rates["pytorch/fp32"], None)
    return [
        _row(
            "segment (U-2-Net 320 px, ONNX Runtime fp32)",
            _ops(views * u2.total, "MACs", f"{views} x {u2.total:,}"),
            views * ps["segment"],
            src,
            u2_fast,
            u2_slow,
            "MACs / Pi 5 ONNX Runtime fp32 rate (rates table)",
        ),
        _generic_row(
            "preprocess (box, resize, normalise)",
            _ops(
                views * (2 * v["frame_px"] + v["part_box_px"] + 2 * 224 * 224),
                "pixel-steps",
                "alpha threshold + nonzero over the frame, the box resized, 224 px normalised",
            ),
            views * ps["preprocess"],
            src,
            gen,
        ),
        _row(
            "infer (EfficientNet-B0 224 px, PyTorch fp32)",
            _ops(views * eff.total, "MACs", f"{views} x {eff.total:,}"),
            views * ps["infer"],
            src,
            eff_fast,
            eff_slow,
            "MACs / Pi 5 PyTorch fp32 rate (rates table)",
        ),
        _row(
            f"search (brute force, {count:,} x {dim} fp32)",
            _ops(
                views * search_bytes,
                "bytes read",
                f"{views} x {search_bytes:,} ({views * count * dim:,} MACs)",
            ),
            views * ps["search"],
            src,
            1000 * views * search_bytes / (bw["scan64_4gb"] * 1e6),
            1000 * views * search_bytes / (bw["copy_8gb"] * 1e6),
            "bytes / Pi 5 memory bandwidth, tinymembench scan 64 .. copy (tinymembench_pi5)",
        ),
    ]
