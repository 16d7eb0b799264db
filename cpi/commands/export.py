"""`cpi export DIR [--format csv|parquet|netcdf]`: a saved run's per-step metrics, or a saved
sweep's table, as CSV or Parquet (the same table, typed), or the whole result as NetCDF (the
xarray Dataset of `SavedSweep.to_xarray` / `SavedRun.to_xarray`)."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from cpi.core.sweep_dir import csv_cell

from ..arguments import check_out_file


FORMATS = ("csv", "parquet", "netcdf")
SUFFIXES = {"csv": ".csv", "parquet": ".parquet", "netcdf": ".nc"}


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export", help="write a saved run's per-step metrics, or a saved sweep's table, as CSV, Parquet or NetCDF",
        description=(
            "Write a directory written by `cpi run`, `cpi bridge`, `cpi sweep` or `cpi bridge --grid` as "
            "CSV. A run: a `step` column, then one column per metric (names as in metrics.npz), one row "
            "per recorded step. A sweep that recorded metrics: the swept keys, `seed` and `step`, then "
            "one column per metric, one row per point and recorded step (nan where a point lacks the "
            "metric). A sweep that recorded summaries only (--summaries-only): its summary rows, one per "
            "point (the swept keys, `seed`, then the summary values). Numbers as exact decimals. To "
            "standard output unless --out is given; for a sweep, standard error says which table it is. "
            "--format parquet writes the same table as a Parquet file (typed columns; needs pyarrow). "
            "--format netcdf writes the whole result as one NetCDF file (netCDF-3, through xarray and "
            "scipy): a sweep's swept keys (and seeds) as dimensions, every metric over them and `step`, "
            "every summary value without `step`, the base config's TOML in the attribute config_toml "
            "(list attributes as JSON text; integers as 32-bit, netCDF-3's widest); a run's metrics over "
            "`step`, its summary in the attributes. Parquet and NetCDF need --out and the analysis extra "
            "(pip install 'cpi-sim[analysis]')."
        ),
    )
    parser.add_argument("dir", metavar="DIR", help="a directory written by cpi run, cpi sweep or cpi bridge")
    parser.add_argument("--format", choices=FORMATS, default="csv",
                        help="csv (default), parquet (the same table, typed) or netcdf (the whole result)")
    parser.add_argument("--out", metavar="FILE",
                        help="the file to write (default for CSV: standard output; Parquet and NetCDF need it)")
    parser.set_defaults(func=cmd_export)
    return parser


def cmd_export(args) -> int:
    from cpi.sims.results import metrics_csv_bytes, write_atomic
    from cpi.sims.saved import SavedRun, read

    from cpi.core.errors import ConfigError

    saved = read(args.dir)
    if args.format != "csv" and not args.out:
        raise ConfigError(f"--format {args.format} writes a binary file: give --out FILE{SUFFIXES[args.format]}")
    if args.out:
        check_out_file(args.out)
    if args.format == "parquet":
        data, what = parquet_bytes(saved)
    elif args.format == "netcdf":
        data, what = netcdf_bytes(saved)
    elif isinstance(saved, SavedRun):
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


def table(saved):
    """The table that CSV and Parquet hold, as a pandas DataFrame: a run's `step` and metrics; a
    sweep's swept keys, `seed`, `step` and metrics, one row per point and step it recorded; a
    summaries-only sweep's summary rows."""
    from cpi.sims.analysis import require
    from cpi.sims.saved import SavedRun

    pd = require("pandas", f"cpi export {saved.path}")
    if isinstance(saved, SavedRun):
        return saved.to_dataframe().reset_index()
    if not saved.recorded:
        return saved.to_dataframe().reset_index(drop=True)
    import numpy as np

    metrics = saved.metrics()
    names = saved.metric_names()
    parts = []
    for i, row in enumerate(saved.rows):
        steps = saved.point_steps(i)
        lead = {k: np.repeat(np.asarray([row[k]]), len(steps)) for k in (*saved.keys, "seed")}
        parts.append(pd.DataFrame({**lead, "step": steps, **{n: metrics[n][i, : len(steps)] for n in names}}))
    return pd.concat(parts, ignore_index=True)


def parquet_bytes(saved) -> tuple[bytes, str]:
    """(Parquet file, description) of `table(saved)`."""
    import io as _io

    from cpi.sims.analysis import require

    require("pyarrow", "cpi export --format parquet")
    frame = table(saved)
    buffer = _io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    return buffer.getvalue(), f"Parquet, {len(frame)} rows, {len(frame.columns)} columns"


def netcdf_bytes(saved) -> tuple[bytes, str]:
    """(NetCDF file, description) of the result's Dataset (`to_xarray`), written by xarray's
    scipy engine (netCDF-3: scipy is already a dependency, where the netCDF4 engine would add
    HDF5): list attributes become JSON text, booleans 0/1, integers 32-bit."""
    import json

    dataset = saved.to_xarray()
    dataset.attrs = {k: json.dumps(v) if isinstance(v, (list, tuple, dict)) else int(v) if isinstance(v, bool) else v
                     for k, v in dataset.attrs.items()}
    data = bytes(dataset.to_netcdf(engine="scipy"))
    sizes = ", ".join(f"{k} {v}" for k, v in dataset.sizes.items())
    return data, f"NetCDF, {len(dataset.data_vars)} variables over {sizes or 'no dimension'}"
