"""How common each part is, as evidence of which part it is.

The network is trained on every part equally often, so its probabilities answer "which part, if all
parts were equally likely". A rig sees parts at the rates they come in: a 1x2 plate is everywhere,
a 1x2 plate with a pin hole underneath (whose top looks the same) is rare. The part prior multiplies
the classifier's fused probabilities by each part's weight and renormalises (a Bayes update, after
the size prior of :mod:`edge.size`). Its source (``recognition.part_prior``):

* ``popularity``: the model set's ranking (the manifest's ``popularity``: part -> rank, 1 = most
  common; ``trainer popularity`` writes it from the training parts list, which is ordered most
  common first). Weight ``1 / rank``: Zipf's law with exponent 1, a fixed choice, not fitted.
* a parts file of the rig owner's (:func:`read_parts_file`): one part per line, most common first
  (weights ``1 / rank`` as above), or with a count after each part (``3023 12``: weights are the
  counts, e.g. a set's inventory); or a CSV whose header names a part column (``part``,
  ``part_num``) and a count column (``quantity``, ``qty``, ``count``), such as an inventory
  export, counts summed over the rows of a part (its colours).

``recognition.part_prior_strength`` raises every weight to a power (the given weights at 1; 0.5
halves the log-weights). The default is ``popularity`` at strength 0.25 (``1 / rank ** 0.25``: the
most common part weighs 3.8 times the 200th), chosen by a rule written before the real photos were
scored at it (docs/real_transfer.md, "How common a part is"); a model set without ranks then runs
without a prior, with a warning. Parts the source does not list get the weight of the least common
part it lists: a stray part can still be named, only less readily. The cost is on parts that are
rarer than their look-alikes: on a test where every part is equally common the prior loses answers
(docs/real_transfer.md has the figures); it pays where parts come at their real rates.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from edge.errors import ConfigError, DataFileError
from edge.manifest import Manifest

log = logging.getLogger(__name__)

#: ``recognition.part_prior_strength``'s default (docs/real_transfer.md, rule 3).
DEFAULT_STRENGTH = 0.25

#: Header names taken as the part and the count column of a CSV parts file (lower case).
PART_COLUMNS = ("part", "part_num", "part num", "partnum", "design id")
COUNT_COLUMNS = ("quantity", "qty", "count", "number")
_LINE = re.compile(r"^(?P<part>[^\s,;]+)(?:[\s,;]+(?P<count>[^\s,;]+))?\s*$")


def zipf_weights(ranks: Mapping[str, int]) -> dict[str, float]:
    """``1 / rank`` of each part (rank 1 = most common)."""
    bad = {p: r for p, r in ranks.items() if isinstance(r, bool) or not isinstance(r, int) or r < 1}
    if bad:
        raise ConfigError(f"part ranks {dict(list(bad.items())[:5])!r} must be integers >= 1")
    return {p: 1.0 / r for p, r in ranks.items()}


def read_parts_file(path: str | Path) -> dict[str, float]:
    """part -> weight from a parts file (see the module docstring for its forms)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataFileError(
            f"parts file {str(path)!r} not found; give a file of part ids (one per line, most common first, "
            "optionally with a count) or set recognition.part_prior to 'none' or 'popularity'"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"cannot read parts file {str(path)!r}: {exc}") from exc
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]  # '#' starts a comment
    lines = [ln for ln in lines if ln]
    if not lines:
        raise DataFileError(f"parts file {str(path)!r} lists no part; write one part id per line")
    header = [h.strip().lower() for h in next(csv.reader([lines[0]]))]
    part_col = next((header.index(h) for h in PART_COLUMNS if h in header), None)
    if part_col is not None:
        return _read_csv(path, lines, header, part_col)
    return _read_lines(path, lines)


def _read_csv(path: Path, lines: list[str], header: list[str], part_col: int) -> dict[str, float]:
    count_col = next((header.index(h) for h in COUNT_COLUMNS if h in header), None)
    if count_col is None:
        raise DataFileError(
            f"parts file {str(path)!r} has a part column but no count column; name one of "
            f"{', '.join(COUNT_COLUMNS)} in its header, or list the parts one per line, most common first"
        )
    counts: dict[str, float] = {}
    for number, row in enumerate(csv.reader(lines[1:]), start=2):
        if len(row) <= max(part_col, count_col):
            raise DataFileError(f"{path}:{number}: expected {len(header)} columns, got {len(row)}")
        part = row[part_col].strip()
        counts[part] = counts.get(part, 0.0) + _count(path, number, row[count_col])
    return _positive(path, counts)


