"""``trainer ship model-set``: the verified, size-limited copy of a model set into the folder that ships.

What ships and what is recorded instead (files over ``--max-mb``, converted files that lose more
than ``--max-drop`` points of top-1, the index graph, the training history, the build's step times,
REPORT.md, carried segmenters) is described in :mod:`trainer.ship`, whose docstring is the
command's help; the command line itself is there too.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, ModelError
from edge.fileio import write_atomic
from edge.manifest import (
    MANIFEST_NAME,
    Manifest,
    load_manifest,
    sha256_file,
    verify_file,
    verify_shipped_segmenter,
    write_manifest,
)
from edge.manifest_entries import FileEntry, IndexEntry, SegmenterEntry
from trainer.quantize import REFERENCE as QUANT_REFERENCE

log = logging.getLogger(__name__)

REPORT_NAME = "REPORT.md"


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
    """Copy model set ``src`` into ``dest`` (see :mod:`trainer.ship`'s module doc); returns what was shipped.

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
