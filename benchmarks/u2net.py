"""U-2-Net and U-2-Netp (Qin et al. 2020), as rembg runs them, for timing with random weights.

The layer structure follows the authors' ``model/u2net.py`` (github.com/xuebinqin/U-2-Net):
residual U-blocks (RSU-7 .. RSU-4, and RSU-4F with dilations instead of pooling) of 3x3
convolution + batch norm + ReLU, max-pooling with ``ceil_mode``, bilinear upsampling, six side
outputs fused by a 1x1 convolution, sigmoid on every output. Written as one generic ``RSU(depth)``
rather than the original's seven copied classes; the operations and channel widths are the same,
so :func:`build` gives 44.0 M parameters for ``u2net`` (rembg's 176 MB ``u2net.onnx``) and 1.13 M
for ``u2netp``. Only the weights are not the trained ones, which does not change the time a
forward pass takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: (in, mid, out) channels of the encoder stages 1-6 and decoder stages 5d-1d.
WIDTHS: dict[str, dict[str, tuple[int, int, int]]] = {
    "u2net": {
        "stage1": (3, 32, 64),
        "stage2": (64, 32, 128),
        "stage3": (128, 64, 256),
        "stage4": (256, 128, 512),
        "stage5": (512, 256, 512),
        "stage6": (512, 256, 512),
        "stage5d": (1024, 256, 512),
        "stage4d": (1024, 128, 256),
        "stage3d": (512, 64, 128),
        "stage2d": (256, 32, 64),
        "stage1d": (128, 16, 64),
    },
    "u2netp": {
        "stage1": (3, 16, 64),
        **{f"stage{i}": (64, 16, 64) for i in range(2, 7)},
        **{f"stage{i}d": (128, 16, 64) for i in range(1, 6)},
    },
}
#: The RSU depth of each stage (F: the dilated, pooling-free RSU-4F).
DEPTHS = {"1": 7, "2": 6, "3": 5, "4": 4, "5": "4F", "6": "4F"}


def build(name: str = "u2net") -> Any:
    """The network ``name`` (``u2net`` or ``u2netp``) with random weights, in eval mode."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    if name not in WIDTHS:
        raise ValueError(f"unknown U-2-Net variant {name!r}; use one of {sorted(WIDTHS)}")

    class REBNConv(nn.Module):
        def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)
            self.bn = nn.BatchNorm2d(cout)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu(self.bn(self.conv(x)))

    def up_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)

    class RSU(nn.Module):
        """Residual U-block of ``depth`` levels (pooled), or RSU-4F (``fused``: dilated, no pooling)."""

        def __init__(self, depth: int, cin: int, mid: int, cout: int, fused: bool = False) -> None:
            super().__init__()
            self.fused = fused
            self.conv_in = REBNConv(cin, cout)
            dil = [1, 2, 4, 8] if fused else [1] * (depth - 1) + [2]
            self.enc = nn.ModuleList([REBNConv(cout if i == 0 else mid, mid, dil[i]) for i in range(depth)])
            self.dec = nn.ModuleList(
                [REBNConv(2 * mid, cout if i == 0 else mid, dil[i]) for i in range(depth - 1)]
            )
            self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            hxin = self.conv_in(x)
            skips, hx = [], hxin
            last = len(self.enc) - 1
            for i, conv in enumerate(self.enc):
                hx = conv(hx)
                if i < last:
                    skips.append(hx)
                    if not self.fused and i < last - 1:
                        hx = self.pool(hx)
            for i in range(len(self.dec) - 1, -1, -1):
                skip = skips[i]
                hx = self.dec[i](torch.cat((hx, skip), 1))
                if i > 0 and not self.fused:
                    hx = up_like(hx, skips[i - 1])
            return hx + hxin

    widths = WIDTHS[name]

    def stage(key: str) -> RSU:
        depth = DEPTHS[key.removeprefix("stage").removesuffix("d")]
        cin, mid, cout = widths[key]
        return RSU(4, cin, mid, cout, fused=True) if depth == "4F" else RSU(int(depth), cin, mid, cout)

    class U2Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stages = nn.ModuleDict({key: stage(key) for key in widths})
            self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
            side_in = [
                widths[k][2] for k in ("stage1d", "stage2d", "stage3d", "stage4d", "stage5d", "stage6")
            ]
            self.sides = nn.ModuleList([nn.Conv2d(c, 1, 3, padding=1) for c in side_in])
            self.outconv = nn.Conv2d(6, 1, 1)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            s = self.stages
            enc = []
            hx = x
            for i in range(1, 6):
                hx = s[f"stage{i}"](hx)
                enc.append(hx)
                hx = self.pool(hx)
            hx6 = s["stage6"](hx)
            dec = [hx6]
            hx = hx6
            for i in range(5, 0, -1):
                hx = s[f"stage{i}d"](torch.cat((up_like(hx, enc[i - 1]), enc[i - 1]), 1))
                dec.append(hx)
            # dec: 6, 5d, 4d, 3d, 2d, 1d; sides take 1d .. 5d, 6
            feats = [dec[5], dec[4], dec[3], dec[2], dec[1], dec[0]]
            d1 = self.sides[0](feats[0])
            ds = [d1] + [up_like(side(f), d1) for side, f in zip(self.sides[1:], feats[1:], strict=True)]
            d0 = self.outconv(torch.cat(ds, 1))
            return tuple(torch.sigmoid(d) for d in (d0, *ds))

    torch.manual_seed(0)
    return U2Net().eval()


def export_onnx(name: str, path: Path, size: int) -> Path:
    """Write ``name`` (random weights) as ONNX with a (1, 3, size, size) float input, as rembg feeds it."""
    import torch

    model = build(name)
    dummy = torch.zeros(1, 3, size, size)
    outputs = [f"d{i}" for i in range(7)]
    with torch.inference_mode():
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            dynamo=False,
            input_names=["input.1"],
            output_names=outputs,
            opset_version=17,
        )
    return path


def parameter_count(name: str) -> int:
    """Number of parameters of ``name`` (44.0 M for u2net, 1.13 M for u2netp in the original)."""
    return sum(p.numel() for p in build(name).parameters())
