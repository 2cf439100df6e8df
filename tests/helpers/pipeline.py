"""A pipeline of a config with some recognition settings changed, run on one frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.pipeline import Pipeline
from edge.recognize import Recognizer
from edge.settings import load_edge_config


def decided_probs(config: Path, frame: np.ndarray, **recognition: Any) -> tuple[dict[str, float], Recognizer]:
    """The fused part probabilities of two views of ``frame`` by the pipeline of ``config`` with
    ``recognition`` settings changed, and its recognizer."""
    cfg = load_edge_config(config)
    cfg = cfg.model_copy(update={"recognition": cfg.recognition.model_copy(update=recognition)})
    pipeline = Pipeline.from_config(cfg, with_camera=False)
    try:
        decision = pipeline.process([frame, frame]).decision
        assert decision is not None and decision.distribution is not None
        probs = dict(zip(decision.distribution.parts, decision.distribution.part_probs.tolist(), strict=True))
        return probs, pipeline.recognizer
    finally:
        pipeline.close()
