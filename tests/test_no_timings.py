"""Timings live in docs/speed.md and CHANGELOG.md, never in the library's docstrings or
comments: a measured time in a docstring goes stale with the next machine or library."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("theory", "core", "sims", "bridge", "experiments", "figures", "cpi")
TIMING = re.compile(
    r"\b\d+(?:\.\d+)?\s?(?:ms|µs|us|s|sec|secs|seconds|min|minutes|hours)\b(?!\s*[=(])"
    r"|\b\d+(?:\.\d+)?\s?[×x]\s+(?:faster|slower|speed-?up)|\bspeed-?up of \d",
)


def _prose(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every docstring and comment in a module."""
    source = path.read_text(encoding="utf-8")
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
        else:
            continue
        for i, statement in enumerate(body):
            # docstrings: the first statement, and a string right after an assignment (attribute docs)
            if (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
                    and isinstance(statement.value.value, str)
                    and (i == 0 or isinstance(body[i - 1], (ast.Assign, ast.AnnAssign)))):
                found.append((statement.lineno, statement.value.value))
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found.append((token.start[0], token.string))
    return found


def _modules():
    return sorted(p for layer in LAYERS for p in (ROOT / layer).rglob("*.py"))


def test_timing_pattern_finds_timings():
    assert TIMING.search("a second run takes 0.6 s on the CPU")
    assert TIMING.search("3.2× faster than the loop")
    assert not TIMING.search("300 steps, dims 40-4000, 8 seeds, 1e-10")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_timing_in_docstrings_or_comments(path):
    hits = [(line, match.group(0)) for line, text in _prose(path) for match in TIMING.finditer(text)]
    assert not hits, f"{path.relative_to(ROOT)}: timings {hits} belong in docs/speed.md or CHANGELOG.md"
