"""``trainer ship``: the steps around the chain that make a shipped model set (tools/build_default_models.sh).

- ``trainer ship config`` writes a stage config from a base one (``config/stage1_synthetic.yaml``):
  ``--source`` replaces its data sources and ``--set KEY=VALUE`` changes a setting (dotted keys
  reach into sections: ``cache.mode=on``; values are read as YAML, where only true and false are
  booleans). The result is checked against :class:`trainer.train_config.TrainConfig` before it is
  written. Relative paths in a config are taken from its own folder, so write it beside its data.
- ``trainer ship model-set`` copies a model set into the folder that ships (``models/default``).
  Every listed file's SHA-256 is verified first. Files of at most ``--max-mb`` MB are shipped; the
  others leave ``files`` and are recorded under ``evaluation.not_shipped`` (path, key, bytes,
  sha256, why). So are the files whose int8 or fp16 conversion lost more than ``--max-drop``
  points of part or colour top-1 against fp32 on the held-out split (``trainer quantize``'s
  ``evaluation.quantization``): a rig owner who picks such a file would get a worse model than the
  report's headline. The index and its labels are copied, and its saved graph when it fits ``--max-mb``
  (else the entry drops it, recorded the same way: the daemon then rebuilds it); the training run's
  history and the build's step times (a ``NAME<TAB>SECONDS`` file, the last line of a name
  counting) are recorded as
  ``evaluation.training_history`` and ``evaluation.build_timings_s``; the evaluation report
  becomes ``REPORT.md`` with its plots and a Build section; ``--add`` copies more files (the
  training config). Segmenters shipped into the destination (``trainer segmenter --ship-to``) are
  trained apart from the classifier: they are checked against their entries and carried into the
  new set. The new set is built in ``DEST.tmp`` and verified there, then swapped in: a
  failure leaves ``DEST`` as it was.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from edge.config import validate_config
from edge.errors import ConfigError
from edge.fileio import write_atomic
from trainer.shipping import ship_model_set
from trainer.train_config import TrainConfig, load_train_config

log = logging.getLogger(__name__)

_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


# ---- trainer ship config -----------------------------------------------------------------------


def parse_setting(text: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` -> ``(KEY, value)``, the value read as YAML (``epochs=10`` is an int).

    Only ``true`` and ``false`` are booleans (YAML 1.1 would read ``cache.mode=on`` as True), and
    ``3e-3`` is a number.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r} is not KEY=VALUE; write e.g. --set epochs=10 or cache.mode=on")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML: {exc}") from None
    if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
        value = raw.strip()
    elif isinstance(value, str) and _FLOAT.fullmatch(value):
        value = float(value)  # YAML 1.1 reads 3e-3 (no dot) as a string
    return key, value


def write_stage_config(
    base: str | Path,
    out: str | Path,
    *,
    sources: Sequence[str] = (),
    kind: str = "auto",
    weight: float | Sequence[float] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Write ``base`` with ``sources`` (when given: they replace its sources, each named by its path)
    and ``settings`` (dotted key -> value) to ``out``; returns the config read back from ``out``
    (relative paths taken from its folder). ``weight``: the sampling weight of every source, or one
    weight per source in order.

    Raises:
        ConfigError: ``base`` is unreadable, a dotted key crosses a non-mapping, or the result is not
            a valid :class:`~trainer.train_config.TrainConfig` (the message names the setting). ``out`` is
            then left as it was.
    """
    base, out = Path(base), Path(out)
    try:
        data = yaml.safe_load(base.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"base config {str(base)!r} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"base config {str(base)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"base config {str(base)!r} must hold a mapping of settings")
    if sources:
        weights = _weights(weight, len(sources))
        data["sources"] = [
            {"path": path, "kind": kind, "name": path} | ({"weight": w} if w is not None else {})
            for path, w in zip(sources, weights, strict=True)
        ]
    for key, value in (settings or {}).items():
        *sections, name = key.split(".")
        node = data
        for i, section in enumerate(sections):
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {'.'.join(sections[: i + 1])!r} is not a section in {base}")
        node[name] = value
    validate_config(TrainConfig, data, f"{out} (from {base})")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, yaml.safe_dump(data, sort_keys=False))
    cfg = load_train_config(out)
    for src in cfg.sources:
        if not Path(src.path).exists():
            log.warning("source %r does not exist (relative paths are taken from %s)", src.path, out.parent)
    return cfg


