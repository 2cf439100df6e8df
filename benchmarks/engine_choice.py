"""Which inference runtime the daemon should use: speed and resident memory per runtime, one run.

    python benchmarks/engine_choice.py [--config config/sim.yaml] [--parts 12] [--rounds 3] \\
        [--work /tmp/index_load] [--count 94000] [--json FILE] [--markdown FILE] [--note TEXT]

Speed, in one process: a pipeline per option (``onnxruntime`` int8, ``litert`` int8 and
fp16, the default model set's files, the config's threads), all fed the same captured parts of the
simulated rig; rounds interleaved (every option once per round), the median over rounds of each
option's per-part median of the ``infer`` stage and of the part's whole compute (capture
excluded). ONNX files take the part's views as one batch; the TFLite files are fixed at batch 1,
so LiteRT runs one view at a time.

Memory, each option in a fresh process: the daemon's pipeline (``Pipeline.from_config``) after two
parts, with recognition ``classifier`` (no index) and ``hybrid`` on the model set of
``benchmarks/index_load.py`` (the same network files, with a ``--count`` x 128 index of random unit
vectors and its saved hnswlib graph; built once and cached in ``--work``).

Accuracy is not measured here: the model set's REPORT.md has it per artifact, on the test render.
``--model-set`` measures another set's files (a build folder holds the files a shipped set left
out); an option whose file the set lacks is reported as missing, with why when the manifest says.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.index_load import build_model_set  # noqa: E402
from benchmarks.machine import machine_line, run_child, write_results  # noqa: E402
from edge.bench import capture_parts  # noqa: E402
from edge.manifest import load_manifest  # noqa: E402
from edge.pipeline import Pipeline  # noqa: E402
from edge.settings import EdgeConfig, load_edge_config  # noqa: E402

OPTIONS = (("onnxruntime", "int8"), ("litert", "int8"), ("litert", "fp16"))

# A fresh process: the daemon's pipeline with one runtime, after two parts (resident MB).
_RSS = """
import json, sys
from pathlib import Path
from edge.bench import capture_parts
from edge.memory import resident_mb
from edge.pipeline import Pipeline
from edge.settings import load_edge_config

config, model_set, mode, runtime, precision = sys.argv[1:6]
cfg = load_edge_config(Path(config))
cfg = cfg.model_copy(update={
    "engine": cfg.engine.model_copy(update={"model_set": Path(model_set), "runtime": runtime,
                                            "precision": precision}),
    "recognition": cfg.recognition.model_copy(update={"mode": mode}),
})
before = resident_mb()
pipeline = Pipeline.from_config(cfg)
loaded = resident_mb()
for frames, capture_ms in capture_parts(pipeline, 2, cfg.capture.views, cfg.capture.step_deg):
    pipeline.process(frames, capture_ms)
print(json.dumps({"imports_mb": before, "loaded_mb": loaded, "after_parts_mb": resident_mb(),
                  "runtime_imported": sorted(m for m in ("onnxruntime", "ai_edge_litert", "tflite_runtime")
                                             if m in sys.modules)}))
pipeline.close()
"""


def _with_engine(cfg: EdgeConfig, runtime: str, precision: str) -> EdgeConfig:
    engine = cfg.engine.model_copy(update={"runtime": runtime, "precision": precision})
    return cfg.model_copy(update={"engine": engine})


def available_options(folder: Path) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The :data:`OPTIONS` the model set in ``folder`` has a file for, and why each other one is missing."""
    manifest = load_manifest(folder)
    have = {(f.runtime, f.precision) for f in manifest.files}
    left = {key: str(item.get("why")) for key, item in manifest.not_shipped().items()}
    missing = {f"{r}/{p}": left.get(f"{r}/{p}", "no such file") for r, p in OPTIONS if (r, p) not in have}
    return [o for o in OPTIONS if o in have], missing


