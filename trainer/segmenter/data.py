"""Image/mask pairs: finding, splitting, reading, normalising and augmenting them."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ConfigError, DataFileError
from trainer.backgrounds import BackgroundSwap
from trainer.segmenter.config import IMAGE_SUFFIXES, NORMALISATION, SegConfig


def find_pairs(folders: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(image, mask) pairs under ``folders``: every ``*_mask.png`` with its image beside it."""
    pairs: list[tuple[Path, Path]] = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise DataFileError(f"segmenter data folder {str(root)!r} does not exist; pass a render folder")
        found = 0
        for mask in sorted(root.rglob("*_mask.png")):
            stem = mask.name[: -len("_mask.png")]
            image = next(
                (mask.with_name(stem + s) for s in IMAGE_SUFFIXES if mask.with_name(stem + s).is_file()), None
            )
            if image is not None:
                pairs.append((image, mask))
                found += 1
        if not found:
            raise DataFileError(
                f"no image with a '*_mask.png' beside it under {str(root)!r}; the segmenter learns from "
                "renders with their exact masks (`trainer render` writes them)"
            )
    return pairs


def split_pairs(pairs: Sequence[tuple[Path, Path]], val_share: float) -> tuple[list, list]:
    """(train, validation) by a hash of each image's last three path parts (part/colour/file in a
    render): the same split wherever the folder lies, and stable when folders grow."""
    train, val = [], []
    for pair in pairs:
        bucket = zlib.crc32("/".join(pair[0].parts[-3:]).encode()) % 10_000
        (val if bucket < val_share * 10_000 else train).append(pair)
    if not train or not val:
        raise ConfigError(
            f"{len(pairs)} images give {len(train)} for training and {len(val)} for validation at "
            f"--val-share {val_share}; give more images or another share"
        )
    return train, val


def read_pair(image: Path, mask: Path) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB and (H, W) bool; a clear error for an unreadable or mismatched file."""
    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    m = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
    if bgr is None or m is None:
        raise DataFileError(f"cannot read {str(image if bgr is None else mask)!r}; re-render that part")
    if m.shape != bgr.shape[:2]:
        raise DataFileError(f"mask {str(mask)!r} is {m.shape} but its image is {bgr.shape[:2]}; re-render it")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), m > 127


def normalise(rgb: np.ndarray, height: int, width: int, encoder: str = "tiny") -> np.ndarray:
    """(3, H, W) float32 input, exactly as :class:`edge.segment.mobileseg.MobileSegSegmenter` makes it."""
    mean, std = NORMALISATION[encoder]
    shrink = height * width < rgb.shape[0] * rgb.shape[1]
    resized = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    x = (resized.astype(np.float32) / 255.0 - np.array(mean, np.float32)) / np.array(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def camera_jitter(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gain per channel (white balance), contrast, sensor noise and sometimes a slight blur."""
    x = rgb.astype(np.float32)
    x *= rng.uniform(0.75, 1.25) * rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.7, 1.3) + mean
    x += rng.normal(0.0, rng.uniform(0.0, 6.0), size=x.shape).astype(np.float32)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.5))
    return np.clip(x, 0, 255).astype(np.uint8)


def zoom_to_part(
    rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator, max_zoom: float
) -> tuple[np.ndarray, np.ndarray]:
    """A window of 1/z of the frame's sides (z log-uniform in 1..``max_zoom``), placed at random
    where it holds the part's centre, scaled back to the frame's size: the part as a camera nearer
    the stage (or a smaller stage) sees it. Frames without a part are returned as they are."""
    ys, xs = np.nonzero(mask)
    if not len(ys) or max_zoom <= 1.0:
        return rgb, mask
    h, w = mask.shape
    z = float(np.exp(rng.uniform(0.0, np.log(max_zoom))))
    wh, ww = max(8, round(h / z)), max(8, round(w / z))
    cy, cx = int(ys.mean()), int(xs.mean())
    top = int(rng.integers(max(0, cy - wh + 1), min(cy, h - wh) + 1))
    left = int(rng.integers(max(0, cx - ww + 1), min(cx, w - ww) + 1))
    window = (slice(top, top + wh), slice(left, left + ww))
    big_rgb = cv2.resize(rgb[window], (w, h), interpolation=cv2.INTER_LINEAR)
    big_mask = cv2.resize(mask[window].astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR) > 0
    return big_rgb, big_mask


class SegDataset:
    """A torch-style dataset of (input, target) float32 arrays; augmentation only when ``train``."""

    def __init__(
        self,
        pairs: Sequence[tuple[Path, Path]],
        cfg: SegConfig,
        swap: BackgroundSwap | None,
        *,
        train: bool,
    ) -> None:
        self.pairs, self.cfg, self.swap, self.train = list(pairs), cfg, swap, train
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        rgb, mask = read_pair(*self.pairs[i])
        if self.train:
            rng = np.random.default_rng((self.cfg.seed, self.epoch, i))
            if self.swap is not None:
                rgb = self.swap(rgb, mask, rng)
            if rng.random() < self.cfg.zoom:
                rgb, mask = zoom_to_part(rgb, mask, rng, self.cfg.max_zoom)
            rgb = camera_jitter(rgb, rng)
            if rng.random() < 0.5:
                rgb, mask = rgb[:, ::-1], mask[:, ::-1]
        h, w = self.cfg.height, self.cfg.width
        target = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        return normalise(np.ascontiguousarray(rgb), h, w, self.cfg.encoder), target[None]


def mask_path(image: Path) -> Path:
    """The mask file beside a render (``name_mask.png``)."""
    return image.with_name(image.stem + "_mask.png")
