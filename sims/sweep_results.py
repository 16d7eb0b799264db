"""A finished toy sweep (`SweepResult`): how the values of its chunks are assembled into
arrays over every point, its summary rows, and `load_sweep`, which reads a saved one back."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpi.core.errors import ConfigError

from .chunks import SUMMARY_FIELDS
from .config import Config, engine_name
from .engine import recorded_steps
from .grid import Grid, expand_grid
from .results import Deferred


@dataclass
class SweepResult:
    """A finished sweep. Point i has config `configs[i]`, coordinates `coords[key][i]` (every
    swept key, and `seed`), summary row `summaries[i]` (from every step) and, unless the sweep
    was summaries-only, metrics `metrics[name][i, j]` at step `metrics["step"][j]` (steps 0,
    N, 2N, ... for `record_every` N; NaN-padded after a point's last recorded step, which
    is its final step `steps[i]`)."""

    grid: Grid
    coords: dict[str, np.ndarray]
    metrics: Mapping[str, np.ndarray]
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


class Gathered(Mapping):
    """The sweep's metrics over every point, gathered from the chunks' rows when read: name ->
    (n points, recorded steps) array, NaN where a point's chunk lacks the metric or recorded
    fewer steps. `fill(name, out)` gathers one metric into a buffer of the caller's (what
    `cpi.sims.results.write_npz` does with a `Deferred`, one buffer for every metric), so that
    writing sweep.npz does not hold a second copy of every metric; reading a name builds its
    array once and keeps it."""

    def __init__(self, n: int, recorded: np.ndarray, pieces: list[tuple[np.ndarray, dict, np.ndarray]]):
        self._n, self._recorded, self._pieces = n, recorded, pieces  # (points, values, rows of values)
        names = sorted({name for _, values, _ in pieces for name in values} - set(SUMMARY_FIELDS))
        self._names = [*names, "step"] if names else []
        self._built: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self):
        return iter(self._names)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._built:
            if name not in self._names:
                raise KeyError(name)
            only = self._pieces[0] if len(self._pieces) == 1 else None
            if name == "step":
                self._built[name] = self._recorded
            elif only is not None and np.array_equal(only[0], np.arange(self._n)) \
                    and np.array_equal(only[2], only[0]) and only[1][name].shape == self.shape:
                self._built[name] = only[1][name]  # one chunk, in order: its array as it is
            else:
                self._built[name] = self.fill(name, np.empty(self.shape, self.dtype(name)))
        return self._built[name]

    @property
    def shape(self) -> tuple[int, int]:
        return self._n, len(self._recorded)

    def dtype(self, name: str) -> np.dtype:
        if name == "step":
            return self._recorded.dtype
        return np.result_type(*(values[name].dtype for _, values, _ in self._pieces if name in values))

    def fill(self, name: str, out: np.ndarray) -> np.ndarray:
        """Gather metric `name` of every point into `out` (shape `self.shape`) and return it."""
        if name == "step" or name in self._built:
            out[...] = self[name]
            return out
        width = out.shape[1]
        complete = sum(len(points) for points, values, _ in self._pieces
                       if name in values and values[name].shape[1] == width)
        if complete < self._n:  # every point's row whole (the pieces' points are disjoint): no NaN left
            out.fill(np.nan)
        for points, values, rows in self._pieces:
            if name in values:
                source = values[name]
                out[points, : source.shape[1]] = source[rows]
        return out

    def deferred(self) -> dict:
        """Each metric as a `cpi.sims.results.Deferred`, for `write_npz`."""
        return {name: self[name] if name == "step" or name in self._built
                else Deferred(self.shape, self.dtype(name), lambda out, name=name: self.fill(name, out))
                for name in self._names}


def _assemble(grid: Grid, chunk_values: list[tuple[list[int], dict, list[int] | None]],
              record_every: int) -> tuple[Gathered, dict]:
    """(metrics, summary arrays) over all points from each chunk's (points, values, rows):
    row rows[r] of every value is point points[r]'s (rows None: row r)."""
    n = len(grid)
    pieces = [(np.asarray(points, dtype=np.intp),
               values,
               np.arange(len(points)) if rows is None else np.asarray(rows, dtype=np.intp))
              for points, values, rows in chunk_values]
    summary = {}
    for field in SUMMARY_FIELDS:
        summary[field] = np.empty(n, dtype=pieces[0][1][field].dtype)
        for points, values, rows in pieces:
            summary[field][points] = values[field][rows]
    steps = max(c.train.steps for c in grid.configs)
    return Gathered(n, recorded_steps(steps, record_every), pieces), summary


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
