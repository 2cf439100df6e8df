"""Routing: a decided part (part number, colour, status) -> the chute bin it goes to.

Rules (``sorting.rules`` in the config) are tried in order; a rule matches when every criterion it
gives matches (part number, Rebrickable colour id, Rebrickable part category name). Parts no rule
matches go to ``default_bin``; unknown and low-confidence parts to ``unknown_bin`` (default: the
reject bin); errors and two parts at once to ``reject_bin``. With ``route_by: bin`` the decision is
made per bin instead of per part (:meth:`Sorter.route_decision`).

Categories come from a small table of part number -> category name for the parts of the model
set: the manifest's ``categories`` (written by ``trainer categories`` from the LDraw files: Brick,
Plate, Tile, Slope, Technic...; older sets: ``build["part_categories"]``), plus an optional CSV
(``sorting.categories_file``, columns ``part_num,category``) that overrides it entry by entry.
Without a table, category rules match nothing and :meth:`Sorter.warnings` (shown by ``edge
check``) says so. Names compare case- and space-insensitively.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.config import read_text_file
from edge.errors import ConfigError, DataFileError
from edge.part import PartRecord
from edge.settings import SortingSettings

#: Key of the part -> category table in a manifest's free-form ``build`` record.
MANIFEST_CATEGORIES_KEY = "part_categories"


@dataclass(frozen=True)
class Route:
    """Where a part goes and why (the reason is stored with the decision)."""

    bin: str
    reason: str


def _norm(name: str) -> str:
    return " ".join(name.casefold().split())


def categories_from_manifest(manifest: Any) -> dict[str, str]:
    """The manifest's part -> category table (``categories``, else the older
    ``build["part_categories"]``), or {} when it has none."""
    own = getattr(manifest, "categories", None)
    if own:
        return {str(k): str(v) for k, v in own.items()}
    table = (getattr(manifest, "build", None) or {}).get(MANIFEST_CATEGORIES_KEY)
    if table is None:
        return {}
    if not isinstance(table, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in table.items()
    ):
        raise ConfigError(
            f"the model set's build.{MANIFEST_CATEGORIES_KEY} must map part numbers to category names; "
            "re-export the model set"
        )
    return dict(table)


#: Largest categories CSV read (every Rebrickable part is about 2 MB).
MAX_CATEGORIES_BYTES = 16 << 20


def read_categories_file(path: str | Path) -> dict[str, str]:
    """Read a ``part_num,category`` CSV (header row required) into a dict."""
    path = Path(path)
    text = read_text_file(
        path,
        "categories file",
        missing=DataFileError,
        fix="fix sorting.categories_file or remove it",
        limit=MAX_CATEGORIES_BYTES,
    )
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        header = rows[0].keys() if rows else set()
    except csv.Error as exc:
        raise DataFileError(f"categories file {str(path)!r} cannot be read: {exc}") from None
    if rows and not {"part_num", "category"} <= set(header):
        raise DataFileError(
            f"categories file {str(path)!r} needs the columns part_num and category; found {sorted(header)!r}"
        )
    table: dict[str, str] = {}
    for lineno, row in enumerate(rows, start=2):
        part, category = (row.get("part_num") or "").strip(), (row.get("category") or "").strip()
        if not part or not category:
            raise DataFileError(f"categories file {str(path)!r} line {lineno}: empty part_num or category")
        table[part] = category
    return table


def load_categories(manifest: Any, categories_file: str | Path | None = None) -> dict[str, str]:
    """The category table: the manifest's, overridden entry by entry by ``categories_file``."""
    table = categories_from_manifest(manifest) if manifest is not None else {}
    if categories_file is not None:
        table.update(read_categories_file(categories_file))
    return table


