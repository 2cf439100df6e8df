"""``trainer segmenter``: the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, DataFileError
from trainer.segmenter.config import ENCODERS, INT8_NAME, MODEL_NAME, REPORT_NAME, SegConfig
from trainer.segmenter.export import check_ship_name, ship_segmenter
from trainer.segmenter.train import train_segmenter


def add_parser(sub: Any) -> None:
    import trainer.segmenter as package  # its docstring is the command's description

    p = sub.add_parser(
        "segmenter",
        help="train the small segmentation model (edge's mobileseg option) on renders and their masks",
        description=package.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", nargs="+", required=True, help="render folders (images with *_mask.png beside)")
    p.add_argument("--out", required=True, help="output folder (re-running resumes)")
    p.add_argument("--backgrounds", help="photos of empty rigs for the background swap")
    p.add_argument("--test", nargs="*", default=[], help="further render folders to measure IoU on")
    p.add_argument(
        "--real",
        nargs="*",
        default=[],
        metavar="PHOTOS:EMPTY",
        help="real photos and frames of their empty stage: IoU against bgdiff masks (evaluation only)",
    )
    defaults = SegConfig()
    p.add_argument("--size", default=f"{defaults.width}x{defaults.height}", help="input WIDTHxHEIGHT")
    p.add_argument(
        "--encoder",
        choices=ENCODERS,
        default=defaults.encoder,
        help="'tiny': trained from scratch; 'lite0': EfficientNet-Lite0's ImageNet stages as the encoder",
    )
    p.add_argument("--width-mult", type=float, default=defaults.width_mult, help="decoder channel multiplier")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument(
        "--epoch-images", type=int, default=0, help="images drawn afresh each epoch (default: all)"
    )
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--swap", type=float, default=defaults.swap, help="background swap probability 0..1")
    p.add_argument("--val-share", type=float, default=defaults.val_share)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument(
        "--zoom",
        type=float,
        default=defaults.zoom,
        help="share of training images zoomed in on the part (parts larger in the frame), 0..1",
    )
    p.add_argument("--max-zoom", type=float, default=defaults.max_zoom, help="largest zoom, >= 1")
    p.add_argument("--workers", type=int, default=0, help="data loader processes")
    p.add_argument("--max-val", type=int, default=400, help="images IoU is measured on per folder")
    p.add_argument(
        "--int8", action="store_true", help="also write seg_int8.onnx (static int8) and measure it"
    )
    p.add_argument("--ship-to", metavar="MODEL_SET", help="copy the model into this model set and list it")
    p.add_argument(
        "--ship-precision", choices=("int8", "fp32"), default="int8", help="which file --ship-to copies"
    )
    p.add_argument(
        "--ship-name",
        metavar="NAME",
        help="ship as NAME.onnx and NAME.json (default seg / seg_int8): segmenters for other rigs beside it",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` -> (height, width), each 32..2048 and a multiple of 16."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r} is not WIDTHxHEIGHT, e.g. 320x240") from None
    if not (32 <= w <= 2048 and 32 <= h <= 2048) or w % 16 or h % 16:
        raise ConfigError(
            f"--size {text!r}: both sides must be multiples of 16 within 32..2048, e.g. 320x240"
        )
    return h, w


def _photos_and_empty(text: str) -> tuple[Path, Path]:
    photos, sep, empty = text.rpartition(":")
    if not sep or not photos or not empty:
        raise ConfigError(f"--real {text!r} is not PHOTOS:EMPTY, e.g. ../real/belt:../real/belt/_empty")
    for folder in (Path(photos), Path(empty)):
        if not folder.is_dir():
            raise DataFileError(f"--real {text!r}: folder {str(folder)!r} does not exist")
    return Path(photos), Path(empty)


def _run(args: argparse.Namespace) -> int:
    height, width = parse_size(args.size)
    if not 0.0 <= args.swap <= 1.0 or not 0.0 < args.val_share < 1.0:
        raise ConfigError("--swap must be within 0..1 and --val-share within (0, 1)")
    if not 0.0 <= args.zoom <= 1.0 or not 1.0 <= args.max_zoom <= 16.0:
        raise ConfigError("--zoom must be within 0..1 and --max-zoom within 1..16")
    if args.epochs < 1 or args.batch_size < 1 or args.epoch_images < 0:
        raise ConfigError("--epochs and --batch-size must be at least 1, --epoch-images at least 0")
    check_ship_name(args.ship_name)
    if args.ship_to and args.ship_precision == "int8" and not args.int8:
        raise ConfigError("--ship-to with --ship-precision int8 needs --int8 (or ship --ship-precision fp32)")
    cfg = SegConfig(
        height=height,
        width=width,
        encoder=args.encoder,
        width_mult=args.width_mult,
        epochs=args.epochs,
        batch_size=args.batch_size,
        epoch_images=args.epoch_images,
        lr=args.lr,
        swap=args.swap,
        val_share=args.val_share,
        seed=args.seed,
        zoom=args.zoom,
        max_zoom=args.max_zoom,
    )
    report = train_segmenter(
        args.data,
        args.out,
        cfg,
        backgrounds=args.backgrounds,
        test=args.test,
        real=[_photos_and_empty(text) for text in args.real],
        workers=args.workers,
        progress=not args.no_progress,
        max_val=args.max_val,
        int8=args.int8,
    )
    for key, label in (("iou", "fp32"), ("iou_int8", "int8")):
        for name, figures in report.get(key, {}).items():
            print(
                f"{label} {name}: mean IoU {figures['mean']:.3f}, median {figures['median']:.3f}, "
                f">= 0.9 in {figures['share_at_least_0.9']:.1%} of {figures['images']} images"
            )
    written = MODEL_NAME + (f" and {INT8_NAME}" if args.int8 else "")
    print(f"wrote {written} with sidecars in {args.out}; report {Path(args.out) / REPORT_NAME}")
    if args.ship_to:
        entry = ship_segmenter(
            Path(args.out), Path(args.ship_to), args.ship_precision, report, args.ship_name
        )
        print(f"shipped {entry.path} ({entry.precision}, {entry.bytes} bytes) into {args.ship_to}")
    return 0
