"""`cpi compare DIR...`: the summaries of saved runs (and of every point of saved sweeps)
side by side, and the config keys in which they differ; every kind of result directory
(`cpi.sims.saved.read`)."""

from __future__ import annotations

import json
from pathlib import Path

SUMMARY_COLUMNS = (("initial_reliance", "initial"), ("peak_reliance", "peak"), ("peak_step", "peak_step"),
                   ("final_reliance", "final"), ("inversion", "inversion"))
MISSING = "-"
"""The cell of a key that a row's config does not have (a toy key in a transformer run's row)."""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "compare", help="a table of the summaries of saved runs and sweeps and of the config keys that differ",
        description=(
            "Read the directories written by `cpi run`, `cpi bridge`, `cpi sweep` or `cpi bridge --grid` "
            "and print one row per run, and one per point of a sweep (labelled DIR#i): the config keys "
            "whose values differ between the rows (`-` where a row's config has no such key: the toy "
            "model and the transformer have different keys), then initial, peak (and its step) and final "
            "context reliance and whether it inverts. A directory that cannot be read is refused by name. "
            "Writes nothing; --json prints the same as JSON."
        ),
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR",
                        help="directories written by cpi run, cpi sweep or cpi bridge")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=cmd_compare)
    return parser


def _entries(saved) -> list[tuple[str, object, object, dict]]:
    """(label, config, schema, summary) of a run, or of every point of a sweep."""
    from cpi.sims.saved import SavedRun

    if isinstance(saved, SavedRun):
        return [(str(saved.path), saved.config, saved.schema, saved.summary)]
    return [(saved.label(i), saved.point_config(i), saved.schema, row) for i, row in enumerate(saved.rows)]


def _value(config, key: str):
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def differing_keys(entries) -> list[str]:
    """The config keys whose values differ among the rows whose config has them, in key order
    (the toy's keys first, then the transformer's own)."""
    order: dict[str, None] = {}
    for _, _, schema, _ in entries:
        order.update(dict.fromkeys(schema.all_keys()))
    out = []
    for key in order:
        values = {_value(config, key) for _, config, schema, _ in entries if key in schema.keys}
        if len(values) > 1:
            out.append(key)
    return out


def _cell(v) -> str:
    if v is None:
        return MISSING
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


def cmd_compare(args) -> int:
    from cpi.sims.saved import read

    saved = [read(Path(d)) for d in args.dirs]
    entries = [entry for s in saved for entry in _entries(s)]
    keys = differing_keys(entries)
    kinds = {"transformer" if s.bridge else "toy" for s in saved}
    rows = []
    for (label, config, schema, summary), kind in zip(entries, _kinds(saved)):
        row = {"run": label, "kind": kind}
        for key in keys:
            row[key] = _value(config, key) if key in schema.keys else None
        row.update({field: summary.get(field) for field, _ in SUMMARY_COLUMNS})
        rows.append(row)
    if args.json:
        print(json.dumps({"differing_keys": keys, "runs": rows}, indent=2))
        return 0
    columns = ["run", *(["kind"] if len(kinds) > 1 else []), *keys, *(f for f, _ in SUMMARY_COLUMNS)]
    header = ["run", *(["kind"] if len(kinds) > 1 else []), *keys, *(name for _, name in SUMMARY_COLUMNS)]
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(h), *(len(r[j]) for r in cells)) for j, h in enumerate(header)]
    for line in [header, *cells]:
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(line, widths))).rstrip())
    print(f"config keys that differ: {', '.join(keys) if keys else 'none (the same config)'}")
    return 0


def _kinds(saved) -> list[str]:
    """'toy' or 'transformer' for every row of `_entries`, in order."""
    from cpi.sims.saved import SavedRun

    return [("transformer" if s.bridge else "toy") for s in saved
            for _ in range(1 if isinstance(s, SavedRun) else len(s))]
