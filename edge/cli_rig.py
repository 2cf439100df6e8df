"""The rig workflow's enrolment and wiring commands: ``edge enroll``, ``edge enrolled``,
``edge wiring``, ``edge reindex`` (``edge calibrate`` is in :mod:`edge.cli_calibrate`).

Registered on ``edge``'s parser by :func:`add_rig_commands`. Also the helpers the other command
modules share: the config a command names, its ``--config``/``--sim`` arguments, ``--json`` output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge.errors import ConfigError


def _config(args: argparse.Namespace) -> Any:
    from edge.cli import config_path
    from edge.settings import load_edge_config

    return load_edge_config(config_path(args))


# --- enrolment ---------------------------------------------------------------------------------


def _enroll_pipeline(cfg: Any, *, with_camera: bool) -> Any:
    """The configured segmenter, model and colour correction, without loading any index."""
    from edge.pipeline import Pipeline

    classifier = cfg.model_copy(
        update={"recognition": cfg.recognition.model_copy(update={"mode": "classifier"})}
    )
    return Pipeline.from_config(classifier, with_camera=with_camera)


def _rig_views(pipeline: Any, cfg: Any, count: int, sim: bool) -> tuple[list[Any], list[str]]:
    """``count`` views of the part on the turntable, turning 360/count degrees between them."""
    from edge.feeder import SimulatedRig
    from edge.rig import Rig

    rig = Rig.from_config(
        cfg.rig.model_copy(update={"pins": "mock"}) if sim else cfg.rig, calibration=cfg.calibration
    )
    camera = pipeline.camera
    try:
        with camera:
            sim_rig = camera if isinstance(camera, SimulatedRig) else None
            if sim_rig is not None:
                sim_rig.follow(rig.turntable)  # the sim camera sees the turntable's angle
            if sim and sim_rig is not None:
                sim_rig.next_part()  # the simulated feeder drops a part
            frames, _ = pipeline.capture_views(count, lambda i: rig.turntable.rotate_by(360.0 / count))
    finally:
        rig.close()
    return [f.image for f in frames], [f"rig view {i + 1}/{count}" for i in range(count)]


def _enroll(args: argparse.Namespace) -> int:
    """Embed views of one part and add them to the user index."""
    from edge.colors import color_by_name, get_color
    from edge.enroll import UserIndex, embed_views, engine_model_key
    from edge.imagefile import read_image

    if bool(args.images) == bool(args.views):
        raise ConfigError("give the part's IMAGE files, or --views N to capture them on the rig (not both)")
    cfg = _config(args)
    color_id = None
    if args.color is not None:
        text = args.color.strip()
        color_id = get_color(int(text)).id if text.lstrip("-").isdigit() else color_by_name(text).id
    pipeline = _enroll_pipeline(cfg, with_camera=bool(args.views))
    try:
        if args.views:
            images, names = _rig_views(pipeline, cfg, args.views, args.sim)
        else:
            images, names = [read_image(p) for p in args.images], [str(p) for p in args.images]
        vectors, crops = embed_views(pipeline, images, names)
    finally:
        pipeline.close()
    user = UserIndex.load(cfg.data.user_index)
    key = engine_model_key(cfg.engine)
    user.add(vectors, crops, part=args.part, color_id=color_id, sources=names, model=key)
    print(f"enrolled {len(vectors)} view(s) of {args.part} into {cfg.data.user_index} ({len(user)} in all)")
    print_stale_fit(cfg, user)
    if cfg.recognition.mode == "classifier":
        print(
            "note: recognition.mode is 'classifier'; set it to 'hybrid' (or 'vector') to use enrolled parts"
        )
    return 0


def _enrolled(args: argparse.Namespace) -> int:
    """List the user index, or remove a part from it."""
    from edge.enroll import UserIndex

    cfg = _config(args)
    user = UserIndex.load(cfg.data.user_index)
    if args.remove:
        removed = user.remove(args.remove)
        if not removed:
            raise ConfigError(
                f"part {args.remove!r} is not enrolled in {cfg.data.user_index}; see `edge enrolled`"
            )
        print(f"removed {removed} view(s) of {args.remove}; {len(user)} left")
        print_stale_fit(cfg, user)
        return 0
    if args.save and not args.fit_threshold:
        raise ConfigError("--save keeps a fitted threshold: use it with --fit-threshold")
    if args.fit_threshold:
        return _fit_threshold(user, cfg, save=args.save)
    rows = user.parts()
    if args.json:
        print(dump_json([{**r, "added": r["added"].isoformat()} for r in rows]))
        return 0
    if not rows:
        print(f"nothing enrolled in {cfg.data.user_index}")
        return 0
    print(f"{'part':<12} {'colour':<26} views  enrolled")
    for r in rows:
        from edge.cli import _color_name

        print(
            f"{r['part']:<12} {_color_name(r['color_id']):<26} {r['views']:>5}  {r['added']:%Y-%m-%d %H:%M}"
        )
    print(f"{len(user)} view(s) of {len(rows)} part/colour pair(s) in {cfg.data.user_index}")
    return 0


def print_stale_fit(cfg: Any, user: Any) -> None:
    """Say so when the calibration file's fitted ``rig_threshold`` was fitted to other enrolled views
    than ``user`` (a :class:`~edge.enroll.UserIndex`) holds now
    (:func:`edge.recognition_setup.stale_fit_note`)."""
    from edge.recognition_setup import stale_fit_note

    labels = [] if user.index is None else list(user.index.labels)
    note = stale_fit_note(cfg, len(labels), len(set(labels)))
    if note:
        print(f"note: {note}")


def _fit_threshold(user: Any, cfg: Any, *, save: bool = False) -> int:
    """Print the ``recognition.rig_threshold`` fitted to the enrolled views (:func:`fit_rig_threshold`);
    with ``save``, keep it in the calibration file's ``recognition`` section for the daemon."""
    from edge.enroll import fit_rig_threshold

    fit = fit_rig_threshold(user.index.vectors(), list(user.index.labels)) if user.index else None
    if fit is None:
        raise ConfigError(
            f"fitting rig_threshold needs views of at least two parts enrolled in {cfg.data.user_index}; "
            "enrol another part with `edge enroll` (a part the model knows counts too)"
        )
    share = round(100 * fit["quantile"])
    print(
        f"recognition.rig_threshold: {fit['threshold']}  ({share}% of {fit['views']} enrolled views of "
        f"{fit['parts']} parts have their nearest other part's view below it; now "
        f"{cfg.recognition.rig_threshold or cfg.recognition.vector_threshold})"
    )
    median = fit["same_part_median"]
    if median is not None and median <= fit["threshold"]:
        print(
            f"warning: a view's nearest view of its own part is at {median} (median), no higher than "
            "the threshold: on this rig the model does not tell the enrolled parts apart; enrol more "
            "views per part or keep the default"
        )
    if fit["threshold"] < (cfg.recognition.rig_threshold or cfg.recognition.vector_threshold):
        print(
            "note: the fit sees only the enrolled parts; at a lower threshold the photos of parts this rig "
            "meets but were never enrolled are taken for enrolled ones more often (docs/real_transfer.md, "
            "rule 4): enrol every part the rig sorts before saving it"
        )
    if save:
        _save_fit(fit, cfg)
    return 0


