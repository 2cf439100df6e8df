"""A blind audit of a segmenter's masks on real photos, judged by eye.

    python tools/mask_audit.py draw --predictions OUT/predictions.csv --set belt --artifact onnxruntime/int8 \
        --photos ../shared/real/belt --segmenter config/real/belt.yaml --empty ../shared/real/belt/_empty \
        --model-set models/default --parts 3023,15712 --wrong 36 --right 18 --out AUDIT
    python tools/mask_audit.py score --out AUDIT --judged JUDGED.json

``draw`` takes a seeded sample of the photos ``trainer evaluate-real`` named wrongly and rightly
(its ``predictions.csv``: one artifact, the network alone), shuffles them, and draws each frame with
the mask the segmenter finds (green outline) and the square the Pi crops (red) into numbered sheets
of twelve; which tile was named right is written to ``key.json`` and not shown, so the masks are
judged before anyone knows which answers they led to. Judge each tile into ``JUDGED.json``
(``{"0": "G", ...}``; G: the mask is on the part, wholly in view; P: on the part with some ground
or shadow; E: on the part, the part cut by the frame's edge; W: the mask misses the part or lies
mostly on something else), then ``score`` tallies the judgements against the key: per category,
for the wrongly and the rightly named photos and per part.

The sheets hold the photos themselves: write them outside the repository where the photos may not
be kept (``../shared/real``'s rule). Only the tallies belong in the project's notes.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

CATEGORIES = {
    "G": "mask on the part, wholly in view",
    "P": "on the part, with some ground or shadow",
    "E": "on the part, cut by the frame's edge",
    "W": "misses the part",
}
TILE = (320, 240)
PER_SHEET, PER_ROW = 12, 3


class AuditError(ValueError):
    """Bad input to the audit; the message names the file or flag and the fix."""


def sample_rows(
    predictions: Path,
    set_name: str,
    artifact: str,
    wrong: int,
    right: int,
    seed: int,
    parts: set[str] | None = None,
) -> list[dict[str, str]]:
    """A seeded sample of ``wrong`` wrongly and ``right`` rightly named photos of one set and
    artifact (of ``parts`` only, where given: the parts the model knows), shuffled, each row with
    its ``kind``."""
    if not predictions.is_file():
        raise AuditError(
            f"{predictions}: no such file (the predictions.csv of `trainer evaluate-real --out`)"
        )
    with predictions.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("set") == set_name and r.get("artifact") == artifact]
    rows = [r for r in rows if parts is None or r["part"] in parts]
    if not rows:
        raise AuditError(f"{predictions} holds no photo of set {set_name!r} and artifact {artifact!r}")
    rng = random.Random(seed)
    groups = {"wrong": [r for r in rows if r["hit1"] == "0"], "right": [r for r in rows if r["hit1"] == "1"]}
    sample = []
    for kind, want in (("wrong", wrong), ("right", right)):
        if want > len(groups[kind]):
            raise AuditError(
                f"--{kind} {want}: only {len(groups[kind])} {kind}ly named photos in {predictions}"
            )
        sample += [{**r, "kind": kind} for r in rng.sample(groups[kind], want)]
    rng.shuffle(sample)
    return sample


def draw_tile(image_rgb: Any, mask: Any, box: tuple[int, int, int, int], number: int) -> Any:
    """The frame (BGR) with the mask's outline in green, the crop square in red and its number."""
    import cv2
    import numpy as np

    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(bgr, contours, -1, (0, 255, 0), 2)
    x0, y0, x1, y1 = (int(v) for v in box)
    cv2.rectangle(bgr, (x0, y0), (x1, y1), (0, 0, 255), 2)
    tile = cv2.resize(bgr, TILE, interpolation=cv2.INTER_AREA)
    cv2.putText(tile, str(number), (5, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 0, 255), 2)
    return tile


def write_sheets(tiles: list[Any], out: Path) -> list[Path]:
    """Tiles in numbered sheets of :data:`PER_SHEET`, blank where a sheet is not full."""
    import cv2
    import numpy as np

    paths = []
    for start in range(0, len(tiles), PER_SHEET):
        chunk = tiles[start : start + PER_SHEET]
        chunk += [np.full_like(tiles[0], 255)] * (PER_SHEET - len(chunk))
        sheet = np.vstack([np.hstack(chunk[i : i + PER_ROW]) for i in range(0, PER_SHEET, PER_ROW)])
        path = out / f"sheet{start // PER_SHEET}.png"
        cv2.imwrite(str(path), sheet)
        paths.append(path)
    return paths


