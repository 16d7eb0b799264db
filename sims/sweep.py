"""Parameter sweeps: a grid of configs (`cpi.sims.grid`) trained as one vmapped computation per
shape, saved in one directory.

How the points are computed (shape groups, chunks of points, devices, processes, and the
"full" or "reduced" engine) is `cpi.sims.chunks`.

Results go to one directory: `sweep.npz` (coordinates, the per-point summary as
`summary_<field>`, `steps`, and, unless summaries-only, every metric stacked per point at
the recorded steps `step`), `summary.csv` and `summary.json` (one row per point),
`config.toml` (the base config), and `groups/<hash>.npz`, one file per chunk of points,
keyed by a hash of its points' resolved configs and of what is recorded, written as soon
as the chunk is computed, so an interrupted or extended sweep computes only the chunks that
are missing. Metrics of absent data groups stay NaN. Unlike `cpi.sims.train.run`, a point whose
numbers become non-finite does not fail the sweep: its row's `nonfinite_step` says where
(None/empty when all is well). `sweep.json` (`cpi.sims.sweep_dir`) names the sweep a directory
computes, so that another sweep is not mixed into it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpi.core.dir_lock import claim_dir
from cpi.core.errors import ConfigError
from cpi.core.progress import StepProgress
from cpi.core.shards import Shard, ShardReport
from cpi.core.sweep_dir import csv_bytes, write_identity_files
from cpi.core.sweep_dir import sweep_digest as sweep_digest_of

from . import chunks, distributed
from . import config as cfg
from .budget import available_memory, check_record_every, check_world_budget, human_bytes, recorded_bytes
from .chunks import SUMMARY_FIELDS
from .config import Config
from .distributed import Processes
from .engine import n_recorded, recorded_steps
from .grid import Axis, Grid, expand_grid, parse_spec  # noqa: F401  (the grid half of the sweep API)
from .results import json_bytes, write_atomic, write_npz_atomic
from .sweep_dir import MANIFEST, check_sweep_dir, finished_rows, remove_stale_chunks, sweep_identity  # noqa: F401
from .world import check_vocabulary


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
    clock: chunks.EngineClock = dataclasses.field(default_factory=chunks.EngineClock)  # of those chunks
    computed_chunks: int = 0
    reused_chunks: int = 0
    n_groups: int = 0
    trained_points: int = 0  # points of distinct `chunks.world_key`, the others copied (0 when loaded)

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


def _csv_bytes(keys: list[str], rows: list[dict]) -> bytes:
    return csv_bytes([*keys, "seed", *SUMMARY_FIELDS], rows)


def sweep_digest(base: Config, grid, seeds: int = 1) -> str:
    """The key of the resolved base config, the grid specs and the seeds
    (`cpi.core.sweep_dir.sweep_digest` of kind "sweep"): the name of the default directory."""
    return sweep_digest_of("sweep", cfg.to_toml(base), grid, seeds)


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


class ChunkWriter:
    """Saves finished chunks in a background thread, one at a time and in order, while the
    sweep goes on (the next chunk computing, the sweep's arrays being assembled): writing a
    recorded chunk takes about 0.05 s per 100 points at 2000 steps on the 2-core CPU, most of
    it in system calls and checksums that leave the interpreter free. Leaving its `with`
    block waits until every chunk handed to it is on disk and re-raises the first failed
    write; `wait_all()` waits for every writer of the process (what an interrupted
    `cpi sweep` calls before it says what is saved)."""

    _open: set["ChunkWriter"] = set()
    _lock = threading.Lock()

    def __enter__(self) -> "ChunkWriter":
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cpi-chunk-writer")
        self._pending: list[Future] = []
        with ChunkWriter._lock:
            ChunkWriter._open.add(self)
        return self

    def write(self, path: Path, values: dict[str, np.ndarray]) -> None:
        """Queue `values` for `path`, first re-raising the failure of a write already done
        (so a sweep whose chunks cannot be saved stops at the next chunk, not at the end)."""
        for future in self._pending:
            if future.done():
                future.result()
        self._pending.append(self._pool.submit(write_npz_atomic, path, values))

    def __exit__(self, *exc) -> None:
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pool.shutdown(wait=True)
            with ChunkWriter._lock:
                ChunkWriter._open.discard(self)

    @classmethod
    def wait_all(cls) -> None:
        with cls._lock:
            writers = list(cls._open)
        for writer in writers:
            for future in list(writer._pending):
                future.exception()  # finished, or failed: either way no longer in flight


@dataclass(frozen=True)
class _Chunk:
    group: int
    indices: list[int]  # the points it computes
    size: int  # padded size of every chunk of its group
    path: Path
    copies: tuple[tuple[int, int], ...] = ()  # (point, row): points of equal `world_key` that take a computed row


def _plan(expanded: Grid, out: Path, engine_name: str, record_every: int, record: bool) -> tuple[list[_Chunk], int]:
    """The chunks of each shape group, over the group's distinct points (`chunks.distinct_points`):
    a point whose world another point of the group has already is computed once, in the chunk
    of its first occurrence, and copied from there."""
    groups = chunks.group_points(expanded.configs)
    plan = []
    for g, indices in enumerate(groups):
        distinct, copy_of = chunks.distinct_points(expanded.configs, indices)
        size = chunks.chunk_size(expanded.configs[indices[0]], record_every, record, engine_name)
        size = min(size, len(distinct))
        parts = chunks.split_chunks(distinct, size)
        place = {i: (c, r) for c, part in enumerate(parts) for r, i in enumerate(part)}  # point: (part, row)
        copies = [[] for _ in parts]
        for i, j in copy_of.items():
            c, r = place[j]
            copies[c].append((i, r))
        for part, part_copies in zip(parts, copies):
            configs = [expanded.configs[i] for i in part]
            digest = chunks.chunk_hash(configs, engine_name, record_every, record)
            plan.append(_Chunk(g, part, size, out / "groups" / f"{digest}.npz", tuple(part_copies)))
    return plan, len(groups)


SIZE_NOTE_BYTES = 2**30
"""`cpi sweep` says, before it computes, how much a sweep will write and hold in memory when
either estimate (`record_sizes`) is larger than this, and how to record less (its --help
says 1 GiB)."""


@dataclass(frozen=True)
class RecordSizes:
    """Estimated bytes of a sweep's recorded metrics. `metrics`: one copy of every point's
    (`cpi.sims.budget.recorded_bytes`, which counts a device and a host copy, halved), what
    sweep.npz holds; the chunks under groups/ hold at most as much again (copied points are
    saved once), and assembling sweep.npz holds the chunks' arrays and the assembled ones
    together."""

    metrics: int

    @property
    def disk(self) -> int:
        """groups/ and sweep.npz (at most)."""
        return 2 * self.metrics

    @property
    def memory(self) -> int:
        """The peak while sweep.npz is assembled."""
        return 2 * self.metrics


def record_sizes(expanded: Grid, record_every: int, record: bool) -> RecordSizes:
    """`RecordSizes` of the sweep's points recording every `record_every` steps (none unless `record`)."""
    per_shape: dict[tuple, int] = {}  # recorded_bytes depends on the steps, the dtype and the relations only
    total = 0
    for c in expanded.configs:
        key = (c.train.steps, c.train.dtype, c.world.n_relations)
        if key not in per_shape:
            per_shape[key] = recorded_bytes(c, record_every, record) // 2
        total += per_shape[key]
    return RecordSizes(total)


RECORD_EVERY_CHOICES = (1, 2, 5)
"""`fitting_record_every` suggests a stride of these times a power of ten."""


def fitting_record_every(expanded: Grid, record_every: int, fits) -> int | None:
    """The smallest stride N > record_every of the form 1, 2 or 5 times a power of ten whose
    `record_sizes` satisfy `fits`; None when no stride up to the longest run's steps does."""
    longest = max(c.train.steps for c in expanded.configs)
    scale = 1
    while scale <= longest:
        for factor in RECORD_EVERY_CHOICES:
            n = factor * scale
            if record_every < n <= longest and fits(record_sizes(expanded, n, True)):
                return n
        scale *= 10
    return None


def _record_less(expanded: Grid, record_every: int, fits, what: str) -> str:
    """The flags that would make the sweep's recorded metrics satisfy `fits` ("what" they
    would then fit)."""
    n = fitting_record_every(expanded, record_every, fits)
    if n is None:
        return f"record only the summaries (--summaries-only) to fit {what}"
    sizes = record_sizes(expanded, n, True)
    return (f"--record-every {n} would bring them to about {human_bytes(sizes.disk)} on disk and "
            f"{human_bytes(sizes.memory)} of memory, --summaries-only to none (the summaries come from every "
            "step either way)")


def record_size_note(expanded: Grid, record_every: int, record: bool, limit: int | None = None) -> str | None:
    """A note on how much the sweep's recorded metrics take, with the flags that bring them
    under `limit` (default SIZE_NOTE_BYTES); None when they take no more than that."""
    limit = SIZE_NOTE_BYTES if limit is None else limit
    sizes = record_sizes(expanded, record_every, record)
    if max(sizes.disk, sizes.memory) <= limit:
        return None
    advice = _record_less(expanded, record_every, lambda s: max(s.disk, s.memory) <= limit,
                          f"under {human_bytes(limit)}")
    every = "every step" if record_every == 1 else f"every {record_every} steps"
    return (f"the metrics this sweep records ({len(expanded)} points, {every}) take about "
            f"{human_bytes(sizes.disk)} on disk (groups/ and sweep.npz) and {human_bytes(sizes.memory)} of memory "
            f"while sweep.npz is assembled; {advice}")


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk_space(expanded: Grid, out: str | Path, record_every: int, record: bool) -> None:
    """ConfigError when the sweep's recorded metrics (`record_sizes`: sweep.npz, and the chunks
    under out/groups less the bytes of those already there) would not fit in the free space
    of out's file system."""
    out = Path(out)
    sizes = record_sizes(expanded, record_every, record)
    saved = 0
    if (out / "groups").is_dir():
        saved = sum(p.stat().st_size for p in (out / "groups").iterdir() if p.is_file())
    need = sizes.metrics + max(0, sizes.disk - sizes.metrics - saved)
    free = shutil.disk_usage(_existing_parent(out)).free
    if need <= free:
        return
    advice = _record_less(expanded, record_every, lambda s: s.disk <= free, "the free space")
    raise ConfigError(
        f"--out {str(out)!r}: the sweep would write about {human_bytes(need)} of metrics (groups/ and "
        f"sweep.npz), more than the {human_bytes(free)} free on its file system; {advice}"
    )


def check_sweep_budget(expanded: Grid, record_every: int, record: bool) -> None:
    """Refuse a sweep whose assembled results would not fit in memory (ConfigError)."""
    need = record_sizes(expanded, record_every, record).metrics
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
    if engine_name not in cfg.SWEEP_ENGINES:
        raise ConfigError(f"--engine {engine_name!r} is not one of {', '.join(cfg.SWEEP_ENGINES)}")
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
    check_sweep_budget(expanded, record_every, not summaries_only)
    check_world_budget(expanded.configs)
    return expanded


def _plan_of(expanded: Grid, out: Path, record_every: int, summaries_only: bool, engine: str) -> list[_Chunk]:
    return _plan(expanded, Path(out), engine, record_every, not summaries_only)[0]


def saved_chunk_count(expanded: Grid, out: str | Path, record_every: int = 1, summaries_only: bool = False,
                      engine: str = "full") -> tuple[int, int]:
    """(chunks of this sweep saved under out/groups, chunks in all)."""
    plan = _plan_of(expanded, out, record_every, summaries_only, engine)
    return sum(chunk.path.exists() for chunk in plan), len(plan)


def missing_chunks(expanded: Grid, out: str | Path, record_every: int = 1, summaries_only: bool = False,
                   engine: str = "full") -> tuple[list[int], int]:
    """(the sweep's chunks, by their place in its plan, that are not saved under out/groups;
    chunks in all)."""
    plan = _plan_of(expanded, out, record_every, summaries_only, engine)
    return [i for i, chunk in enumerate(plan) if not chunk.path.exists()], len(plan)


@dataclass(frozen=True)
class _Sweep:
    """What computing a sweep's chunks needs, once its inputs are checked."""

    base: Config
    expanded: Grid
    out: Path
    identity: dict
    record_every: int
    record: bool
    engine: str

    def point_steps(self, chunk: _Chunk) -> int:
        return len(chunk.indices) * self.expanded.configs[chunk.indices[0]].train.steps

    def load(self, chunk: _Chunk) -> dict | None:
        steps = self.expanded.configs[chunk.indices[0]].train.steps
        return _load_chunk(chunk.path, len(chunk.indices), n_recorded(steps, self.record_every), self.record)

    def compute(self, chunk: _Chunk, report) -> dict:
        configs = [self.expanded.configs[i] for i in chunk.indices]
        if self.engine == "reduced":
            return chunks.reduced_chunk(configs, self.record_every, self.record, report)
        return chunks.full_chunk(configs, chunk.size, self.record_every, self.record, report)

    def identity_files(self) -> dict[str, bytes]:
        return {MANIFEST: json_bytes(self.identity), "config.toml": cfg.to_toml(self.base).encode()}


def _prepare(base, grid, seeds, out, record_every, summaries_only, engine, expanded) -> _Sweep:
    grid = list(grid) if not isinstance(grid, str) else [grid]
    if expanded is None:
        expanded = check_sweep(base, grid, seeds, record_every, summaries_only, engine)
    out = Path(out) if out is not None else default_sweep_dir(base, grid, seeds)
    identity = sweep_identity(base, grid, seeds, record_every, summaries_only, engine)
    return _Sweep(base, expanded, out, identity, record_every, not summaries_only, engine)


def _check_out(sweep: _Sweep, force: bool) -> None:
    check_sweep_dir(sweep.out, sweep.identity, force)
    check_disk_space(sweep.expanded, sweep.out, sweep.record_every, sweep.record)


def _compute_chunks(sweep: _Sweep, plan: list[_Chunk], todo: list[int], saved: dict, writer: "ChunkWriter",
                    progress: bool) -> None:
    """Compute the chunks `todo` of `plan` one after the other in this process, handing each to
    `writer` and keeping its values in `saved` (by path)."""
    total = sum(sweep.point_steps(plan[i]) for i in todo)
    finished = 0
    with StepProgress(total, "point-steps", enabled=progress and total > 0, description=f"{len(todo)} chunk(s)") as bar:
        for i in todo:
            chunk = plan[i]
            values = sweep.compute(chunk, lambda done: bar.advance_to(finished + done))
            finished += sweep.point_steps(chunk)
            writer.write(chunk.path, values)
            saved[chunk.path] = values


def _write_results(sweep: _Sweep, plan: list[_Chunk], saved: dict) -> dict:
    """Assemble every chunk's values (`saved`, by path) and write sweep.npz, summary.csv and
    summary.json (last); the SweepResult's fields."""
    expanded = sweep.expanded
    chunk_values = [(chunk.indices, saved[chunk.path]) for chunk in plan]
    chunk_values += [_copied_rows(chunk, saved[chunk.path]) for chunk in plan if chunk.copies]
    metrics, summary = _assemble(expanded, chunk_values, sweep.record_every)
    summaries = _summary_rows(expanded, summary)
    coords = _coords(expanded)
    steps = np.array([c.train.steps for c in expanded.configs], dtype=np.int64)
    arrays = {**coords, **metrics, **{f"summary_{k}": v for k, v in summary.items()}, "steps": steps}
    write_npz_atomic(sweep.out / "sweep.npz", arrays)
    write_atomic(sweep.out / "summary.csv", _csv_bytes(expanded.keys, summaries))
    identity = sweep.identity
    document = {"grid": identity["grid"], "seeds": identity["seeds"], "keys": expanded.keys,
                **{k: v for k, v in identity.items() if k not in ("grid", "seeds")},
                "points": [{k: _json_value(v) for k, v in row.items()} for row in summaries]}
    write_atomic(sweep.out / "summary.json", json_bytes(document))
    return dict(grid=expanded, coords=coords, metrics=metrics, steps=steps, summaries=summaries, out=sweep.out,
                record_every=sweep.record_every, engine=sweep.engine,
                trained_points=sum(len(chunk.indices) for chunk in plan))


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
    sweeps/<sweep_digest>); chunks already saved there (by an interrupted run, or by shards,
    `run_shard`) are reused, not rerun, and every chunk is saved as soon as it is computed.

    record_every: record metrics every N steps (and at the last step); summaries_only:
    record none (the summaries always come from every step). engine: "full" (the fast exact
    engine) or "reduced" (the exact group recursion, where it is exact). processes: this
    process's place when several run the sweep (`cpi.sims.distributed.join`); only process 0
    writes and returns the result, the others return None. expanded: what `check_sweep`
    returned for these arguments (saves expanding the grid twice).

    A directory that holds another sweep (`check_sweep_dir`) is refused unless `force`, which
    replaces it, keeping the chunks the two sweeps share and deleting the others.

    Raises ConfigError (before anything is written) when a spec, a point, the engine, the
    memory needed or the directory is bad, or when the free disk space is too small
    (`check_disk_space`)."""
    processes = processes or Processes()
    sweep = _prepare(base, grid, seeds, out, record_every, summaries_only, engine, expanded)
    out = sweep.out
    if processes.writer:
        _check_out(sweep, force)  # before anything is created
    # one writer at a time (`claim_dir`); the checks again, now that no other process can write
    with claim_dir(out) if processes.writer else contextlib.nullcontext():
        if processes.writer:
            _check_out(sweep, force)
        plan, n_groups = _plan(sweep.expanded, out, engine, record_every, sweep.record)
        if processes.writer:
            (out / "summary.json").unlink(missing_ok=True)  # the directory is incomplete until the end
            write_identity_files(out, sweep.identity_files(), write_atomic, exclusive=True)
            (out / "groups").mkdir(exist_ok=True)
            if force:
                remove_stale_chunks(out, {chunk.path.name for chunk in plan})
        saved = {}
        if processes.writer:
            for chunk in plan:
                values = sweep.load(chunk)
                if values is not None:
                    saved[chunk.path] = values
        missing = [i for i, chunk in enumerate(plan) if chunk.path not in saved]
        if processes.count > 1:
            flags = np.zeros(len(plan), dtype=bool)
            flags[missing] = True
            missing = np.flatnonzero(np.asarray(distributed.broadcast(flags))).tolist()

        start, clock = time.perf_counter(), dataclasses.replace(chunks.CLOCK)
        with ChunkWriter() as writer:  # on leaving, every computed chunk is on disk (or its write failed here)
            if processes.count == 1:
                _compute_chunks(sweep, plan, missing, saved, writer, progress)
            else:
                total = sum(sweep.point_steps(plan[i]) for i in missing)
                with StepProgress(total, "point-steps", enabled=progress and processes.writer and total > 0,
                                  description=f"{len(missing)} chunk(s)") as bar:
                    _run_distributed(plan, missing, processes, sweep, saved, bar, writer)
            seconds = time.perf_counter() - start
            if not processes.writer:
                return None
            fields = _write_results(sweep, plan, saved)  # assembled while the last chunk is written
        return SweepResult(**fields, seconds=seconds, clock=chunks.CLOCK.since(clock), computed_chunks=len(missing),
                           reused_chunks=len(plan) - len(missing), n_groups=n_groups)


def run_shard(
    base: Config,
    grid: list[str] | tuple[str, ...] = (),
    seeds: int = 1,
    out: str | Path | None = None,
    *,
    shard: Shard,
    progress: bool = False,
    record_every: int = 1,
    summaries_only: bool = False,
    engine: str = "full",
    expanded: Grid | None = None,
) -> ShardReport:
    """Compute the chunks of `shard` (`cpi.core.shards.Shard.share` of the sweep's plan) that
    are not saved yet into `out`, the directory `run_sweep` writes, beside other shards of
    the same sweep running at the same time: no lock is held while computing; the manifest
    and config.toml are written only when absent and must be this sweep's; chunks are
    written atomically. A shard that then finds every chunk of the sweep saved takes the
    directory's lock (when free) and writes sweep.npz and the summaries, as `run_sweep` would.

    Raises ConfigError (before anything is written) when a spec, a point, the engine, the
    memory or the disk space needed is bad, or when `out` holds another sweep or a run."""
    sweep = _prepare(base, grid, seeds, out, record_every, summaries_only, engine, expanded)
    out = sweep.out
    _check_out(sweep, force=False)
    plan, n_groups = _plan(sweep.expanded, out, engine, record_every, sweep.record)
    write_identity_files(out, sweep.identity_files(), write_atomic, exclusive=False)
    (out / "groups").mkdir(exist_ok=True)
    mine = shard.share(len(plan))
    todo = [i for i in mine if sweep.load(plan[i]) is None]
    start = time.perf_counter()
    with ChunkWriter() as writer:
        _compute_chunks(sweep, plan, todo, {}, writer, progress)
    seconds = time.perf_counter() - start
    missing = [i for i, chunk in enumerate(plan) if not chunk.path.exists()]
    report = ShardReport(shard, len(mine), len(todo), missing, len(plan), seconds)
    if missing:
        return report
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(claim_dir(out))
        except ConfigError:  # another process holds the directory: it assembles, or computes and assembles
            return report
        if finished_rows(out, sweep.identity, len(sweep.expanded), sweep.expanded.keys) is not None:
            return report  # another shard has assembled it
        saved = {chunk.path: sweep.load(chunk) for chunk in plan}
        damaged = [i for i, chunk in enumerate(plan) if saved[chunk.path] is None]
        if damaged:
            report.missing = damaged
            return report
        fields = _write_results(sweep, plan, saved)
        report.result = SweepResult(**fields, seconds=seconds, computed_chunks=len(todo),
                                    reused_chunks=len(plan) - len(todo), n_groups=n_groups)
    return report


def _copied_rows(chunk: _Chunk, values: dict) -> tuple[list[int], dict]:
    """(indices, values) of the points that copy rows of `chunk`'s computed values."""
    points, rows = (list(x) for x in zip(*chunk.copies))
    return points, {k: np.asarray(v)[rows] for k, v in values.items()}


def _run_distributed(plan, missing, processes, sweep: _Sweep, saved, bar, writer) -> None:
    """Deal the missing chunks of each shape group round-robin over the processes; after each
    round gather every process's chunk (padded to the group's chunk size) and let process 0
    save them. A process without a chunk in the last round sends its first chunk again."""
    by_group: dict[int, list[int]] = {}
    for i in missing:
        by_group.setdefault(plan[i].group, []).append(i)
    p, rank = processes.count, processes.index
    finished = 0
    for members in by_group.values():
        for start in range(0, len(members), p):
            round_ = members[start:start + p]
            mine = plan[round_[rank] if rank < len(round_) else round_[0]]
            values = sweep.compute(mine, None)
            padded = chunks.pad_rows(values, mine.size)
            gathered = distributed.gather(padded)
            for q, i in enumerate(round_):
                chunk = plan[i]
                n = len(chunk.indices)
                got = {k: np.asarray(v[q])[:n] for k, v in gathered.items()}
                if processes.writer:
                    writer.write(chunk.path, got)
                    saved[chunk.path] = got
                finished += sweep.point_steps(chunk)
            bar.advance_to(finished)


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
                       record_every=saved.record_every, engine=saved.document.get("engine", "full"))
