"""Saved results as the analysis stack's objects: a sweep as an xarray Dataset (its swept keys,
and its seeds where it has several, as dimensions) or a pandas DataFrame (one row per point),
a run as a DataFrame (one row per recorded step) or a Dataset over its steps. The methods
`SavedSweep.to_xarray`, `SavedSweep.to_dataframe`, `SavedRun.to_dataframe` and
`SavedRun.to_xarray` (`cpi.sims.saved`) call these.

pandas and xarray are an optional extra (`pip install 'cpi-sim[analysis]'`): they are imported
here, inside the functions, so that `cpi run` never loads them; without them a `MissingExtra`
(a ConfigError and an ImportError) names the extra to install.
"""

from __future__ import annotations

import importlib
import math

import numpy as np

from cpi.core.errors import ConfigError

EXTRA = "analysis"
INSTALL = f"pip install 'cpi-sim[{EXTRA}]'"
"""The extra that brings pandas, xarray and pyarrow (the distribution is `cpi-sim`)."""


class MissingExtra(ConfigError, ImportError):
    """An optional package is not installed: the message says which and how to install it
    (the CLI exits 2 and writes nothing)."""


def require(module: str, what: str, extra: str = EXTRA):
    """The module `module` (e.g. "xarray"), or MissingExtra naming `what` needs it and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{what} needs {module.split('.')[0]}, which is not installed: "
                           f"pip install 'cpi-sim[{extra}]' (or pip install {module.split('.')[0]})") from None


def grid_layout(saved) -> tuple[list[str], dict[str, list], tuple[int, ...]] | None:
    """(dims, coords, shape) of the sweep `saved` as a full grid: one dimension per swept key
    (the first slowest, as `cpi.core.grid` orders points) and an innermost `seed` dimension
    when the sweep has several seeds, each coordinate the key's values in grid order; None
    when the points are not such a product in that order (then they lie along one `point`
    dimension)."""
    rows = saved.rows
    dims = list(saved.keys) + (["seed"] if saved.document.get("seeds", 1) > 1 else [])
    coords = {d: list(dict.fromkeys(row[d] for row in rows)) for d in dims}
    shape = tuple(len(coords[d]) for d in dims)
    if math.prod(shape) != len(rows):
        return None
    index = {d: {v: j for j, v in enumerate(coords[d])} for d in dims}
    for i, row in enumerate(rows):
        if tuple(index[d][row[d]] for d in dims) != tuple(int(j) for j in np.unravel_index(i, shape)):
            return None
    return dims, coords, shape


def sweep_steps(saved) -> tuple[np.ndarray, list[np.ndarray]]:
    """(steps, per_point): every step some point of the sweep recorded (sorted), and each point's
    own recorded steps (`SavedSweep.point_steps`), which differ between points whose steps or
    recording strides differ."""
    per_point = [saved.point_steps(i) for i in range(len(saved))]
    first = per_point[0]
    if all(len(s) == len(first) and np.array_equal(s, first) for s in per_point):
        return first, per_point
    return np.unique(np.concatenate(per_point)), per_point


def sweep_metrics_on_steps(saved) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(steps, metrics): every recorded metric of the sweep as points × `steps` (the union of
    the points' recorded steps), NaN where a point did not record that step or lacks the
    metric; ({}, empty steps) for a sweep that recorded summaries only."""
    if not saved.recorded:
        return np.zeros(0, dtype=np.int64), {}
    metrics = dict(saved.metrics())
    metrics.pop("step")
    steps, per_point = sweep_steps(saved)
    width = next(iter(metrics.values())).shape[1] if metrics else 0
    if any(len(s) > width for s in per_point):
        raise ConfigError(f"{str(saved.path)!r}: a point records more steps than sweep.npz holds; the files do not "
                          "belong together, rerun the command that wrote it")
    if len(steps) == width and all(len(s) == width for s in per_point):
        return steps, metrics
    out = {}
    for name, value in metrics.items():
        placed = np.full((len(saved), len(steps)), np.nan)
        for i, own in enumerate(per_point):
            placed[i, np.searchsorted(steps, own)] = value[i, : len(own)]
        out[name] = placed
    return steps, out


def _summaries(saved) -> dict[str, np.ndarray]:
    """The per-point summary values of sweep.npz (`summary_<field>`), by field, plus `steps`
    (each point's last step) where the archive has it."""
    names = [n for n in saved.members if n.startswith("summary_")] + (["steps"] if "steps" in saved.members else [])
    arrays = saved.arrays(names)
    return {n.removeprefix("summary_"): v for n, v in arrays.items()}


