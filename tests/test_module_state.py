"""No module state in library code: no `global` statement anywhere in the installed package
(tests observe traces and pretrainings through their own wrappers, not through counters)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("cpi", "core", "theory", "sims", "bridge", "experiments", "figures")


def test_library_code_has_no_global_statement():
    files = [f for layer in LAYERS for f in sorted((ROOT / layer).rglob("*.py"))]
    assert len(files) > 50
    found = [f"{f.relative_to(ROOT)}:{node.lineno}" for f in files for node in ast.walk(ast.parse(f.read_text()))
             if isinstance(node, ast.Global)]
    assert not found, found
