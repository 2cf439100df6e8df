"""An ``edge bench --json`` result from a Pi read and checked, and measured against projected.

``benchmarks/pi5_projection.py --measured FILE`` uses this to put a Pi's measured stage times beside
the projection of :mod:`benchmarks.pi5_projection` (which reads x86 ``edge bench`` results with the
same checks).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

#: Stages of one part that are compute (``edge bench`` also times ``capture``, the camera's).
COMPUTE_STAGES = ("segment", "preprocess", "infer", "search", "fuse")


def load_bench(path: Path) -> dict[str, Any]:
    """An ``edge bench --json`` result, checked; ``SystemExit`` naming the file and what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"{path}: no such file (expected the JSON of `edge bench --json FILE`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit(f"{path}: cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(
            f"{path}: not JSON ({exc}); expected the file `edge bench --json FILE` writes"
        ) from None

    def bad(what: str) -> SystemExit:
        return SystemExit(f"{path}: not an `edge bench --json` result: {what}")

    if not isinstance(data, dict):
        raise bad(f"the top level is a {type(data).__name__}, not an object")
    stages, options = data.get("stages"), data.get("options")
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        raise bad('no "stages" list of stage names')
    missing = [s for s in (*COMPUTE_STAGES, "total") if s not in stages]
    if missing:
        raise bad(f'"stages" lacks {", ".join(missing)}')
    if not isinstance(data.get("views"), int) or data["views"] < 1:
        raise bad('no "views" count of at least 1')
    if not isinstance(options, list) or not options:
        raise bad('no "options" list (one row per segmenter)')
    for i, row in enumerate(options):
        if not isinstance(row, dict) or not isinstance(row.get("segmenter"), str):
            raise bad(f'options[{i}] has no "segmenter" name')
        timed = row.get("stages")
        if not isinstance(timed, dict):
            raise bad(f'options[{i}] ({row["segmenter"]}) has no "stages" timings')
        for stage in stages:
            t = timed.get(stage)
            if not isinstance(t, dict) or not all(
                isinstance(t.get(k), int | float) and not isinstance(t.get(k), bool) and math.isfinite(t[k])
                for k in ("p50", "p95")
            ):
                raise bad(f"options[{i}] ({row['segmenter']}) stage {stage!r} has no numeric p50 and p95")
            if t["p50"] < 0 or t["p95"] < 0:
                raise bad(f"options[{i}] ({row['segmenter']}) stage {stage!r} has a negative time")
    return data


def bench_row(bench: dict[str, Any], segmenter: str, path: Path | str) -> dict[str, Any]:
    """The ``segmenter`` row of an ``edge bench`` result (``SystemExit`` listing the rows there are)."""
    for row in bench["options"]:
        if row["segmenter"] == segmenter:
            return row
    names = ", ".join(r["segmenter"] for r in bench["options"])
    raise SystemExit(
        f"{path}: no {segmenter!r} row in this `edge bench` result (rows: {names}); "
        "bench with --segmenters including it, or pass --segmenter"
    )


# --- measured against projected --------------------------------------------------------------------

_STAGE_OF_ROW = ("segment", "preprocess", "infer", "fuse", "search")