def sweep_dataset(saved):
    """The sweep `saved` as an xarray Dataset.

    Dimensions: one per swept key (coordinates: its values) and `seed` when the sweep has
    several seeds (else `seed` is a coordinate without dimension), or a single `point`
    dimension with the swept keys and seeds as its coordinates when the points do not form a
    full grid; plus `step` (every recorded step) for the metrics. Variables: every recorded
    metric over (..., step), NaN where a point did not record a step; every summary value of
    sweep.npz (`peak_reliance`, `inversion`, `achieved_delta_c`, ...; `steps`, each point's
    last step) without `step`. Attributes: `kind`, `swept_keys` (a list), `seeds`,
    `record_every`, `engine`, `grid` (the specs, a list) and `config_toml` (the base config).
    """
    xr = require("xarray", "SavedSweep.to_xarray")
    steps, metrics = sweep_metrics_on_steps(saved)
    summaries = _summaries(saved)
    layout = grid_layout(saved)
    if layout is not None:
        dims, coords, shape = layout
        coord_vars = {d: (d, np.asarray(coords[d])) for d in dims}
        if "seed" not in dims:
            seeds = {row["seed"] for row in saved.rows}
            if len(seeds) == 1:
                coord_vars["seed"] = ((), np.int64(seeds.pop()))
            else:  # one seed per point, but not the same for all: a coordinate over the grid
                coord_vars["seed"] = (dims, np.asarray([r["seed"] for r in saved.rows]).reshape(shape))
    else:
        dims, shape = ["point"], (len(saved),)
        coord_vars = {"point": ("point", np.arange(len(saved)))}
        for key in [*saved.keys, "seed"]:
            coord_vars[key] = ("point", np.asarray([row[key] for row in saved.rows]))
    data_vars = {}
    for name, value in metrics.items():
        data_vars[name] = ([*dims, "step"], value.reshape(*shape, len(steps)))
    for name, value in summaries.items():
        if name in data_vars:  # a summary field named as a metric keeps its prefix
            name = f"summary_{name}"
        data_vars[name] = (dims, value.reshape(shape))
    if metrics:
        coord_vars["step"] = ("step", steps)
    doc = saved.document
    attrs = {
        "kind": saved.kind,
        "swept_keys": list(saved.keys),
        "seeds": int(doc.get("seeds", 1)),
        "record_every": int(saved.record_every),
        "engine": str(doc.get("engine", "")),
        "grid": [str(g) for g in doc.get("grid", [])],
        "config_toml": saved.schema.to_toml(saved.config),
        "source": str(saved.path),
    }
    return xr.Dataset(data_vars, coords=coord_vars, attrs=attrs)


def _cell(value):
    """A summary.json value for a DataFrame cell (None as NaN for a number column)."""
    return np.nan if value is None else value


def sweep_frame(saved):
    """The sweep `saved` as a pandas DataFrame, one row per point (index `point`, as in DIR#i):
    its swept keys, `seed`, then every other value of its summary row in summary.json (the
    reliance summary, the achieved strengths δ_C, δ_M where the point has them, ...) in name
    order."""
    pd = require("pandas", "SavedSweep.to_dataframe")
    lead = [*saved.keys, "seed"]
    fields = sorted({f for row in saved.rows for f in row} - set(lead))
    columns = {c: [_cell(row.get(c)) for row in saved.rows] for c in (*lead, *fields)}
    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(saved), name="point"))
    return frame


def run_frame(saved):
    """The run `saved` as a pandas DataFrame: one row per recorded step (index `step`), one
    column per metric of metrics.npz in name order."""
    pd = require("pandas", "SavedRun.to_dataframe")
    metrics = saved.metrics
    names = sorted(n for n in metrics if n != "step")
    return pd.DataFrame({n: metrics[n] for n in names}, index=pd.Index(metrics["step"], name="step"))


def run_dataset(saved):
    """The run `saved` as an xarray Dataset: every metric over `step`; attributes `kind`,
    `config_toml` and the numbers and flags of summary.json (those that are None left out)."""
    xr = require("xarray", "SavedRun.to_xarray")
    metrics = saved.metrics
    data_vars = {n: ("step", v) for n, v in sorted(metrics.items()) if n != "step"}
    attrs = {"kind": saved.kind, "config_toml": saved.schema.to_toml(saved.config), "source": str(saved.path)}
    for name, value in sorted(saved.summary.items()):
        if isinstance(value, (bool, int, float, str)) and name not in attrs:
            attrs[name] = int(value) if isinstance(value, bool) else value
    return xr.Dataset(data_vars, coords={"step": ("step", metrics["step"])}, attrs=attrs)
