"""`cpi sweep`: train a grid of configs (vmapped per shape group) and save one table.

Wired into `sims.cli` by `add_sweep_parser(subparsers)`; bad input raises ConfigError before
anything is written, which `sims.cli.main` turns into exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

FULL_TABLE_ROWS = 40
TAIL_ROWS = 5
"""Sweeps with more than FULL_TABLE_ROWS points print the first FULL_TABLE_ROWS // 2 and the
last TAIL_ROWS rows of the table only."""


def add_sweep_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cpi sweep` on an `add_subparsers()` object; returns its parser."""
    from .chunks import ENGINES
    from .cli import _add_config_args, add_record_every

    parser = subparsers.add_parser(
        "sweep",
        help="train a grid of configs as one vmapped computation per shape and save a table",
        description=(
            "Train every point of a grid of configs. A spec is section.key=start:stop:num "
            "(num evenly spaced values, both ends included) or section.key=v1,v2,...; "
            "several --grid specs form their Cartesian product. Points with the same array "
            "shapes, steps and dtype run as compiled, vmapped chunks sharded over the local "
            "devices. Writes DIR/sweep.npz, DIR/summary.csv, DIR/summary.json and "
            "DIR/config.toml; every chunk is saved under DIR/groups as it finishes, and a rerun "
            "(after an interruption, or with a larger grid) computes only the missing chunks."
        ),
    )
    _add_config_args(parser)
    parser.add_argument(
        "--grid", action="append", default=[], metavar="SECTION.KEY=SPEC",
        help="a swept key (repeatable), e.g. --grid mixture.context_critical=0:1:41 "
             "or --grid train.lr=0.5,1,2",
    )
    parser.add_argument(
        "--seeds", type=int, default=1, metavar="N",
        help="also sweep train.seed over base seed + 0..N-1 (default 1)",
    )
    parser.add_argument("--out", metavar="DIR", help="output directory (default sweeps/<hash of config, grid, seeds>)")
    add_record_every(parser)
    parser.add_argument(
        "--summaries-only", action="store_true",
        help="record no per-step metrics, only each point's summary (computed from every step)",
    )
    parser.add_argument(
        "--engine", choices=ENGINES, default="full",
        help="full: the fast exact simulator (default); reduced: the exact group recursion of the "
             "theory, for W_V frozen, full-batch GD, one relation, float64 (refused otherwise)",
    )
    group = parser.add_argument_group(
        "several processes (jax.distributed)",
        "Run one sweep over N processes, e.g. one per node of a cluster: each computes its share "
        "of the chunks and process 0 writes the results. Without these flags, a SLURM or Open MPI "
        "job of several tasks is detected by JAX itself.",
    )
    group.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    group.add_argument("--num-processes", type=int, metavar="N", help="how many processes run the sweep")
    group.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0..N-1")
    group.add_argument("--join-timeout", type=int, default=60, metavar="SECONDS",
                       help="give up (exit 2) when the processes have not all joined in time (default 60)")
    parser.set_defaults(func=cmd_sweep)
    return parser


def _format_value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _table(result) -> list[str]:
    keys = result.grid.keys + (["seed"] if result.grid.seeds > 1 or not result.grid.keys else [])
    header = [*keys, "initial", "peak", "peak_step", "final", "inversion"]
    rows = []
    for row in result.summaries:
        cells = [_format_value(row[k]) for k in keys]
        if row["nonfinite_step"] is not None:
            cells += ["-", "-", "-", "-", f"non-finite at step {row['nonfinite_step']}"]
        else:
            cells += [
                f"{row['initial_reliance']:.4f}", f"{row['peak_reliance']:.4f}", str(row["peak_step"]),
                f"{row['final_reliance']:.4f}", "yes" if row["inversion"] else "no",
            ]
        rows.append(cells)
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]

    def line(cells):
        return "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths)).rstrip()

    lines = [line(header)]
    if len(rows) <= FULL_TABLE_ROWS:
        lines += [line(r) for r in rows]
    else:
        head, tail = FULL_TABLE_ROWS // 2, TAIL_ROWS
        lines += [line(r) for r in rows[:head]]
        lines.append(f"  ... {len(rows) - head - tail} more points (see summary.csv) ...")
        lines += [line(r) for r in rows[-tail:]]
    return lines


def cmd_sweep(args) -> int:
    from .cli import _describe, _load_config
    from .distributed import check_flags, join
    from .sweep import check_sweep, run_sweep

    base = _load_config(args)
    # every ConfigError before anything is printed, joined or written
    check_flags(args.coordinator, args.num_processes, args.process_id)
    expanded = check_sweep(base, args.grid, args.seeds, args.record_every, args.summaries_only, args.engine)
    processes = join(args.coordinator, args.num_processes, args.process_id, timeout=args.join_timeout)
    point_steps = sum(c.train.steps for c in expanded.configs)
    if processes.writer:
        print(f"cpi sweep: base config {_describe(base)}", file=sys.stderr)
        print(f"  {len(expanded)} points, {point_steps:.3g} point-steps, engine {args.engine}"
              + (f", {processes.count} processes" if processes.count > 1 else ""), file=sys.stderr)
    start = time.perf_counter()
    result = run_sweep(base, args.grid, args.seeds, Path(args.out) if args.out else None, progress=True,
                       record_every=args.record_every, summaries_only=args.summaries_only,
                       engine=args.engine, processes=processes, expanded=expanded)
    elapsed = time.perf_counter() - start
    if result is None:  # not process 0: it writes and reports
        print(f"cpi sweep: process {processes.index} of {processes.count} done in {elapsed:.1f} s", file=sys.stderr)
        return 0
    n_inv = sum(bool(r["inversion"]) for r in result.summaries)
    print(
        f"{len(result)} points in {result.n_groups} shape group(s), "
        f"{result.computed_chunks + result.reused_chunks} chunk(s) "
        f"({result.computed_chunks} computed, {result.reused_chunks} reused); "
        f"compile+run {result.seconds:.1f} s, {elapsed:.1f} s in all"
    )
    print(f"context reliance M_C on the conflict test points; inversion at {n_inv} of {len(result)} points:")
    print("\n".join(_table(result)))
    bad = [i for i, r in enumerate(result.summaries) if r["nonfinite_step"] is not None]
    if bad:
        print(
            f"warning: {len(bad)} point(s) became non-finite (smaller step sizes would help); "
            "their rows say at which step",
            file=sys.stderr,
        )
    print(f"wrote {result.out}/sweep.npz, summary.csv, summary.json, config.toml")
    return 0
