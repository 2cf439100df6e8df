"""Fixtures shared by the whole test suite: the project's demo LDraw library and the shared data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# pytest puts tests/ on sys.path for this file; there tests/edge/ (no __init__.py) would be taken
# for the `edge` package unless the repository root is importable too (a regular package wins).
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from studio.demo_library import write_demo_library  # noqa: E402


@pytest.fixture(scope="session")
def demo_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of the tiny LDraw library the project authors (written once per test session)."""
    root = tmp_path_factory.mktemp("demo_ldraw")
    write_demo_library(root)
    return root


@pytest.fixture
def shared_ldraw() -> Path:
    """The shared (official) LDraw subset: ``$LEGO_SHARED/ldraw``, default ``<repo>/../shared``.

    Skips the test when the folder is absent (a fresh clone has no development data).
    """
    shared = Path(os.environ.get("LEGO_SHARED", REPO.parent / "shared"))
    root = shared / "ldraw"
    if not (root / "parts").is_dir():
        pytest.skip(f"shared LDraw library not found at {str(root)!r} (set LEGO_SHARED)")
    return root
