"""Headline summaries: the numbers the documents quote, saved beside each figure.

Each experiment module has `headline(data) -> {name: number or text}`, a pure function of the
experiment's saved data dict: the values docs/results.md quotes, with the horizons (steps) and
numbers of seeds they rest on, and mean and spread for anything over seeds. `cpi figures` writes
them as `<out>/<name>.json` next to `<out>/<name>.png`; the committed ones (`figures/*.json`)
are what `cpi figures --docs` renders the results document from (`cpi.figures.document`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .registry import get

SUMMARY_VERSION = 1


def _plain(name: str, value):
    """A JSON value for one headline number: int, float, bool or str (NumPy scalars unwrapped;
    NaN, a number the data do not have, becomes null, which the results document refuses to
    quote)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON null: a number these data do not have
    raise TypeError(f"headline number {name!r} must be a number or text, not {type(value).__name__}")


def headline(name: str, data: dict) -> dict:
    """The summary of experiment `name` for its data dict: its name, the key of the inputs the
    data were computed from, and `numbers` (its module's `headline(data)`, sorted by name)."""
    numbers = get(name).module.headline(data)
    return {
        "experiment": name,
        "version": SUMMARY_VERSION,
        "inputs": data.get("inputs"),
        "numbers": {key: _plain(key, numbers[key]) for key in sorted(numbers)},
    }


def summary_text(summary: dict) -> str:
    """The file text of a summary (same summary, same bytes)."""
    return json.dumps(summary, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def save_summary(path: str | Path, summary: dict) -> Path:
    """Write a summary to `path` (atomically: a temporary file renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(summary_text(summary), encoding="utf-8")
    tmp.replace(path)
    return path


def load_summaries(folder: str | Path) -> dict[str, dict]:
    """{experiment name: its numbers} for every `<name>.json` summary in `folder`."""
    out = {}
    for path in sorted(Path(folder).glob("*.json")):
        summary = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(summary, dict) and "numbers" in summary and "experiment" in summary:
            out[summary["experiment"]] = summary["numbers"]
    return out
