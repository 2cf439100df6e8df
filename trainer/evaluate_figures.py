"""The figures of one artifact in ``trainer evaluate`` (:mod:`trainer.evaluate`), from its engine
outputs: part and colour top-1/top-5 of single views and of one capture's views fused (also with the
part prior), the most confused pairs with their confusion matrix, and vector-search top-1; and the
grouping of samples by capture that the fused figures decide on."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge.index import EmbeddingIndex
from edge.manifest import Manifest
from edge.prior import PartPrior
from edge.recognize import Recognizer
from trainer.data import Sample
from trainer.stats import paired_change

TOP_CONFUSED = 10


def group_captures(samples: Sequence[Sample], views: int | None = None) -> list[list[Sample]]:
    """Samples grouped by capture (sorted), each group's views in view order, at most ``views`` of them."""
    groups: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.source, s.capture_id)].append(s)
    return [sorted(g, key=lambda s: s.view)[:views] for _, g in sorted(groups.items())]


def _rows(samples: Sequence[Sample], where: dict[Sample, int]) -> np.ndarray:
    return np.array([where[s] for s in samples], dtype=np.int64)


def _topk_hits(logits: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return (top == truth[:, None]).any(axis=1)


def classifier_figures(
    out: dict[str, np.ndarray],
    test: list[Sample],
    captures: list[list[Sample]],
    where: dict[Sample, int],
    manifest: Manifest,
    prior: PartPrior | None = None,
) -> dict[str, Any]:
    """Single-view and fused part/colour figures, and the confused pairs; with ``prior``, the part
    figures also with the part prior (:mod:`edge.prior`) in the decision (``prior_*``)."""
    part_ix = {p: i for i, p in enumerate(manifest.parts)}
    rows = _rows(test, where)
    logits = out["part_logits"][rows]
    truth = np.array([part_ix[s.part_num] for s in test])
    pred = logits.argmax(1)
    f: dict[str, Any] = {
        "images": len(test),
        "captures": len(captures),
        "part_top1": float(np.mean(pred == truth)),
        "part_top5": float(np.mean(_topk_hits(logits, truth, 5))),
    }
    color_ix = {c: i for i, c in enumerate(manifest.colors)}
    has_color = "color_logits" in out and any(s.color_id in color_ix for s in test)
    if has_color:
        mask = np.array([s.color_id in color_ix for s in test])
        ctruth = np.array([-1 if s.color_id is None else color_ix.get(s.color_id, -1) for s in test])
        cpred = out["color_logits"][rows].argmax(1)
        f["color_top1"] = float(np.mean(cpred[mask] == ctruth[mask]))
        f["color_images"] = int(mask.sum())
        f["top_confused_colors"] = _confused(
            [(manifest.colors[t], manifest.colors[q]) for t, q in zip(ctruth[mask], cpred[mask], strict=True)]
        )
    recognizer = Recognizer(manifest, mode="classifier", k=5)
    top1, top5, ctop1, cn = 0, 0, 0, 0
    for group in captures:
        r = _rows(group, where)
        decision = recognizer.decide({role: value[r] for role, value in out.items()})
        ranked = [p for p, _ in decision.part_topk]
        top1 += ranked[0] == group[0].part_num
        top5 += group[0].part_num in ranked[:5]
        if has_color and group[0].color_id in color_ix:
            cn += 1
            ctop1 += decision.color_id == group[0].color_id
    if captures:
        f["fused_part_top1"] = top1 / len(captures)
        f["fused_part_top5"] = top5 / len(captures)
    if prior is not None:
        f |= _prior_figures(out, test, captures, where, manifest, prior, (pred == truth).tolist())
    if cn:
        f["fused_color_top1"] = ctop1 / cn
    f["top_confused"] = _confused(
        [(manifest.parts[t], manifest.parts[p]) for t, p in zip(truth, pred, strict=True)]
    )
    f["confusion"] = confusion_submatrix(truth, pred, manifest.parts, f["top_confused"])
    return f


def _prior_figures(
    out: dict[str, np.ndarray],
    test: list[Sample],
    captures: list[list[Sample]],
    where: dict[Sample, int],
    manifest: Manifest,
    prior: PartPrior,
    plain_hits: Sequence[bool],
) -> dict[str, Any]:
    """Part top-1, single view and fused, of the daemon's decision with the part prior; and the
    single views it gained and lost against ``plain_hits`` (each test image's top-1 without it)."""
    recognizer = Recognizer(manifest, mode="classifier", k=5, prior=prior)
    logits = out["part_logits"]

    def hits(groups: Sequence[Sequence[Sample]]) -> list[bool]:
        return [
            recognizer.decide({"part_logits": logits[_rows(g, where)]}).part_topk[0][0] == g[0].part_num
            for g in groups
        ]

    single = hits([[s] for s in test])
    return {
        "prior_source": prior.source,
        "prior_part_top1": float(np.mean(single)),
        "prior_paired": paired_change(plain_hits, single),
        "prior_fused_part_top1": float(np.mean(hits(captures))) if captures else None,
    }


def _confused(pairs: Sequence[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """The :data:`TOP_CONFUSED` most frequent ``(true, predicted)`` mistakes among ``pairs``, with
    their count and share of the true class's images (ties by class, so the list is stable)."""
    per_class = Counter(t for t, _ in pairs)
    wrong = Counter((t, p) for t, p in pairs if t != p)
    return [
        {"true": t, "predicted": p, "count": n, "share_of_true": n / per_class[t]}
        for (t, p), n in sorted(wrong.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CONFUSED]
    ]


def confusion_submatrix(
    truth: np.ndarray, pred: np.ndarray, parts: Sequence[str], top: list[dict[str, Any]], limit: int = 10
) -> dict[str, Any]:
    """Counts ``matrix[i][j]`` of true part i predicted as part j among the most confused parts.

    ``other[i]``: images of part i predicted as a part outside the selection.
    """
    chosen: list[str] = []
    for pair in top:
        for part in (pair["true"], pair["predicted"]):
            if part not in chosen and len(chosen) < limit:
                chosen.append(part)
    index = {p: i for i, p in enumerate(parts)}
    ids = [index[p] for p in chosen]
    matrix = [[int(np.sum((truth == t) & (pred == q))) for q in ids] for t in ids]
    other = [int(np.sum(truth == t)) - sum(row) for t, row in zip(ids, matrix, strict=True)]
    return {"parts": chosen, "matrix": matrix, "other": other}


def vector_figures(
    out: dict[str, np.ndarray],
    gallery: list[Sample],
    queries: list[Sample],
    where: dict[Sample, int],
    manifest: Manifest,
    views: int,
    prefix: str,
) -> dict[str, Any]:
    """Top-1 of searching ``queries`` in an index of ``gallery``, single view and fused per capture."""
    if not gallery or not queries or "embedding" not in out:
        return {}
    index = EmbeddingIndex(out["embedding"].shape[1], threads=1)
    index.add(out["embedding"][_rows(gallery, where)], [s.part_num for s in gallery])
    k = min(5, len(index))
    found, _ = index.search(out["embedding"][_rows(queries, where)], k)
    truth = np.array([s.part_num for s in queries])
    recognizer = Recognizer(manifest, mode="vector", index=index, k=5)
    groups = group_captures(queries, views)
    fused = 0
    for group in groups:
        r = _rows(group, where)
        decision = recognizer.decide({role: value[r] for role, value in out.items()})
        fused += decision.part_topk[0][0] == group[0].part_num
    return {
        f"{prefix}top1": float(np.mean(found[:, 0] == truth)),
        f"{prefix}top5": float(np.mean((found == truth[:, None]).any(axis=1))),
        f"{prefix}fused_top1": fused / len(groups),
        f"{prefix}queries": len(queries),
        f"{prefix}gallery": len(gallery),
    }
