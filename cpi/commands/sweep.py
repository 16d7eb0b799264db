"""`cpi sweep`: train a grid of configs (vmapped per bucket) and save one table.

Ctrl-C stops at once: the sweep runs in a worker thread, so the main thread receives the
interrupt even while a compiled chunk is running; it reports the chunk files already saved
(each is complete: written to a temporary name and renamed) and how to resume, and the
process exits with status 130 without waiting for the chunk in flight.

What describes the sweep (the base config, the points, the table, where the results are) goes
to standard output, so that `cpi sweep > log` keeps it together; progress bars, notes and
warnings go to standard error.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..arguments import add_config_arguments, add_force, add_record_every, check_out_dir, describe_run, load_config
from ..sweeps import check_shard_flags, run_interruptibly, shard_lines

FULL_TABLE_ROWS = 40
TAIL_ROWS = 5
"""Sweeps with more than FULL_TABLE_ROWS points print the first FULL_TABLE_ROWS // 2 and the
last TAIL_ROWS rows of the table only."""


def add_parser(subparsers):
    from cpi.core.shards import SHARD_HELP
    from cpi.sims.config import SWEEP_ENGINES, engine_name

    parser = subparsers.add_parser(
        "sweep",
        help="train a grid of configs as one vmapped computation per shape and save a table",
        description=(
            "Train every point of a grid of configs. A spec is section.key=start:stop:num "
            "(num evenly spaced values, both ends included) or section.key=v1,v2,...; "
            "several --grid specs form their Cartesian product. Points with the same array "
            "shapes, steps and dtype run as compiled, vmapped chunks sharded over the local "
            "devices. Writes DIR/sweep.npz, DIR/summary.csv, DIR/summary.json, DIR/config.toml and "
            "DIR/sweep.json (what the directory computes); every chunk is saved under DIR/groups as "
            "it finishes, and a rerun of the same command (after an interruption: Ctrl-C stops at "
            "once and keeps the saved chunks) computes only the missing chunks; the rerun of a finished "
            "sweep prints its table from DIR/summary.json. A directory holding "
            "another sweep is refused unless --force. A sweep whose recorded metrics would take more "
            "than 1 GiB says so before it starts, and one that would not fit on the disk is refused; "
            "--record-every N or --summaries-only records less. `cpi plot DIR` draws the summary."
        ),
    )
    add_config_arguments(parser, "the base config of every point")
    parser.add_argument(
        "--grid", action="append", default=[], metavar="SECTION.KEY=SPEC",
        help="a swept key (repeatable), e.g. --grid mixture.context_critical=0:1:41 "
             "or --grid train.lr=0.5,1,2",
    )
    parser.add_argument(
        "--seeds", type=int, default=1, metavar="N",
        help="also sweep train.seed over base seed + 0..N-1 (default 1); under the paper's embeddings "
             "the seed only relabels tokens, so every seed gives the same numbers",
    )
    parser.add_argument("--out", metavar="DIR", help="output directory (default sweeps/<hash of config, grid, seeds>)")
    add_record_every(parser)
    parser.add_argument(
        "--summaries-only", action="store_true",
        help="record no per-step metrics, only each point's summary (computed from every step)",
    )
    parser.add_argument(
        "--engine", choices=SWEEP_ENGINES, default="fast", type=engine_name,
        help="fast: the fast engine, exact for every config (default; 'full', its earlier name, is "
             "accepted); reduced: the exact group recursion of the "
             "theory, for W_V frozen, full-batch GD, one relation, float64 (refused otherwise)",
    )
    add_force(parser, "replace DIR when it holds another sweep (chunks both sweeps share are kept, "
                      "the others deleted)")
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
    shards = parser.add_argument_group(
        "shards (independent processes, e.g. a SLURM array job)",
        "Split the sweep's chunks over N processes started independently, on any machines that share DIR: "
        "each computes its share with no coordinator. Give every shard the same command and the same --out.",
    )
    shards.add_argument("--shard", metavar="I/N", help=SHARD_HELP.format(units="chunks of points"))
    parser.set_defaults(func=cmd_sweep)
    return parser


def _format_value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def table(grid, summaries) -> list[str]:
    """The printed table of a sweep's summary rows, one row per point of `grid` (compact when long)."""
    keys = grid.keys + (["seed"] if grid.seeds > 1 or not grid.keys else [])
    header = [*keys, "initial", "peak", "peak_step", "final", "inversion"]
    rows = []
    for row in summaries:
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


def _report_table(grid, summaries) -> None:
    """Print the inversion count and the table of `summaries` (stdout), and warn (stderr) of
    points that became non-finite."""
    n_inv = sum(bool(r["inversion"]) for r in summaries)
    print(f"context reliance M_C on the conflict test examples; inversion at {n_inv} of {len(summaries)} points:")
    print("\n".join(table(grid, summaries)))
    bad = [i for i, r in enumerate(summaries) if r["nonfinite_step"] is not None]
    if bad:
        print(
            f"warning: {len(bad)} point(s) became non-finite (smaller step sizes would help); "
            "their rows say at which step",
            file=sys.stderr,
        )


