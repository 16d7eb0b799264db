"""Parameter sweeps: a grid of configs (`cpi.sims.grid`) trained as one vmapped computation per
shape, saved in one directory.

How the points are computed (buckets, chunks of points, devices, processes, and the
"fast" or "reduced" engine) is `cpi.sims.chunks`; what is checked before a sweep starts is
`cpi.sims.sweep_checks`; a finished sweep and how its arrays are assembled is
`cpi.sims.sweep_results`.

Results go to one directory: `sweep.npz` (coordinates, the per-point summary as
`summary_<field>`, `steps`, and, unless summaries-only, every metric stacked per point at
the recorded steps `step`), `summary.csv` and `summary.json` (one row per point),
`config.toml` (the base config), and `groups/<hash>.npz`, one file per chunk of points,
keyed by a hash of its points' resolved configs and of what is recorded, written as soon
as the chunk is computed, so an interrupted or extended sweep computes only the chunks that
are missing, and independent processes (`run_shard`, `--shard I/N`) can each compute a share
of them. Metrics of absent data groups stay NaN. Unlike `cpi.sims.train.run`, a point whose
numbers become non-finite does not fail the sweep: its row's `nonfinite_step` says where
(None/empty when all is well). `sweep.json` (`cpi.sims.sweep_dir`) names the sweep a directory
computes, so that another sweep is not mixed into it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpi.core import store
from cpi.core.dir_lock import claim_dir
from cpi.core.errors import ConfigError
from cpi.core.progress import StepProgress
from cpi.core.shards import Shard, ShardReport
from cpi.core.sweep_dir import csv_bytes, write_identity_files
from cpi.core.sweep_dir import sweep_digest as sweep_digest_of
from cpi.core.writer import BackgroundWriter

from . import chunks, distributed
from . import config as cfg
from .budget import human_bytes  # noqa: F401
from .chunks import SUMMARY_FIELDS
from .config import Config
from .distributed import Processes
from .engine import n_recorded
from .grid import Axis, Grid, expand_grid, parse_spec  # noqa: F401  (the grid half of the sweep API)
from .results import json_bytes, write_atomic, write_npz_atomic
from .sweep_checks import (SIZE_NOTE_BYTES, RecordSizes, check_disk_space, check_engine,  # noqa: F401
                           check_sweep, check_sweep_budget, fitting_record_every, record_size_note, record_sizes)
from .sweep_results import SweepResult, _assemble, _coords, _json_value, _summary_rows, load_sweep  # noqa: F401
from .sweep_dir import MANIFEST, check_sweep_dir, finished_rows, remove_stale_chunks, sweep_identity  # noqa: F401


def _csv_bytes(keys: list[str], rows: list[dict]) -> bytes:
    return csv_bytes([*keys, "seed", *SUMMARY_FIELDS], rows)


def sweep_digest(base: Config, grid, seeds: int = 1) -> str:
    """The key of the resolved base config, the grid specs and the seeds
    (`cpi.core.sweep_dir.sweep_digest` of `cpi.core.store.SWEEP`): the name of the default directory."""
    return sweep_digest_of(store.SWEEP, cfg.to_toml(base), grid, seeds)


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


ChunkWriter = BackgroundWriter
"""Writes a sweep's finished chunks while the next one computes (`cpi.core.writer`)."""


@dataclass(frozen=True)
class _Chunk:
    bucket: int
    indices: list[int]  # the points it computes
    size: int  # padded size of every chunk of its bucket
    path: Path
    copies: tuple[tuple[int, int], ...] = ()  # (point, row): points of equal `world_key` that take a computed row


def _plan(expanded: Grid, out: Path, engine_name: str, record_every: int, record: bool) -> tuple[list[_Chunk], int]:
    """The chunks of each bucket, over the bucket's distinct points (`chunks.distinct_points`):
    a point whose world another point of the bucket has already is computed once, in the chunk
    of its first occurrence, and copied from there."""
    buckets = chunks.bucket_points(expanded.configs)
    plan = []
    for b, indices in enumerate(buckets):
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
            plan.append(_Chunk(b, part, size, out / "groups" / f"{digest}.npz", tuple(part_copies)))
    return plan, len(buckets)


def _plan_of(expanded: Grid, out: Path, record_every: int, summaries_only: bool, engine: str) -> list[_Chunk]:
    return _plan(expanded, Path(out), engine, record_every, not summaries_only)[0]


def saved_chunk_count(expanded: Grid, out: str | Path, record_every: int = 1, summaries_only: bool = False,
                      engine: str = "fast") -> tuple[int, int]:
    """(chunks of this sweep saved under out/groups, chunks in all)."""
    missing, total = missing_chunks(expanded, out, record_every, summaries_only, engine)
    return total - len(missing), total