def _weights(weight: float | Sequence[float] | None, count: int) -> list[float | None]:
    if weight is None or isinstance(weight, int | float):
        return [weight] * count
    if len(weight) == 1:
        return [weight[0]] * count
    if len(weight) != count:
        raise ConfigError(
            f"--weight gives {len(weight)} weights for {count} sources; give one for all or one per source"
        )
    return list(weight)


# ---- command line ------------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trainer ship config`` and ``trainer ship model-set``."""
    p = sub.add_parser(
        "ship",
        help="write a stage config for a build; copy a model set into the shipped folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    steps = p.add_subparsers(dest="ship_command", required=True, metavar="STEP")
    c = steps.add_parser("config", help="a stage config from a base one, with other sources and settings")
    c.add_argument("--base", required=True, type=Path, metavar="FILE", help="config to start from")
    c.add_argument("--out", required=True, type=Path, metavar="FILE", help="config file to write")
    c.add_argument(
        "--source",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATH",
        help="data sources (replace the base's)",
    )
    c.add_argument(
        "--kind",
        default="auto",
        choices=("auto", "b200c", "legacy", "real"),
        help="layout of the --source folders",
    )
    c.add_argument(
        "--weight",
        type=float,
        nargs="+",
        metavar="W",
        help="sampling weight of the --source folders: one for all, or one per source (default: by kind)",
    )
    c.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="settings, e.g. cache.mode=on",
    )
    c.set_defaults(func=main_config)

    m = steps.add_parser("model-set", help="copy a model set into the shipped folder (verified, atomic)")
    m.add_argument(
        "--from",
        dest="src",
        required=True,
        type=Path,
        metavar="SET",
        help="model set folder (trainer export)",
    )
    m.add_argument("--to", dest="dest", required=True, type=Path, help="folder to ship into (replaced)")
    m.add_argument("--max-mb", type=float, default=8.0, metavar="MB", help="largest file shipped, in MB (8)")
    m.add_argument(
        "--max-drop",
        type=float,
        default=3.0,
        metavar="POINTS",
        help="leave out converted files that lose more than this many points of part or colour top-1 "
        "against fp32 (trainer quantize's held-out figures; default 3)",
    )
    m.add_argument(
        "--run", type=Path, metavar="RUN", help="training run folder: its history.json goes into the manifest"
    )
    m.add_argument("--timings", type=Path, metavar="FILE", help="NAME<TAB>SECONDS file of the build's steps")
    m.add_argument(
        "--report", type=Path, metavar="DIR", help="trainer evaluate report folder: becomes REPORT.md"
    )
    m.add_argument(
        "--note",
        action="append",
        default=[],
        metavar="TEXT",
        help="a paragraph for REPORT.md's Build section",
    )
    m.add_argument("--credit", metavar="TEXT", help="last line of REPORT.md (data credit), in italics")
    m.add_argument(
        "--add",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="another file to ship (a config)",
    )
    m.set_defaults(func=main_model_set)


def main_config(args: argparse.Namespace) -> int:
    """Run ``trainer ship config``."""
    settings = dict(parse_setting(text) for text in args.set)
    cfg = write_stage_config(
        args.base, args.out, sources=args.source, kind=args.kind, weight=args.weight, settings=settings
    )
    log.info("wrote %s: %d source(s), %d epoch(s), out %s", args.out, len(cfg.sources), cfg.epochs, cfg.out)
    return 0


def main_model_set(args: argparse.Namespace) -> int:
    """Run ``trainer ship model-set``."""
    shipped = ship_model_set(
        args.src,
        args.dest,
        max_mb=args.max_mb,
        max_drop=args.max_drop,
        run=args.run,
        timings=args.timings,
        report=args.report,
        notes=args.note,
        credit=args.credit,
        add=args.add,
    )
    log.info(
        "model set %s: %d file(s) shipped, %d not",
        args.dest,
        len(shipped["shipped"]),
        len(shipped["not_shipped"]),
    )
    return 0
