"""The memory budget (`cpi.sims.budget`): a world too big for the memory available is refused
with the estimate before any work, a run that needs much memory says how much, the estimate
counts a GPU runtime without starting JAX, and it bounds the peak memory of a real run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cpi.sims.budget as budget
from cpi.cli import execute as main
from cpi.sims import config as cfg

FAST = ["--set", "train.steps=10"]
ROOT = Path(__file__).resolve().parents[1]
HUGE = ["--set", "mixture.n_train=1000000", "--set", "world.n_subjects=1000020", "--set", "world.n_answers=1000040"]


@pytest.mark.parametrize("command", [["run"], ["theory"], ["sweep", "--grid", "train.lr=1"]])
def test_a_world_too_big_for_memory_is_refused_with_the_estimate(tmp_path, capsys, no_training, command):
    out = tmp_path / "out"
    extra = [] if command == ["theory"] else ["--out", str(out)]
    assert main([*command, *HUGE, *extra]) == 2
    err = capsys.readouterr().err
    assert "2000061 tokens" in err and "TiB" in err and "available" in err and "world.n_subjects" in err
    assert not out.exists()


def test_a_large_vocabulary_is_refused_where_memory_is_short(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(budget, "available_memory", lambda: 2**30)
    assert main(["run", *FAST, "--set", "world.n_answers=6000", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "6041 tokens" in err and "GiB" in err and "1 GiB available" in err


def test_a_run_that_needs_much_memory_says_how_much(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(budget, "process_bytes", lambda: 3 * 2**30)
    monkeypatch.setattr(budget, "available_memory", lambda: 4 * 2**30)
    assert main(["run", *FAST, "--out", str(tmp_path / "r")]) == 0
    assert "memory: about 3 GiB (of 4 GiB available)" in capsys.readouterr().out


def test_the_memory_estimate_counts_a_gpu_runtime_without_starting_jax(tmp_path, monkeypatch):
    """A GPU plugin adds its runtime to the estimate; finding out starts no JAX backend (a
    sweep across processes must start them only after joining: jax.distributed)."""
    plugin = tmp_path / "jax_plugins" / "xla_cuda12"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    assert budget.accelerator_installed()
    assert budget.process_bytes() == budget.PROCESS_BYTES + budget.ACCELERATOR_RUNTIME_BYTES
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert not budget.accelerator_installed() and budget.process_bytes() == budget.PROCESS_BYTES
    code = ("from cpi.sims import budget; budget.process_bytes()\n"
            "from jax._src import xla_bridge; assert not xla_bridge.backends_are_initialized()\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_memory_estimate_bounds_a_measured_run(tmp_path):
    """The estimate is above the peak memory of a real run, and not far above it."""
    config = cfg.load(overrides=["world.n_answers=3000", "train.steps=5"])
    # The process's own peak: VmHWM of its address space. ru_maxrss would not do: Linux carries it
    # over exec from the forking process, so it reports the test runner's peak when that is larger.
    code = ("import re, resource, sys; from cpi.cli import main; code = main(sys.argv[1:]); "
            "status = open('/proc/self/status').read() if sys.platform == 'linux' else ''; "
            "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', status); "
            "print(int(hwm.group(1)) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, "run", "--set", "world.n_answers=3000", "--set",
                           "train.steps=5", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                                         "CPI_COMPILATION_CACHE": "0"})
    assert done.returncode == 0, done.stderr
    peak = int(done.stdout.split()[-1]) * 1024  # KiB
    estimate = budget.process_bytes() + budget.build_bytes(config)
    assert peak <= estimate <= 3 * peak, (peak, estimate)