def draw(args: argparse.Namespace) -> int:
    """``draw``: the sample's sheets and its key."""
    from edge.imagefile import read_image
    from edge.manifest import load_manifest
    from edge.preprocess import crop_for
    from edge.segment import create_segmenter
    from trainer.evaluate import load_segmenter_config
    from trainer.photo_set import fit_background

    parts = set(args.parts.split(",")) if args.parts else None
    sample = sample_rows(args.predictions, args.set, args.artifact, args.wrong, args.right, args.seed, parts)
    args.out.mkdir(parents=True, exist_ok=True)
    spec = load_manifest(args.model_set).input
    calibration = fit_background(args.empty, args.out)[0] if args.empty else None
    tiles, key = [], []
    with create_segmenter(load_segmenter_config(args.segmenter), calibration=calibration) as segmenter:
        for number, row in enumerate(sample):
            image = read_image(args.photos / row["photo"])
            mask = segmenter.mask(image)
            tiles.append(draw_tile(image, mask, crop_for(image, mask, spec).box, number))
            key.append({"tile": number, "photo": row["photo"], "part": row["part"], "kind": row["kind"]})
    sheets = write_sheets(tiles, args.out)
    (args.out / "key.json").write_text(json.dumps(key, indent=1) + "\n")
    print(f"{len(tiles)} tiles in {len(sheets)} sheets in {args.out}; judge them before opening key.json")
    return 0


def tally(key: list[dict[str, Any]], judged: dict[str, str]) -> dict[str, Any]:
    """Judgements counted per category for the wrongly and rightly named photos, and per part."""
    missing = [str(k["tile"]) for k in key if str(k["tile"]) not in judged]
    if missing:
        raise AuditError(
            f"tiles {', '.join(missing)} are not judged (give each tile one of {''.join(CATEGORIES)})"
        )
    bad = {t: c for t, c in judged.items() if c not in CATEGORIES}
    if bad:
        raise AuditError(
            f"unknown judgements {bad} (use {', '.join(f'{c}: {w}' for c, w in CATEGORIES.items())})"
        )
    by_kind: dict[str, Counter[str]] = {"wrong": Counter(), "right": Counter()}
    by_part: dict[str, dict[str, Counter[str]]] = {}
    for k in key:
        category = judged[str(k["tile"])]
        by_kind[k["kind"]][category] += 1
        by_part.setdefault(k["part"], {"wrong": Counter(), "right": Counter()})[k["kind"]][category] += 1
    return {
        "categories": CATEGORIES,
        "by_kind": {kind: {c: counts[c] for c in CATEGORIES} for kind, counts in by_kind.items()},
        "by_part": {
            part: {kind: {c: counts[c] for c in CATEGORIES} for kind, counts in kinds.items()}
            for part, kinds in sorted(by_part.items())
        },
    }


def score(args: argparse.Namespace) -> int:
    """``score``: the tallies, printed and written to ``tally.json``."""
    try:
        key = json.loads((args.out / "key.json").read_text())
        judged = json.loads(args.judged.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AuditError(f"cannot read the key or the judgements: {exc}") from None
    result = tally(key, judged)
    (args.out / "tally.json").write_text(json.dumps(result, indent=1) + "\n")
    for kind, counts in result["by_kind"].items():
        n = sum(counts.values())
        print(f"{kind:<6} {n:>3} photos: " + ", ".join(f"{c} {counts[c]}" for c in CATEGORIES))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("draw", help="draw a blind sample's sheets")
    d.add_argument("--predictions", required=True, type=Path, help="trainer evaluate-real's predictions.csv")
    d.add_argument("--set", required=True, help="the photo set's name in it (e.g. belt)")
    d.add_argument("--artifact", default="onnxruntime/int8", help="whose answers sort the photos")
    d.add_argument("--parts", help="only these parts, comma separated (the ones the model knows)")
    d.add_argument("--photos", required=True, type=Path, help="the set's photo folder")
    d.add_argument("--segmenter", required=True, type=Path, help="the config whose segmenter drew the masks")
    d.add_argument("--empty", type=Path, help="frames of the empty stage, as for evaluate-real")
    d.add_argument("--model-set", required=True, type=Path, help="model set (its input spec crops)")
    d.add_argument("--wrong", type=int, default=36, help="wrongly named photos in the sample")
    d.add_argument("--right", type=int, default=18, help="rightly named photos in the sample")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", required=True, type=Path, help="folder for the sheets and the key")
    d.set_defaults(func=draw)
    s = sub.add_parser("score", help="tally the judgements against the key")
    s.add_argument("--out", required=True, type=Path, help="the folder draw wrote")
    s.add_argument("--judged", required=True, type=Path, help='JSON {"tile": "G|P|E|W", ...}')
    s.set_defaults(func=score)
    args = p.parse_args(argv)
    try:
        return int(args.func(args))
    except AuditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
