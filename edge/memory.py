"""The daemon's memory budget: estimate before loading, measure after, refuse to run over it.

systemd kills the service at ``MemoryMax`` (600 MB); the config's ``memory_budget_mb`` (512 by
default) is what the daemon plans for. Before anything heavy is loaded, :func:`estimate_memory`
adds up the process as it stands (resident memory measured now: Python, numpy, OpenCV, the
runtime's libraries), the model (file size x a runtime factor + working memory per thread), the
embedding index (:meth:`EmbeddingIndex.estimate_memory_mb`) and a segmentation model. After
loading, :func:`check_resident` measures ``VmRSS`` in ``/proc/self/status``. Over budget, both raise
:class:`MemoryBudgetError` naming the biggest component and how to shrink it.

The runtime factors are rough upper bounds (weights in memory + arena + graph copies), meant to
catch a model set that cannot fit, not to predict the figure to the megabyte.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import EdgeError

#: Resident memory per byte of model file, by runtime (weights, arena, optimised graph copy).
RUNTIME_FACTORS: dict[str, float] = {"onnxruntime": 2.0, "litert": 1.3}
#: Working memory per inference thread, MB (thread stacks and per-thread scratch buffers).
PER_THREAD_MB: dict[str, float] = {"onnxruntime": 4.0, "litert": 2.0}
#: Resident memory per byte of an ONNX segmentation model (run by onnxruntime).
SEGMENTER_FACTOR = 2.0
_STATUS = Path("/proc/self/status")


class MemoryBudgetError(EdgeError, RuntimeError):
    """The daemon would use (or uses) more memory than ``memory_budget_mb`` allows."""


def resident_mb(status_path: Path = _STATUS) -> float:
    """The process's resident memory in MB (MiB): ``VmRSS`` of /proc/self/status.

    Where /proc is missing (not Linux) the peak resident size from ``getrusage`` stands in.
    """
    try:
        for line in status_path.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0  # reported in kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, kB elsewhere


@dataclass
class Component:
    """One consumer of memory: its name, estimated MB and what would make it smaller."""

    name: str
    mb: float
    shrink: str


@dataclass
class MemoryReport:
    """Estimated memory per component against the budget."""

    budget_mb: float
    components: list[Component] = field(default_factory=list)

    @property
    def total_mb(self) -> float:
        """Sum of the components."""
        return sum(c.mb for c in self.components)

    @property
    def biggest(self) -> Component:
        """The component with the largest estimate."""
        return max(self.components, key=lambda c: c.mb)

    @property
    def over(self) -> bool:
        """Whether the total exceeds the budget."""
        return self.total_mb > self.budget_mb

    def lines(self) -> list[str]:
        """One line per component and the total, for reports."""
        out = [f"{c.name}: {c.mb:.1f} MB" for c in self.components]
        out.append(f"total: {self.total_mb:.1f} MB of {self.budget_mb:g} MB budget")
        return out


def _model_shrink(runtime: str, precision: str, threads: int) -> str:
    tips = []
    if precision != "int8":
        tips.append("use the int8 model (engine.precision: int8)")
    if threads > 1:
        tips.append(f"lower engine.threads (now {threads})")
    tips.append("or export a smaller architecture")
    return ", ".join(tips)


def estimate_memory(cfg: Any, manifest: Any = None, *, baseline_mb: float | None = None) -> MemoryReport:
    """Estimate the daemon's memory for ``cfg`` (an :class:`~edge.settings.EdgeConfig`) before loading.

    ``manifest`` defaults to the model set's manifest; ``baseline_mb`` to the resident memory now.
    """
    from edge.index import EmbeddingIndex
    from edge.index_search import resolve_backend
    from edge.manifest import load_manifest

    eng = cfg.engine
    manifest = manifest if manifest is not None else load_manifest(eng.model_set)
    report = MemoryReport(cfg.memory_budget_mb)
    base = resident_mb() if baseline_mb is None else float(baseline_mb)
    report.components.append(
        Component(
            "process baseline (Python, numpy, OpenCV, runtime libraries)",
            base,
            "not reducible from the config; raise memory_budget_mb (and MemoryMax in the unit) instead",
        )
    )
    entry = manifest.select(eng.runtime, eng.precision)
    model_mb = entry.bytes / 2**20 * RUNTIME_FACTORS.get(eng.runtime, 2.0)
    model_mb += eng.threads * PER_THREAD_MB.get(eng.runtime, 4.0)
    report.components.append(
        Component(
            f"model {entry.path!r} ({entry.key}, {entry.bytes / 2**20:.1f} MB file, {eng.threads} threads)",
            model_mb,
            _model_shrink(eng.runtime, eng.precision, eng.threads),
        )
    )
    idx = manifest.index
    if idx is not None and cfg.recognition.mode != "classifier":
        report.components.append(
            Component(
                f"embedding index {idx.path!r} ({idx.count} x {idx.dim}, M={idx.M}, "
                f"{resolve_backend('auto')} search)",
                EmbeddingIndex.estimate_memory_mb(idx.count, idx.dim, idx.M, "auto"),
                "rebuild a smaller index (`trainer index`: fewer vectors per part, smaller --M) "
                "or use recognition.mode: classifier",
            )
        )
    seg_model = getattr(cfg.segmenter, "model", None)
    if seg_model is not None and Path(seg_model).is_file():
        size = Path(seg_model).stat().st_size
        report.components.append(
            Component(
                f"segmenter model {str(seg_model)!r} ({size / 2**20:.1f} MB file)",
                size / 2**20 * SEGMENTER_FACTOR
                + getattr(cfg.segmenter, "threads", 1) * PER_THREAD_MB["onnxruntime"],
                "use a smaller segmentation model (u2netp rather than u2net), or segmenter type hsv",
            )
        )
    return report


def check_estimate(report: MemoryReport) -> MemoryReport:
    """Raise :class:`MemoryBudgetError` when ``report`` is over its budget; else return it."""
    if report.over:
        big = report.biggest
        raise MemoryBudgetError(
            f"estimated memory {report.total_mb:.0f} MB is over the budget of {report.budget_mb:g} MB "
            f"(memory_budget_mb); the biggest part is {big.name} at {big.mb:.0f} MB: {big.shrink}. "
            f"Estimate: {'; '.join(report.lines()[:-1])}"
        )
    return report


def check_resident(
    budget_mb: float, report: MemoryReport | None = None, *, measured_mb: float | None = None
) -> float:
    """Measure resident memory after loading; raise :class:`MemoryBudgetError` over ``budget_mb``.

    ``report`` (the estimate made before loading) lets the message name the biggest component.
    Returns the measured MB.
    """
    rss = resident_mb() if measured_mb is None else float(measured_mb)
    if rss > budget_mb:
        if report is not None and report.components:
            big = report.biggest
            hint = f"the biggest part is {big.name} (about {big.mb:.0f} MB): {big.shrink}"
        else:
            hint = "use the int8 model, a smaller index (fewer vectors, smaller M) or fewer threads"
        raise MemoryBudgetError(
            f"resident memory after loading is {rss:.0f} MB, over the budget of {budget_mb:g} MB "
            f"(memory_budget_mb); {hint}"
        )
    return rss
