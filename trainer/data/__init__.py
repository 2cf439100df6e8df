"""Training data: sources as :class:`Sample` records, label maps, capture-grouped splits and mixing.

Plain numpy and the standard library only; the torch ``Dataset`` wrapper consumes these records.
"""

from trainer.data.labels import NO_COLOR, LabelMap, UnknownLabelError, build_label_map
from trainer.data.mix import MixedSampler
from trainer.data.sources import Sample, detect_kind, load_source, read_sample
from trainer.data.splits import holdout_parts, split_samples

__all__ = [
    "NO_COLOR",
    "LabelMap",
    "MixedSampler",
    "Sample",
    "UnknownLabelError",
    "build_label_map",
    "detect_kind",
    "holdout_parts",
    "load_source",
    "read_sample",
    "split_samples",
]
