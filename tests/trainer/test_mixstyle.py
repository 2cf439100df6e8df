"""MixStyle (trainer.mixstyle): statistics mixed between images, content kept, off when asked."""

from __future__ import annotations

import pytest
import torch

from trainer.mixstyle import mix_style


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean(dim=(2, 3)), x.std(dim=(2, 3), unbiased=False)


def _batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    # Each image its own style: a channel offset and scale far apart between images.
    content = torch.randn(6, 4, 5, 5, generator=g)
    offsets = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1) * 10
    scales = torch.arange(1, 7, dtype=torch.float32).view(6, 1, 1, 1)
    return content * scales + offsets


def test_off_or_a_single_image_returns_the_batch_unchanged() -> None:
    x = _batch()
    state = torch.get_rng_state()
    assert mix_style(x, 0.0) is x
    assert torch.equal(torch.get_rng_state(), state)  # p 0 draws nothing: old runs keep their draws
    one = x[:1]
    assert mix_style(one, 1.0) is one


def test_each_image_keeps_its_content_and_takes_a_mix_of_two_images_statistics() -> None:
    x = _batch()
    torch.manual_seed(3)
    y = mix_style(x, 1.0)
    assert y.shape == x.shape
    mu, sigma = _stats(x)
    mu_y, sigma_y = _stats(y)
    assert not torch.allclose(mu_y, mu, atol=1e-3), "no image's statistics moved"
    # The normalised map (the content) is the input's.
    content_x = (x - mu[..., None, None]) / sigma[..., None, None]
    content_y = (y - mu_y[..., None, None]) / sigma_y[..., None, None]
    assert torch.allclose(content_x, content_y, atol=1e-3)
    # New means lie within the batch's: a convex mix of two images', never outside them.
    assert bool((mu_y >= mu.min(dim=0).values - 1e-4).all() and (mu_y <= mu.max(dim=0).values + 1e-4).all())


def test_the_same_seed_draws_the_same_mix_and_gradients_reach_the_input() -> None:
    x = _batch().requires_grad_(True)
    torch.manual_seed(5)
    a = mix_style(x, 1.0)
    torch.manual_seed(5)
    b = mix_style(x, 1.0)
    assert torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


def test_the_share_of_batches_mixed_follows_p() -> None:
    x = _batch()
    torch.manual_seed(0)
    mixed = sum(not torch.equal(mix_style(x, 0.5), x) for _ in range(400))
    assert 150 < mixed < 250, mixed


def test_a_share_outside_0_1_is_refused() -> None:
    from pydantic import ValidationError

    from trainer.train_config import TrainConfig

    with pytest.raises(ValidationError, match="mixstyle"):
        TrainConfig.model_validate({"sources": [{"path": "x"}], "out": "o", "mixstyle": 1.5})
    # Off by default: configs written before it train as they did.
    assert TrainConfig.model_validate({"sources": [{"path": "x"}], "out": "o"}).mixstyle == 0.0
