"""MixStyle: feature statistics mixed between the images of a training batch (domain generalisation).

A convolutional network's intermediate feature maps carry an image's style (lighting, texture,
camera) in each channel's mean and standard deviation over the image, and its content in the
normalised map. MixStyle (Zhou et al., "Domain generalization with MixStyle", ICLR 2021) replaces,
in a share of training batches, each image's channel statistics by a random mix of its own and
another image's of the batch, so the layers after it learn to decide on content whatever style it
comes with: a camera the renders never showed should then move the decisions less. It is applied to
the frozen front's output (``PartNet.front``, the feature cache's tensors), so it costs a cached run
a few element-wise operations per batch; it is off at evaluation and absent from the exported network.

The draws come from torch's global generator, which the training loop seeds per epoch, so a resumed
run draws as an uninterrupted one does.
"""

from __future__ import annotations

from typing import Any

#: Beta(alpha, alpha) mixing weights; 0.1, the paper's value, keeps most mixes near one of the two.
ALPHA = 0.1
_EPS = 1e-6


def mix_style(x: Any, p: float, alpha: float = ALPHA) -> Any:
    """``x`` (N, C, H, W) with, with probability ``p`` for the batch, each image's per-channel mean and
    standard deviation replaced by ``lam * own + (1 - lam) * another image's`` (``lam`` ~ Beta(alpha,
    alpha) per image, the partner a random permutation of the batch). Gradients flow through the
    normalised map, not the statistics. A batch of one, or ``p`` 0, is returned unchanged."""
    import torch

    if p <= 0.0 or x.shape[0] < 2 or torch.rand(()).item() >= p:
        return x
    n = x.shape[0]
    mu = x.mean(dim=(2, 3), keepdim=True)
    sigma = (x.var(dim=(2, 3), keepdim=True) + _EPS).sqrt()
    mu, sigma = mu.detach(), sigma.detach()
    normed = (x - mu) / sigma
    lam = torch.distributions.Beta(alpha, alpha).sample((n, 1, 1, 1)).to(x.device, x.dtype)
    perm = torch.randperm(n, device=x.device)
    mixed_mu = lam * mu + (1 - lam) * mu[perm]
    mixed_sigma = lam * sigma + (1 - lam) * sigma[perm]
    return normed * mixed_sigma + mixed_mu
