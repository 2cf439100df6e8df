"""``edge review``, ``edge relabel`` and ``edge counts``: the doubtful parts of the decision record,
corrections, and how often the rig met each part.

Registered on ``edge``'s parser by :func:`add_review_commands`; the work is in :mod:`edge.review`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge.errors import ConfigError


def _config(args: argparse.Namespace) -> Any:
    from edge.cli_rig import _config as rig_config

    return rig_config(args)


def parse_color(text: str | None) -> int | None:
    """A Rebrickable colour id or name (``4``, ``Red``) -> its id; None passes through."""
    if text is None:
        return None
    from edge.colors import color_by_name, get_color

    text = text.strip()
    return get_color(int(text)).id if text.lstrip("-").isdigit() else color_by_name(text).id


def _review(args: argparse.Namespace) -> int:
    """List the unknown and doubtful parts; write review.png and review.html beside the record."""
    from edge.cli import _color_name
    from edge.review import (
        PAGE_NAME,
        SHEET_NAME,
        doubtful_parts,
        open_record,
        write_contact_sheet,
        write_page,
    )

    cfg = _config(args)
    db, crops = Path(cfg.data.db), Path(cfg.data.crops_dir)
    with open_record(db) as con:
        items = doubtful_parts(con, crops, limit=args.limit, pending_only=args.pending)
    out = Path(args.out) if args.out else db.parent
    sheet = write_contact_sheet(items, out / SHEET_NAME, _color_name)
    page = write_page(items, out / PAGE_NAME, _color_name, db)
    print(f"{'id':>6}  {'status':<14} {'guess':<12} {'colour':<24} {'conf':>4}  crops  corrected to")
    for item in items:
        conf = "-" if item.confidence is None else f"{item.confidence:.2f}"
        fix = ""
        if item.correction is not None:
            fix = f"{item.correction['part_num']} {_color_name(item.correction['color_id'])}"
        print(
            f"{item.part_id:>6}  {item.status:<14} {item.guess or '?':<12} {_color_name(item.color_id):<24} "
            f"{conf:>4}  {len(item.crops):>5}  {fix}"
        )
    pending = sum(i.correction is None for i in items)
    print(f"{len(items)} part(s) to review ({pending} not corrected); contact sheet {sheet}, page {page}")
    if pending:
        print("correct one with: edge relabel ID --part P --color C")
    return 0


def _relabel(args: argparse.Namespace) -> int:
    """Record a correction of one decision (a new row) and enrol its kept crops into the user index."""
    from edge.enroll import UserIndex, embed_crops, engine_model_key
    from edge.review import add_correction, crop_masks, open_record, read_crop, recorded_part

    cfg = _config(args)
    color_id = parse_color(args.color)
    part = args.part.strip()
    if not part:
        raise ConfigError("--part must name a part number, e.g. 3001")
    db, crops_folder = Path(cfg.data.db), Path(cfg.data.crops_dir)
    with open_record(db) as con:
        item = recorded_part(con, crops_folder, args.id)
    enrolled = 0
    if item.crops and not args.no_enroll:
        from edge.cli_rig import _enroll_pipeline

        crops = [read_crop(p) for p in item.crops]
        pipeline = _enroll_pipeline(cfg, with_camera=False)
        try:
            pairs = crop_masks(pipeline.segmenter, crops)
            vectors = embed_crops(pipeline, pairs)
        finally:
            pipeline.close()
        user = UserIndex.load(cfg.data.user_index)
        source = f"{db.resolve()}#part{item.part_id}/"
        replaced = user.remove_sources(source)  # an earlier correction of this decision
        key = engine_model_key(cfg.engine)
        names = [f"{source}{p.name}" for p in item.crops]
        user.add(vectors, pairs, part=part, color_id=color_id, sources=names, model=key)
        enrolled = len(vectors)
        if replaced:
            print(f"replaced {replaced} view(s) enrolled by an earlier correction of part {item.part_id}")
    with open_record(db) as con:
        cid = add_correction(
            con, item.part_id, part, color_id, enrolled_views=enrolled, note=args.note or None
        )
    from edge.cli import _color_name

    was = f"{item.guess or '?'} {_color_name(item.color_id)} ({item.status})"
    print(f"correction {cid}: part {item.part_id} is {part} {_color_name(color_id)} (the rig said {was})")
    if enrolled:
        from edge.cli_rig import print_stale_fit

        print(f"enrolled {enrolled} kept crop(s) of part {item.part_id} into {cfg.data.user_index}")
        print_stale_fit(cfg, user)
        if cfg.recognition.mode == "classifier":
            print("note: recognition.mode is 'classifier'; set 'hybrid' (or 'vector') to use enrolled parts")
    elif not args.no_enroll:
        print(
            f"part {item.part_id} has no kept crops: nothing enrolled (data.keep_crops decides what is kept)"
        )
    return 0


def _counts(args: argparse.Namespace) -> int:
    """Write how often the rig met each part (the decision record) as a part prior's parts file."""
    from edge.review import open_record, part_counts, write_part_counts

    cfg = _config(args)
    db = Path(cfg.data.db)
    with open_record(db) as con:
        counts, corrected = part_counts(con, corrected_only=args.corrected_only)
    what = "corrected parts" if args.corrected_only else "sorted and corrected parts"
    path = write_part_counts(counts, args.out, f"decision record {db} ({what})")
    total = sum(counts.values())
    print(f"{len(counts)} part(s) counted over {total} {what} ({corrected} corrected) into {path}")
    print(
        f"use it with recognition.part_prior: {path.resolve()} (its weights are raised to "
        f"part_prior_strength, {cfg.recognition.part_prior_strength:g} now; 1 weighs by the counts "
        "as they are)"
    )
    return 0


def add_review_commands(sub: Any) -> None:
    """Add ``review``, ``relabel`` and ``counts`` to ``edge``'s parser."""
    from edge.cli_rig import _config_args

    p = sub.add_parser("review", help="list the unknown and doubtful parts with their crops (PNG + HTML)")
    _config_args(p)
    p.add_argument("--limit", type=int, default=100, help="newest parts listed (default 100)")
    p.add_argument("--pending", action="store_true", help="only parts not yet corrected")
    p.add_argument("--out", type=Path, help="folder of review.png and review.html (default: the record's)")
    p.set_defaults(func=_review)
    p = sub.add_parser("relabel", help="correct a recorded part (a new row) and enrol its kept crops")
    p.add_argument("id", type=int, metavar="ID", help="the part's id in the record (see `edge review`)")
    _config_args(p)
    p.add_argument("--part", required=True, help="the right part number, e.g. 3001")
    p.add_argument("--color", help="the right Rebrickable colour id or name")
    p.add_argument("--note", help="a note kept with the correction")
    p.add_argument("--no-enroll", action="store_true", help="record the correction only")
    p.set_defaults(func=_relabel)
    p = sub.add_parser(
        "counts",
        help="write how often the rig met each part (the decision record) as a parts file for the "
        "part prior (recognition.part_prior)",
    )
    _config_args(p)
    p.add_argument("--out", required=True, type=Path, help="parts file to write ('PART COUNT' lines)")
    p.add_argument(
        "--corrected-only",
        action="store_true",
        help="count only parts corrected with `edge relabel` (the rig's own answers can reinforce "
        "themselves through the prior)",
    )
    p.set_defaults(func=_counts)
