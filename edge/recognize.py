"""From the engine outputs of one part's camera views to one sorting decision.

Three modes:

* ``classifier``: softmax of the part head per view, views fused (see :data:`Fusion`), top-k.
* ``vector``: each view's embedding is searched in the :class:`~edge.index.EmbeddingIndex`; views
  vote with their similarities (a label's fused score = the sum over views of its best similarity
  among that view's k neighbours, divided by the number of views, so a label a view did not return
  gets 0 from it). Works for parts enrolled after training.
* ``hybrid``: the classifier decides, unless its fused confidence is below ``threshold`` or the
  vector search's best label is a part the classifier does not know with a fused similarity of at
  least ``vector_threshold``; then the vector answer is taken. With an empty index (nothing
  enrolled yet) hybrid is the classifier alone; vector mode refuses it.

Parts enrolled on the rig itself (``rig_index``: the user index of ``edge enroll``, from the rig's own
camera) are searched first in ``vector`` and ``hybrid`` modes: when the views' fused similarity to
them reaches ``rig_threshold``, that answer is taken before anything else. A real photo sits nearer
its own part's real views than renders of it, but the shipped index's renders of *other* parts can
still come nearer than either (a camera's look is shared by every part it sees, and a dense gallery
of renders offers some render close to any photo), so in one merged search the rig's own views lose.

The colour always comes from the colour head, fused the same way as the part head.

Status, with ``t`` the threshold of the answer's source (``threshold`` for the classifier's fused
probability, ``vector_threshold`` for the vector search's fused similarity) and ``c`` its confidence:
``c >= t``: ``"sorted"`` with ``part_num`` set; ``t/2 <= c < t``: ``"low_confidence"``;
``c < t/2``: ``"unknown"``. Below ``t`` ``part_num`` is None (the part goes to the reject bin);
the best guesses stay in ``part_topk`` for later labelling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from edge.errors import ConfigError, ModelError
from edge.index import EmbeddingIndex
from edge.manifest import Manifest
from edge.prior import PartPrior
from edge.size import SizePrior

Mode = Literal["classifier", "vector", "hybrid"]
Fusion = Literal["mean_log_prob", "mean_prob", "max"]
Source = Literal["classifier", "vector"]
Status = Literal["sorted", "unknown", "low_confidence"]
MODES: tuple[Mode, ...] = ("classifier", "vector", "hybrid")
FUSIONS: tuple[Fusion, ...] = ("mean_log_prob", "mean_prob", "max")
TopK = list[tuple[str, float]]


@dataclass
class ViewPrediction:
    """What one view says on its own: top-k parts and colours with their scores."""

    part_topk: list[tuple[str, float]]
    color_topk: list[tuple[int, float]]
    source: Source
    embedding: np.ndarray | None = None


@dataclass
class Distribution:
    """The fused classifier probabilities over every part and colour the model knows."""

    parts: Sequence[str]
    part_probs: np.ndarray
    colors: Sequence[int]
    color_probs: np.ndarray | None


@dataclass
class Decision:
    """The fused verdict for one part (see the module docstring for ``status``)."""

    part_num: str | None
    color_id: int | None
    confidence: float
    color_confidence: float
    status: Status
    source: str
    per_view: list[ViewPrediction]
    part_topk: list[tuple[str, float]]
    color_topk: list[tuple[int, float]] = field(default_factory=list)  # fused, like part_topk
    distribution: Distribution | None = None  # the classifier's whole fused distribution


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64 (finite for any finite logits)."""
    x = np.asarray(logits, np.float64)
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def fuse(log_probs: np.ndarray, fusion: Fusion) -> np.ndarray:
    """Fuse (N views, K classes) log-probabilities into one score per class, in [0, 1].

    ``mean_log_prob``: the normalised geometric mean of the views' probabilities (product of
    experts). Each view is a separate look at the same part, so multiplying the views' beliefs is
    the Bayes combination of independent evidence: a class must be plausible in every view, and one
    view's doubt lowers but need not veto it. ``mean_prob``: the arithmetic mean (more forgiving of a
    view that rules the true class out, e.g. an occluded one). ``max``: each class's highest
    probability in any view, not renormalised (the single most confident view wins).
    """
    if fusion == "mean_log_prob":
        return np.exp(log_softmax(log_probs.mean(axis=0, keepdims=True)))[0]
    probs = np.exp(log_probs)
    return probs.mean(axis=0) if fusion == "mean_prob" else probs.max(axis=0)