class Sorter:
    """Applies :class:`~edge.settings.SortingSettings` to decisions.

    ``bin_names`` are the chute's bins; every bin the settings name must be one of them.
    ``categories`` maps part numbers to category names (Brick, Plate, ...) (see the module docstring).
    """

    def __init__(
        self,
        settings: SortingSettings,
        bin_names: Sequence[str],
        categories: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.bin_names = [str(b) for b in bin_names]
        self.categories = {str(k): str(v) for k, v in (categories or {}).items()}
        self._category_key = {k: _norm(v) for k, v in self.categories.items()}
        self._tables: dict[tuple[tuple[str, ...], tuple[int | None, ...]], np.ndarray] = {}
        named = [settings.default_bin, settings.reject_bin, *(r.bin for r in settings.rules)]
        if settings.unknown_bin is not None:
            named.append(settings.unknown_bin)
        missing = sorted({b for b in named if b not in self.bin_names})
        if missing:
            raise ConfigError(
                f"sorting names bin(s) {missing!r} the chute does not have ({', '.join(self.bin_names)}); "
                "use those names or add the bins to rig.chute.bins"
            )

    @property
    def unknown_bin(self) -> str:
        """Bin of unknown and low-confidence parts."""
        return self.settings.unknown_bin or self.settings.reject_bin

    def category_of(self, part_num: str) -> str | None:
        """The part's category name, or None when the table lacks it."""
        return self.categories.get(part_num)

    def route(self, part_num: str | None, color_id: int | None, status: str = "sorted") -> Route:
        """The bin for a decision; ``status`` as in :class:`~edge.recognize.Decision` or ``"error"``."""
        s = self.settings
        if status == "error":
            return Route(s.reject_bin, "error: reject bin")
        if status != "sorted" or part_num is None:
            return Route(self.unknown_bin, f"{status}: unknown bin")
        category = self._category_key.get(part_num)
        for i, rule in enumerate(s.rules):
            if rule.part is not None and part_num not in rule.part:
                continue
            if rule.color is not None and color_id not in rule.color:
                continue
            if rule.category is not None and (
                category is None or category not in {_norm(c) for c in rule.category}
            ):
                continue
            return Route(rule.bin, f"rule {i}")
        return Route(s.default_bin, "no rule matched: default bin")

    def route_decision(self, decision: Any, status: str | None = None) -> Route:
        """The bin for a recognition :class:`~edge.recognize.Decision` (``status`` overrides its own).

        With ``route_by: part`` this is :meth:`route` of the decided part and colour. With
        ``route_by: bin`` each bin collects the probability of the (part, colour) pairs of the
        fused top-k lists that the rules send there (parts and colours taken as independent); the
        most probable bin is used when it reaches ``bin_threshold``, else the unknown bin. The
        classifier's whole fused distribution is used when the decision carries it (every part
        and colour the model knows), else its top-k lists. The
        sorter needs the bin right, not the part: a part the classifier cannot tell from its
        neighbours still goes where all of them go. Vector answers (similarities, not
        probabilities) are routed by part.
        """
        s = self.settings
        status = decision.status if status is None else status
        if status == "error" or s.route_by == "part" or decision.source != "classifier":
            return self.route(decision.part_num, decision.color_id, status)
        dist = decision.distribution
        if dist is not None:  # the whole fused distribution: every part x every colour
            mass = self._bin_mass(dist)
        else:
            mass = {}
            for part, p_part in decision.part_topk:
                for colour, p_colour in decision.color_topk or [(decision.color_id, 1.0)]:
                    name = self.route(part, colour).bin
                    mass[name] = mass.get(name, 0.0) + float(p_part) * float(p_colour)
        if not mass:
            return self.route(None, None, status)
        best = max(mass, key=lambda b: mass[b])
        if mass[best] >= s.bin_threshold:
            return Route(best, f"bin probability {mass[best]:.2f} over the top parts and colours")
        why = f"{status}: no bin reaches {s.bin_threshold:g} (best {best!r}: {mass[best]:.2f})"
        return Route(self.unknown_bin, why)

    def _bin_mass(self, dist: Any) -> dict[str, float]:
        """Probability per bin of a :class:`~edge.recognize.Distribution` (parts and colours
        independent, each normalised); the (part, colour) -> bin table is built once per label set."""
        colours = tuple(dist.colors) if dist.color_probs is not None else (None,)
        key = (tuple(dist.parts), colours)
        table = self._tables.get(key)
        if table is None:
            table = np.array(
                [[self.bin_index(self.route(p, c).bin) for c in colours] for p in key[0]], np.int64
            )
            self._tables[key] = table
        parts = np.asarray(dist.part_probs, np.float64)
        cols = np.ones(1) if dist.color_probs is None else np.asarray(dist.color_probs, np.float64)
        joint = np.outer(parts / max(parts.sum(), 1e-12), cols / max(cols.sum(), 1e-12))
        mass = np.bincount(table.ravel(), weights=joint.ravel(), minlength=len(self.bin_names))
        return {self.bin_names[i]: float(m) for i, m in enumerate(mass) if m > 0}

    def place(self, part: PartRecord) -> Route:
        """Route a part's record and write it there: its bin and the bin's index, the reason (its
        own note first: why it was rejected) and the record's note; where the record carries the
        truth, the bin that truth belongs in."""
        if part.decision is not None:
            route = self.route_decision(part.decision, part.status)
        else:
            route = self.route(None, None, part.status)
        part.bin, part.bin_index = route.bin, self.bin_index(route.bin)
        part.reason = part.note or route.reason
        part.note = "; ".join(x for x in (f"bin {route.bin!r} ({route.reason})", part.note) if x)
        if part.truth and "part_num" in part.truth:
            truth = part.truth
            part.truth_bin = self.route(truth["part_num"], truth.get("color_id"), "sorted").bin
        return route

    def bin_index(self, name: str) -> int:
        """Position of bin ``name`` among the chute's bins (what the decision record stores)."""
        return self.bin_names.index(name)

    def warnings(self, model_parts: Iterable[str]) -> list[str]:
        """Rules that cannot match as written, for ``edge check`` (empty list: nothing to say)."""
        parts = list(model_parts)
        known = set(parts)
        out: list[str] = []
        with_category = [i for i, r in enumerate(self.settings.rules) if r.category]
        if with_category and not self.categories:
            out.append(
                f"sorting.rules {with_category!r} match by category, but neither the model set "
                "(manifest categories) nor sorting.categories_file gives part categories: they "
                "match nothing; run `trainer categories --model-set DIR --ldraw LDRAW` or add a "
                "categories_file (part_num,category)"
            )
        elif with_category:
            lacking = [p for p in parts if p not in self.categories]
            if lacking:
                shown = ", ".join(lacking[:5]) + (" ..." if len(lacking) > 5 else "")
                out.append(
                    f"{len(lacking)} model part(s) have no category ({shown}); category rules skip them"
                )
            names = {_norm(c) for c in self.categories.values()}
            for i in with_category:
                rule_cats = self.settings.rules[i].category or []
                unused = [c for c in rule_cats if _norm(c) not in names]
                if unused:
                    out.append(f"sorting.rules[{i}].category {unused!r}: no model part has that category")
        for i, rule in enumerate(self.settings.rules):
            strangers = [p for p in rule.part or [] if p not in known]
            if strangers:
                out.append(
                    f"sorting.rules[{i}].part {strangers!r}: not parts the model set recognises "
                    "(the rule can only match vector-search answers)"
                )
        return out
