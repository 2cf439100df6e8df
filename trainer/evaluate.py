"""``trainer evaluate``: every artifact of a model set, run through edge's engines on held-out data.

Figures (per artifact: ONNX fp32/fp16/int8, TFLite fp16/int8, whatever the manifest lists):

- part top-1 / top-5 of single views, and of ``--views`` views of one capture fused by
  :class:`edge.recognize.Recognizer` (as the rig decides);
- colour top-1 (single view and fused), on images whose colour the model knows;
- vector-search top-1: test views searched in an :class:`~edge.index.EmbeddingIndex` of the other
  splits' captures (gallery and queries never share a capture), single view and fused;
- the unseen-parts protocol: parts the classifier never learnt (training's hold-out, recorded in
  the model set, plus parts of the data absent from its label map) are enrolled into that index
  from their first ``--enroll`` capture(s), then queried with their other captures;
- the most confused part pairs (single view).

The test split is the one training made (same hold-out, fractions and seed, from the manifest's
``build.data``). ``--split all`` instead takes every image of the model's parts in ``--data``: an
independent test set (e.g. rendered separately, with another seed and stronger randomisation); its
vector-search gallery then comes from ``--gallery`` (e.g. the training data; every image of the model's
parts there). ``--gallery`` folders are added to the gallery of any split.

Masks: by default each image is cropped by its own mask (a render's exact one). ``--segmenter
FILE`` (an edge config, or a YAML file holding its ``segmenter`` section, e.g. ``config/sim.yaml``)
crops every image by what that segmenter finds instead, as the rig would: a model that reads the
part's outline (``background: fill``) can score far lower so. Such a run is a separate figure: its
report says which masks it used, and it is recorded in the manifest under
``evaluation.evaluate_segmented`` (the exact-mask figures stay under ``evaluation.evaluate``).

Writes ``report.md``, ``report.json`` and PNG plots into ``--out`` and the figures into the
manifest's ``evaluation.evaluate``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge.bench import machine_info
from edge.engines import create_engine
from edge.errors import ConfigError, DataFileError
from edge.manifest import Manifest, load_manifest
from edge.manifest_entries import FileEntry
from edge.prior import DEFAULT_STRENGTH, load_part_prior
from edge.segment import create_segmenter
from trainer.data import Sample, holdout_parts
from trainer.evaluate_figures import classifier_figures, group_captures, vector_figures
from trainer.model_set import (
    DataProtocol,
    build_record,
    load_samples,
    record_evaluation,
    run_engine,
    split_like_training,
)
from trainer.model_set import spread as spread_samples

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
CHOICES = (*SPLITS, "all")  # "all": --data is an independent test set


def load_segmenter_config(path: str | Path) -> dict[str, Any]:
    """The ``segmenter`` mapping of a YAML file (an edge config or a file holding just that section)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFileError(f"segmenter config {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"segmenter config {str(path)!r} cannot be read: {exc}") from None
    section = data.get("segmenter") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise ConfigError(f"{str(path)!r} has no 'segmenter' mapping; see config/real/*.yaml")
    # File paths in it are relative to the YAML file's folder, as in edge's configs.
    for key in ("model", "sidecar", "background"):
        value = section.get(key)
        if isinstance(value, str) and not Path(value).expanduser().is_absolute():
            section[key] = str(path.parent / value)
    return section


def _limit_captures(samples: list[Sample], max_images: int | None) -> list[Sample]:
    """Whole captures, spread over the parts, until about ``max_images`` images."""
    if max_images is None or len(samples) <= max_images:
        return samples
    groups = group_captures(samples)
    per = max(1, round(len(samples) / len(groups)))
    picks = np.linspace(0, len(groups) - 1, max(1, max_images // per)).round().astype(int)
    return [s for i in sorted(set(picks.tolist())) for s in groups[i]]


def select_artifacts(manifest: Manifest, which: str) -> list[FileEntry]:
    """The file entries named by ``which`` ('all' or comma-separated ``runtime/precision`` keys)."""
    if which == "all":
        return list(manifest.files)
    keys = [k.strip() for k in which.split(",") if k.strip()]
    known = {f.key: f for f in manifest.files}
    unknown = [k for k in keys if k not in known]
    if unknown or not keys:
        raise ConfigError(
            f"artifacts {unknown or keys!r} are not in the model set; it has {', '.join(known)}"
        )
    return [known[k] for k in keys]


def unseen_protocol(
    samples: Sequence[Sample],
    manifest: Manifest,
    count: int | None,
    enroll: int,
    seed: int,
) -> dict[str, Any]:
    """The unseen parts, their enrolled samples and their query samples.

    Candidates are the parts of the data the label map lacks (training's held-out parts among them). ``count``
    limits them (None: all, 0: none). Without candidates, ``count`` known parts are taken instead,
    flagged ``seen_in_training`` (their figure is then optimistic). Parts with fewer than
    ``enroll + 1`` captures are skipped.
    """
    # Training's held-out parts never reach the label map, so they are among the unknown parts.
    known = set(manifest.parts)
    pool = [s for s in samples if s.part_num not in known]
    seen_in_training = False
    if count == 0:
        return {"parts": [], "enrolled": [], "queries": [], "seen_in_training": False, "skipped": []}
    if not pool and count:
        seen_in_training = True
        pool = list(samples)
    parts = sorted({s.part_num for s in pool})
    if count is not None and count < len(parts):
        _, chosen = holdout_parts(pool, count, seed)
        pool = chosen
    enrolled: list[Sample] = []
    queries: list[Sample] = []
    used, skipped = [], []
    by_part: dict[str, list[list[Sample]]] = defaultdict(list)
    for group in group_captures(pool):
        by_part[group[0].part_num].append(group)
    for part, groups in sorted(by_part.items()):
        if len(groups) <= enroll:
            skipped.append(part)
            continue
        used.append(part)
        enrolled += [s for g in groups[:enroll] for s in g]
        queries += [s for g in groups[enroll:] for s in g]
    return {
        "parts": used,
        "enrolled": enrolled,
        "queries": queries,
        "seen_in_training": seen_in_training,
        "skipped": skipped,
    }


# ---- the command ---------------------------------------------------------------------------------


def evaluate_model_set(
    model_set: str | Path,
    data: Sequence[str | Path],
    out: str | Path,
    *,
    split: str = "test",
    views: int = 4,
    artifacts: str = "all",
    unseen: int | None = None,
    enroll: int = 1,
    max_images: int | None = 2000,
    max_gallery: int | None = 3000,
    gallery_data: Sequence[str | Path] = (),
    threads: int = 2,
    command: str | None = None,
    segmenter: str | Path | None = None,
    part_prior: str | Path = "none",
    part_prior_strength: float = DEFAULT_STRENGTH,
) -> dict[str, Any]:
    """Evaluate the model set's artifacts; returns the figures (also in ``out/report.json``).

    ``segmenter``: a YAML file with a ``segmenter`` section whose masks replace the images' own;
    ``part_prior`` (and its strength): as ``recognition.part_prior``, part figures also with it
    (``prior_*``)."""
    from trainer.report import write_report

    if split not in CHOICES or views < 1 or enroll < 1 or (unseen is not None and unseen < 0):
        raise ConfigError(
            f"split {split!r} must be one of {CHOICES}, views {views!r} and enroll {enroll!r} >= 1, "
            f"unseen {unseen!r} >= 0"
        )
    folder = Path(model_set)
    manifest = load_manifest(folder)
    prior = load_part_prior(part_prior, manifest, part_prior_strength)
    protocol = DataProtocol.from_manifest(manifest)
    samples = load_samples(data, protocol)
    known = set(manifest.parts)
    if split == "all":  # an independent test set: nothing of it is gallery
        splits: dict[str, list[Sample]] = {"all": list(samples)}
    else:
        splits, _ = split_like_training(samples, protocol)
    test = _limit_captures([s for s in splits[split] if s.part_num in known], max_images)
    if not test:
        raise DataFileError(
            f"the {split!r} split of the data holds no images of the model's parts; pass --data with "
            "captures of these parts (several captures per part), or choose another --split"
        )
    others = [s for name in SPLITS if name != split for s in splits.get(name, []) if s.part_num in known]
    if gallery_data:
        others += [s for s in load_samples(gallery_data, protocol) if s.part_num in known]
    u = unseen_protocol(samples, manifest, unseen, enroll, protocol.seed)
    unseen_parts = set(u["parts"])
    gallery = spread_samples(
        [s for s in others if s.part_num not in unseen_parts], max_gallery or len(others)
    )
    captures = group_captures(test, views)
    needed = list(dict.fromkeys([*test, *gallery, *u["enrolled"], *u["queries"]]))
    where = {s: i for i, s in enumerate(needed)}

    results: dict[str, Any] = {}
    seg_cfg = load_segmenter_config(segmenter) if segmenter is not None else None
    with contextlib.ExitStack() as stack:
        mask_fn = None
        if seg_cfg is not None:
            seg = stack.enter_context(create_segmenter(seg_cfg))
            mask_fn = lambda image, _own: seg.mask(image) > 0  # noqa: E731
        for entry in select_artifacts(manifest, artifacts):
            log.info("evaluating %s (%s) on %d images", entry.key, entry.path, len(needed))
            with create_engine(
                entry.runtime, folder, manifest, precision=entry.precision, threads=threads
            ) as eng:
                outputs = run_engine(eng, needed, mask_fn=mask_fn)
            figures = classifier_figures(outputs, test, captures, where, manifest, prior)
            figures |= vector_figures(outputs, gallery, test, where, manifest, views, "vector_")
            figures |= vector_figures(
                outputs, gallery + u["enrolled"], u["queries"], where, manifest, views, "unseen_"
            )
            figures.update(file=entry.path, bytes=entry.bytes)
            results[entry.key] = figures

    report = {
        "model_set": str(folder.resolve()),
        "architecture": manifest.architecture,
        "masks": "own" if seg_cfg is None else {"segmenter": seg_cfg, "file": str(segmenter)},
        "split": split,
        "views": views,
        "test_images": len(test),
        "test_captures": len(captures),
        "test_parts": len({s.part_num for s in test}),
        "gallery_images": len(gallery),
        "gallery_data": [str(Path(p).resolve()) for p in gallery_data],
        "unseen": {
            "parts": u["parts"],
            "enrolled_captures_per_part": enroll,
            "enrolled_images": len(u["enrolled"]),
            "query_images": len(u["queries"]),
            "seen_in_training": u["seen_in_training"],
            "skipped_parts": u["skipped"],
        },
        "artifacts": results,
        "build": build_record(command),
        "machine": machine_info(),
    }
    paths = write_report(Path(out), report, manifest)
    report["files"] = {name: str(p) for name, p in paths.items()}
    summary = {k: v for k, v in report.items() if k != "files"}
    summary["artifacts"] = {  # the manifest keeps the figures, the report keeps the matrices
        key: {k: v for k, v in f.items() if k != "confusion"} for key, f in results.items()
    }
    record_evaluation(folder, "evaluate" if seg_cfg is None else "evaluate_segmented", summary)
    return report


def add_part_prior_arguments(p: argparse.ArgumentParser, scored: str) -> None:
    """``--part-prior`` and ``--part-prior-strength``, as ``recognition.part_prior`` and its strength;
    ``scored``: what the evaluation does with the prior, for the help."""
    p.add_argument(
        "--part-prior",
        default="none",
        help=f"as recognition.part_prior: none, popularity (the manifest's ranks) or a parts file; {scored}",
    )
    p.add_argument(
        "--part-prior-strength",
        type=float,
        default=DEFAULT_STRENGTH,
        help="as recognition.part_prior_strength: the power of the prior's weights "
        f"(default {DEFAULT_STRENGTH:g}, as the daemon's)",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trainer evaluate``."""
    p = sub.add_parser(
        "evaluate",
        help="evaluate every artifact of a model set through edge's engines; markdown report + plots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model-set", required=True, type=Path, help="model set folder")
    p.add_argument("--data", required=True, nargs="+", type=Path, help="data folders (as trained on)")
    p.add_argument(
        "--split", default="test", choices=CHOICES, help="split evaluated (default test; all: every image)"
    )
    p.add_argument("--views", type=int, default=4, help="views of one capture fused (default 4)")
    p.add_argument("--artifacts", default="all", help="'all' or runtime/precision keys, comma separated")
    p.add_argument("--unseen", type=int, help="unseen parts to test (default: every candidate; 0: none)")
    p.add_argument("--enroll", type=int, default=1, help="captures enrolled per unseen part (default 1)")
    p.add_argument("--max-images", type=int, default=2000, help="test images, whole captures (2000)")
    p.add_argument("--max-gallery", type=int, default=3000, help="gallery images for vector search (3000)")
    p.add_argument(
        "--gallery", nargs="+", type=Path, default=[], help="extra gallery data folders for vector search"
    )
    p.add_argument(
        "--segmenter",
        type=Path,
        metavar="FILE",
        help="crop by this config's segmenter (e.g. config/sim.yaml) instead of the images' own masks",
    )
    add_part_prior_arguments(p, "part figures also with it")
    p.add_argument("--out", required=True, type=Path, help="report folder")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run ``trainer evaluate``."""
    report = evaluate_model_set(
        args.model_set,
        args.data,
        args.out,
        split=args.split,
        views=args.views,
        artifacts=args.artifacts,
        unseen=args.unseen,
        enroll=args.enroll,
        max_images=args.max_images,
        max_gallery=args.max_gallery,
        gallery_data=args.gallery,
        segmenter=args.segmenter,
        part_prior=args.part_prior,
        part_prior_strength=args.part_prior_strength,
    )
    for key, f in report["artifacts"].items():
        print(
            f"{key:<18} part top-1 {f['part_top1']:.3f} fused {f.get('fused_part_top1', float('nan')):.3f} "
            f"colour {f.get('color_top1', float('nan')):.3f} vector {f.get('vector_top1', float('nan')):.3f} "
            f"unseen {f.get('unseen_top1', float('nan')):.3f}"
        )
    print(f"report: {report['files']['report.md']}")
    return 0