def _read_lines(path: Path, lines: list[str]) -> dict[str, float]:
    rows = []
    for number, line in enumerate(lines, start=1):
        m = _LINE.match(line)
        if m is None:
            raise DataFileError(f"{path}:{number}: {line!r} is not 'PART' or 'PART COUNT'")
        rows.append((m["part"], m["count"], number))
    with_count = sum(c is not None for _, c, _ in rows)
    if 0 < with_count < len(rows):
        raise DataFileError(
            f"parts file {str(path)!r}: {with_count} of {len(rows)} lines have a count; give every part "
            "a count, or none (then the order is the ranking, most common first)"
        )
    if with_count:
        counts: dict[str, float] = {}
        for part, count, number in rows:
            assert count is not None
            counts[part] = counts.get(part, 0.0) + _count(path, number, count)
        return _positive(path, counts)
    ranks: dict[str, int] = {}
    for part, _, _ in rows:
        ranks.setdefault(part, len(ranks) + 1)  # a repeated part keeps its first (higher) rank
    return zipf_weights(ranks)


def _count(path: Path, number: int, value: str) -> float:
    try:
        count = float(value)
    except ValueError:
        raise DataFileError(f"{path}:{number}: count {value!r} is not a number") from None
    if not math.isfinite(count) or count < 0:
        raise DataFileError(f"{path}:{number}: count {value!r} must be a number >= 0")
    return count


def _positive(path: Path, counts: dict[str, float]) -> dict[str, float]:
    weights = {p: c for p, c in counts.items() if c > 0}
    if not weights:
        raise DataFileError(f"parts file {str(path)!r}: every count is 0; give the parts' counts")
    return weights


class PartPrior:
    """Each part's log-weight in the classifier's order.

    ``weights``: part -> positive weight (any scale); parts it lacks get its smallest weight among
    the model's parts. ``source``: what the weights came from, for messages (the strength added
    when it is not 1). ``strength``: the power the weights are raised to (1: as given; 0.5: their
    square roots, a gentler prior; 0: none).
    """

    def __init__(
        self, parts: Sequence[str], weights: Mapping[str, float], source: str, strength: float = 1.0
    ) -> None:
        if isinstance(strength, bool) or not isinstance(strength, int | float) or not 0 <= strength <= 3:
            raise ConfigError(f"part prior strength {strength!r} must be a number in [0, 3] (1: as given)")
        self.parts = list(parts)
        self.strength = float(strength)
        self.source = source if self.strength == 1 else f"{source}, strength {self.strength:g}"
        listed = [float(weights[p]) for p in self.parts if p in weights]
        self.covered = len(listed)
        if not self.covered:
            raise ConfigError(
                f"the part prior from {source} names none of the model's {len(self.parts)} parts; "
                "check the part ids (the manifest's parts) or set recognition.part_prior to 'none'"
            )
        if not all(math.isfinite(w) and w > 0 for w in listed):
            raise ConfigError(f"the part prior from {source} has weights that are not positive numbers")
        floor = min(listed)
        w = np.log(np.array([float(weights.get(p, floor)) for p in self.parts], np.float64))
        self.log_weights = self.strength * (w - w.max())

    def update(self, probs: np.ndarray) -> np.ndarray:
        """The fused part probabilities ``probs`` (K,) times the weights, renormalised."""
        return reweigh(probs, self.log_weights)


def reweigh(probs: np.ndarray, log_weights: np.ndarray) -> np.ndarray:
    """Probabilities ``probs`` (K,) times ``exp(log_weights)`` (K,), renormalised: a Bayes update
    by independent evidence (the part prior's weights, the size prior's likelihoods)."""
    log_post = np.log(np.clip(np.asarray(probs, np.float64), 1e-300, None)) + log_weights
    post = np.exp(log_post - log_post.max())
    return post / post.sum()


def load_part_prior(
    setting: str | Path, manifest: Manifest, strength: float = 1.0, *, required: bool = True
) -> PartPrior | None:
    """The prior ``recognition.part_prior`` names: None for ``"none"``, the manifest's ranks for
    ``"popularity"``, else the parts file at that path; ``strength`` as for :class:`PartPrior`.

    ``required=False`` (the setting is the default, not the config's own): a model set without
    ranks gets no prior and a warning, so that older model sets run as before."""
    if setting == "none":
        return None
    if setting == "popularity":
        if not manifest.popularity:
            if not required:
                log.warning(
                    "part prior off: the model set has no part ranks (run `trainer popularity --model-set "
                    "DIR --parts LIST`, or set recognition.part_prior to 'none' to silence this)"
                )
                return None
            raise ConfigError(
                "recognition.part_prior is 'popularity' but the model set has no part ranks; run "
                "`trainer popularity --model-set DIR --parts LIST` (LIST most common first), or set "
                "part_prior to 'none' or a parts file"
            )
        return PartPrior(manifest.parts, zipf_weights(manifest.popularity), "the model set's ranks", strength)
    return PartPrior(manifest.parts, read_parts_file(setting), f"parts file {str(setting)!r}", strength)