def _save_fit(fit: dict[str, Any], cfg: Any) -> None:
    """Write ``fit`` into the calibration file's ``recognition`` section, stamped with the model."""
    from edge.calibration_file import update_calibration
    from edge.enroll import engine_model_key

    if cfg.calibration is None:
        raise ConfigError(
            "--save writes the fitted threshold to the rig's calibration file, and the config names none: "
            "set `calibration: PATH` in the config (e.g. calibration.json beside it), or copy the value "
            "into recognition.rig_threshold by hand"
        )
    key = engine_model_key(cfg.engine)
    section = {"rig_threshold": fit["threshold"], "model": key, "views": fit["views"], "parts": fit["parts"]}
    update_calibration(cfg.calibration, recognition=section)
    print(f"saved to {cfg.calibration} (recognition section)")
    if cfg.recognition.rig_threshold is not None:
        print(
            f"note: the config sets recognition.rig_threshold: {cfg.recognition.rig_threshold}, which wins; "
            "remove it from the config to use the fitted value"
        )
    else:
        print("`edge run` uses it from its next start, while the config leaves rig_threshold unset")


def _reindex(args: argparse.Namespace) -> int:
    """Re-embed the kept crops of the user index with the configured model."""
    from edge.enroll import UserIndex, embed_crops, engine_model_key

    cfg = _config(args)
    user = UserIndex.load(cfg.data.user_index)
    if not len(user):
        print(f"nothing enrolled in {cfg.data.user_index}")
        return 0
    pipeline = _enroll_pipeline(cfg, with_camera=False)
    try:
        vectors = embed_crops(pipeline, user.load_crops())
    finally:
        pipeline.close()
    key = engine_model_key(cfg.engine)
    user.replace_vectors(vectors, key)
    print(f"re-embedded {len(vectors)} view(s) with {key}")
    return 0


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="config file (default: /etc/lego-edge/edge.yaml)")
    p.add_argument("--sim", action="store_true", help="simulated rig: config/sim.yaml unless --config")


def add_rig_commands(sub: Any) -> None:
    """Add ``enroll``, ``enrolled``, ``wiring`` and ``reindex`` to ``edge``'s parser."""
    p = sub.add_parser("enroll", help="add a part's views to the user index (images, or --views on the rig)")
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE")
    _config_args(p)
    p.add_argument("--part", required=True, help="part number, e.g. 3001")
    p.add_argument("--color", help="Rebrickable colour id or name (recorded with the views)")
    p.add_argument("--views", type=int, help="capture N views on the turntable instead of IMAGE files")
    p.set_defaults(func=_enroll)
    p = sub.add_parser("enrolled", help="list the user index (or --remove PART)")
    _config_args(p)
    p.add_argument("--remove", metavar="PART", help="remove every view of this part")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--fit-threshold",
        action="store_true",
        help="print the recognition.rig_threshold fitted to the enrolled views of two or more parts",
    )
    p.add_argument(
        "--save",
        action="store_true",
        help="with --fit-threshold: keep the value in the calibration file, where `edge run` takes it "
        "from while the config leaves recognition.rig_threshold unset",
    )
    p.set_defaults(func=_enrolled)
    p = sub.add_parser("wiring", help="what to wire to which pin of the Pi's header (from the config)")
    _config_args(p)
    p.add_argument("--json", action="store_true", help="the wires and power pins as JSON")
    p.set_defaults(func=_wiring)
    p = sub.add_parser("reindex", help="re-embed the enrolled crops with the configured model set")
    _config_args(p)
    p.set_defaults(func=_reindex)


def _wiring(args: argparse.Namespace) -> int:
    """Print what to wire to which header pin, from the config's rig section."""
    from edge.cli import config_path
    from edge.rig.wiring import wiring_json, wiring_lines

    path = config_path(args)
    cfg = _config(args)
    if args.json:
        print(dump_json(wiring_json(cfg.rig)))
    else:
        print("\n".join(wiring_lines(cfg.rig, str(path))))
    return 0


def dump_json(data: Any) -> str:
    """Indented JSON for ``--json`` output."""
    return json.dumps(data, indent=2)