def _topk(scores: np.ndarray, names: list, k: int) -> list:
    return _topk_rows(scores[None], names, k)[0]


def _topk_rows(scores: np.ndarray, names: list, k: int) -> list[list]:
    """Each row's ``k`` best (name, score) pairs, best first, ties in index order; one sort for all rows."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(scores, order, axis=1).tolist()
    return [
        [(names[i], v) for i, v in zip(row, row_values, strict=True)]
        for row, row_values in zip(order.tolist(), values, strict=True)
    ]


class Recognizer:
    """Turns one part's per-view engine outputs into a :class:`Decision`.

    ``threshold``: minimum fused classifier probability to sort; ``vector_threshold``: minimum fused
    similarity (cosine or inner product) for a vector answer; ``k``: neighbours per view and length
    of the top-k lists. ``rig_index``: the views enrolled on this rig (searched first, see the module
    docstring; they may be in ``index`` too); ``rig_threshold``: the fused similarity to them at
    which their answer is taken (None: ``vector_threshold``). ``size`` (:mod:`edge.size`) and
    ``prior`` (:mod:`edge.prior`) update the classifier's fused probabilities, in that order.
    """

    def __init__(
        self,
        manifest: Manifest,
        *,
        mode: Mode = "classifier",
        index: EmbeddingIndex | None = None,
        threshold: float = 0.6,
        vector_threshold: float = 0.7,
        k: int = 5,
        fusion: Fusion = "mean_log_prob",
        rig_index: EmbeddingIndex | None = None,
        rig_threshold: float | None = None,
        size: SizePrior | None = None,
        prior: PartPrior | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"recognition mode {mode!r} must be one of {list(MODES)!r}")
        if fusion not in FUSIONS:
            raise ConfigError(f"fusion {fusion!r} must be one of {list(FUSIONS)!r}")
        if rig_threshold is None:
            rig_threshold = vector_threshold
        for name, value in (
            ("threshold", threshold),
            ("vector_threshold", vector_threshold),
            ("rig_threshold", rig_threshold),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= 1.0:
                raise ConfigError(f"{name} {value!r} must be a number in (0, 1]")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100:
            raise ConfigError(f"k {k!r} must be an integer within 1..100")
        if mode != "classifier":
            if index is None:
                raise ConfigError(
                    f"recognition mode {mode!r} needs an embedding index; load one with "
                    "EmbeddingIndex.load (build it with `trainer index`) or use mode 'classifier'"
                )
            if manifest.outputs.embedding is None or manifest.embedding_dim is None:
                raise ConfigError(
                    f"recognition mode {mode!r} needs a model with an embedding output, but the model set "
                    "has none; use mode 'classifier' or export a model with an embedding head"
                )
            for what, idx in (("embedding index", index), ("rig's enrolled index", rig_index)):
                if idx is None:
                    continue
                if idx.dim != manifest.embedding_dim:
                    raise ModelError(
                        f"the {what} has dimension {idx.dim} but the model's embedding_dim is "
                        f"{manifest.embedding_dim}; rebuild the index with `trainer index` (enrolled "
                        "parts: `edge reindex`) for this model set"
                    )
                if idx.space == "l2":
                    raise ModelError(
                        f"the {what} uses the 'l2' space, whose scores are not similarities a "
                        "vector_threshold can apply to; rebuild the index with space 'cosine'"
                    )
        self.manifest = manifest
        self.mode: Mode = mode
        self.index = index
        self.threshold = float(threshold)
        self.vector_threshold = float(vector_threshold)
        self.rig_index = rig_index if mode != "classifier" else None
        self.rig_threshold = float(rig_threshold)
        self.k = k
        self.fusion: Fusion = fusion
        if size is not None and list(size.parts) != list(manifest.parts):
            raise ConfigError("the size prior's parts differ from the model's; build it from this manifest")
        self.size = size
        if prior is not None and list(prior.parts) != list(manifest.parts):
            raise ConfigError("the part prior's parts differ from the model's; build it from this manifest")
        self.prior = prior
        self._parts = list(manifest.parts)
        self._known = frozenset(manifest.parts)
        self._colors = list(manifest.colors)

    def _check(self, outputs: dict[str, np.ndarray]) -> int:
        """Validate the outputs' shapes and values; return the number of views."""
        if not isinstance(outputs, dict) or "part_logits" not in outputs:
            got = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
            raise ModelError(f"recognition needs Engine.run() outputs with 'part_logits', got {got!r}")
        widths = {"part_logits": len(self._parts), "color_logits": len(self._colors)}
        if self.manifest.embedding_dim is not None:
            widths["embedding"] = self.manifest.embedding_dim
        views = None
        for role, arr in outputs.items():
            if role not in widths:
                continue
            a = np.asarray(arr)
            if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] != widths[role]:
                raise ModelError(
                    f"output {role!r} has shape {a.shape!r}, expected (N views >= 1, {widths[role]}) "
                    "for this model set; pass one part's views from the same model"
                )
            if views is not None and a.shape[0] != views:
                raise ModelError(f"outputs disagree on the number of views: {a.shape[0]} vs {views}")
            views = a.shape[0]
            if not np.isfinite(a).all():
                raise ModelError(f"output {role!r} holds NaN/inf; check the model file and its input")
        if self.mode != "classifier" and "embedding" not in outputs:
            raise ModelError(f"mode {self.mode!r} needs the 'embedding' output, which the outputs lack")
        assert views is not None  # part_logits is present and was checked
        return views

    def _status(self, confidence: float, threshold: float) -> Status:
        if confidence >= threshold:
            return "sorted"
        return "low_confidence" if confidence >= threshold / 2 else "unknown"

    def _classify(
        self, outputs: dict[str, np.ndarray], footprints: Sequence[tuple[float, float] | None] | None = None
    ) -> tuple[TopK, list[ViewPrediction], np.ndarray]:
        """Fused part top-k, per-view predictions and the fused part scores of the classifier
        (updated by the views' measured footprints where there is a size prior)."""
        part_lp = log_softmax(outputs["part_logits"])
        color_lp = log_softmax(outputs["color_logits"]) if "color_logits" in outputs else None
        emb = outputs.get("embedding")
        part_tops = _topk_rows(np.exp(part_lp), self._parts, self.k)
        color_tops = (
            _topk_rows(np.exp(color_lp), self._colors, self.k)
            if color_lp is not None
            else [[] for _ in part_lp]
        )
        views = [
            ViewPrediction(
                part_topk=part_tops[i],
                color_topk=color_tops[i],
                source="classifier",
                embedding=None if emb is None else np.asarray(emb[i], np.float32),
            )
            for i in range(len(part_lp))
        ]
        fused = fuse(part_lp, self.fusion)
        if self.size is not None and footprints is not None:
            fused = self.size.update(fused, footprints)
        if self.prior is not None:
            fused = self.prior.update(fused)
        return _topk(fused, self._parts, self.k), views, fused

    def _vector(
        self, embeddings: np.ndarray, index: EmbeddingIndex | None = None
    ) -> tuple[TopK, list[ViewPrediction]]:
        """Fused part top-k and per-view predictions from ``index`` (default: the embedding index)."""
        index = index if index is not None else self.index
        assert index is not None  # checked in __init__
        k = max(1, min(self.k, len(index)))  # a small gallery is fine: no clamping warning
        labels, scores = index.search(np.asarray(embeddings, np.float32), k)
        votes: dict[str, float] = {}
        views = []
        for i, (row_labels, row_scores) in enumerate(zip(labels, scores, strict=True)):
            best: dict[str, float] = {}  # a part's best neighbour in this view: repeats don't add up
            for label, score in zip(row_labels.tolist(), row_scores.tolist(), strict=True):
                best.setdefault(label, score)
            for label, score in best.items():
                votes[label] = votes.get(label, 0.0) + score
            views.append(
                ViewPrediction(list(best.items()), [], "vector", np.asarray(embeddings[i], np.float32))
            )
        fused = sorted(((lab, s / len(labels)) for lab, s in votes.items()), key=lambda x: -x[1])
        return fused[: self.k], views

    def decide(
        self,
        outputs: dict[str, np.ndarray],
        footprints: Sequence[tuple[float, float] | None] | None = None,
    ) -> Decision:
        """One decision from the outputs of ONE part's N views (one ``Engine.run`` batch).

        ``footprints``: each view's measured footprint in pixels (:func:`edge.size.measure`; None
        for a view without one), used by the size prior when the recognizer has one.
        """
        self._check(outputs)
        if self.manifest.temperatures:  # calibrated probabilities (manifest.temperatures)
            outputs = {
                k: v / self.manifest.temperatures[k] if k in self.manifest.temperatures else v
                for k, v in outputs.items()
            }
        per_view: list[ViewPrediction] = []
        color_id: int | None = None
        color_conf = 0.0
        color_topk: list[tuple[int, float]] = []
        fused_color: np.ndarray | None = None
        if "color_logits" in outputs and self._colors:
            fused_color = fuse(log_softmax(outputs["color_logits"]), self.fusion)
            best = int(np.argmax(fused_color))
            color_id, color_conf = self._colors[best], float(fused_color[best])
            color_topk = _topk(fused_color, self._colors, self.k)

        source: Source = "classifier"
        topk: TopK = []
        threshold = self.threshold
        distribution = None
        if self.mode in ("classifier", "hybrid"):
            topk, per_view, fused_parts = self._classify(outputs, footprints)
            distribution = Distribution(self._parts, fused_parts, self._colors, fused_color)
        rig_answer = False
        if self.rig_index is not None and len(self.rig_index):
            rig_topk, rig_views = self._vector(outputs["embedding"], self.rig_index)
            if rig_topk[0][1] >= self.rig_threshold:  # the rig's own views of a part: taken first
                per_view += rig_views
                source, topk, threshold, rig_answer = "vector", rig_topk, self.rig_threshold, True
        # hybrid with an empty index (nothing enrolled yet) is the classifier alone
        if (
            not rig_answer
            and self.index is not None
            and (self.mode == "vector" or (self.mode == "hybrid" and len(self.index)))
        ):
            vec_topk, vec_views = self._vector(outputs["embedding"])
            per_view += vec_views
            vec_best, vec_score = vec_topk[0]
            take_vector = (
                self.mode == "vector"
                or topk[0][1] < self.threshold
                or (vec_best not in self._known and vec_score >= self.vector_threshold)
            )
            if take_vector:
                source, topk, threshold = "vector", vec_topk, self.vector_threshold

        part, score = topk[0]
        confidence = float(np.clip(score, 0.0, 1.0))  # cosine similarity can be negative
        status = self._status(confidence, threshold)
        return Decision(
            part_num=part if status == "sorted" else None,
            color_id=color_id,
            confidence=confidence,
            color_confidence=color_conf,
            status=status,
            source=source,
            per_view=per_view,
            part_topk=topk,
            color_topk=color_topk,
            distribution=distribution,
        )
