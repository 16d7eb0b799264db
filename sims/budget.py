"""What a run or sweep will cost before it starts: point-steps of work and bytes of recorded
metrics, against the memory of this machine. Too much memory is bad input (ConfigError, exit
status 2) with the estimate and the flags that would bring it down."""

from __future__ import annotations

import os

import numpy as np

from .config import Config
from .engine import metric_names, n_recorded
from .errors import ConfigError


def check_record_every(record_every) -> None:
    """ConfigError unless `record_every` is an integer >= 1."""
    if isinstance(record_every, bool) or not isinstance(record_every, (int, np.integer)) or record_every < 1:
        raise ConfigError(f"--record-every {record_every!r} is out of range; expected an integer >= 1")


def available_memory() -> int:
    """Bytes of memory available to this process now (MemAvailable on Linux, else physical)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError


def recorded_bytes(config: Config, record_every: int, record: bool = True) -> int:
    """Bytes of the metrics one point records: metrics × recorded steps × item size (kept
    twice in the worst case: on the device and on the host)."""
    if not record:
        return 0
    itemsize = np.dtype(config.train.dtype).itemsize
    return 2 * itemsize * len(metric_names(config.world.n_relations)) * n_recorded(config.train.steps, record_every)


def world_bytes(config: Config) -> int:
    """Bytes of one point's packed world and state on the device: the K×K value table (and
    the trained table and its coefficients when W_V trains) plus the token Gram."""
    w = config.world
    k = w.n_subjects + w.n_answers + w.n_relations
    itemsize = np.dtype(config.train.dtype).itemsize
    tables = 4 if config.train.value_lr > 0 else 2
    points = config.mixture.n_train + config.mixture.n_test * w.n_relations + config.mixture.n_aligned
    return itemsize * (tables * k * k + 8 * points * k)


def check_run_budget(config: Config, record_every: int = 1, record: bool = True) -> None:
    """Refuse a run whose recorded metrics (or world) would not fit in memory."""
    need = recorded_bytes(config, record_every, record) + world_bytes(config)
    have = available_memory()
    if need > have:
        steps = config.train.steps
        raise ConfigError(
            f"train.steps = {steps} with --record-every {record_every} records {n_recorded(steps, record_every)} steps of "
            f"{len(metric_names(config.world.n_relations))} metrics: about {human_bytes(need)}, more than the "
            f"{human_bytes(have)} of memory available; record fewer steps (--record-every N) or fewer steps"
        )