def cmd_sweep(args) -> int:
    from cpi.core.shards import parse_shard
    from cpi.sims.config import seeds_matter
    from cpi.sims.distributed import Processes, check_flags, join
    from cpi.sims.sweep import (ChunkWriter, check_disk_space, check_sweep, check_sweep_dir, default_sweep_dir,
                                record_size_note, run_shard, run_sweep, saved_chunk_count, sweep_identity)
    from cpi.sims.sweep_dir import finished_rows

    base = load_config(args)
    # every ConfigError before anything is printed, joined or written
    shard = parse_shard(args.shard)
    check_shard_flags(args, shard)
    check_flags(args.coordinator, args.num_processes, args.process_id)
    expanded = check_sweep(base, args.grid, args.seeds, args.record_every, args.summaries_only, args.engine)
    out = Path(args.out) if args.out else default_sweep_dir(base, args.grid, args.seeds)
    check_out_dir(out)
    identity = sweep_identity(base, args.grid, args.seeds, args.record_every, args.summaries_only, args.engine)
    check_sweep_dir(out, identity, force=args.force)
    # this sweep, finished: its table is summary.json's (neither the chunks nor sweep.npz are read)
    finished = None if args.force else finished_rows(out, identity, len(expanded), expanded.keys)
    if finished is None:
        check_disk_space(expanded, out, args.record_every, not args.summaries_only)
    if shard is None:
        processes = join(args.coordinator, args.num_processes, args.process_id, timeout=args.join_timeout)
    else:
        processes = Processes()
    point_steps = sum(c.train.steps for c in expanded.configs)
    if processes.writer:  # what the sweep is: stdout, with its table; notes and progress: stderr
        print(f"cpi sweep: base config {describe_run(base)}")
        print(f"  {len(expanded)} points, {point_steps:.3g} point-steps, engine {args.engine}"
              + (f", {processes.count} processes" if processes.count > 1 else "")
              + (f", shard {shard} (its share of the chunks)" if shard else ""))
        sys.stdout.flush()
        if not args.grid and args.seeds == 1:
            print("cpi sweep: note: no --grid, so the sweep has one point, the base config; `cpi run` trains "
                  "one config, and --grid SECTION.KEY=SPEC sweeps a key", file=sys.stderr)
        seeds_swept = args.seeds > 1 or "train.seed" in expanded.keys
        if seeds_swept and not any(seeds_matter(c) for c in expanded.configs):
            print("cpi sweep: warning: train.seed is swept, but under the paper's embeddings the seed only "
                  "relabels tokens: every seed gives the same numbers", file=sys.stderr)
    if finished is not None and processes.count == 1:
        print(f"{out} already holds this sweep, complete: nothing computed or written, the table is its "
              "summary.json's (--force rewrites sweep.npz and the summaries from the saved chunks, computing only "
              "chunks that are missing)")
        _report_table(expanded, finished)
        print(f"results in {out}: sweep.npz, summary.csv, summary.json, config.toml")
        return 0
    if processes.writer:
        note = record_size_note(expanded, args.record_every, not args.summaries_only)
        if note:
            print(f"cpi sweep: note: {note}", file=sys.stderr)
    if shard is None and processes.writer and not args.force and any((out / "groups").glob("*.npz")):
        saved, total = saved_chunk_count(expanded, out, args.record_every, args.summaries_only, args.engine)
        if 0 < saved < total:
            print(f"cpi sweep: {saved} of {total} chunk(s) of this sweep are already saved under {out}/groups; "
                  f"computing the {total - saved} missing, then writing the results", file=sys.stderr)

    def interrupted():
        ChunkWriter.wait_all()  # a chunk that finished is saved, not cut off mid-write
        saved, total = saved_chunk_count(expanded, out, args.record_every, args.summaries_only, args.engine)
        print(f"\ncpi sweep: interrupted; {saved} of {total} chunk(s) of this sweep are saved under "
              f"{out}/groups (the chunk in progress is lost); rerun the same command to compute only "
              "the missing ones", file=sys.stderr)

    start = time.perf_counter()
    options = dict(progress=True, record_every=args.record_every, summaries_only=args.summaries_only,
                   engine=args.engine, expanded=expanded)
    if shard is not None:
        report = run_interruptibly(lambda: run_shard(base, args.grid, args.seeds, out, shard=shard, **options),
                                   interrupted)
        if report.result is None:
            print("\n".join(shard_lines(report, out, "chunks", "groups", "cpi sweep")))
            return 0
        print(f"cpi sweep: shard {shard}: computed {report.computed} of its {report.mine} chunks; every chunk "
              "of the sweep is saved, so this shard wrote the results")
        result = report.result
    else:
        result = run_interruptibly(
            lambda: run_sweep(base, args.grid, args.seeds, out, processes=processes, force=args.force, **options),
            interrupted if processes.writer else (lambda: None),
        )
    elapsed = time.perf_counter() - start
    if result is None:  # not process 0: it writes and reports
        print(f"cpi sweep: process {processes.index} of {processes.count} done in {elapsed:.1f} s", file=sys.stderr)
        return 0
    copies = len(result) - result.trained_points
    distinct = (f" ({result.trained_points} distinct once the mixture is rounded to point counts, "
                f"{copies} copied)" if copies else "")
    print(
        f"{len(result)} points{distinct} in {result.n_buckets} bucket(s), "
        f"{result.computed_chunks + result.reused_chunks} chunk(s) "
        f"({result.computed_chunks} computed, {result.reused_chunks} reused); "
        f"compile+run {result.seconds:.1f} s, {elapsed:.1f} s in all"
    )
    _report_table(result.grid, result.summaries)
    print(f"wrote {result.out}/sweep.npz, summary.csv, summary.json, config.toml")
    return 0
