"""A finished toy sweep (`SweepResult`): how the values of its chunks are assembled into
arrays over every point, its summary rows, and `load_sweep`, which reads a saved one back."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpi.core.errors import ConfigError

from .chunks import SUMMARY_FIELDS
from .config import Config, engine_name
from .engine import recorded_steps
from .grid import Grid, expand_grid


@dataclass
class SweepResult:
    """A finished sweep. Point i has config `configs[i]`, coordinates `coords[key][i]` (every
    swept key, and `seed`), summary row `summaries[i]` (from every step) and, unless the sweep
    was summaries-only, metrics `metrics[name][i, j]` at step `metrics["step"][j]` (steps 0,
    N, 2N, ... for `record_every` N; NaN-padded after a point's last recorded step, which
    is its final step `steps[i]`)."""

    grid: Grid
    coords: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    steps: np.ndarray
    summaries: list[dict]
    out: Path | None = None
    record_every: int = 1
    engine: str = "fast"
    seconds: float = 0.0  # compile + run time of the chunks computed by this call
    computed_chunks: int = 0
    reused_chunks: int = 0
    n_buckets: int = 0  # the sweep's buckets (`cpi.sims.chunks.bucket_points`)
    trained_points: int = 0  # points of distinct `chunks.world_key`, the others copied (0 when loaded)

    @property
    def n_groups(self) -> int:
        """`n_buckets`, under its former name."""
        return self.n_buckets

    @property
    def configs(self) -> tuple[Config, ...]:
        return self.grid.configs

    def __len__(self) -> int:
        return len(self.grid)

    def point_metrics(self, i: int) -> dict[str, np.ndarray]:
        """The metrics of point i as `cpi.sims.train.run` returns them (with the same
        record_every), the metrics of absent groups (NaN from the first step) left out."""
        recorded = recorded_steps(int(self.steps[i]), self.record_every)
        n = len(recorded)
        out = {k: v[i, :n] for k, v in self.metrics.items() if k != "step" and not np.isnan(v[i, 0])}
        out["step"] = recorded
        return out


def _summary_rows(grid: Grid, summary: dict[str, np.ndarray]) -> list[dict]:
    rows = []
    for i, point in enumerate(grid.points):
        row = dict(point)
        row["seed"] = grid.configs[i].train.seed
        row["initial_reliance"] = float(summary["initial_reliance"][i])
        row["peak_reliance"] = float(summary["peak_reliance"][i])
        row["peak_step"] = int(summary["peak_step"][i])
        row["final_reliance"] = float(summary["final_reliance"][i])
        row["inversion"] = bool(summary["inversion"][i])
        bad = int(summary["nonfinite_step"][i])
        row["nonfinite_step"] = None if bad < 0 else bad
        row["achieved_delta_c"] = float(summary["achieved_delta_c"][i])
        row["achieved_delta_m"] = float(summary["achieved_delta_m"][i])
        rows.append(row)
    return rows


def _assemble(grid: Grid, chunk_values: list[tuple[list[int], dict]], record_every: int) -> tuple[dict, dict]:
    """(metrics, summary arrays) over all points from each chunk's (indices, values): row r of
    every value is point indices[r]'s."""
    n = len(grid)
    summary = {}
    for field in SUMMARY_FIELDS:
        first = chunk_values[0][1][field]
        summary[field] = np.empty(n, dtype=first.dtype)
        for indices, values in chunk_values:
            summary[field][indices] = values[field]
    steps = max(c.train.steps for c in grid.configs)
    recorded = recorded_steps(steps, record_every)
    names = sorted({name for _, values in chunk_values for name in values} - set(SUMMARY_FIELDS))
    metrics = {}
    whole = len(chunk_values) == 1 and list(chunk_values[0][0]) == list(range(n))
    for name in names:  # a metric some groups lack (reliance_r2 with one relation, say) is NaN there
        if whole and chunk_values[0][1][name].shape == (n, len(recorded)):  # one chunk in order: as it is
            metrics[name] = chunk_values[0][1][name]
            continue
        dtype = np.result_type(*(values[name].dtype for _, values in chunk_values if name in values))
        filled = sum(len(indices) for indices, values in chunk_values
                     if name in values and values[name].shape[1] == len(recorded))
        # every point's row whole (the chunks' points are disjoint): nothing is left as NaN
        stacked = np.empty((n, len(recorded)), dtype) if filled == n else np.full((n, len(recorded)), np.nan, dtype)
        for indices, values in chunk_values:
            if name in values:
                stacked[indices, : values[name].shape[1]] = values[name]
        metrics[name] = stacked
    if metrics:
        metrics["step"] = recorded
    return metrics, summary


def _coords(grid: Grid) -> dict[str, np.ndarray]:
    coords = {a.key: np.array([p[a.key] for p in grid.points]) for a in grid.axes}
    coords["seed"] = np.array([c.train.seed for c in grid.configs], dtype=np.int64)
    return coords


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v.item() if isinstance(v, np.generic) else v


def load_sweep(sweep_dir: str | Path) -> SweepResult:
    """A saved toy sweep, without recomputing anything (`cpi.sims.saved.read`); ConfigError naming
    the directory when it cannot be read or holds another kind of result (a
    `cpi.sims.saved.Incomplete`, also a FileNotFoundError, when it is missing or incomplete)."""
    from .saved import SWEEP, read

    sweep_dir = Path(sweep_dir)
    saved = read(sweep_dir)
    if saved.kind != SWEEP:
        raise ConfigError(f"{str(sweep_dir)!r} holds a {saved.kind}, not a sweep of the toy model")
    try:
        expanded = expand_grid(saved.config, saved.document["grid"], saved.document["seeds"])
    except (ConfigError, KeyError, TypeError) as err:
        raise ConfigError(f"{str(sweep_dir)!r}: summary.json's grid cannot be expanded ({err}); "
                          "rerun the command that wrote it") from None
    if len(expanded) != len(saved) or expanded.keys != saved.keys:
        raise ConfigError(f"{str(sweep_dir)!r}: summary.json's points ({len(saved)}, over {saved.keys}) are not "
                          f"its grid's ({len(expanded)}, over {expanded.keys}); rerun the command that wrote it")
    arrays = saved.arrays()
    coords = {k: arrays.pop(k) for k in [*expanded.keys, "seed"]}
    steps = arrays.pop("steps", None)
    if steps is None:
        raise ConfigError(f"{str(sweep_dir)!r}: sweep.npz lacks 'steps'; rerun the command that wrote it")
    # A sweep saved before the achieved strengths were columns has NaN for them.
    summary = {f: arrays.pop(f"summary_{f}", None) for f in SUMMARY_FIELDS}
    summary = {f: np.full(len(expanded), np.nan) if v is None else v for f, v in summary.items()}
    return SweepResult(grid=expanded, coords=coords, metrics=arrays, steps=steps,
                       summaries=_summary_rows(expanded, summary), out=sweep_dir,
                       record_every=saved.record_every, engine=engine_name(saved.document.get("engine", "fast")))
