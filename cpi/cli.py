"""`cpi run | theory | sweep | figures`: the sims-level commands plus `figures`.

The entry point is the one place that configures the process, before NumPy and JAX
initialise: one BLAS thread (NumPy's work here is small matrices, which several BLAS threads
slow down by up to 100x on a busy machine; a value already in the environment wins), one
host device per CPU core (so that sweeps shard their points over the
cores; a flag already in XLA_FLAGS wins) and a persistent compilation cache, so that a
second `cpi run` of a config does not compile again. The cache lives in
$CPI_COMPILATION_CACHE_DIR, else $XDG_CACHE_HOME/cpi/jax (~/.cache/cpi/jax);
CPI_COMPILATION_CACHE=0 turns it off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def compilation_cache_dir() -> Path | None:
    """Where compiled programs are kept between processes (None: the cache is off)."""
    if os.environ.get("CPI_COMPILATION_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if os.environ.get("CPI_COMPILATION_CACHE_DIR"):
        return Path(os.environ["CPI_COMPILATION_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cpi" / "jax"


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def configure_process() -> None:
    """BLAS threads, host devices and the compilation cache; call before anything imports
    NumPy or JAX."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    flags = os.environ.get("XLA_FLAGS", "")
    if DEVICE_COUNT_FLAG not in flags:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        os.environ["XLA_FLAGS"] = f"{flags} {DEVICE_COUNT_FLAG}={cores}".strip()
    cache = compilation_cache_dir()
    if cache is not None:
        import jax

        jax.config.update("jax_compilation_cache_dir", str(cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def main(argv: list[str] | None = None) -> int:
    configure_process()
    from figures.make import add_figures_parser
    from sims.cli import main as sims_main

    return sims_main(argv, extra=(add_figures_parser,))


if __name__ == "__main__":
    sys.exit(main())
