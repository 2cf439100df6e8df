"""``trainer ship``: the steps around the chain that make a shipped model set (tools/build_default_models.sh).

- ``trainer ship config`` writes a stage config from a base one (``config/stage1_synthetic.yaml``):
  ``--source`` replaces its data sources and ``--set KEY=VALUE`` changes a setting (dotted keys
  reach into sections: ``cache.mode=on``; values are read as YAML, where only true and false are
  booleans). The result is checked against :class:`trainer.train_config.TrainConfig` before it is
  written. Relative paths in a config are taken from its own folder, so write it beside its data.
- ``trainer ship model-set`` copies a model set into the folder that ships (``models/default``).
  Every listed file's SHA-256 is verified first. Files of at most ``--max-mb`` MB are shipped; the
  others leave ``files`` and are recorded under ``evaluation.not_shipped`` (path, key, bytes,
  sha256, why). So are the files whose int8 or fp16 conversion lost more than ``--max-drop``
  points of part or colour top-1 against fp32 on the held-out split (``trainer quantize``'s
  ``evaluation.quantization``): a rig owner who picks such a file would get a worse model than the
  report's headline. The index and its labels are copied, and its saved graph when it fits ``--max-mb``
  (else the entry drops it, recorded the same way: the daemon then rebuilds it); the training run's
  history and the build's step times (a ``NAME<TAB>SECONDS`` file, the last line of a name
  counting) are recorded as
  ``evaluation.training_history`` and ``evaluation.build_timings_s``; the evaluation report
  becomes ``REPORT.md`` with its plots and a Build section; ``--add`` copies more files (the
  training config). Segmenters shipped into the destination (``trainer segmenter --ship-to``) are
  trained apart from the classifier: they are checked against their entries and carried into the
  new set. The new set is built in ``DEST.tmp`` and verified there, then swapped in: a
  failure leaves ``DEST`` as it was.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from edge.config import validate_config
from edge.errors import ConfigError, ModelError
from edge.fileio import write_atomic
from edge.manifest import (
    MANIFEST_NAME,
    FileEntry,
    IndexEntry,
    Manifest,
    SegmenterEntry,
    load_manifest,
    sha256_file,
    verify_file,
    verify_shipped_segmenter,
    write_manifest,
)
from trainer.quantize import REFERENCE as QUANT_REFERENCE
from trainer.train_config import TrainConfig, load_train_config

log = logging.getLogger(__name__)

REPORT_NAME = "REPORT.md"
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


# ---- trainer ship config -----------------------------------------------------------------------


def parse_setting(text: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` -> ``(KEY, value)``, the value read as YAML (``epochs=10`` is an int).

    Only ``true`` and ``false`` are booleans (YAML 1.1 would read ``cache.mode=on`` as True), and
    ``3e-3`` is a number.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r} is not KEY=VALUE; write e.g. --set epochs=10 or cache.mode=on")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML: {exc}") from None
    if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
        value = raw.strip()
    elif isinstance(value, str) and _FLOAT.fullmatch(value):
        value = float(value)  # YAML 1.1 reads 3e-3 (no dot) as a string
    return key, value


def write_stage_config(
    base: str | Path,
    out: str | Path,
    *,
    sources: Sequence[str] = (),
    kind: str = "auto",
    weight: float | Sequence[float] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Write ``base`` with ``sources`` (when given: they replace its sources, each named by its path)
    and ``settings`` (dotted key -> value) to ``out``; returns the config read back from ``out``
    (relative paths taken from its folder). ``weight``: the sampling weight of every source, or one
    weight per source in order.

    Raises:
        ConfigError: ``base`` is unreadable, a dotted key crosses a non-mapping, or the result is not
            a valid :class:`~trainer.train_config.TrainConfig` (the message names the setting). ``out`` is
            then left as it was.
    """
    base, out = Path(base), Path(out)
    try:
        data = yaml.safe_load(base.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"base config {str(base)!r} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"base config {str(base)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"base config {str(base)!r} must hold a mapping of settings")
    if sources:
        weights = _weights(weight, len(sources))
        data["sources"] = [
            {"path": path, "kind": kind, "name": path} | ({"weight": w} if w is not None else {})
            for path, w in zip(sources, weights, strict=True)
        ]
    for key, value in (settings or {}).items():
        *sections, name = key.split(".")
        node = data
        for i, section in enumerate(sections):
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {'.'.join(sections[: i + 1])!r} is not a section in {base}")
        node[name] = value
    validate_config(TrainConfig, data, f"{out} (from {base})")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, yaml.safe_dump(data, sort_keys=False))
    cfg = load_train_config(out)
    for src in cfg.sources:
        if not Path(src.path).exists():
            log.warning("source %r does not exist (relative paths are taken from %s)", src.path, out.parent)
    return cfg


