"""Label maps: the part numbers and colour ids a model's heads predict, in output order.

A map is stored as JSON, ``{"format_version": 1, "parts": [...], "colors": [...]}`` (the plan's
``config/part_mappings/*.json``). A sample without a colour label (B200C) gets colour index
:data:`NO_COLOR` (-1), so it trains the part head only.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.config import StrictModel, validate_config
from edge.errors import ConfigError, DataFileError, EdgeError, UnknownColorError
from trainer.data.sources import Sample

FORMAT_VERSION = 1
#: Colour index of a sample without a colour label (the loss ignores it).
NO_COLOR = -1


class UnknownLabelError(EdgeError, KeyError):
    """A part number or colour id is not in the label map."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class _LabelMapFile(StrictModel):
    format_version: Literal[1] = Field(description="label map format version; this code reads 1")
    parts: list[str] = Field(description="part numbers in the order of the part head's outputs")
    colors: list[int] = Field(description="Rebrickable colour ids in the order of the colour head's outputs")


@dataclass(frozen=True)
class LabelMap:
    """Part numbers and colour ids in the order of the model's outputs.

    Raises:
        ConfigError: on construction, for no parts, blank or repeated part numbers, repeated colour
            ids, or colour ids not in the colour table.
    """

    parts: list[str]
    colors: list[int]
    _part_ix: dict[str, int] = field(init=False, repr=False, compare=False)
    _color_ix: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from edge.colors import get_color

        parts, colors = list(self.parts), list(self.colors)
        if not parts:
            raise ConfigError("label map has no parts; a model needs at least one part to predict")
        problems = [
            f"part {p!r} is not a non-blank string" for p in parts if not isinstance(p, str) or not p.strip()
        ]
        problems += [f"part {p!r} is listed {n} times" for p, n in Counter(parts).items() if n > 1]
        problems += [f"colour {c!r} is listed {n} times" for c, n in Counter(colors).items() if n > 1]
        for c in colors:
            try:
                get_color(c)
            except UnknownColorError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigError("label map is invalid: " + "; ".join(problems))
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "colors", colors)
        object.__setattr__(self, "_part_ix", {p: i for i, p in enumerate(parts)})
        object.__setattr__(self, "_color_ix", {c: i for i, c in enumerate(colors)})

    @property
    def num_parts(self) -> int:
        """Outputs of the part head."""
        return len(self.parts)

    @property
    def num_colors(self) -> int:
        """Outputs of the colour head (0 when no source has colour labels)."""
        return len(self.colors)

    def part_index(self, part_num: str) -> int:
        """The part head's output index of ``part_num`` (UnknownLabelError when absent)."""
        try:
            return self._part_ix[part_num]
        except KeyError:
            raise UnknownLabelError(
                f"part {part_num!r} is not in the label map ({self.num_parts} parts); rebuild the map "
                "from data that includes it, or drop its samples (LabelMap.keep)"
            ) from None

    def color_index(self, color_id: int | None) -> int:
        """The colour head's output index of ``color_id``; :data:`NO_COLOR` for None (no label).

        Raises:
            UnknownLabelError: a colour id that is not in the map.
        """
        if color_id is None:
            return NO_COLOR
        try:
            return self._color_ix[color_id]
        except KeyError:
            raise UnknownLabelError(
                f"colour id {color_id!r} is not in the label map ({self.num_colors} colours); rebuild the "
                "map from data that includes it"
            ) from None

    def encode(
        self, sample: Sample, *, unknown_color: Literal["error", "ignore"] = "error"
    ) -> tuple[int, int]:
        """``(part index, colour index)`` of a sample.

        ``unknown_color="ignore"`` turns a colour missing from the map into :data:`NO_COLOR` (the
        sample still trains the part head) instead of raising.
        """
        part = self.part_index(sample.part_num)
        if unknown_color == "ignore" and sample.color_id not in self._color_ix:
            return part, NO_COLOR
        return part, self.color_index(sample.color_id)

    def keep(self, samples: Iterable[Sample]) -> list[Sample]:
        """The samples whose part is in the map (e.g. after ``min_samples`` dropped rare parts)."""
        return [s for s in samples if s.part_num in self._part_ix]

    def to_json(self, path: str | Path) -> None:
        """Write the map as JSON, atomically (a reader never sees half a file)."""
        path = Path(path)
        data = {"format_version": FORMAT_VERSION, "parts": self.parts, "colors": self.colors}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def from_json(cls, path: str | Path) -> LabelMap:
        """Read a map written by :meth:`to_json`.

        Raises:
            DataFileError: the file is missing or unreadable.
            ConfigError: it is not JSON, has another format version, or holds bad entries.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataFileError(
                f"label map {str(path)!r} does not exist; pass the map the model was trained with"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataFileError(f"label map {str(path)!r} cannot be read: {exc}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"label map {str(path)!r} is not valid JSON: {exc}") from None
        parsed = validate_config(_LabelMapFile, data, f"label map {str(path)!r}")
        try:
            return cls(parsed.parts, parsed.colors)
        except ConfigError as exc:
            raise ConfigError(f"{str(path)!r}: {exc}") from None


def build_label_map(samples: Iterable[Sample], min_samples: int = 1) -> LabelMap:
    """The label map of a training set: parts and colours with at least ``min_samples`` samples.

    Parts are sorted as strings and colours as numbers, so the same data always gives the same map
    whatever its order. Samples without a colour label add no colour.

    Raises:
        ConfigError: ``min_samples`` below 1, or no part has enough samples.
    """
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise ConfigError(f"min_samples must be a whole number >= 1, got {min_samples!r}")
    parts: Counter[str] = Counter()
    colors: Counter[int] = Counter()
    for s in samples:
        parts[s.part_num] += 1
        if s.color_id is not None:
            colors[s.color_id] += 1
    kept = sorted(p for p, n in parts.items() if n >= min_samples)
    if not kept:
        most = max(parts.values(), default=0)
        raise ConfigError(
            f"no part has min_samples={min_samples} samples (the most any part has is {most}); lower "
            "min_samples or add data"
        )
    return LabelMap(kept, sorted(c for c, n in colors.items() if n >= min_samples))
