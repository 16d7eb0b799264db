"""What a toy sweep is checked for before it starts (`check_sweep`): its inputs, the engine, and
how much it records against the memory and the disk: the estimates (`record_sizes`), the note
`cpi sweep` prints above SIZE_NOTE_BYTES with a stride that fits, and the refusals
(ConfigError) of a sweep the memory or the disk cannot hold."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from cpi.core.errors import ConfigError
from cpi.core.grid import Grid

from . import chunks
from . import config as cfg
from .budget import available_memory, check_record_every, check_world_budget, human_bytes, recorded_bytes
from .chunks import SUMMARY_FIELDS
from .config import Config
from .grid import expand_grid
from .world import check_vocabulary


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
    if cfg.engine_name(engine_name) not in cfg.SWEEP_ENGINES:
        raise ConfigError(f"--engine {engine_name!r} is not one of {', '.join(cfg.SWEEP_ENGINES)}")
    if cfg.engine_name(engine_name) == "reduced":
        for point, config in zip(expanded.points, expanded.configs):
            problem = chunks.reduced_engine_problem(config)
            if problem:
                where = ", ".join(f"{k}={v!r}" for k, v in point.items()) or "the base config"
                raise ConfigError(f"--engine reduced cannot compute grid point {where} exactly: {problem}; "
                                  "use --engine fast")


def check_sweep(base: Config, grid=(), seeds: int = 1, record_every: int = 1, summaries_only: bool = False,
                engine: str = "fast") -> Grid:
    """The expanded grid, once every input is checked: the base config, the specs and their
    points, the stride, the engine and the memory needed; raises ConfigError otherwise."""
    check_vocabulary(cfg.validate(base))
    check_record_every(record_every)
    expanded = expand_grid(base, grid, seeds)
    check_engine(expanded, engine)
    check_sweep_budget(expanded, record_every, not summaries_only)
    check_world_budget(expanded.configs)
    return expanded
