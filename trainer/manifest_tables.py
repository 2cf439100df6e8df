"""What ``trainer categories``, ``trainer footprints`` and ``trainer popularity`` share: a table per
part (from the LDraw library, or a parts list) written into a model set's manifest (only
``manifest.json`` is rewritten, atomically; no model file changes, so their checksums still hold)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from edge.errors import DataFileError
from edge.manifest import load_manifest, write_manifest

T = TypeVar("T")


def write_table(
    model_set: str | Path, field: str, compute: Callable[[Sequence[str]], tuple[T, Any]]
) -> tuple[T, Any]:
    """``compute(parts)`` -> (table, what it could not do); the table goes into the manifest's
    ``field``; returns both."""
    manifest = load_manifest(model_set)
    table, missing = compute(manifest.parts)
    write_manifest(model_set, manifest.model_copy(update={field: table}))
    load_manifest(model_set)  # the rewritten manifest still passes its own checks
    return table, missing


def write_part_table(
    model_set: str | Path,
    ldraw: str | Path,
    field: str,
    compute: Callable[[Path, Sequence[str]], tuple[T, Any]],
) -> tuple[T, Any]:
    """:func:`write_table` of ``compute(ldraw, parts)``, once ``ldraw`` is an LDraw library."""
    ldraw = Path(ldraw)
    if not (ldraw / "parts").is_dir():
        raise DataFileError(
            f"{str(ldraw)!r} is not an LDraw library (no parts/ folder); give the folder that holds parts/"
        )
    return write_table(model_set, field, lambda parts: compute(ldraw, parts))


def add_ldraw_parser(
    sub: argparse._SubParsersAction, name: str, help: str, doc: str | None, func: Callable[..., int]
) -> argparse.ArgumentParser:
    """Register ``trainer NAME --model-set DIR --ldraw DIR``; return its parser."""
    p = sub.add_parser(name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-set", required=True, type=Path, help="model set folder (its manifest.json)")
    p.add_argument("--ldraw", required=True, type=Path, help="LDraw library (the folder holding parts/)")
    p.set_defaults(func=func)
    return p
