"""Wall-clock cost of a 41-point ρ sweep (mixture.context_critical=0:1:41, default config,
300 steps): one vmapped `run_sweep` call against 41 sequential `sims.train.run` calls.

Compile time (XLA backend compilation, from jax.monitoring) and run time are reported
separately; the first call of each kind in a fresh process is the cold one, later calls are
warm (compiled functions cached in the process). A fresh output directory is used for every
sweep, so no saved result is reused.

    python benchmarks/sweep_speed.py sweep     # run_sweep, cold then warm x3
    python benchmarks/sweep_speed.py runs      # 41 x run(), cold then warm x3

Run each mode in its own process so that each one's cold number really is cold.
"""

from __future__ import annotations

import sys
import tempfile
import time

import jax

from sims import config as cfg
from sims.sweep import expand_grid, run_sweep
from sims.train import run

GRID = ["mixture.context_critical=0:1:41"]
compile_seconds = [0.0]


def _on_event(event: str, duration: float, **_) -> None:
    if event.endswith("backend_compile_duration"):
        compile_seconds[0] += duration


def timed(label: str, work) -> None:
    compile_seconds[0] = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:34s} {wall:6.2f} s wall, {cpu:6.2f} s cpu, of which compile {compile_seconds[0]:5.2f} s")


def main(mode: str) -> None:
    jax.monitoring.register_event_duration_secs_listener(_on_event)
    base = cfg.load()
    tmp = tempfile.mkdtemp()
    print(f"devices: {jax.devices()}")
    if mode == "sweep":
        for i in range(4):
            timed(f"run_sweep, 41 points ({'cold' if i == 0 else 'warm'})",
                  lambda i=i: run_sweep(base, GRID, out=f"{tmp}/sweep{i}"))
        timed("run_sweep rerun, all reused", lambda: run_sweep(base, GRID, out=f"{tmp}/sweep0"))
    elif mode == "runs":
        configs = expand_grid(base, GRID).configs
        for i in range(4):
            timed(f"41 x run() ({'cold' if i == 0 else 'warm'})", lambda: [run(c) for c in configs])
    else:
        raise SystemExit(f"usage: {sys.argv[0]} sweep|runs")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sweep")
