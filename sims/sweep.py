"""Parameter sweeps: a grid of configs trained as one vmapped computation per shape.

A grid is a list of specs, each `section.key=start:stop:num` (num values from start to stop
inclusive, evenly spaced) or `section.key=v1,v2,...`; several specs form their Cartesian
product (the first spec varies slowest), and `seeds` N adds an innermost axis
train.seed = base seed + 0..N-1. Every point is a validated `Config`.

Points that share every static quantity (the array shapes of `sims.train.pack`, the number
of steps and the dtype) form a *shape group*. Each group runs as one compiled call of
`sims.train.simulate_chunk` vmapped over the packed worlds, step sizes and initial states
(cut into chunks of `sims.train.CHUNK_STEPS` steps like `sims.train.simulate`), sharded over
the devices when there are several. A group trains W_V when any of its points has
value_lr > 0; the others then get an exactly-zero W_V update.

Results go to one directory: `sweep.npz` (coordinates and every metric stacked per point),
`summary.csv` and `summary.json` (one row per point), `config.toml` (the base config), and
`groups/<hash>.npz`, each group's stacked metrics keyed by a hash of its points' resolved
configs, so a rerun computes only the groups that are missing. Metrics of absent data groups
stay NaN. Unlike `sims.train.run`, a point whose numbers become non-finite does not fail the
sweep: its row's `nonfinite_step` says where (None/empty when all is well).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import sys
import time
import tomllib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from theory.summary import summarize

from . import config as cfg
from .config import Config
from .errors import ConfigError
from .results import json_bytes, npz_bytes, write_atomic
from .train import CHUNK_STEPS, final_metrics, initial_state, pack, simulate_chunk
from .world import build_world, check_vocabulary

CACHE_VERSION = 1
"""Part of every group's cache key; bump it when the simulator's numbers change."""

SIGNIFICANT_DIGITS = 12
"""Range values of float keys are rounded to this many significant digits, so that
`0:1:41` gives 0.025, 0.05, ... exactly as one would type them (and as `cpi run --set`
reads them): round(ρ·n_train) must not depend on the last bit of a linspace."""

SUMMARY_FIELDS = ("initial_reliance", "peak_reliance", "peak_step", "final_reliance", "inversion")


# --------------------------------------------------------------------------------------------
# Grid specs


@dataclass(frozen=True)
class Axis:
    """One swept key: its values (already of the key's type) and the spec they came from."""

    key: str
    values: tuple
    spec: str


@dataclass(frozen=True)
class Grid:
    """The expanded grid: axes, and per point its swept values and its validated config."""

    axes: tuple[Axis, ...]
    seeds: int
    points: tuple[dict[str, Any], ...]  # swept key -> value, in axis order
    configs: tuple[Config, ...]

    @property
    def keys(self) -> list[str]:
        return [a.key for a in self.axes]

    def __len__(self) -> int:
        return len(self.configs)


def _check_value(key: str, value: Any) -> Any:
    """Type and range of one value on its own (`Config` consistency is checked per point)."""
    value = cfg.check_value(key, value)
    return value


def _parse_scalar(raw: str) -> Any:
    """An int, a float, a TOML value (a quoted string) or the bare string."""
    raw = raw.strip()
    for parse in (int, float):
        try:
            return parse(raw)
        except ValueError:
            pass
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _integral(key: str, value: Any, spec: str) -> Any:
    """Integral floats become ints for an integer key; other floats are an error."""
    if isinstance(value, float) and not isinstance(value, bool):
        if not math.isfinite(value) or abs(value - round(value)) > 1e-9 * max(1.0, abs(value)):
            raise ConfigError(
                f"--grid {spec!r}: {key} takes integers, but the grid has {value!r}"
            )
        return int(round(value))
    return value


def _range_values(key: str, text: str, spec: str, kind: type) -> list:
    parts = text.split(":")
    if len(parts) != 3:
        raise ConfigError(
            f"--grid {spec!r}: a range is start:stop:num (num values from start to stop "
            f"inclusive), got {text!r}"
        )
    if kind is str:
        raise ConfigError(
            f"--grid {spec!r}: {key} is not numeric, so it takes a list v1,v2,... not a range"
        )
    bounds = []
    for name, part in zip(("start", "stop"), parts[:2]):
        try:
            bound = float(part)
        except ValueError:
            bound = math.nan
        if not math.isfinite(bound):
            raise ConfigError(f"--grid {spec!r}: range {name} {part.strip()!r} is not a finite number")
        bounds.append(bound)
    try:
        num = int(parts[2])
    except ValueError:
        num = 0
    if num < 1:
        raise ConfigError(
            f"--grid {spec!r}: range num {parts[2].strip()!r} must be an integer >= 1"
        )
    start, stop = bounds
    if num == 1:
        raw = [start]
    else:
        raw = [start + (stop - start) * i / (num - 1) for i in range(num - 1)] + [stop]
    if kind is int:
        return [_integral(key, v, spec) for v in raw]
    return [float(f"{v:.{SIGNIFICANT_DIGITS}g}") for v in raw]


def parse_spec(spec: str) -> Axis:
    """One `section.key=start:stop:num` or `section.key=v1,v2,...` spec, each value checked
    for its type and range; raises ConfigError naming the spec."""
    if "=" not in spec:
        raise ConfigError(
            f"--grid {spec!r}: expected section.key=start:stop:num or section.key=v1,v2,..."
        )
    key, text = (part.strip() for part in spec.split("=", 1))
    if key not in cfg.all_keys():
        raise ConfigError(f"--grid {spec!r}: {cfg.unknown_key(key)}")
    kind = cfg.field_type(key)
    if ":" in text:
        values = _range_values(key, text, spec, kind)
    else:
        items = [item.strip() for item in text.split(",")]
        if not text or any(not item for item in items):
            raise ConfigError(f"--grid {spec!r}: empty value in the list {text!r}")
        values = [_parse_scalar(item) for item in items]
        if kind is int:
            values = [_integral(key, v, spec) for v in values]
    try:
        values = [_check_value(key, v) for v in values]
    except ConfigError as err:
        raise ConfigError(f"--grid {spec!r}: {err}") from None
    return Axis(key, tuple(values), spec)


def expand_grid(base: Config, grid: list[str] | tuple[str, ...] = (), seeds: int = 1) -> Grid:
    """Every point of the grid (Cartesian product of the specs, then the seeds), each a
    validated config; raises ConfigError naming the spec (or the point) that is bad."""
    if isinstance(grid, str):
        grid = [grid]
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ConfigError(f"--seeds must be an integer >= 1, got {seeds!r}")
    seeds = int(seeds)
    axes: list[Axis] = []
    for spec in grid:
        axis = parse_spec(spec)
        for other in axes:
            if other.key == axis.key:
                raise ConfigError(
                    f"--grid {spec!r}: {axis.key} is already swept by --grid {other.spec!r}"
                )
        axes.append(axis)
    if seeds > 1 and any(a.key == "train.seed" for a in axes):
        raise ConfigError(
            f"--seeds {seeds} cannot be combined with a grid over train.seed; use one of them"
        )
    last_seed, max_seed = base.train.seed + seeds - 1, int(cfg.key_range("train.seed")[1])
    if seeds > 1 and last_seed > max_seed:
        raise ConfigError(
            f"--seeds {seeds} from train.seed = {base.train.seed} reaches train.seed = {last_seed}, "
            f"out of range; train.seed is an integer in [0, {max_seed}]"
        )
    sources = ", ".join([f"--grid {a.spec!r}" for a in axes] + ([f"--seeds {seeds}"] if seeds > 1 else []))
    points, configs = [], []
    for values in itertools.product(*(a.values for a in axes)):
        point = dict(zip((a.key for a in axes), values))
        for offset in range(seeds):
            overrides = dict(point)
            if seeds > 1:
                overrides["train.seed"] = base.train.seed + offset
            try:
                config = cfg.with_values(base, overrides)
                check_vocabulary(config)
            except ConfigError as err:
                where = ", ".join(f"{k}={v!r}" for k, v in overrides.items()) or "the base config"
                raise ConfigError(f"grid point {where} (from {sources or 'the base config'}): {err}") from None
            points.append(dict(point))
            configs.append(config)
    return Grid(tuple(axes), seeds, tuple(points), tuple(configs))


# --------------------------------------------------------------------------------------------
# Shape groups and the vmapped runner


def _array_shapes(obj) -> Any:
    """The shapes of every array in a (nested) world dataclass, and its integer fields."""
    if isinstance(obj, np.ndarray):
        return obj.shape, obj.dtype.str
    if dataclasses.is_dataclass(obj):
        return tuple((f.name, _array_shapes(getattr(obj, f.name))) for f in dataclasses.fields(obj))
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    return None


def shape_key(config: Config) -> tuple:
    """Everything static about a run: the shapes of every array of its world (so of
    `pack(world)`: vocabulary, relations, training points after filtering, test and aligned
    points), the number of steps and the dtype. Builds the world (NumPy only)."""
    return _array_shapes(build_world(config)), config.train.steps, config.train.dtype


def group_points(configs) -> list[list[int]]:
    """Indices of the points of each shape group, groups in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(shape_key(config), []).append(i)
    return list(groups.values())


def group_hash(configs) -> str:
    """The cache key of a shape group: its points' resolved configs, in order."""
    text = f"cache {CACHE_VERSION}\n" + "\n".join(cfg.to_toml(c) for c in configs)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


TRACES = 0
"""How many times the group runner has been traced (each trace is one XLA compilation)."""


@partial(jax.jit, static_argnames=("steps", "train_values", "last"))
def _run_group_chunk(data, lr, value_lr, state, steps: int, train_values: bool, last: bool):
    """`steps` steps of every point of a group at once (leading axis: the points). With
    state None it starts from `initial_state`; with `last` it appends the final metrics."""
    global TRACES
    TRACES += 1

    def one(d, eta, eta_v, s):
        if s is None:
            s = initial_state(d, eta, eta_v, train_values)
        s, recorded = simulate_chunk(d, eta, eta_v, s, steps=steps, train_values=train_values)
        return s, recorded, (final_metrics(d, s, train_values=train_values) if last else None)

    return jax.vmap(one)(data, lr, value_lr, state)


def _stack(trees: list) -> Any:
    """Host copies of pytrees with identical structure, stacked along a new leading axis."""
    leaves = [jax.tree_util.tree_flatten(t) for t in trees]
    columns = []
    for parts in zip(*(ls for ls, _ in leaves)):
        arrays = [np.asarray(p) for p in parts]
        if len({(a.shape, a.dtype) for a in arrays}) != 1:  # shape_key missed a static quantity
            raise RuntimeError(f"points of one shape group pack to different shapes: {[a.shape for a in arrays]}")
        columns.append(np.stack(arrays))
    return jax.tree_util.tree_unflatten(leaves[0][1], columns)


def _place(tree, n: int):
    """Put the stacked points on the devices: sharded along the points when there are
    several devices (padded with copies of the last point to a multiple of their number)."""
    devices = jax.devices()
    if len(devices) < 2 or n < 2:
        return jax.device_put(tree)
    padded = -(-n // len(devices)) * len(devices)

    def pad(x):
        return np.concatenate([x, np.repeat(x[-1:], padded - n, axis=0)]) if padded > n else x

    mesh = jax.sharding.Mesh(np.array(devices), ("points",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("points"))
    return jax.device_put(jax.tree_util.tree_map(pad, tree), sharding)


def simulate_group(configs, progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Train every config of one shape group as one vmapped computation; returns each metric
    stacked as (points, steps + 1), absent groups' metrics NaN."""
    first = configs[0]
    steps, dtype = first.train.steps, first.train.dtype
    n = len(configs)
    data = _stack([pack(build_world(c), dtype) for c in configs])
    lr = np.array([c.train.lr for c in configs], dtype=dtype)
    value_lr = np.array([c.train.value_lr for c in configs], dtype=dtype)
    train_values = bool(np.any(value_lr > 0))
    data, lr, value_lr = _place((data, lr, value_lr), n)
    state, pieces, done = None, [], 0
    while done < steps:
        length = min(CHUNK_STEPS, steps - done)
        last = done + length == steps
        state, recorded, final = _run_group_chunk(data, lr, value_lr, state, length, train_values, last)
        pieces.append(recorded)
        done += length
        if progress is not None:
            progress(done, steps)
    # Host copies only from here on: no eager device op (each would compile).
    pieces = [{k: np.asarray(v)[:n] for k, v in p.items()} for p in pieces]
    pieces.append({k: np.asarray(v)[:n, None] for k, v in final.items()})
    return {k: np.concatenate([p[k] for p in pieces], axis=1) for k in final}


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class SweepResult:
    """A finished sweep. Point i has config `configs[i]`, coordinates `coords[key][i]` (every
    swept key, and `seed`), metrics `metrics[name][i, :steps[i] + 1]` (NaN-padded to the
    longest run; `metrics["step"]` is 0..max steps) and summary row `summaries[i]`."""

    grid: Grid
    coords: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    steps: np.ndarray
    summaries: list[dict]
    out: Path | None = None
    seconds: float = 0.0  # compile + run time of the groups computed by this call
    computed_groups: int = 0
    reused_groups: int = 0
    n_groups: int = 0

    @property
    def configs(self) -> tuple[Config, ...]:
        return self.grid.configs

    def __len__(self) -> int:
        return len(self.grid)

    def point_metrics(self, i: int) -> dict[str, np.ndarray]:
        """The metrics of point i as `sims.train.run` returns them (length steps + 1), with the
        metrics of absent groups (NaN from the first step) left out."""
        n = int(self.steps[i]) + 1
        out = {k: v[i, :n] for k, v in self.metrics.items() if k != "step" and not np.isnan(v[i, 0])}
        out["step"] = np.arange(n)
        return out


def _nonfinite_step(values: dict[str, np.ndarray], n: int, i: int) -> int | None:
    """The first step at which a metric that was finite at step 0 is not (None: none)."""
    bad = [
        int(np.argmax(~np.isfinite(v[i, :n])))
        for v in values.values()
        if np.isfinite(v[i, 0]) and not np.all(np.isfinite(v[i, :n]))
    ]
    return min(bad) if bad else None


def _assemble(grid: Grid, group_values: list[tuple[list[int], dict]]) -> tuple[dict, np.ndarray, list]:
    n = len(grid)
    steps = np.array([c.train.steps for c in grid.configs], dtype=np.int64)
    width = int(steps.max()) + 1
    names = sorted({name for _, values in group_values for name in values})
    metrics = {}
    for name in names:  # a metric some groups lack (reliance_r2 with one relation, say) is NaN there
        dtype = np.result_type(*(values[name].dtype for _, values in group_values if name in values))
        stacked = np.full((n, width), np.nan, dtype=dtype)
        for indices, values in group_values:
            if name in values:
                stacked[indices, : values[name].shape[1]] = values[name]
        metrics[name] = stacked
    summaries = []
    for i, point in enumerate(grid.points):
        k = int(steps[i]) + 1
        row = dict(point)
        row["seed"] = grid.configs[i].train.seed
        row.update(summarize(metrics["reliance"][i, :k]))
        row["nonfinite_step"] = _nonfinite_step(metrics, k, i)
        summaries.append(row)
    metrics["step"] = np.arange(width)
    return metrics, steps, summaries


def _coords(grid: Grid) -> dict[str, np.ndarray]:
    coords = {a.key: np.array([p[a.key] for p in grid.points]) for a in grid.axes}
    coords["seed"] = np.array([c.train.seed for c in grid.configs], dtype=np.int64)
    return coords


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _csv_bytes(keys: list[str], rows: list[dict]) -> bytes:
    columns = [*keys, "seed", *SUMMARY_FIELDS, "nonfinite_step"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        cells = []
        for c in columns:
            v = row[c]
            cells.append("" if v is None else str(v).lower() if isinstance(v, bool) else repr(v) if isinstance(v, float) else str(v))
        writer.writerow(cells)
    return buffer.getvalue().encode()


def sweep_digest(base: Config, grid, seeds: int = 1) -> str:
    """10 hex digits of the SHA-256 of the resolved base config, the grid specs and seeds."""
    text = cfg.to_toml(base) + json.dumps({"grid": [s.strip() for s in grid], "seeds": int(seeds)})
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def default_sweep_dir(base: Config, grid, seeds: int = 1) -> Path:
    """sweeps/<sweep_digest>."""
    return Path("sweeps") / sweep_digest(base, grid, seeds)


def _load_group(path: Path, n: int, steps: int) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path) as archive:
            values = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError):
        return None
    if not values or any(v.shape != (n, steps + 1) for v in values.values()):
        return None
    return values


def _stderr_progress(line: str, end: bool = False) -> None:
    print(f"\r{line:<78}", end="\n" if end else "", file=sys.stderr, flush=True)


def run_sweep(
    base: Config,
    grid: list[str] | tuple[str, ...] = (),
    seeds: int = 1,
    out: str | Path | None = None,
    progress: bool = False,
) -> SweepResult:
    """Train every point of the grid and save the results under `out` (default
    sweeps/<hash of base, grid, seeds>); groups already saved there are reused, not rerun.

    Raises ConfigError (before anything is written) when a spec or a point is bad."""
    check_vocabulary(cfg.validate(base))
    grid = list(grid) if not isinstance(grid, str) else [grid]
    expanded = expand_grid(base, grid, seeds)
    out = Path(out) if out is not None else default_sweep_dir(base, grid, seeds)
    groups = group_points(expanded.configs)

    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)  # the directory is incomplete until the end
    write_atomic(out / "config.toml", cfg.to_toml(base).encode())
    (out / "groups").mkdir(exist_ok=True)

    group_values, seconds, computed = [], 0.0, 0
    for g, indices in enumerate(groups):
        configs = [expanded.configs[i] for i in indices]
        steps = configs[0].train.steps
        path = out / "groups" / f"{group_hash(configs)}.npz"
        values = _load_group(path, len(configs), steps) if path.exists() else None
        label = f"  group {g + 1}/{len(groups)}: {len(configs)} points x {steps} steps"
        if values is None:
            show = None
            if progress:
                _stderr_progress(f"{label}: compiling and running")

                def show(done, total, label=label):
                    _stderr_progress(f"{label}: step {done}/{total}", end=done == total)

            start = time.perf_counter()
            values = simulate_group(configs, show)
            seconds += time.perf_counter() - start
            computed += 1
            write_atomic(path, npz_bytes(values))
        elif progress:
            _stderr_progress(f"{label}: reused {path.name}", end=True)
        group_values.append((indices, values))

    metrics, steps, summaries = _assemble(expanded, group_values)
    coords = _coords(expanded)
    arrays = {**coords, **metrics, "steps": steps}
    write_atomic(out / "sweep.npz", npz_bytes(arrays))
    write_atomic(out / "summary.csv", _csv_bytes(expanded.keys, summaries))
    write_atomic(out / "summary.json", json_bytes(_summary_document(base, grid, seeds, expanded, summaries)))
    return SweepResult(
        grid=expanded, coords=coords, metrics=metrics, steps=steps, summaries=summaries, out=out,
        seconds=seconds, computed_groups=computed, reused_groups=len(groups) - computed,
        n_groups=len(groups),
    )


def _summary_document(base, grid, seeds, expanded: Grid, summaries) -> dict:
    return {
        "grid": [s.strip() for s in grid],
        "seeds": int(seeds),
        "keys": expanded.keys,
        "base_config_sha256": hashlib.sha256(cfg.to_toml(base).encode()).hexdigest(),
        "points": [{k: _json_value(v) for k, v in row.items()} for row in summaries],
    }


def load_sweep(sweep_dir: str | Path) -> SweepResult:
    """A saved sweep, without recomputing anything; raises FileNotFoundError if incomplete."""
    sweep_dir = Path(sweep_dir)
    document = json.loads((sweep_dir / "summary.json").read_text())
    base = cfg.load(sweep_dir / "config.toml")
    expanded = expand_grid(base, document["grid"], document["seeds"])
    with np.load(sweep_dir / "sweep.npz") as archive:
        arrays = {k: archive[k] for k in archive.files}
    coords = {k: arrays.pop(k) for k in [*expanded.keys, "seed"]}
    steps = arrays.pop("steps")
    _, _, summaries = _assemble(expanded, [(list(range(len(expanded))), {k: v for k, v in arrays.items() if k != "step"})])
    return SweepResult(grid=expanded, coords=coords, metrics=arrays, steps=steps, summaries=summaries, out=sweep_dir)