def time_options(cfg: EdgeConfig, parts: int, rounds: int, options: list[tuple[str, str]]) -> dict[str, Any]:
    """Per option: median over rounds of the per-part median ``infer`` and ``total`` ms."""
    pipelines = {f"{r}/{p}": Pipeline.from_config(_with_engine(cfg, r, p)) for r, p in options}
    try:
        first = next(iter(pipelines.values()))
        groups = capture_parts(first, parts, cfg.capture.views, cfg.capture.step_deg)
        for pipeline in pipelines.values():
            pipeline.process(groups[0][0])  # warm-up, untimed
        per_round: dict[str, dict[str, list[float]]] = {k: {"infer": [], "total": []} for k in pipelines}
        decisions: dict[str, list[str]] = {k: [] for k in pipelines}
        for r in range(rounds):
            for key, pipeline in pipelines.items():
                infer, total = [], []
                for frames, capture_ms in groups:
                    result = pipeline.process(frames, capture_ms)
                    infer.append(result.timings["infer"])
                    total.append(result.timings["total"] - result.timings["capture"])
                    if r == 0:
                        d = result.decision
                        decisions[key].append(f"{d.part_num}/{d.color_id}")
                per_round[key]["infer"].append(statistics.median(infer))
                per_round[key]["total"].append(statistics.median(total))
            print(
                f"round {r + 1}/{rounds}: "
                + ", ".join(f"{k} {v['total'][-1]:.2f} ms" for k, v in per_round.items()),
                flush=True,
            )
    finally:
        for pipeline in pipelines.values():
            pipeline.close()
    base = "onnxruntime/int8"
    out: dict[str, Any] = {"parts": len(groups), "views": cfg.capture.views, "options": {}}
    for key, v in per_round.items():
        agree = sum(a == b for a, b in zip(decisions[key], decisions[base], strict=True))
        out["options"][key] = {
            "infer_ms": statistics.median(v["infer"]),
            "total_ms": statistics.median(v["total"]),
            "rounds_total_ms": v["total"],
            "decisions_as_onnxruntime_int8": f"{agree}/{len(decisions[key])}",
        }
    for v in out["options"].values():
        v["infer_ratio_to_onnxruntime_int8"] = out["options"][base]["infer_ms"] / v["infer_ms"]
        v["total_ratio_to_onnxruntime_int8"] = out["options"][base]["total_ms"] / v["total_ms"]
    return out


def memory(config: Path, folder: Path, options: list[tuple[str, str]]) -> dict[str, Any]:
    """Per option and recognition mode: the fresh-process figures of :data:`_RSS`."""
    return {
        f"{r}/{p}": {
            mode: run_child(_RSS, str(config), str(folder), mode, r, p) for mode in ("classifier", "hybrid")
        }
        for r, p in options
    }


def markdown(result: dict[str, Any]) -> str:
    t, m = result["timing"], result["memory"]
    lines = [
        "# Engine choice: inference runtimes side by side",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}  ",
        f"Date: {result['date']}; git {result['git']}",
        "",
        f"Model set: the files of {result['model_set']}; config `{result['config']}` "
        f"(sim camera, HSV, threads {result['threads']}); {t['parts']} parts of {t['views']} views, "
        f"median of {result['rounds']} interleaved rounds of each option's per-part median.",
        "",
        *(f"Not measured: {key} ({why})." for key, why in result.get("missing", {}).items()),
        "",
        "## Speed (per part)",
        "",
        "| runtime/precision | infer ms | whole part ms | infer vs onnxruntime/int8 | whole part vs "
        "onnxruntime/int8 | same decision as onnxruntime/int8 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, v in t["options"].items():
        lines.append(
            f"| {key} | {v['infer_ms']:.2f} | {v['total_ms']:.2f} | "
            f"{v['infer_ratio_to_onnxruntime_int8']:.2f}x | "
            f"{v['total_ratio_to_onnxruntime_int8']:.2f}x | {v['decisions_as_onnxruntime_int8']} |"
        )
    lines += [
        "",
        f"## Resident memory of the daemon's pipeline after two parts (fresh process each; hybrid: "
        f"{result['index_count']} x 128 index with its saved graph)",
        "",
        "| runtime/precision | classifier MB | hybrid MB | runtime modules loaded |",
        "|---|---:|---:|---|",
    ]
    for key, v in m.items():
        lines.append(
            f"| {key} | {v['classifier']['after_parts_mb']:.1f} | {v['hybrid']['after_parts_mb']:.1f} | "
            f"{', '.join(v['hybrid']['runtime_imported'])} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=REPO / "config" / "sim.yaml")
    parser.add_argument("--parts", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/index_load"), help="index cache folder")
    parser.add_argument("--count", type=int, default=94_000)
    parser.add_argument(
        "--model-set", type=Path, help="model set whose files are measured (default: the config's)"
    )
    parser.add_argument("--note", default="", help="added to the machine line (e.g. what else ran)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    if args.parts < 1 or args.rounds < 1:
        parser.error("--parts and --rounds must be at least 1")
    cfg = load_edge_config(args.config)
    if args.model_set is not None:
        cfg = cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"model_set": args.model_set})})
    options, missing = available_options(cfg.engine.model_set)
    if ("onnxruntime", "int8") not in options:
        parser.error(f"{cfg.engine.model_set} has no onnxruntime/int8 file, the baseline of the ratios")
    args.work.mkdir(parents=True, exist_ok=True)
    folder, _ = build_model_set(args.work, args.count, 128, cfg.engine.model_set)
    timing = time_options(cfg, args.parts, args.rounds, options)
    mem = memory(args.config, folder, options)
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": machine_line(args.note),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "git": git.stdout.strip(),
        "config": (
            args.config.relative_to(REPO).as_posix() if args.config.is_relative_to(REPO) else str(args.config)
        ),
        "model_set": str(cfg.engine.model_set),
        "threads": cfg.engine.threads if cfg.engine.threads is not None else "default",
        "rounds": args.rounds,
        "index_count": args.count,
        "missing": missing,
        "timing": timing,
        "memory": mem,
    }
    write_results(result, args.json, args.markdown, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
