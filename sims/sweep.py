"""Parameter sweeps: a grid of configs trained as one vmapped computation per shape.

A grid is a list of specs, each `section.key=start:stop:num` (num values from start to stop
inclusive, evenly spaced) or `section.key=v1,v2,...`; several specs form their Cartesian
product (the first spec varies slowest), and `seeds` N adds an innermost axis
train.seed = base seed + 0..N-1. Every point is a validated `Config`.

How the points are computed (shape groups, chunks of points, devices, processes, and the
"full" or "reduced" engine) is `sims.chunks`.

Results go to one directory: `sweep.npz` (coordinates, the per-point summary as
`summary_<field>`, `steps`, and, unless summaries-only, every metric stacked per point at
the recorded steps `step`), `summary.csv` and `summary.json` (one row per point),
`config.toml` (the base config), and `groups/<hash>.npz`, one file per chunk of points,
keyed by a hash of its points' resolved configs and of what is recorded, written as soon
as the chunk is computed, so an interrupted or extended sweep computes only the chunks that
are missing. Metrics of absent data groups stay NaN. Unlike `sims.train.run`, a point whose
numbers become non-finite does not fail the sweep: its row's `nonfinite_step` says where
(None/empty when all is well).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import config as cfg
from .config import Config
from .errors import ConfigError
from . import chunks, distributed
from .budget import available_memory, check_record_every, check_world_budget, human_bytes, recorded_bytes
from .chunks import SUMMARY_FIELDS
from .distributed import Processes
from .engine import n_recorded, recorded_steps
from .progress import StepProgress
from .results import json_bytes, npz_bytes, write_atomic
from .world import check_vocabulary

SIGNIFICANT_DIGITS = 12
"""Range values of float keys are rounded to this many significant digits, so that
`0:1:41` gives 0.025, 0.05, ... exactly as one would type them (and as `cpi run --set`
reads them): round(ρ·n_train) must not depend on the last bit of a linspace."""


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
# Results


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
    engine: str = "full"
    seconds: float = 0.0  # compile + run time of the chunks computed by this call
    computed_chunks: int = 0
    reused_chunks: int = 0
    n_groups: int = 0

    @property
    def configs(self) -> tuple[Config, ...]:
        return self.grid.configs

    def __len__(self) -> int:
        return len(self.grid)

    def point_metrics(self, i: int) -> dict[str, np.ndarray]:
        """The metrics of point i as `sims.train.run` returns them (with the same
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
        rows.append(row)
    return rows


def _assemble(grid: Grid, chunk_values: list[tuple[list[int], dict]], record_every: int) -> tuple[dict, dict]:
    """(metrics, summary arrays) over all points from each chunk's (indices, values)."""
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
    for name in names:  # a metric some groups lack (reliance_r2 with one relation, say) is NaN there
        dtype = np.result_type(*(values[name].dtype for _, values in chunk_values if name in values))
        stacked = np.full((n, len(recorded)), np.nan, dtype=dtype)
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


def _csv_bytes(keys: list[str], rows: list[dict]) -> bytes:
    columns = [*keys, "seed", *SUMMARY_FIELDS]
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


def _load_chunk(path: Path, n: int, n_recorded: int, record: bool) -> dict[str, np.ndarray] | None:
    """A saved chunk, or None when it is missing, damaged or of the wrong size."""
    if not path.exists():
        return None
    try:
        with np.load(path) as archive:
            values = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError, KeyError):
        return None
    if any(values.get(f) is None or values[f].shape != (n,) for f in SUMMARY_FIELDS):
        return None
    metric_shapes = {v.shape for k, v in values.items() if k not in SUMMARY_FIELDS}
    if (record and metric_shapes != {(n, n_recorded)}) or (not record and metric_shapes):
        return None
    return values


# --------------------------------------------------------------------------------------------
# Running a sweep


@dataclass(frozen=True)
class _Chunk:
    group: int
    indices: list[int]
    size: int  # padded size of every chunk of its group
    path: Path


