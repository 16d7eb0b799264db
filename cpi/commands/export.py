"""`cpi export DIR`: a saved run's per-step metrics, or a saved sweep's table, as CSV."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from cpi.core.sweep_dir import csv_cell

from ..arguments import check_out_file


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export", help="write a saved run's per-step metrics, or a saved sweep's table, as CSV",
        description=(
            "Write a directory written by `cpi run`, `cpi bridge`, `cpi sweep` or `cpi bridge --grid` as "
            "CSV. A run: a `step` column, then one column per metric (names as in metrics.npz), one row "
            "per recorded step. A sweep that recorded metrics: the swept keys, `seed` and `step`, then "
            "one column per metric, one row per point and recorded step (nan where a point lacks the "
            "metric). A sweep that recorded summaries only (--summaries-only): its summary rows, one per "
            "point (the swept keys, `seed`, then the summary values). Numbers as exact decimals. To "
            "standard output unless --out is given; for a sweep, standard error says which table it is."
        ),
    )
    parser.add_argument("dir", metavar="DIR", help="a directory written by cpi run, cpi sweep or cpi bridge")
    parser.add_argument("--out", metavar="FILE.csv", help="the CSV file (default: standard output)")
    parser.set_defaults(func=cmd_export)
    return parser


def cmd_export(args) -> int:
    from cpi.sims.results import metrics_csv_bytes, write_atomic
    from cpi.sims.saved import SavedRun, read

    saved = read(args.dir)
    if args.out:
        check_out_file(args.out)
    if isinstance(saved, SavedRun):
        data = metrics_csv_bytes(saved.metrics)
        what = f"{len(saved.metrics['step'])} steps, {len(saved.metrics) - 1} metrics"
    elif saved.recorded:
        data, what = sweep_metrics_csv_bytes(saved)
    else:
        data, what = sweep_summary_csv_bytes(saved)
    if not args.out:
        sys.stdout.write(data.decode())
        if not isinstance(saved, SavedRun):
            print(f"exported {saved.path} ({what})", file=sys.stderr)
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, data)
    print(f"wrote {out} ({what})", file=sys.stderr)
    return 0


def sweep_metrics_csv_bytes(saved) -> tuple[bytes, str]:
    """(CSV, description) of a sweep's recorded metrics: the swept keys, `seed`, `step`, then
    every metric in name order; one row per point and step it recorded."""
    from cpi.core.errors import ConfigError

    metrics = saved.metrics()
    names = saved.metric_names()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*saved.keys, "seed", "step", *names])
    n_rows = 0
    for i, row in enumerate(saved.rows):
        steps = saved.point_steps(i)
        if len(steps) > len(metrics["step"]):
            raise ConfigError(f"{str(saved.path)!r}: point {i} records {len(steps)} steps, sweep.npz holds "
                              f"{len(metrics['step'])}; the files do not belong together, rerun the command "
                              "that wrote it")
        lead = [csv_cell(row[k]) for k in (*saved.keys, "seed")]
        columns = [metrics[name][i, : len(steps)].tolist() for name in names]
        for j, step in enumerate(steps.tolist()):
            writer.writerow([*lead, str(step), *(repr(c[j]) for c in columns)])
        n_rows += len(steps)
    what = (f"sweep metrics: one row per point and recorded step, {len(saved)} points, {n_rows} rows, "
            f"{len(names)} metrics")
    return buffer.getvalue().encode(), what


def sweep_summary_csv_bytes(saved) -> tuple[bytes, str]:
    """(CSV, description) of a sweep's summary rows: the swept keys, `seed`, then the other
    summary values in name order; one row per point."""
    lead = [*saved.keys, "seed"]
    fields = sorted({f for row in saved.rows for f in row} - set(lead))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*lead, *fields])
    for row in saved.rows:
        writer.writerow([csv_cell(row.get(f)) for f in (*lead, *fields)])
    what = (f"sweep summaries: no metrics were recorded (--summaries-only), so one summary row per point, "
            f"{len(saved)} points")
    return buffer.getvalue().encode(), what