def _weights(weight: float | Sequence[float] | None, count: int) -> list[float | None]:
    if weight is None or isinstance(weight, int | float):
        return [weight] * count
    if len(weight) == 1:
        return [weight[0]] * count
    if len(weight) != count:
        raise ConfigError(
            f"--weight gives {len(weight)} weights for {count} sources; give one for all or one per source"
        )
    return list(weight)


# ---- trainer ship model-set --------------------------------------------------------------------


def ship_model_set(
    src: str | Path,
    dest: str | Path,
    *,
    max_mb: float = 8.0,
    max_drop: float | None = 3.0,
    run: str | Path | None = None,
    timings: str | Path | None = None,
    report: str | Path | None = None,
    notes: Sequence[str] = (),
    credit: str | None = None,
    add: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """Copy model set ``src`` into ``dest`` (see the module doc); returns what was shipped.

    ``max_drop``: the most points of part or colour top-1 a converted file may lose against fp32
    (``None``: no limit). ``run``: the training run folder (its ``history.json``); ``timings``: the
    build's step times; ``report``: a ``trainer evaluate`` report folder (``report.md`` and plots); ``notes``
    (paragraphs) and ``credit`` (the last line, in italics) go into REPORT.md's Build section.

    Raises:
        ModelError: a file is missing or fails its checksum (named), or no file fits ``max_mb``.
        ConfigError: a bad argument or a missing input file.
    """
    src, dest = Path(src), Path(dest)
    if not max_mb > 0:
        raise ConfigError(f"--max-mb {max_mb!r} must be above 0")
    if max_drop is not None and not max_drop >= 0:
        raise ConfigError(f"--max-drop {max_drop!r} must be at least 0 (points of top-1)")
    if dest.resolve() == src.resolve():
        raise ConfigError(f"--to {str(dest)!r} is the model set itself; ship into another folder")
    tmp = dest.with_name(f"{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # left by an earlier failed run
    tmp.mkdir(parents=True)
    try:
        segmenters = _carry_segmenters(dest, tmp)
        shipped = _build(src, tmp, max_mb, max_drop, run, timings, report, notes, credit, add, segmenters)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = dest.with_name(f"{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return shipped


def _build(
    src: Path,
    tmp: Path,
    max_mb: float,
    max_drop: float | None,
    run: str | Path | None,
    timings: str | Path | None,
    report: str | Path | None,
    notes: Sequence[str],
    credit: str | None,
    add: Sequence[str | Path],
    segmenters: Sequence[SegmenterEntry] = (),
) -> dict[str, Any]:
    manifest = load_manifest(src)
    for entry in manifest.files:
        verify_file(src, entry)
    why = {f.path: f"larger than {max_mb:g} MB" for f in manifest.files if f.bytes > max_mb * 1_000_000}
    for path, loss in conversion_losses(manifest.evaluation, max_drop).items():
        why.setdefault(path, loss)
    shipped = [f for f in manifest.files if f.path not in why]
    left = [f for f in manifest.files if f.path in why]
    if not shipped:
        reasons = ", ".join(f"{f.path} ({why[f.path]})" for f in left)
        raise ModelError(f"no file of {str(src)!r} can ship: {reasons}; raise --max-mb or --max-drop")
    for entry in shipped:
        _copy(src / entry.path, tmp / entry.path)
    index, graph_left = manifest.index, []
    if index is not None:
        _verify_index(src, index)
        for name in (index.path, index.labels):
            _copy(src / name, tmp / name)
        if index.graph is not None:
            size = (src / index.graph).stat().st_size
            if size <= max_mb * 1_000_000:
                _copy(src / index.graph, tmp / index.graph)
            else:  # the graph is a cache of the vectors: without it the daemon rebuilds it at start
                graph_left.append(
                    {
                        "path": index.graph,
                        "key": "index/graph",
                        "bytes": size,
                        "sha256": index.graph_sha256,
                        "why": f"larger than {max_mb:g} MB; the daemon rebuilds the graph from the vectors",
                    }
                )
                index = index.model_copy(update={"graph": None, "graph_sha256": None})

    evaluation = dict(manifest.evaluation)
    evaluation["not_shipped"] = [
        {
            "path": f.path,
            "key": f.key,
            "bytes": f.bytes,
            "sha256": f.sha256,
            "why": f"{why[f.path]}; kept in the build folder, figures above",
        }
        for f in left
    ] + graph_left
    steps = read_timings(timings) if timings is not None else None
    if steps is not None:
        evaluation["build_timings_s"] = {name: int(seconds) for name, seconds in steps.items()}
    if run is not None:
        history = Path(run) / "history.json"
        if history.is_file():
            evaluation["training_history"] = json.loads(history.read_text(encoding="utf-8"))
        else:
            log.warning("%s does not exist: no training history in the manifest", history)
    if manifest.segmenters:  # their files are not copied from SET: listing them would break the set
        log.warning(
            "not shipping the segmenters %s lists (%s); ship them with `trainer segmenter --ship-to`",
            src,
            ", ".join(s.path for s in manifest.segmenters),
        )
    update = {"files": shipped, "index": index, "evaluation": evaluation, "segmenters": list(segmenters)}
    new = manifest.model_copy(update=update)
    write_manifest(tmp, Manifest.model_validate(new.model_dump(mode="json")))
    written = load_manifest(tmp)
    for entry in written.files:
        verify_file(tmp, entry)
    if written.index is not None:
        _verify_index(tmp, written.index)

    if report is not None:
        _write_report(Path(report), tmp, steps, [(f, why[f.path]) for f in left], notes, credit)
    for path in map(Path, add):
        if (tmp / path.name).exists():
            raise ConfigError(f"--add {str(path)!r}: the model set already has a file {path.name!r}")
        _copy(path, tmp / path.name)
    shipped_bytes = sum(f.bytes for f in shipped)
    log.info(
        "shipping %d file(s), %.1f MB: %s; not shipped: %s",
        len(shipped),
        shipped_bytes / 1e6,
        ", ".join(f.path for f in shipped),
        "; ".join(f"{f.path} ({why[f.path]})" for f in left) or "none",
    )
    return {
        "shipped": [f.path for f in shipped],
        "not_shipped": [f.path for f in left],
        "bytes": shipped_bytes,
    }


def conversion_losses(evaluation: Mapping[str, Any], max_drop: float | None) -> dict[str, str]:
    """File -> why, for each converted file of ``evaluation.quantization`` that lost more than
    ``max_drop`` points of part or colour top-1 against the fp32 file on the held-out split."""
    artifacts = evaluation.get("quantization", {}).get("artifacts", {})
    reference = artifacts.get(QUANT_REFERENCE)
    if max_drop is None or reference is None:
        return {}
    losses = {}
    for key, figures in artifacts.items():
        drops = {
            head: 100 * (reference[f"{head}_top1"] - figures[f"{head}_top1"])
            for head in ("part", "color")
            if f"{head}_top1" in figures and f"{head}_top1" in reference
        }
        worst = max(drops, key=lambda head: drops[head], default=None)
        if worst is not None and drops[worst] > max_drop + 1e-9:
            losses[figures["file"]] = (
                f"{key} loses {drops[worst]:.1f} points of {'colour' if worst == 'color' else worst} top-1 "
                f"against fp32 on the held-out split, over --max-drop {max_drop:g}"
            )
    return losses


def read_timings(path: str | Path) -> dict[str, str]:
    """Step name -> seconds (as written) of a ``NAME<TAB>SECONDS`` file; a step's last line counts
    (a re-run step appends another), its first line sets its place."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"timings file {str(path)!r} cannot be read: {exc.strerror}") from None
    steps: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, seconds = line.partition("\t")
        if not sep or not seconds.strip().isdigit():
            raise ConfigError(f"{path}:{number}: {line!r} is not NAME<TAB>SECONDS")
        steps[name] = seconds.strip()
    return steps


def _carry_segmenters(dest: Path, tmp: Path) -> list[SegmenterEntry]:
    """Copy the segmenters ``dest``'s manifest lists (each checked against its sha256s) into ``tmp``.

    A destination without a readable manifest has none to carry (logged). A listed segmenter that is
    missing or changed is a :class:`ModelError`: shipping would silently drop it.
    """
    if not (dest / MANIFEST_NAME).is_file():
        return []
    try:
        old = load_manifest(dest)
    except (ModelError, ConfigError) as exc:
        log.warning("the model set in %s is replaced whole (its manifest is not readable: %s)", dest, exc)
        return []
    for entry in old.segmenters:
        verify_shipped_segmenter(dest / entry.path)
        for name in (entry.path, entry.sidecar):
            _copy(dest / name, tmp / name)
    if old.segmenters:
        log.info("carried the shipped segmenter(s) over: %s", ", ".join(s.path for s in old.segmenters))
    return list(old.segmenters)


def _verify_index(folder: Path, index: IndexEntry) -> None:
    verify_file(folder, index)
    labels = folder / index.labels
    if not labels.is_file():
        raise ModelError(f"index labels {str(labels)!r} listed in the manifest are missing")
    if index.labels_sha256 is not None and sha256_file(labels) != index.labels_sha256:
        raise ModelError(
            f"index labels {str(labels)!r} are corrupt or were replaced: sha256 expected "
            f"{index.labels_sha256}, actual {sha256_file(labels)}; run `trainer index` again"
        )
    if index.graph is not None:
        graph = folder / index.graph
        if not graph.is_file() or sha256_file(graph) != index.graph_sha256:
            raise ModelError(
                f"index graph {str(graph)!r} listed in the manifest is missing, corrupt or was replaced; "
                f"run `trainer index --graph-only --model-set {folder}`"
            )


def _copy(src: Path, dest: Path) -> None:
    if not src.is_file():
        raise ConfigError(f"{str(src)!r} does not exist; nothing to copy")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)


def _write_report(
    report: Path,
    dest: Path,
    steps: dict[str, str] | None,
    left: list[tuple[FileEntry, str]],
    notes: Sequence[str],
    credit: str | None,
) -> None:
    """``report.md`` of ``report`` with a Build section, as ``dest/REPORT.md``, and its plots."""
    source = report / "report.md"
    if not source.is_file():
        raise ConfigError(f"report {str(source)!r} does not exist; run `trainer evaluate --out {report}`")
    for png in sorted(report.glob("*.png")):
        shutil.copy2(png, dest / png.name)
    lines = [source.read_text(encoding="utf-8").rstrip(), "", "## Build"]
    for note in notes:
        lines += ["", note]
    if steps:
        lines += ["", "| step | wall time (s) |", "|---|---|", *(f"| {k} | {v} |" for k, v in steps.items())]
    if left:
        reasons = ", ".join(f"`{f.path}` ({f.bytes / 1e6:.1f} MB; {why})" for f, why in left)
        lines += ["", f"Not shipped (figures above; in the build folder): {reasons}"]
    if credit:
        lines += ["", f"*{credit}*"]
    write_atomic(dest / REPORT_NAME, "\n".join([*lines, ""]))


# ---- command line ------------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trainer ship config`` and ``trainer ship model-set``."""
    p = sub.add_parser(
        "ship",
        help="write a stage config for a build; copy a model set into the shipped folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    steps = p.add_subparsers(dest="ship_command", required=True, metavar="STEP")
    c = steps.add_parser("config", help="a stage config from a base one, with other sources and settings")
    c.add_argument("--base", required=True, type=Path, metavar="FILE", help="config to start from")
    c.add_argument("--out", required=True, type=Path, metavar="FILE", help="config file to write")
    c.add_argument(
        "--source",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATH",
        help="data sources (replace the base's)",
    )
    c.add_argument(
        "--kind",
        default="auto",
        choices=("auto", "b200c", "legacy", "real"),
        help="layout of the --source folders",
    )
    c.add_argument(
        "--weight",
        type=float,
        nargs="+",
        metavar="W",
        help="sampling weight of the --source folders: one for all, or one per source (default: by kind)",
    )
    c.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="settings, e.g. cache.mode=on",
    )
    c.set_defaults(func=main_config)

    m = steps.add_parser("model-set", help="copy a model set into the shipped folder (verified, atomic)")
    m.add_argument(
        "--from",
        dest="src",
        required=True,
        type=Path,
        metavar="SET",
        help="model set folder (trainer export)",
    )
    m.add_argument("--to", dest="dest", required=True, type=Path, help="folder to ship into (replaced)")
    m.add_argument("--max-mb", type=float, default=8.0, metavar="MB", help="largest file shipped, in MB (8)")
    m.add_argument(
        "--max-drop",
        type=float,
        default=3.0,
        metavar="POINTS",
        help="leave out converted files that lose more than this many points of part or colour top-1 "
        "against fp32 (trainer quantize's held-out figures; default 3)",
    )
    m.add_argument(
        "--run", type=Path, metavar="RUN", help="training run folder: its history.json goes into the manifest"
    )
    m.add_argument("--timings", type=Path, metavar="FILE", help="NAME<TAB>SECONDS file of the build's steps")
    m.add_argument(
        "--report", type=Path, metavar="DIR", help="trainer evaluate report folder: becomes REPORT.md"
    )
    m.add_argument(
        "--note",
        action="append",
        default=[],
        metavar="TEXT",
        help="a paragraph for REPORT.md's Build section",
    )
    m.add_argument("--credit", metavar="TEXT", help="last line of REPORT.md (data credit), in italics")
    m.add_argument(
        "--add",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="another file to ship (a config)",
    )
    m.set_defaults(func=main_model_set)


def main_config(args: argparse.Namespace) -> int:
    """Run ``trainer ship config``."""
    settings = dict(parse_setting(text) for text in args.set)
    cfg = write_stage_config(
        args.base, args.out, sources=args.source, kind=args.kind, weight=args.weight, settings=settings
    )
    log.info("wrote %s: %d source(s), %d epoch(s), out %s", args.out, len(cfg.sources), cfg.epochs, cfg.out)
    return 0


def main_model_set(args: argparse.Namespace) -> int:
    """Run ``trainer ship model-set``."""
    shipped = ship_model_set(
        args.src,
        args.dest,
        max_mb=args.max_mb,
        max_drop=args.max_drop,
        run=args.run,
        timings=args.timings,
        report=args.report,
        notes=args.note,
        credit=args.credit,
        add=args.add,
    )
    log.info(
        "model set %s: %d file(s) shipped, %d not",
        args.dest,
        len(shipped["shipped"]),
        len(shipped["not_shipped"]),
    )
    return 0
