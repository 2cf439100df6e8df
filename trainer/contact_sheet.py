"""Contact sheets: a grid of labelled tiles, for looking at a data set at a glance."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def contact_sheet(
    images: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    tile: int = 96,
    columns: int | None = None,
    footer: str = "",
) -> np.ndarray:
    """Tile RGB images into one RGB image, each with its label beneath it.

    Images of any size are letterboxed into ``tile`` x ``tile``; ``footer`` (e.g. a credit line)
    is written along the bottom.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if not images:
        raise ValueError("a contact sheet needs at least one image")
    columns = columns or max(1, int(np.ceil(np.sqrt(len(images) * 1.6))))
    rows = int(np.ceil(len(images) / columns))
    label_h = max(12, min(20, tile // 6))
    footer_h = 18 if footer else 0
    sheet = np.full((rows * (tile + label_h) + footer_h, columns * tile, 3), 255, np.uint8)
    font_scale = label_h / 32
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        r, c = divmod(i, columns)
        y0, x0 = r * (tile + label_h), c * tile
        sheet[y0 : y0 + tile, x0 : x0 + tile] = _fit(img, tile)
        cv2.putText(
            sheet,
            label[:14],
            (x0 + 3, y0 + tile + label_h - 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    if footer:
        cv2.putText(
            sheet,
            footer,
            (4, sheet.shape[0] - 5),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (60, 60, 60),
            1,
            cv2.LINE_AA,
        )
    return sheet


def _fit(img: np.ndarray, tile: int) -> np.ndarray:
    h, w = img.shape[:2]
    scale = tile / max(h, w)
    resized = cv2.resize(
        img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    out = np.full((tile, tile, 3), 255, np.uint8)
    y, x = (tile - resized.shape[0]) // 2, (tile - resized.shape[1]) // 2
    out[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
    return out


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB image as a compressed PNG (atomically)."""
    tmp = path.with_suffix(".tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {str(path)!r}")
    tmp.replace(path)