def _plan(expanded: Grid, out: Path, engine_name: str, record_every: int, record: bool) -> tuple[list[_Chunk], int]:
    groups = chunks.group_points(expanded.configs)
    plan = []
    for g, indices in enumerate(groups):
        size = chunks.chunk_size(expanded.configs[indices[0]], record_every, record)
        size = min(size, len(indices))
        for part in chunks.split_chunks(indices, size):
            configs = [expanded.configs[i] for i in part]
            digest = chunks.chunk_hash(configs, engine_name, record_every, record)
            plan.append(_Chunk(g, part, size, out / "groups" / f"{digest}.npz"))
    return plan, len(groups)


def check_sweep_budget(expanded: Grid, record_every: int, record: bool) -> None:
    """Refuse a sweep whose assembled results would not fit in memory (ConfigError)."""
    need = sum(recorded_bytes(c, record_every, record) // 2 for c in expanded.configs)
    need += 64 * len(expanded) * (len(SUMMARY_FIELDS) + len(expanded.axes) + 1)
    have = available_memory()
    if need > have:
        steps = sum(c.train.steps for c in expanded.configs)
        raise ConfigError(
            f"the sweep's {len(expanded)} points x {steps / len(expanded):.0f} steps would record about "
            f"{human_bytes(need)} of metrics, more than the {human_bytes(have)} of memory available; "
            "record fewer steps (--record-every N) or only the summaries (--summaries-only)"
        )


def check_engine(expanded: Grid, engine_name: str) -> None:
    """ConfigError unless every point can be computed exactly by `engine_name`."""
    if engine_name not in chunks.ENGINES:
        raise ConfigError(f"--engine {engine_name!r} is not one of {', '.join(chunks.ENGINES)}")
    if engine_name == "reduced":
        for point, config in zip(expanded.points, expanded.configs):
            problem = chunks.reduced_engine_problem(config)
            if problem:
                where = ", ".join(f"{k}={v!r}" for k, v in point.items()) or "the base config"
                raise ConfigError(f"--engine reduced cannot compute grid point {where} exactly: {problem}; "
                                  "use --engine full")


def check_sweep(base: Config, grid=(), seeds: int = 1, record_every: int = 1, summaries_only: bool = False,
                engine: str = "full") -> Grid:
    """The expanded grid, once every input is checked: the base config, the specs and their
    points, the stride, the engine and the memory needed; raises ConfigError otherwise."""
    check_vocabulary(cfg.validate(base))
    check_record_every(record_every)
    expanded = expand_grid(base, grid, seeds)
    check_engine(expanded, engine)
    check_world_budget(expanded.configs)
    check_sweep_budget(expanded, record_every, not summaries_only)
    return expanded


MANIFEST = "sweep.json"
"""Written first into a sweep directory: what it computes (base config, grid, seeds, what is
recorded, engine), so that a rerun can tell a resumed sweep from another one."""


def sweep_identity(base: Config, grid, seeds: int = 1, record_every: int = 1, summaries_only: bool = False,
                   engine: str = "full") -> dict:
    """What makes two sweeps the same sweep: the resolved base config, the grid specs, the
    seeds, what is recorded and the engine."""
    return {
        "grid": [s.strip() for s in ([grid] if isinstance(grid, str) else grid)],
        "seeds": int(seeds),
        "record_every": int(record_every),
        "summaries_only": bool(summaries_only),
        "engine": engine,
        "base_config_sha256": hashlib.sha256(cfg.to_toml(base).encode()).hexdigest(),
    }


def _saved_identity(out: Path) -> dict | None:
    """The identity recorded in a sweep directory (its manifest, else the summary of a
    sweep written before manifests existed); None when it holds no sweep."""
    for name in (MANIFEST, "summary.json"):
        path = out / name
        if path.exists():
            try:
                document = json.loads(path.read_text())
            except (OSError, ValueError):
                return {"unreadable": name}
            return {k: document.get(k) for k in ("grid", "seeds", "record_every", "summaries_only", "engine",
                                                 "base_config_sha256")}
    return None


def check_sweep_dir(out: str | Path, identity: dict, force: bool = False) -> None:
    """ConfigError when `out` holds another sweep (a different base config, grid, seeds,
    recording or engine) or a run, unless `force`. The same sweep is resumed."""
    out = Path(out)
    if force or not out.is_dir():
        return
    if (out / "metrics.npz").exists() and not (out / MANIFEST).exists():
        raise ConfigError(f"--out {str(out)!r} holds a run, not a sweep; choose another directory "
                          "(or --force to write the sweep there anyway)")
    saved = _saved_identity(out)
    if saved is None or saved == identity:
        return
    names = {"grid": "--grid", "seeds": "--seeds", "record_every": "--record-every",
             "summaries_only": "--summaries-only", "engine": "--engine", "base_config_sha256": "the base config"}
    differ = [names[k] for k in names if saved.get(k) != identity.get(k)] or ["its files"]
    raise ConfigError(
        f"--out {str(out)!r} holds another sweep (it differs in {', '.join(differ)}); choose another "
        "directory, or --force to replace it (chunks the two sweeps share are kept, the others deleted)"
    )


def _remove_stale_chunks(out: Path, plan) -> int:
    """Delete the chunk files under out/groups that this sweep's plan does not use (and
    temporary files of an interrupted write); returns how many."""
    keep = {chunk.path.name for chunk in plan}
    stale = [p for p in (out / "groups").iterdir() if p.is_file() and p.name not in keep]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def saved_chunk_count(expanded: Grid, out: str | Path, record_every: int = 1, summaries_only: bool = False,
                      engine: str = "full") -> tuple[int, int]:
    """(chunks of this sweep saved under out/groups, chunks in all)."""
    plan, _ = _plan(expanded, Path(out), engine, record_every, not summaries_only)
    return sum(chunk.path.exists() for chunk in plan), len(plan)


def run_sweep(
    base: Config,
    grid: list[str] | tuple[str, ...] = (),
    seeds: int = 1,
    out: str | Path | None = None,
    progress: bool = False,
    record_every: int = 1,
    summaries_only: bool = False,
    engine: str = "full",
    processes: Processes | None = None,
    expanded: Grid | None = None,
    force: bool = False,
) -> SweepResult | None:
    """Train every point of the grid and save the results under `out` (default
    sweeps/<hash of base, grid, seeds>); chunks already saved there are reused, not rerun,
    and every chunk is saved as soon as it is computed.

    record_every: record metrics every N steps (and at the last step); summaries_only:
    record none (the summaries always come from every step). engine: "full" (the fast exact
    engine) or "reduced" (the exact group recursion, where it is exact). processes: this
    process's place when several run the sweep (`sims.distributed.join`); only process 0
    writes and returns the result, the others return None. expanded: what `check_sweep`
    returned for these arguments (saves expanding the grid twice).

    A directory that holds another sweep (`check_sweep_dir`) is refused unless `force`, which
    replaces it, keeping the chunks the two sweeps share and deleting the others.

    Raises ConfigError (before anything is written) when a spec, a point, the engine, the
    memory needed or the directory is bad."""
    processes = processes or Processes()
    grid = list(grid) if not isinstance(grid, str) else [grid]
    if expanded is None:
        expanded = check_sweep(base, grid, seeds, record_every, summaries_only, engine)
    record = not summaries_only
    out = Path(out) if out is not None else default_sweep_dir(base, grid, seeds)
    identity = sweep_identity(base, grid, seeds, record_every, summaries_only, engine)
    if processes.writer:
        check_sweep_dir(out, identity, force)
    plan, n_groups = _plan(expanded, out, engine, record_every, record)

    def recorded_columns(chunk):
        return n_recorded(expanded.configs[chunk.indices[0]].train.steps, record_every)

    if processes.writer:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").unlink(missing_ok=True)  # the directory is incomplete until the end
        write_atomic(out / MANIFEST, json_bytes(identity))
        write_atomic(out / "config.toml", cfg.to_toml(base).encode())
        (out / "groups").mkdir(exist_ok=True)
        if force:
            _remove_stale_chunks(out, plan)
    saved = {}
    if processes.writer:
        for chunk in plan:
            values = _load_chunk(chunk.path, len(chunk.indices), recorded_columns(chunk), record)
            if values is not None:
                saved[chunk.path] = values
    missing = [i for i, chunk in enumerate(plan) if chunk.path not in saved]
    if processes.count > 1:
        flags = np.zeros(len(plan), dtype=bool)
        flags[missing] = True
        missing = np.flatnonzero(np.asarray(distributed.broadcast(flags))).tolist()

    total = sum(len(plan[i].indices) * expanded.configs[plan[i].indices[0]].train.steps for i in missing)
    finished = [0]
    bar = StepProgress(total, "point-steps", enabled=progress and processes.writer and total > 0,
                       description=f"{len(missing)} chunk(s)")

    def compute(chunk, report):
        configs = [expanded.configs[i] for i in chunk.indices]
        if engine == "reduced":
            return chunks.reduced_chunk(configs, record_every, record, report)
        return chunks.full_chunk(configs, chunk.size, record_every, record, report)

    start = time.perf_counter()
    with bar:
        if processes.count == 1:
            for i in missing:
                chunk = plan[i]
                values = compute(chunk, lambda done: bar.advance_to(finished[0] + done))
                finished[0] += len(chunk.indices) * expanded.configs[chunk.indices[0]].train.steps
                write_atomic(chunk.path, npz_bytes(values))
                saved[chunk.path] = values
        else:
            _run_distributed(plan, missing, processes, compute, saved, bar, finished, expanded)
    seconds = time.perf_counter() - start
    if not processes.writer:
        return None

    chunk_values = [(chunk.indices, saved[chunk.path]) for chunk in plan]
    metrics, summary = _assemble(expanded, chunk_values, record_every)
    summaries = _summary_rows(expanded, summary)
    coords = _coords(expanded)
    steps = np.array([c.train.steps for c in expanded.configs], dtype=np.int64)
    arrays = {**coords, **metrics, **{f"summary_{k}": v for k, v in summary.items()}, "steps": steps}
    write_atomic(out / "sweep.npz", npz_bytes(arrays))
    write_atomic(out / "summary.csv", _csv_bytes(expanded.keys, summaries))
    document = {"grid": identity["grid"], "seeds": identity["seeds"], "keys": expanded.keys,
                **{k: v for k, v in identity.items() if k not in ("grid", "seeds")},
                "points": [{k: _json_value(v) for k, v in row.items()} for row in summaries]}
    write_atomic(out / "summary.json", json_bytes(document))
    return SweepResult(
        grid=expanded, coords=coords, metrics=metrics, steps=steps, summaries=summaries, out=out,
        record_every=record_every, engine=engine, seconds=seconds, computed_chunks=len(missing),
        reused_chunks=len(plan) - len(missing), n_groups=n_groups,
    )


def _run_distributed(plan, missing, processes, compute, saved, bar, finished, expanded) -> None:
    """Deal the missing chunks of each shape group round-robin over the processes; after each
    round gather every process's chunk (padded to the group's chunk size) and let process 0
    save them. A process without a chunk in the last round sends its first chunk again."""
    by_group: dict[int, list[int]] = {}
    for i in missing:
        by_group.setdefault(plan[i].group, []).append(i)
    p, rank = processes.count, processes.index
    for members in by_group.values():
        for start in range(0, len(members), p):
            round_ = members[start:start + p]
            mine = plan[round_[rank] if rank < len(round_) else round_[0]]
            values = compute(mine, None)
            padded = chunks.pad_rows(values, mine.size)
            gathered = distributed.gather(padded)
            for q, i in enumerate(round_):
                chunk = plan[i]
                n = len(chunk.indices)
                got = {k: np.asarray(v[q])[:n] for k, v in gathered.items()}
                if processes.writer:
                    write_atomic(chunk.path, npz_bytes(got))
                    saved[chunk.path] = got
                finished[0] += n * expanded.configs[chunk.indices[0]].train.steps
            bar.advance_to(finished[0])


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
    summary = {f: arrays.pop(f"summary_{f}") for f in SUMMARY_FIELDS}
    return SweepResult(grid=expanded, coords=coords, metrics=arrays, steps=steps,
                       summaries=_summary_rows(expanded, summary), out=sweep_dir,
                       record_every=document.get("record_every", 1), engine=document.get("engine", "full"))
