"""No library module over 500 lines: a module is one idea, and one that grows past this is
two (the limit the package's redesign set)."""

from __future__ import annotations

from pathlib import Path

from .test_import_graph import LAYERS

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500


def test_no_library_module_is_over_500_lines():
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
             for folder in LAYERS for path in (ROOT / folder).glob("*.py")}
    assert len(sizes) > 50  # every layer's folder was read
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}
