"""A bounded, seeded fuzz of the daemon's inputs: no input may raise anything but an EdgeError.

A few hundred mutated configs, images (read, then recognised when they decode, then replayed by
the folder camera) and manifests from ``tools/fuzz.py``, whose longer run (10,000 of each) is
recorded in benchmarks/results/fuzz.md. Every finding is printed with its case number: case ``i``
of seed ``s`` is reproducible on its own with the tool.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edge.pipeline import Pipeline
from edge.settings import load_edge_config
from tests.edge.test_settings import write_sim_setup
from tools.fuzz import Report, fuzz_configs, fuzz_images, fuzz_manifests

SEED = 20240601


def _check(report: Report) -> None:
    print(report.line())
    details = "\n\n".join(f"case {f.index}: {f.what}\n{f.detail}" for f in report.findings[:5])
    assert not report.findings, f"{report.kind}: {len(report.findings)} finding(s)\n{details}"


@pytest.mark.slow
def test_fuzzed_inputs_raise_only_edge_errors(tmp_path: Path, demo_library: Path) -> None:
    start = time.perf_counter()
    configs = fuzz_configs(300, SEED, tmp_path)
    _check(configs)
    assert configs.outcomes["ok"] and configs.outcomes["ConfigError"]  # both kinds of outcome occur

    pipeline = Pipeline.from_config(
        load_edge_config(write_sim_setup(tmp_path, demo_library)), with_camera=False
    )

    def classify(path: Path) -> None:
        (row,) = pipeline.classify_images([path])
        assert row.result is not None or row.error  # an error row is classify's refusal

    try:
        images, camera = fuzz_images(300, SEED, tmp_path, classify)
    finally:
        pipeline.close()
    _check(images)
    _check(camera)
    assert images.outcomes["ok"] > 300 // 10 and images.outcomes["ImageError"] > 300 // 10
    _check(fuzz_manifests(100, SEED, tmp_path))
    assert time.perf_counter() - start < 60
