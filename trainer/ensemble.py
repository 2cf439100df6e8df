"""Several training runs' networks exported as one: ``trainer export --checkpoint A B ...``.

Runs of one recipe that differ only in their seed disagree on real photos by several points
(docs/real_transfer.md); averaging their answers removes part of that spread at the cost of one
network's inference per member. The members are put into one ONNX graph, so the Pi's engines,
manifest and index see an ordinary model set:

- ``part_logits`` and ``color_logits``: the mean of the members' log-probabilities (a geometric
  mean of their probabilities, renormalised by the softmax the recognizer applies; the export's
  temperature scaling is then fitted on the ensemble's own outputs);
- ``embedding``: the members' unit embeddings side by side, divided by the square root of their
  number, so it is a unit vector again and the cosine of two such vectors is the mean of the
  members' cosines (the index searches the ensemble as it searches one network).

The members must agree on everything the model set promises: the input spec, the part and colour
lists in output order, and the parts held out of training. Each must have been trained on its own
split (the usual case: another seed): temperatures are fitted on the validation images no member
trained on (:func:`shared_validation`). The model set records the first run's split
(``build.data``) and each member's (``build.data_members``): ``trainer quantize`` calibrates on the
first run's training images and measures on the test images no member trained on
(:func:`shared_held_out`). Those are still renders of the training renders' kind: judge an
ensemble on renders none of them saw (the build's independent test render) and on real photos
(``trainer evaluate-real``).

On the Pi it costs each member's inference and memory: twice Lite0's for two members
(benchmarks/results/pi5_projection.md: about 52 ms a part of four views for one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from trainer.checkpoint import CheckpointMeta
    from trainer.data import Sample


def combine(
    members: Sequence[tuple[Any, CheckpointMeta]], paths: Sequence[str | Path]
) -> tuple[Any, CheckpointMeta]:
    """``(network, meta)`` of the members loaded from ``paths`` put together (see the module docstring).

    The meta is the first member's with the architecture named ``NAME x N ensemble``, the
    embedding as long as the members' together, no epoch figures, and ``extra["ensemble_of"]``
    naming each member (its folder, stage, epoch and seed).

    Raises:
        ConfigError: fewer than two members, or members that disagree on the input spec, the
            part or colour lists, or the held-out parts (naming the member and what differs).
    """
    if len(members) < 2:
        raise ConfigError("an ensemble needs at least two checkpoints; pass --checkpoint A B")
    first = members[0][1]
    for path, (_, meta) in zip(paths[1:], members[1:], strict=True):
        differs = [
            what
            for what, same in (
                ("input spec", meta.input_spec == first.input_spec),
                ("part list", list(meta.label_map.parts) == list(first.label_map.parts)),
                ("colour list", list(meta.label_map.colors) == list(first.label_map.colors)),
                (
                    "held-out parts",
                    list(meta.extra.get("holdout_parts", ())) == list(first.extra.get("holdout_parts", ())),
                ),
            )
            if not same
        ]
        if differs:
            raise ConfigError(
                f"checkpoint {str(path)!r} cannot join {str(paths[0])!r} in an ensemble: its "
                f"{', '.join(differs)} differ; ensemble runs of one recipe on the same renders"
            )
    model = build_ensemble([m for m, _ in members])
    names = {meta.name for _, meta in members}
    name = (
        f"{names.pop()} x{len(members)} ensemble"
        if len(names) == 1
        else "ensemble of " + "+".join(meta.name for _, meta in members)
    )
    meta = replace(
        first,
        model_args={
            **first.model_args,
            "name": name,
            "embedding_dim": sum(meta.embedding_dim for _, meta in members),
        },
        metrics={},
        extra={
            **first.extra,
            "ensemble_of": [
                {
                    "checkpoint": str(Path(path).resolve()),
                    "stage": meta.stage,
                    "epoch": meta.epoch,
                    "seed": (meta.config or {}).get("seed"),
                    "architecture": meta.name,
                }
                for path, (_, meta) in zip(paths, members, strict=True)
            ],
        },
    )
    return model, meta


def build_ensemble(models: Sequence[Any]) -> Any:
    """The torch module that averages ``models`` (PartNets or alike: dict outputs, ``num_colors``)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Ensemble(nn.Module):
        """Members' log-probabilities averaged, unit embeddings side by side (module docstring)."""

        def __init__(self, members: Sequence[nn.Module]) -> None:
            super().__init__()
            self.members = nn.ModuleList(members)
            self.num_colors = int(getattr(members[0], "num_colors", 0))

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            outs = [m(x) for m in self.members]
            result = {
                role: torch.stack([F.log_softmax(o[role], dim=1) for o in outs]).mean(dim=0)
                for role in ("part_logits", "color_logits")
                if role in outs[0]
            }
            result["embedding"] = torch.cat([o["embedding"] for o in outs], dim=1) / math.sqrt(len(outs))
            return result

    return Ensemble(list(models)).eval()


def shared_validation(splits: Sequence[dict[str, list[Sample]]]) -> list[Sample]:
    """The first split's validation samples that every other split also holds out of training
    (in its validation or test part): what no member has learnt from (one split: its validation
    samples)."""
    return shared_held_out(splits, "val")


def shared_held_out(splits: Sequence[dict[str, list[Sample]]], part: str) -> list[Sample]:
    """The first split's ``part`` (``val`` or ``test``) samples that every other split also holds
    out of training (in its validation or test part); one split: its ``part`` samples."""
    first, *others = splits
    unseen = [{s.image_path for held in ("val", "test") for s in split.get(held, [])} for split in others]
    return [s for s in first.get(part, []) if all(s.image_path in held for held in unseen)]
