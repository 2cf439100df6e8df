"""The networks: encoder-decoders, tiny (from scratch) or on Lite0's ImageNet stages, and their loss."""

from __future__ import annotations

from typing import Any

from edge.errors import ConfigError
from trainer.segmenter.config import ENCODERS


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
