"""`cpi export RUN_DIR`: the per-step metrics of a saved run as CSV."""

from __future__ import annotations

import sys
from pathlib import Path

from ..arguments import check_out_file


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export", help="write a saved run's per-step metrics as CSV",
        description=(
            "Write the metrics of a directory written by `cpi run` as CSV: a `step` column, then one "
            "column per metric (names as in metrics.npz), one row per recorded step; numbers as exact "
            "decimals. To standard output unless --out is given."
        ),
    )
    parser.add_argument("dir", metavar="RUN_DIR", help="a directory written by cpi run")
    parser.add_argument("--out", metavar="FILE.csv", help="the CSV file (default: standard output)")
    parser.set_defaults(func=cmd_export)
    return parser


def cmd_export(args) -> int:
    from sims.errors import ConfigError
    from sims.results import load_run, metrics_csv_bytes, write_atomic

    source = Path(args.dir)
    if not (source / "metrics.npz").is_file() or not (source / "summary.json").is_file():
        raise ConfigError(f"{str(source)!r} holds no complete run (metrics.npz and summary.json); "
                          "cpi export takes a directory written by cpi run")
    if args.out:
        check_out_file(args.out)
    _, metrics, _ = load_run(source)
    data = metrics_csv_bytes(metrics)
    if not args.out:
        sys.stdout.write(data.decode())
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, data)
    print(f"wrote {out} ({len(metrics['step'])} steps, {len(metrics) - 1} metrics)", file=sys.stderr)
    return 0