def missing_chunks(expanded: Grid, out: str | Path, record_every: int = 1, summaries_only: bool = False,
                   engine: str = "fast") -> tuple[list[int], int]:
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


def _compute_chunks(sweep: _Sweep, plan: list[_Chunk], todo: list[int], saved: dict, writer: ChunkWriter,
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
    chunk_values = [(chunk.indices, saved[chunk.path], None) for chunk in plan]
    chunk_values += [_copied_rows(chunk, saved[chunk.path]) for chunk in plan if chunk.copies]
    metrics, summary = _assemble(expanded, chunk_values, sweep.record_every)
    summaries = _summary_rows(expanded, summary)
    coords = _coords(expanded)
    steps = np.array([c.train.steps for c in expanded.configs], dtype=np.int64)
    arrays = {**coords, **metrics.deferred(), **{f"summary_{k}": v for k, v in summary.items()}, "steps": steps}
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
    *,
    progress: bool = False,
    record_every: int = 1,
    summaries_only: bool = False,
    engine: str = "fast",
    processes: Processes | None = None,
    expanded: Grid | None = None,
    force: bool = False,
) -> SweepResult | None:
    """Train every point of the grid and save the results under `out` (default
    sweeps/<sweep_digest>); chunks already saved there (by an interrupted run, or by shards,
    `run_shard`) are reused, not rerun, and every chunk is saved as soon as it is computed.

    record_every: record metrics every N steps (and at the last step); summaries_only:
    record none (the summaries always come from every step). engine: "fast" (the fast
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
    engine = cfg.engine_name(engine)
    sweep = _prepare(base, grid, seeds, out, record_every, summaries_only, engine, expanded)
    out = sweep.out
    if processes.writer:
        _check_out(sweep, force)  # before anything is created
    # one writer at a time (`claim_dir`); the checks again, now that no other process can write
    with claim_dir(out) if processes.writer else contextlib.nullcontext():
        if processes.writer:
            _check_out(sweep, force)
        plan, n_buckets = _plan(sweep.expanded, out, engine, record_every, sweep.record)
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

        start = time.perf_counter()
        # on leaving, every computed chunk is on disk (or its write failed here)
        with ChunkWriter(write_npz_atomic) as writer:
            if processes.count == 1:
                _compute_chunks(sweep, plan, missing, saved, writer, progress)
            else:
                total = sum(sweep.point_steps(plan[i]) for i in missing)
                with StepProgress(total, "point-steps", enabled=progress and processes.writer and total > 0,
                                  description=f"{len(missing)} chunk(s)") as bar:
                    _run_distributed(plan, missing, processes=processes, sweep=sweep, saved=saved, bar=bar,
                                     writer=writer)
            seconds = time.perf_counter() - start
            if not processes.writer:
                return None
            fields = _write_results(sweep, plan, saved)  # assembled while the last chunk is written
        return SweepResult(**fields, seconds=seconds, computed_chunks=len(missing),
                           reused_chunks=len(plan) - len(missing), n_buckets=n_buckets)


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
    engine: str = "fast",
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
    engine = cfg.engine_name(engine)
    sweep = _prepare(base, grid, seeds, out, record_every, summaries_only, engine, expanded)
    out = sweep.out
    _check_out(sweep, force=False)
    plan, n_buckets = _plan(sweep.expanded, out, engine, record_every, sweep.record)
    write_identity_files(out, sweep.identity_files(), write_atomic, exclusive=False)
    (out / "groups").mkdir(exist_ok=True)
    mine = shard.share(len(plan))
    todo = [i for i in mine if sweep.load(plan[i]) is None]
    start = time.perf_counter()
    with ChunkWriter(write_npz_atomic) as writer:
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
                                    reused_chunks=len(plan) - len(todo), n_buckets=n_buckets)
    return report


def _copied_rows(chunk: _Chunk, values: dict) -> tuple[list[int], dict, list[int]]:
    """(points, values, rows) of the points that copy rows of `chunk`'s computed values."""
    points, rows = (list(x) for x in zip(*chunk.copies))
    return points, values, rows


def _run_distributed(plan, missing, *, processes, sweep: _Sweep, saved, bar, writer) -> None:
    """Deal the missing chunks of each bucket round-robin over the processes; after each
    round gather every process's chunk (padded to the bucket's chunk size) and let process 0
    save them. A process without a chunk in the last round sends its first chunk again."""
    by_bucket: dict[int, list[int]] = {}
    for i in missing:
        by_bucket.setdefault(plan[i].bucket, []).append(i)
    p, rank = processes.count, processes.index
    finished = 0
    for members in by_bucket.values():
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
