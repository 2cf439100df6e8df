"""``trainer pack-frames``: a small replay set for the simulated rig, from a ``real``-layout render.

The sim camera replays frames in the rig's capture layout (``edge/data/sim`` ships one). Full
640x480 frames with sensor noise cost about 130 kB each, so a set of 50 parts x 4 views would
not fit the package. A packed set keeps, per view, only the window around the part (grown by a
margin, so the crop the daemon takes lies inside it) and one ``empty.png`` of the turntable: the
mean background of the chosen frames outside their masks. The sim camera pastes each window into
``empty.png`` at the corner the manifest gives (``window_x``, ``window_y``), so the daemon sees
full frames whose part and surroundings are the rendered pixels.

Captures are chosen one per part (distinct parts first, in a seeded random order), so a run over
the set sorts as many different parts as it has captures.
"""

from __future__ import annotations

import argparse
import csv
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np

from edge.camera.folder import MANIFEST_COLUMNS, MANIFEST_NAME, WINDOW_COLUMNS, read_manifest
from edge.camera.sim import EMPTY_NAME, group_captures, mean_background
from edge.errors import DataFileError, ImageError
from edge.imagefile import read_image

log = logging.getLogger(__name__)


def window_box(mask: np.ndarray, margin: float, min_pad: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) around the mask's box, each side grown by ``margin`` x its longer side
    (at least ``min_pad`` pixels) and clipped to the frame."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ImageError("the mask is empty: no part to pack")
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    pad = max(min_pad, int(np.ceil(margin * max(x1 - x0, y1 - y0))))
    h, w = mask.shape
    return max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)


def pack_frames(
    src: Path,
    dest: Path,
    *,
    captures: int = 50,
    seed: int = 0,
    quality: int = 90,
    margin: float = 0.5,
    min_pad: int = 24,
) -> dict[str, int]:
    """Write a packed replay set of ``captures`` captures of ``src`` into ``dest`` (replaced).

    Returns figures for the log: captures, views, bytes written.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"quality={quality!r} must be 1..100 (JPEG quality)")
    truth = read_manifest(src)
    groups = group_captures(src, truth)
    if not groups:
        raise DataFileError(f"{str(src / MANIFEST_NAME)!r} lists no captures (part_num and angle needed)")
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(len(groups))]
    seen: set[str] = set()
    first, rest = [], []
    for i in order:  # one capture per part first, then repeats if more are asked for
        part = groups[i].truth["part_num"]
        (rest if part in seen else first).append(i)
        seen.add(part)
    chosen = (first + rest)[:captures]
    if len(chosen) < captures:
        log.warning("%s holds only %d captures; packing all of them", src, len(chosen))
    rel_of = {src / rel: rel for rel in truth}

    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rows, paths, size = [], [], 0
    for i in chosen:
        for _, path in groups[i].views:
            rel = rel_of[path]
            image = read_image(path)
            mask_path = path.with_name(f"{path.stem}_mask.png")
            mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
            if mask is None or mask.shape != image.shape[:2]:
                raise ImageError(f"mask {str(mask_path)!r} is missing, unreadable or not its image's size")
            x0, y0, x1, y1 = window_box(mask > 127, margin, min_pad)
            out = (tmp / rel).with_suffix(".jpg")
            out.parent.mkdir(parents=True, exist_ok=True)
            ok, data = cv2.imencode(
                ".jpg",
                cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, quality],
            )
            if not ok:
                raise ImageError(f"cannot encode the window of {str(path)!r}")
            out.write_bytes(data.tobytes())
            size += len(data)
            row = {k: v for k, v in truth[rel].items() if k in MANIFEST_COLUMNS}
            row.update(
                image_path=out.relative_to(tmp).as_posix(),
                timestamp=truth[rel].get("recorded_at", ""),
                window_x=x0,
                window_y=y0,
            )
            rows.append(row)
            paths.append(path)
    empty = mean_background(paths)
    ok, png = cv2.imencode(".png", cv2.cvtColor(empty, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise ImageError("cannot encode empty.png")
    (tmp / EMPTY_NAME).write_bytes(png.tobytes())
    size += len(png)
    columns = [*MANIFEST_COLUMNS, *WINDOW_COLUMNS]
    with (tmp / MANIFEST_NAME).open("w", newline="", encoding="utf-8") as fh:  # tmp is renamed whole
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    size += (tmp / MANIFEST_NAME).stat().st_size
    if dest.exists():
        shutil.rmtree(dest)
    tmp.replace(dest)
    return {
        "captures": len(chosen),
        "views": len(rows),
        "parts": len({groups[i].truth["part_num"] for i in chosen}),
        "bytes": size,
    }


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trainer pack-frames``."""
    p = sub.add_parser(
        "pack-frames",
        help="pack a real-layout render into a small replay set for the simulated rig",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--from", dest="src", required=True, type=Path, help="a `trainer render --layout real` folder"
    )
    p.add_argument("--out", required=True, type=Path, help="replay folder to write (replaced)")
    p.add_argument("--captures", type=int, default=50, help="captures to keep, one per part first (50)")
    p.add_argument("--seed", type=int, default=0, help="seed of the choice (0)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality of the windows (90)")
    p.add_argument(
        "--margin", type=float, default=0.5, help="window margin, fraction of the part's size (0.5)"
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run ``trainer pack-frames``."""
    if args.captures < 1:
        raise SystemExit("--captures must be at least 1")
    figures = pack_frames(
        args.src, args.out, captures=args.captures, seed=args.seed, quality=args.quality, margin=args.margin
    )
    log.info(
        "packed %(captures)d captures (%(parts)d parts, %(views)d views), %(bytes)d bytes",
        figures,
    )
    log.info("into %s", args.out)
    return 0
