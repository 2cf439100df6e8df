"""``edge`` never imports ``studio`` at module level: the Pi runtime must not load the parts studio.

Only the simulated rig's camera imports ``studio``, inside the functions that render live.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EDGE = REPO / "edge"


def module_level_studio_imports(source: str, filename: str = "<source>") -> list[int]:
    """Line numbers of ``import studio...`` / ``from studio... import`` run when the module loads.

    Everything outside a function body counts, including ``if``/``try`` blocks and class bodies
    (``if TYPE_CHECKING:`` too: keep such imports inside the functions that need them).
    """
    lines: list[int] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue  # runs only when called
            if isinstance(child, ast.Import):
                modules = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                modules = [child.module or ""]
            else:
                modules = []
            if any(m == "studio" or m.startswith("studio.") for m in modules):
                lines.append(child.lineno)
            visit(child)

    visit(ast.parse(source, filename))
    return lines


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import studio\n", [1]),
        ("import os, studio.scene as scene\n", [1]),
        ("from studio.ldraw import LDrawLibrary\n", [1]),
        ("from studio import effects\n", [1]),
        ("try:\n    import studio\nexcept ImportError:\n    pass\n", [2]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from studio.mesh import Mesh\n", [3]),
        ("class A:\n    from studio.mesh import Mesh\n", [2]),
        ("def f():\n    import studio\n", []),
        ("class A:\n    def m(self):\n        from studio.scene import RigGeometry\n", []),
        ("async def f():\n    from studio import scene\n", []),
        ("import studios\nfrom studio_extra import x\nfrom . import studio\nfrom edge.studio import y\n", []),
    ],
)
def test_the_checker_finds_module_level_imports(source: str, expected: list[int]) -> None:
    assert module_level_studio_imports(source) == expected


def test_no_edge_module_imports_studio_at_module_level() -> None:
    files = sorted(EDGE.rglob("*.py"))
    assert len(files) > 20  # the walk found the package
    found = [
        f"{path.relative_to(REPO)}:{line}"
        for path in files
        for line in module_level_studio_imports(path.read_text(encoding="utf-8"), str(path))
    ]
    assert not found, f"edge imports studio at module level (import it inside the function): {found}"


def test_importing_edge_loads_no_studio() -> None:
    code = (
        "import sys\n"
        "import edge, edge.cli, edge.daemon, edge.camera.sim, edge.pipeline\n"
        "print(sorted(m for m in sys.modules if m == 'studio' or m.startswith('studio.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
