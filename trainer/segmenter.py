"""``trainer segmenter``: the small segmentation network edge's ``mobileseg`` option runs.

Learned from the studio's exact masks: every render holds ``name.jpg`` (or ``.png``) beside
``name_mask.png``. The part's pixels are kept and, with probability ``--swap``, the background is
replaced by :class:`trainer.backgrounds.BackgroundSwap` (flat and textured surfaces, unevenly lit,
with a soft shadow, and the photos of empty rigs given with ``--backgrounds``), so that the network
learns the part, not the render's ground; camera jitter (gain per channel, contrast, noise, blur)
and mirroring come on top. Images are split into training and validation by a hash of their path.

The network is a small encoder-decoder of depthwise-separable convolutions with skip connections
back to half resolution and mask logits bilinearly upsampled to the input: ``--encoder tiny``
(:class:`TinyUNet`, five stride-2 stages of 16..96 channels, trained from scratch) or ``lite0``
(EfficientNet-Lite0's stem and first five stages with their ImageNet weights, as the classifier
starts from). It is trained with binary cross-entropy plus a
soft Dice loss, AdamW and a cosine schedule, one checkpoint per epoch (``checkpoint/``:
safetensors weights and a JSON state), so an interrupted run resumes from its last finished epoch.
``--epochs`` may grow on a finished run: the cosine then spans the new total, so the extra epochs
start again from the learning rate that point of the longer schedule has (a warm restart).

The export is what edge loads: ``seg.onnx`` ((N, 3, H, W) float32 in, ``mask_logits`` (N, 1, H, W)
out, batch dynamic) and its sidecar ``seg.json`` (input size, mean and std; see
:mod:`edge.segment.mobileseg`), checked against torch before it is written. ``report.json`` holds
the mask IoU of the validation images (and of ``--test`` folders) measured through edge's own
``mobileseg`` segmenter with its default clean-up, at the frames' full size, as the Pi runs it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import ConfigError, DataFileError, ModelError
from edge.fileio import atomic_path, write_atomic
from trainer.backgrounds import BackgroundSwap

log = logging.getLogger(__name__)

MODEL_NAME = "seg.onnx"
SIDECAR_NAME = "seg.json"
INT8_NAME = "seg_int8.onnx"
INT8_SIDECAR_NAME = "seg_int8.json"
#: Convolutions nearest the image kept float in the int8 file (the stem: full resolution, 3 channels).
INT8_FLOAT_CONVS = 1
#: Training images the int8 file's activation ranges are calibrated on.
INT8_CALIBRATION_IMAGES = 64
REPORT_NAME = "report.json"
CHECKPOINT_DIR = "checkpoint"
#: Input normalisation per encoder (Lite0's ImageNet weights were trained on inputs scaled to -1..1).
NORMALISATION = {"tiny": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), "lite0": ((0.5,) * 3, (0.5,) * 3)}
ENCODERS = tuple(NORMALISATION)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class SegConfig:
    """What a run is: a resumed run must have the same (``epochs`` may grow)."""

    height: int = 240
    width: int = 320
    encoder: str = "tiny"  # "tiny" (from scratch) or "lite0" (EfficientNet-Lite0's ImageNet stages)
    width_mult: float = 1.0
    epochs: int = 6
    batch_size: int = 16
    epoch_images: int = 0  # training images drawn afresh each epoch; 0: all of them
    lr: float = 3e-3
    swap: float = 0.7
    val_share: float = 0.05
    seed: int = 0
    zoom: float = 0.0  # share of training images seen through a smaller window around the part
    max_zoom: float = 4.0  # the window's largest magnification (1 / side share)

    def same_run(self, other: SegConfig) -> bool:
        """Equal but for ``epochs``."""
        return asdict(self) | {"epochs": 0} == asdict(other) | {"epochs": 0}


# ---- data ------------------------------------------------------------------------------------------


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


# ---- network ---------------------------------------------------------------------------------------


def build_model(width_mult: float = 1.0, encoder: str = "tiny", *, pretrained: bool = True) -> Any:
    """A :class:`TinyUNet`, or with ``encoder="lite0"`` a :class:`Lite0UNet` (imports torch)."""
    if encoder == "lite0":
        return _lite0_unet(width_mult, pretrained)
    if encoder != "tiny":
        raise ConfigError(f"segmenter encoder {encoder!r} is unknown; use one of {', '.join(ENCODERS)}")
    import torch
    from torch import nn

    def ch(c: int) -> int:
        return max(8, round(c * width_mult / 8) * 8)

    class TinyUNet(nn.Module):
        """Encoder of stride-2 stages, decoder with skips to 1/2 resolution, logits upsampled."""

        def __init__(self) -> None:
            super().__init__()
            c = [ch(16), ch(24), ch(32), ch(64), ch(96)]
            self.stem = nn.Sequential(
                nn.Conv2d(3, c[0], 3, 2, 1, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU6(inplace=True)
            )  # 1/2
            self.down = nn.ModuleList(
                [nn.Sequential(_sep_conv(c[i], c[i + 1], 2), _sep_conv(c[i + 1], c[i + 1])) for i in range(4)]
            )  # 1/4 .. 1/32
            self.up = nn.ModuleList([_sep_conv(c[i + 1] + c[i], c[i]) for i in reversed(range(4))])
            self.head = nn.Conv2d(c[0], 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            size = x.shape[-2:]
            skips = [self.stem(x)]
            for stage in self.down:
                skips.append(stage(skips[-1]))
            return _decode(skips.pop(), skips, self.up, self.head, size)

    return TinyUNet()


def _sep_conv(cin: int, cout: int, stride: int = 1) -> Any:
    """Depthwise 3x3 + pointwise 1x1, each with batch norm and ReLU6 (both networks' block)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU6(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


def _decode(y: Any, skips: list[Any], blocks: Any, head: Any, size: Any) -> Any:
    """The decoder both networks share: upsample to the next skip, concatenate, convolve; then the
    mask logits, upsampled to the input ``size``. ``skips`` is consumed from its end (deepest first)."""
    import torch
    from torch import nn

    for block in blocks:
        skip = skips.pop()
        y = nn.functional.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        y = block(torch.cat([y, skip], dim=1))
    return nn.functional.interpolate(head(y), size=size, mode="bilinear", align_corners=False)


def _lite0_unet(width_mult: float, pretrained: bool) -> Any:
    import timm
    import torch
    from torch import nn

    from trainer.models import load_lite_imagenet

    class Lite0UNet(nn.Module):
        """EfficientNet-Lite0's stem and first five stages (1/2 .. 1/16, ImageNet weights) as the
        encoder; a depthwise-separable decoder with skips back to 1/2; logits upsampled."""

        def __init__(self) -> None:
            super().__init__()
            trunk = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)
            if pretrained:
                load_lite_imagenet(trunk)
            self.stem = nn.Sequential(trunk.conv_stem, trunk.bn1)  # 1/2, 32
            self.stages = nn.ModuleList(trunk.blocks[:5])  # 16@1/2, 24@1/4, 40@1/8, 80@1/16, 112@1/16
            d = [max(8, round(c * width_mult / 8) * 8) for c in (24, 32, 48)]
            self.up = nn.ModuleList(
                [_sep_conv(112 + 40, d[2]), _sep_conv(d[2] + 24, d[1]), _sep_conv(d[1] + 16, d[0])]
            )
            self.head = nn.Conv2d(d[0], 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            size = x.shape[-2:]
            y = self.stem(x)
            feats = []
            for stage in self.stages:
                y = stage(y)
                feats.append(y)
            return _decode(y, [feats[0], feats[1], feats[2]], self.up, self.head, size)  # skips 1/2..1/8

    return Lite0UNet()


def seg_loss(logits: Any, target: Any) -> Any:
    """Binary cross-entropy plus soft Dice (per image, averaged)."""
    import torch

    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + dice.mean()


# ---- checkpoints -----------------------------------------------------------------------------------


def _save_checkpoint(out: Path, model: Any, cfg: SegConfig, epoch: int, history: list[dict]) -> None:
    from safetensors.torch import save_file

    folder = out / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(weights, str(tmp))
    state = {"config": asdict(cfg), "epoch": epoch, "history": history}
    write_atomic(folder / "state.json", json.dumps(state, indent=2) + "\n")


def _load_checkpoint(out: Path, model: Any, cfg: SegConfig) -> tuple[int, list[dict]]:
    """(epochs done, history) of a matching checkpoint in ``out`` (0, [] when there is none)."""
    state_path = out / CHECKPOINT_DIR / "state.json"
    if not state_path.is_file():
        return 0, []
    from safetensors.torch import load_file

    try:
        state = json.loads(state_path.read_text())
        saved = SegConfig(**state["config"])
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DataFileError(
            f"checkpoint state {str(state_path)!r} is damaged ({exc}); delete {str(out)!r}"
        ) from None
    if not saved.same_run(cfg):
        raise ConfigError(
            f"{str(out)!r} holds a run with other settings ({asdict(saved)}); "
            "use another --out or the same settings"
        )
    model.load_state_dict(load_file(str(out / CHECKPOINT_DIR / "model.safetensors")), strict=True)
    return int(state["epoch"]), list(state.get("history", []))


# ---- training --------------------------------------------------------------------------------------


def train_segmenter(
    data: Sequence[str | Path],
    out: str | Path,
    cfg: SegConfig,
    *,
    backgrounds: str | Path | None = None,
    test: Sequence[str | Path] = (),
    real: Sequence[tuple[Path, Path]] = (),
    workers: int = 0,
    progress: bool = True,
    max_val: int = 400,
    int8: bool = False,
) -> dict[str, Any]:
    """Train (resuming), export ``seg.onnx`` + sidecar (and ``int8``: ``seg_int8.onnx``), measure
    IoU of each; returns the report."""
    import torch
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = find_pairs(data)
    train_pairs, val_pairs = split_pairs(pairs, cfg.val_share)
    log.info("segmenter: %d training and %d validation images", len(train_pairs), len(val_pairs))
    swap = BackgroundSwap.from_folder(cfg.swap, backgrounds) if cfg.swap > 0 else None
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.width_mult, cfg.encoder)
    done, history = _load_checkpoint(out, model, cfg)
    if done:
        log.info("segmenter: resuming after epoch %d of %d", done, cfg.epochs)
    dataset = SegDataset(train_pairs, cfg, swap, train=True)
    per_epoch = min(cfg.epoch_images or len(dataset), len(dataset))
    steps_per_epoch = per_epoch // cfg.batch_size if per_epoch > cfg.batch_size else 1
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    offset = done * steps_per_epoch  # the schedule goes on where the finished epochs left it
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda step: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min((step + offset) / max(total, 1), 1.0))),
    )
    for epoch in range(done, cfg.epochs):
        dataset.epoch = epoch
        loader = torch.utils.data.DataLoader(
            dataset,  # type: ignore[arg-type]
            batch_size=cfg.batch_size,
            sampler=torch.utils.data.RandomSampler(
                dataset,  # type: ignore[arg-type]
                num_samples=per_epoch,
                generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch),
            ),
            num_workers=workers,
            drop_last=per_epoch > cfg.batch_size,  # batch norm cannot train on a last batch of one
        )
        model.train()
        losses = []
        bar = tqdm(
            loader, desc=f"segmenter epoch {epoch + 1}/{cfg.epochs}", disable=not progress, unit="batch"
        )
        for x, y in bar:
            loss = seg_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        val_iou = _torch_iou(model, val_pairs[:max_val], cfg)
        history.append(
            {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_iou_input_size": val_iou}
        )
        log.info(
            "segmenter epoch %d: loss %.4f, validation IoU at input size %.4f",
            epoch + 1,
            np.mean(losses),
            val_iou,
        )
        _save_checkpoint(out, model, cfg, epoch + 1, history)
    model.eval()
    parity = export_onnx(model, out, cfg, [p[0] for p in val_pairs[:8]])
    models = {"iou": out / MODEL_NAME}
    if int8:
        step = max(1, len(train_pairs) // INT8_CALIBRATION_IMAGES)
        models["iou_int8"] = quantize_segmenter(
            out, cfg, [p[0] for p in train_pairs[::step]][:INT8_CALIBRATION_IMAGES]
        )
    report: dict[str, Any] = {
        "config": asdict(cfg),
        "data": [str(d) for d in data],
        "backgrounds": str(backgrounds) if backgrounds else None,
        "images": {"train": len(train_pairs), "validation": len(val_pairs)},
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history,
        "export_parity_max_abs": parity,
    }
    for key, onnx_file in models.items():
        figures = report[key] = {"validation": mask_iou(onnx_file, val_pairs[:max_val], progress=progress)}
        for folder in test:
            figures[str(folder)] = mask_iou(onnx_file, find_pairs([folder])[:max_val], progress=progress)
        for photos, empty in real:
            both = reference_ious(
                onnx_file,
                photos,
                empty,
                out / "reference" / photos.name,
                max_images=max_val,
                progress=progress,
            )
            figures[f"real:{photos}"] = both[False]
            figures[f"real:{photos}:empty_stage_dropped"] = both[True]
    write_atomic(out / REPORT_NAME, json.dumps(report, indent=2) + "\n")
    return report


def _torch_iou(model: Any, pairs: Sequence[tuple[Path, Path]], cfg: SegConfig) -> float:
    """Mean IoU at the input size (threshold 0.5), a quick per-epoch figure."""
    import torch

    model.eval()
    ious = []
    with torch.no_grad():
        for i in range(0, len(pairs), 32):
            items = [SegDataset(pairs, cfg, None, train=False)[j] for j in range(i, min(i + 32, len(pairs)))]
            x = torch.from_numpy(np.stack([a for a, _ in items]))
            pred = (model(x) > 0).numpy()
            for p, (_, t) in zip(pred, items, strict=True):
                ious.append(_iou(p[0], t[0] > 0.5))
    model.train()
    return float(np.mean(ious))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def export_onnx(model: Any, out: Path, cfg: SegConfig, images: Sequence[Path]) -> float:
    """Write ``seg.onnx`` and ``seg.json``; returns the largest |onnx - torch| logit on ``images``."""
    import onnxruntime as ort
    import torch

    x = torch.from_numpy(
        np.stack(
            [normalise(read_pair(p, _mask_of(p))[0], cfg.height, cfg.width, cfg.encoder) for p in images]
        )
    )
    with atomic_path(out / MODEL_NAME) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on fixed sizes and deprecations
        torch.onnx.export(
            model,
            (x[:1],),
            str(tmp),
            input_names=["image"],
            output_names=["mask_logits"],
            dynamic_axes={"image": {0: "batch"}, "mask_logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            ref = model(x).numpy()
        got = session.run(["mask_logits"], {"image": x.numpy()})[0]
        diff = float(np.abs(got - ref).max())
        if diff > 1e-3 * max(1.0, float(np.abs(ref).max())):
            raise ModelError(f"the exported segmenter differs from torch by {diff:.3g}; not written")
    mean, std = NORMALISATION[cfg.encoder]
    sidecar = {
        "input_size": [cfg.height, cfg.width],
        "mean": list(mean),
        "std": list(std),
        "output": "mask_logits",
    }
    write_atomic(out / SIDECAR_NAME, json.dumps(sidecar, indent=2) + "\n")
    return diff


def quantize_segmenter(out: Path, cfg: SegConfig, images: Sequence[Path]) -> Path:
    """``seg_int8.onnx`` (+ its sidecar): static int8 (QDQ, per-channel weights) of ``seg.onnx``,
    activation ranges calibrated on ``images`` as edge feeds them; the stem convolution and the
    final upsampling stay float (:func:`trainer.quantize.quantize_onnx_int8`)."""
    from trainer.quantize import quantize_onnx_int8

    if not images:
        raise DataFileError("no images to calibrate the int8 segmenter on; give --data renders")
    calib = np.stack(
        [normalise(read_pair(p, _mask_of(p))[0], cfg.height, cfg.width, cfg.encoder) for p in images]
    )
    with atomic_path(out / INT8_NAME) as tmp:
        quantize_onnx_int8(out / MODEL_NAME, tmp, calib, "image", float_convs=INT8_FLOAT_CONVS)
    write_atomic(out / INT8_SIDECAR_NAME, (out / SIDECAR_NAME).read_text(encoding="utf-8"))
    return out / INT8_NAME


def check_ship_name(name: str | None) -> None:
    """A clear error for a ``--ship-name`` that is not a plain file stem."""
    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise ConfigError(f"--ship-name {name!r} must be letters, digits, '_' and '-' (no suffix, no folder)")


def ship_segmenter(
    run: Path, model_set: Path, precision: str, report: dict[str, Any], name: str | None = None
) -> Any:
    """Copy the run's ``precision`` model and sidecar into ``model_set`` and list them in its manifest
    (replacing an entry of the same file); returns the :class:`edge.manifest.SegmenterEntry`.

    ``name``: ship them as ``NAME.onnx`` and ``NAME.json`` (default: the run's file names), so that a
    model set can hold segmenters for different rigs side by side."""
    import shutil

    from edge.manifest import (
        MANIFEST_NAME,
        Manifest,
        SegmenterEntry,
        load_manifest,
        sha256_file,
        write_manifest,
    )

    names = {"fp32": (MODEL_NAME, SIDECAR_NAME), "int8": (INT8_NAME, INT8_SIDECAR_NAME)}
    if precision not in names:
        raise ConfigError(f"--ship-precision {precision!r} is not one of {sorted(names)}")
    check_ship_name(name)
    model, sidecar = (run / n for n in names[precision])
    if not model.is_file():
        hint = " (add --int8)" if precision == "int8" else ""
        raise DataFileError(f"{str(model)!r} does not exist: nothing to ship{hint}")
    manifest = load_manifest(model_set)  # a clear ModelError when model_set is not a model set
    dest_model, dest_sidecar = (
        (model.name, sidecar.name) if name is None else (f"{name}.onnx", f"{name}.json")
    )
    key = "iou_int8" if precision == "int8" else "iou"
    entry = SegmenterEntry(
        path=dest_model,
        sidecar=dest_sidecar,
        precision=precision,  # type: ignore[arg-type]
        sha256=sha256_file(model),  # the copies below are byte for byte
        sidecar_sha256=sha256_file(sidecar),
        bytes=model.stat().st_size,
        evaluation={
            "mask_iou": report.get(key, {}),
            "config": report.get("config", {}),
            "data": report.get("data", []),
            "images": report.get("images", {}),
        },
    )
    others = [s for s in manifest.segmenters if s.path != entry.path]
    updated = manifest.model_copy(update={"segmenters": [*others, entry]})
    try:  # before any file is copied: a name must not overwrite the set's other files
        if dest_sidecar == MANIFEST_NAME:
            raise ValueError(f"{dest_sidecar} is the model set's manifest")
        Manifest.model_validate(updated.model_dump())
    except ValueError as exc:
        raise ConfigError(
            f"cannot ship as {dest_model} / {dest_sidecar}: {exc}; pick another --ship-name"
        ) from None
    for src, dest in ((model, dest_model), (sidecar, dest_sidecar)):
        with atomic_path(model_set / dest) as tmp:
            shutil.copyfile(src, tmp)
    write_manifest(model_set, updated)
    return entry


def _mask_of(image: Path) -> Path:
    return image.with_name(image.stem + "_mask.png")


def mask_iou(model: Path, pairs: Sequence[tuple[Path, Path]], *, progress: bool = False) -> dict[str, float]:
    """IoU of edge's ``mobileseg`` segmenter (default clean-up, full frame size) against the masks."""
    from tqdm import tqdm

    from edge.segment import create_segmenter

    segmenter = create_segmenter({"type": "mobileseg", "model": str(model), "threads": 0})
    try:
        ious = []
        for image, mask in tqdm(pairs, desc="segmenter IoU", disable=not progress, unit="image"):
            rgb, truth = read_pair(image, mask)
            ious.append(_iou(segmenter.mask(rgb) > 0, truth))
    finally:
        segmenter.close()
    return _summary(ious)


def _summary(ious: Sequence[float]) -> dict[str, float]:
    a = np.asarray(ious)
    return {
        "images": len(a),
        "mean": float(a.mean()),
        "median": float(np.median(a)),
        "share_at_least_0.9": float((a >= 0.9).mean()),
    }


def reference_iou(
    model: Path,
    photos: Path,
    empty: Path,
    work: Path,
    *,
    max_images: int = 400,
    progress: bool = False,
    calibrated: bool = False,
) -> dict[str, float]:
    """IoU of the ``mobileseg`` masks of real photos against the ``bgdiff`` masks of the same photos,
    whose background model is fitted from the frames of the empty stage in ``empty`` (the reference
    holds the part's soft shadow where it darkens the ground, so it is a yardstick, not the truth).
    ``calibrated``: the ``mobileseg`` runs with ``calibration: true`` on that background model too
    (what it finds on the empty stage is dropped)."""
    found = reference_ious(
        model, photos, empty, work, (calibrated,), max_images=max_images, progress=progress
    )
    return found[calibrated]


def reference_ious(
    model: Path,
    photos: Path,
    empty: Path,
    work: Path,
    variants: Sequence[bool] = (False, True),
    *,
    max_images: int = 400,
    progress: bool = False,
) -> dict[bool, dict[str, float]]:
    """:func:`reference_iou` for each ``calibrated`` value of ``variants``, in one pass: the
    background is fitted and each photo read and keyed by ``bgdiff`` once."""
    from contextlib import ExitStack

    from tqdm import tqdm

    from edge.imagefile import read_image
    from edge.segment import create_segmenter
    from trainer.photo_set import fit_background, read_photo_set

    work.mkdir(parents=True, exist_ok=True)
    calibration, _ = fit_background(empty, work)
    chosen = read_photo_set(photos)
    step = max(1, len(chosen) // max_images)
    chosen = chosen[::step][:max_images]
    ious: dict[bool, list[float]] = {v: [] for v in variants}
    shares = []
    with ExitStack() as stack:
        reference = stack.enter_context(
            create_segmenter({"type": "bgdiff", "calibration": True}, calibration=calibration)
        )
        learned = {
            v: stack.enter_context(
                create_segmenter(
                    {"type": "mobileseg", "model": str(model), "threads": 0, "calibration": v},
                    calibration=calibration,
                )
            )
            for v in variants
        }
        for photo in tqdm(chosen, desc=f"IoU on {photos.name}", disable=not progress, unit="photo"):
            image = read_image(photo.path)
            truth = reference.mask(image) > 0
            for v, segmenter in learned.items():
                ious[v].append(_iou(segmenter.mask(image) > 0, truth))
            shares.append(float(truth.mean()))
    share = {"reference_median_mask_share": float(np.median(shares))}
    return {v: _summary(values) | share for v, values in ious.items()}


# ---- command line ----------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "segmenter",
        help="train the small segmentation model (edge's mobileseg option) on renders and their masks",
        description=__doc__,
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
