"""Tiny renders of the demo library for training tests (64x64, legacy layout, 'train' randomisation)."""

from __future__ import annotations

from pathlib import Path


def render_demo(
    ldraw: Path, out: Path, parts: list[str], colors: tuple[int, ...], *, per_part: int = 4, views: int = 2
) -> Path:
    """Render ``parts`` in ``colors`` into ``out`` (asserting no part failed); returns ``out``."""
    from trainer.render import run_render
    from trainer.render_worker import RenderJob

    job = RenderJob(
        ldraw=str(ldraw),
        layout="legacy",
        out=str(out),
        per_part=per_part,
        views=views,
        color_ids=colors,
        seed=0,
        randomization="train",
        supersample=1,
        size=64,
    )
    results = run_render(job, parts, workers=1)
    assert not any(r.error for r in results), [r.error for r in results]
    return out