def compare(
    projection: dict[str, Any], bench: dict[str, Any], segmenter: str, path: Path | str
) -> dict[str, Any]:
    """Measured ``edge bench`` p50s (``segmenter`` row) against the projection's Pi 5 range, per stage."""
    row = bench_row(bench, segmenter, path)["stages"]
    try:
        proj_rows = projection["project"]["rows"]
        views = int(projection["views"])
    except (KeyError, TypeError, ValueError):
        raise SystemExit(
            "the projection JSON has no project rows; write it with pi5_projection.py --json"
        ) from None
    stages = []
    for r in proj_rows:
        stage = next(s for s in _STAGE_OF_ROW if r["stage"].startswith(s))
        got = row[stage]
        low, high, mid = r["pi5_ms"]["low"], r["pi5_ms"]["high"], r["pi5_ms"]["mid"]
        stages.append(
            {
                "stage": stage,
                "measured_p50": got["p50"],
                "measured_p95": got["p95"],
                "projected": {"low": low, "high": high, "mid": mid},
                "measured_over_mid": got["p50"] / mid if mid > 0 else None,
                "within": "inside"
                if low <= got["p50"] <= high
                else ("faster" if got["p50"] < low else "slower"),
            }
        )
    listed = {s["stage"] for s in stages}
    extra = [s for s in COMPUTE_STAGES if s not in listed and row[s]["p50"] > 0]
    for s in extra:
        stages.append(
            {
                "stage": s,
                "measured_p50": row[s]["p50"],
                "measured_p95": row[s]["p95"],
                "projected": None,
                "measured_over_mid": None,
                "within": "not projected",
            }
        )
    measured_compute = sum(row[s]["p50"] for s in COMPUTE_STAGES)
    total = projection["project"]["total"]
    machine = bench.get("machine") or {}
    described = ", ".join(str(machine[k]) for k in ("arch", "board", "cpu") if machine.get(k))
    warnings = []
    if "Raspberry Pi 5" not in described:
        warnings.append(
            f"{path} does not say it ran on a Raspberry Pi 5 (machine: {described or 'not recorded'})"
        )
    if int(bench["views"]) != views:
        warnings.append(f"{path} benched {bench['views']} views a part; the projection is for {views}")
    return {
        "file": str(path),
        "segmenter": segmenter,
        "machine": machine or None,
        "camera": bench.get("camera"),
        "model": bench.get("model"),
        "threads": bench.get("threads"),
        "parts": bench.get("parts"),
        "views": bench["views"],
        "stages": stages,
        "compute": {
            "measured_sum_of_p50": measured_compute,
            "projected": {k: total[k] for k in ("low", "high", "mid")},
            "measured_over_mid": measured_compute / total["mid"],
            "within": "inside"
            if total["low"] <= measured_compute <= total["high"]
            else ("faster" if measured_compute < total["low"] else "slower"),
            "parts_per_minute": 60000.0 / measured_compute if measured_compute > 0 else None,
            "projected_parts_per_minute": projection["project"]["parts_per_minute"],
        },
        "projection_date": projection.get("date"),
        "warnings": warnings,
    }


def compare_markdown(c: dict[str, Any]) -> str:
    machine = c["machine"] or {}
    where = (
        ", ".join(str(machine.get(k)) for k in ("arch", "board", "cpu") if machine.get(k)) or "not recorded"
    )
    lines = [
        "# Raspberry Pi 5: measured against projected",
        "",
        f"Measured: `{c['file']}` ({c['segmenter']} row; {c['parts']} parts x {c['views']} views from "
        f"{c['camera']}; model {c['model']}, {c['threads']} threads). Machine: {where}"
        + (f", {machine['cores']} cores" if machine.get("cores") else "")
        + f". Projection of {c['projection_date']}.",
        "",
    ]
    lines += [f"**Warning:** {w}." for w in c["warnings"]]
    if c["warnings"]:
        lines.append("")
    lines += [
        "| stage | measured p50 ms | p95 | projected low | high | mid | measured / mid | |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in c["stages"]:
        p = s["projected"]
        cells = f"{p['low']:.2f} | {p['high']:.2f} | {p['mid']:.2f}" if p else "- | - | -"
        ratio = f"{s['measured_over_mid']:.2f}x" if s["measured_over_mid"] is not None else "-"
        lines.append(
            f"| {s['stage']} | {s['measured_p50']:.2f} | {s['measured_p95']:.2f} | {cells} | {ratio} | "
            f"{s['within']} |"
        )
    t = c["compute"]
    lines += [
        f"| **compute** (sum of p50s) | **{t['measured_sum_of_p50']:.2f}** | | {t['projected']['low']:.2f} | "
        f"{t['projected']['high']:.2f} | {t['projected']['mid']:.2f} | {t['measured_over_mid']:.2f}x | "
        f"{t['within']} |",
        "",
        f"Parts per minute the measured compute allows: {t['parts_per_minute']:,.0f} (projected "
        f"{t['projected_parts_per_minute']['high']:,.0f} to {t['projected_parts_per_minute']['low']:,.0f}).",
        "",
    ]
    return "\n".join(lines)
