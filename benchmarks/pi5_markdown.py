"""The Markdown page of a Pi 5 projection (``benchmarks/pi5_projection.py --markdown FILE``)."""

from __future__ import annotations

from typing import Any


def _fmt_ops(ops: dict[str, Any]) -> str:
    value = ops["value"]
    if value is None:
        return "-"
    unit = ops["unit"]
    if unit == "MACs":
        return f"{value / 1e9:,.3f} G MACs"
    if unit == "bytes read":
        return f"{value / 1e6:,.0f} MB read"
    if value >= 1e6:
        return f"{value / 1e6:,.2f} M {unit}"
    return f"{value:,} {unit}"


def _table(rows: list[dict[str, Any]], total: dict[str, float]) -> list[str]:
    lines = [
        "| stage | operations | x86 ms | x86 from | factor Pi 5 / x86 | factor from | Pi 5 ms low | "
        "Pi 5 ms high | Pi 5 ms mid |",
        "|---|---:|---:|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        f = r["factor"]
        factor = f"{f['low']:.2f}-{f['high']:.2f}x" if f["low"] is not None else "-"
        how = "image-work range (below)" if f["source"].startswith("per-core proxies") else f["source"]
        lines.append(
            f"| {r['stage']} | {_fmt_ops(r['ops'])} | {r['x86_ms']:,.2f} | {r['x86_source']} | {factor} | "
            f"{how} | {r['pi5_ms']['low']:,.2f} | {r['pi5_ms']['high']:,.2f} | {r['pi5_ms']['mid']:,.2f} |"
        )
    lines.append(
        f"| **compute per part** | | **{total['x86']:,.2f}** | sum of the rows | "
        f"{total['low'] / total['x86']:.2f}-{total['high'] / total['x86']:.2f}x | | "
        f"**{total['low']:,.2f}** | **{total['high']:,.2f}** | **{total['mid']:,.2f}** |"
    )
    return lines


def markdown(result: dict[str, Any]) -> str:
    m, p, pl, ratio = result["macs"], result["project"], result["plan"], result["ratio_plan_over_project"]
    gen, rates = result["generic_factor"], result["pi5_rates_gmacs_per_s"]
    v = result["views_measured"]
    check = m["efficientnet_b0_check"]
    lines = [
        "# Raspberry Pi 5 projection: operation counts, x86 times, published Pi 5 figures",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}  ",
        f"Date: {result['date']}; git {result['git']}",
        "",
        "**A projection, not a measurement: nothing here ran on a Pi.** `edge bench --json FILE` on a "
        "Pi 5 and `python benchmarks/pi5_projection.py --measured FILE` replace it (see the end).",
        "",
        f"One part = {result['views']} views of 640x480 frames. x86 milliseconds are read from the "
        "recorded results named per row (not re-measured). For a network the Pi 5 time is its MACs over "
        "a published Pi 5 rate of the same runtime and precision (so the x86 time cancels; the factor "
        "is that time over the x86 one); image work uses a per-core factor range (below). Low/high are "
        "the fast and slow ends; mid is their geometric mean.",
        "",
        "## The project's pipeline (config/sim.yaml: HSV keying, ONNX Runtime int8, classifier)",
        "",
        *_table(p["rows"], p["total"]),
        "",
        f"Parts per minute the compute alone allows on a Pi 5: **{p['parts_per_minute']['high']:,.0f} to "
        f"{p['parts_per_minute']['low']:,.0f}** (mid {p['parts_per_minute']['mid']:,.0f}); x86 here "
        f"{60000 / p['total']['x86']:,.0f}.",
    ]
    lines += [
        "",
        "## The plan's pipeline (U-2-Net 320 px + EfficientNet-B0 fp32 224 px + brute-force search)",
        "",
        *_table(pl["rows"], pl["total"]),
        "",
        "Parts per minute the plan's compute would allow on a Pi 5: "
        f"{pl['parts_per_minute']['high']:,.1f} to "
        f"{pl['parts_per_minute']['low']:,.1f}.",
        "",
        f"**Projected ratio plan / project on a Pi 5: {ratio['low']:,.0f}x to {ratio['high']:,.0f}x "
        f"(mid {ratio['mid']:,.0f}x)**; measured on x86 (plan_pipeline.json, one thread a side): "
        f"{ratio['x86_per_part_from_plan_pipeline']:,.0f}x wall clock, "
        f"{ratio['x86_cpu_time_from_plan_pipeline']:,.0f}x "
        "CPU time.",
        "",
        "## Operation counts",
        "",
        f"- Project model ({result['model']}): {m['project_view']['total']:,} MACs a view, "
        f"{m['project_part']['total']:,} a part at batch {m['project_part']['batch']} "
        f"({m['project_part']['int8'] / m['project_part']['total']:.0%} in int8 convolutions, the rest "
        f"float: the first convolutions and the heads), {m['project_view']['mac_nodes']} Conv/Gemm "
        f"nodes and {m['project_view']['other_nodes']} others.",
        f"- U-2-Net at 320 px: {m['u2net_320_view']['total']:,} MACs a view; EfficientNet-B0 features at "
        f"224 px: {m['efficientnet_b0_224_view']['total']:,}. Counter check: EfficientNet-B0 with its "
        f"classifier counts {check['counted_gmacs_with_classifier']:.3f} G against torchvision's published "
        f"{check['torchvision_ops']} ({check['ratio']:.3f}x).",
        f"- Image work, median per view over {v['views_measured']} sim replay views ({v['parts']} parts): "
        f"shrunk search frame {v['median_per_view']['coarse_px']:,} px (search_scale {v['search_scale']}), "
        f"box keyed at full size {v['median_per_view']['fine_px']:,} px (largest {v['max_fine_px']:,}), "
        f"part box {v['median_per_view']['part_box_px']:,} px, crop square side "
        f"{v['median_per_view']['crop_side']} px. Pixel-steps = pixels passed through each OpenCV/numpy "
        "call, summed (`hsv_pixel_steps`, `crop_pixel_steps`).",
        "",
        "## Pi 5 rates and factors (sources below)",
        "",
        "| runtime / precision | Pi 5 GMAC/s fast | slow | from |",
        "|---|---:|---:|---|",
    ]
    for key, r in rates.items():
        lines.append(f"| {key} | {r['high']:.1f} | {r['low']:.1f} | {r['how']} |")
    cands = ", ".join(f"{k} {val:.2f}x" for k, val in gen["candidates"].items())
    sb = gen["sysbench_here"]
    lines += [
        "",
        f"Image work (segment, preprocess, fuse; the plan's preprocess): factor {gen['low']:.2f}x to "
        f"{gen['high']:.2f}x. No published Pi 5 timing of these OpenCV/numpy calls was found, so the range "
        f"spans per-core proxies: {cands}. This machine's ONNX Runtime fp32 rate on one thread is "
        f"{gen['x86_fp32_gmacs_per_s_one_thread']:.1f} GMAC/s (U-2-Net, plan_pipeline.json)"
        + (
            f"; sysbench here: {sb['events_per_s']:.0f} events/s (`{sb['command']}`, load average "
            f"{sb['loadavg_1min']:.1f})."
            if sb
            else "; sysbench was not run."
        ),
        "",
        "## Replacing the projection with a measurement",
        "",
        "On a Raspberry Pi 5 with the project installed (the default model set, `config/sim.yaml`'s "
        "replay frames, so the same parts as here):",
        "",
        "```sh",
        "edge bench --sim --segmenters hsv --frames 100 --json pi5_bench.json",
        "python benchmarks/pi5_projection.py --measured pi5_bench.json \\",
        "    --json benchmarks/results/pi5_measured.json --markdown benchmarks/results/pi5_measured.md",
        "```",
        "",
        "`--measured` puts each stage's measured p50 (and p95) beside the projected low/high/mid, says "
        "whether it falls inside, and gives the parts per minute the measured compute allows; it warns "
        "when the file does not name a Raspberry Pi 5 (`edge bench` records the board) or benched "
        "another number of views.",
        "",
        "## Sources",
        "",
    ]
    for key, s in result["sources"].items():
        lines.append(f'- `{key}`: {s["what"]}. {s["url"]} — "{s["figure"]}"')
    lines.append("")
    return "\n".join(lines)
