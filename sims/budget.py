"""What a run or sweep will cost before it starts: point-steps of work and bytes of recorded
metrics, against the memory of this machine. Too much memory is bad input (ConfigError, exit
status 2) with the estimate and the flags that would bring it down."""

from __future__ import annotations

import importlib.util
import os
import pkgutil

import numpy as np

from .config import Config
from .engine import metric_names, n_recorded
from cpi.core.errors import ConfigError


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


PROCESS_BYTES = 896 * 2**20
"""Memory of the process before any world exists (Python, NumPy, JAX and its compiler). The
same small run measured a peak between about 0.66 and 1.01 GB depending on what ran on the
machine beside it (XLA's compiler and thread pools), so this is set to cover the high end."""

ACCELERATOR_RUNTIME_BYTES = 1024 * 2**20
"""Host memory that an accelerator's runtime adds to the process (the CUDA libraries and their
buffers): on an H100 the small run of the memory test peaked at 1.40 GB of host memory."""


def accelerator_installed() -> bool:
    """Whether JAX may compute on a GPU here: a CUDA or ROCm plugin is installed and
    JAX_PLATFORMS does not ask for the CPU alone. Decided without starting JAX's backends,
    which a sweep across processes must start only after joining them."""
    platforms = [p.strip() for p in os.environ.get("JAX_PLATFORMS", "").split(",") if p.strip()]
    if platforms and set(platforms) <= {"cpu"}:
        return False
    spec = importlib.util.find_spec("jax_plugins")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(m.name.startswith(("xla_cuda", "xla_rocm"))
               for m in pkgutil.iter_modules(spec.submodule_search_locations))


def process_bytes() -> int:
    """`PROCESS_BYTES`, plus `ACCELERATOR_RUNTIME_BYTES` where JAX may compute on a GPU."""
    return PROCESS_BYTES + (ACCELERATOR_RUNTIME_BYTES if accelerator_installed() else 0)


def build_bytes(config: Config) -> int:
    """Peak host memory of building, packing and training one point's world, as measured
    (`cpi run` at K = 2 000 to 6 000 tokens): about 4 K×K float64 arrays (embeddings, token Gram,
    value table and their device copies; 10 when W_V trains) and 5 float64 numbers per
    point and token (each point's output rows over the vocabulary), for K tokens and N points."""
    w, m = config.world, config.mixture
    k = w.n_subjects + w.n_answers + w.n_relations
    points = m.n_train + m.n_test * w.n_relations + m.n_aligned
    tables = 10 if config.train.value_lr > 0 else 4
    return 8 * (tables * k * k + 5 * points * k)


def run_bytes(config: Config, record_every: int = 1, record: bool = True) -> int:
    """Estimated peak memory of a `cpi run` process: the process, the world, the records."""
    return process_bytes() + build_bytes(config) + recorded_bytes(config, record_every, record)


def check_run_budget(config: Config, record_every: int = 1, record: bool = True) -> None:
    """Refuse (ConfigError, with the estimate) a run whose world or recorded metrics would
    not fit in the memory available now."""
    world, records = build_bytes(config), recorded_bytes(config, record_every, record)
    need = run_bytes(config, record_every, record)
    have = available_memory()
    if need <= have:
        return
    w, m = config.world, config.mixture
    k = w.n_subjects + w.n_answers + w.n_relations
    steps = config.train.steps
    parts = [f"its world of {k} tokens and {m.n_train} training examples about {human_bytes(world)}"]
    if record:
        parts.append(f"train.steps = {steps} with --record-every {record_every}: {n_recorded(steps, record_every)} "
                     f"recorded steps of {len(metric_names(w.n_relations))} metrics about {human_bytes(records)}")
    fix = ("a smaller vocabulary (world.n_subjects, world.n_answers) and fewer points (mixture.n_train)"
           if world >= records else "record fewer steps (--record-every N) or train fewer steps")
    raise ConfigError(
        f"this run needs about {human_bytes(need)} of memory ({'; '.join(parts)}), more than the "
        f"{human_bytes(have)} available; use {fix}"
    )


def check_world_budget(configs) -> None:
    """Refuse (ConfigError, with the estimate) configs of which one world alone would not fit
    in the memory available now (`build_bytes`): a sweep builds at least one at a time."""
    config = max(configs, key=build_bytes)
    need = process_bytes() + build_bytes(config)
    have = available_memory()
    if need > have:
        w = config.world
        k = w.n_subjects + w.n_answers + w.n_relations
        raise ConfigError(
            f"a world of {k} tokens (world.n_subjects {w.n_subjects} + n_answers {w.n_answers} + "
            f"n_relations {w.n_relations}) and {config.mixture.n_train} training examples needs about "
            f"{human_bytes(need)} of memory, more than the {human_bytes(have)} available; use a smaller "
            "vocabulary and fewer points (mixture.n_train)"
        )
