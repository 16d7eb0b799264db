"""`cpi compare DIR...`: the summaries of several saved runs side by side, and the config
keys in which they differ."""

from __future__ import annotations

import json
from pathlib import Path

SUMMARY_COLUMNS = (("initial_reliance", "initial"), ("peak_reliance", "peak"), ("peak_step", "peak_step"),
                   ("final_reliance", "final"), ("inversion", "inversion"))


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "compare", help="a table of the summaries of saved runs and of the config keys that differ",
        description=(
            "Read the directories written by `cpi run` and print one row per run: the config keys "
            "whose values differ between the runs, then initial, peak (and its step) and final context "
            "reliance and whether the run inverts. Writes nothing; --json prints the same as JSON."
        ),
    )
    parser.add_argument("dirs", nargs="+", metavar="RUN_DIR", help="directories written by cpi run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=cmd_compare)
    return parser


def _load(path: Path):
    from sims import config as cfg
    from sims.errors import ConfigError

    if not (path / "summary.json").is_file() or not (path / "config.toml").is_file():
        raise ConfigError(f"{str(path)!r} holds no complete run (config.toml and summary.json); "
                          "cpi compare takes directories written by cpi run")
    summary = json.loads((path / "summary.json").read_text())
    if "points" in summary:
        raise ConfigError(f"{str(path)!r} holds a sweep; cpi compare takes run directories "
                          "(a sweep's summary.csv already compares its points)")
    return cfg.load(path / "config.toml"), summary


def differing_keys(configs) -> list[str]:
    """The config keys whose values are not the same in every config, in key order."""
    from sims import config as cfg

    def value(config, key):
        section, name = key.split(".")
        return getattr(getattr(config, section), name)

    return [k for k in cfg.all_keys() if len({value(c, k) for c in configs}) > 1]


def _cell(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


def cmd_compare(args) -> int:
    paths = [Path(d) for d in args.dirs]
    loaded = [_load(p) for p in paths]
    configs = [c for c, _ in loaded]
    keys = differing_keys(configs)
    rows = []
    for path, (config, summary) in zip(paths, loaded):
        row = {"run": str(path)}
        for key in keys:
            section, name = key.split(".")
            row[key] = getattr(getattr(config, section), name)
        row.update({field: summary.get(field) for field, _ in SUMMARY_COLUMNS})
        rows.append(row)
    if args.json:
        print(json.dumps({"differing_keys": keys, "runs": rows}, indent=2))
        return 0
    header = ["run", *keys, *(name for _, name in SUMMARY_COLUMNS)]
    cells = [[_cell(row[c]) for c in ("run", *keys, *(f for f, _ in SUMMARY_COLUMNS))] for row in rows]
    widths = [max(len(h), *(len(r[j]) for r in cells)) for j, h in enumerate(header)]
    for line in [header, *cells]:
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(line, widths))).rstrip())
    print(f"config keys that differ: {', '.join(keys) if keys else 'none (the same config)'}")
    return 0
