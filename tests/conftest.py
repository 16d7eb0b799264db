"""Test-session setup, before any test module imports NumPy or JAX: one BLAS thread, XLA's
own CPU reductions and elemental emitter (`cpi.cli.SPEED_FLAGS`), deterministic GPU
arithmetic and full-precision matrix products, as the `cpi` entry point sets them
(`cpi.cli.configure_arithmetic`: tiny matrices, on which several BLAS threads contend and
YNNPACK reductions are slow). And the
`float64` fixture: JAX's 64-bit mode for one test, for tests that compute with JAX
themselves (theory and sims switch it on per call; nothing switches it on for the process).
And the `no_training` fixture: a test of input checks fails if any training starts.

The suite compiles a few hundred small XLA programs and runs each briefly, so it asks XLA's
backend for no optimisation (`TEST_OPTIMIZATION`, also passed on to the `cpi` processes the
tests start): on the 2-core development machine the suite then takes about 290 s instead of
about 360 s. The optimisation level changes how fast the compiled code runs and, in the last
bits, what it computes: the default run agrees to 1e-12 at XLA's own level
(`tests/test_simulator.py::test_the_optimised_build_computes_what_the_tests_check`), but
thousands of float32 training steps amplify the difference (the bridge's pretrained δ_C moves by
up to 2e-3 at level 0), so the slow recomputation of the committed summaries runs in a process
at XLA's own level (`tests/test_results_document.py`). An optimisation level already in
XLA_FLAGS wins (`XLA_FLAGS=--xla_backend_optimization_level=3 python -m pytest`, XLA's own
level, runs the suite on the build `cpi` uses)."""

import os

import pytest
from hypothesis import settings

from cpi.cli import configure_arithmetic

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):  # CI draws the same examples every time: a red run is reproducible
    settings.load_profile("ci")

OPTIMIZATION_FLAG = "--xla_backend_optimization_level"
TEST_OPTIMIZATION = f"{OPTIMIZATION_FLAG}=0"


def xla_flags_with(flag: str) -> str:
    """This process's XLA_FLAGS with `flag` appended (for a subprocess that needs one more)."""
    return f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def xla_flags_at_xla_level() -> str:
    """This process's XLA_FLAGS without the suite's `TEST_OPTIMIZATION` (for a subprocess that
    must compute as `cpi` does, at XLA's own optimisation level)."""
    return os.environ.get("XLA_FLAGS", "").replace(TEST_OPTIMIZATION, "").strip()


if OPTIMIZATION_FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = xla_flags_with(TEST_OPTIMIZATION)
configure_arithmetic()


@pytest.fixture
def float64():
    """Run the test with JAX's 64-bit mode on (thread-local, undone after the test)."""
    import jax

    with jax.enable_x64(True):
        yield


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if a run or a sweep starts training: input checks come before any work."""
    import cpi.sims.sweep
    import cpi.sims.train

    def refuse(*a, **k):
        raise AssertionError("training started before the input was checked")

    monkeypatch.setattr(cpi.sims.train, "run", refuse)
    monkeypatch.setattr(cpi.sims.sweep, "run_sweep", refuse)


SAVED_TOY = ["--set", "train.steps=10", "--set", "world.n_subjects=60", "--set", "world.n_answers=60"]
"""The small toy config of the shared result directories (`result_dirs`)."""


@pytest.fixture(scope="session")
def result_dirs(tmp_path_factory):
    """One result directory of each kind, written once for the session and shared by the
    readers' tests (never written into by them: a test that damages one copies it first):
    {name: path} for a toy run, a toy sweep recorded every 3 steps, a summaries-only sweep,
    a transformer run and a transformer sweep whose points record different steps (the
    two sharing one pretraining)."""
    from cpi.cli import execute

    from .test_bridge_model import TINY

    bridge = [arg for item in TINY for arg in ("--set", item)]
    root = tmp_path_factory.mktemp("results")
    cache = root / "cache"
    dirs = {name: root / name for name in ("run", "sweep", "summaries", "bridge_run", "bridge_sweep")}
    assert execute(["run", *SAVED_TOY, "--out", str(dirs["run"])]) == 0
    assert execute(["sweep", *SAVED_TOY, "--record-every", "3", "--grid", "knowledge.delta_m=0.6,0.7",
                    "--out", str(dirs["sweep"])]) == 0
    assert execute(["sweep", *SAVED_TOY, "--summaries-only", "--grid", "train.lr=0.5,1",
                    "--out", str(dirs["summaries"])]) == 0
    assert execute(["bridge", *bridge, "--out", str(dirs["bridge_run"]), "--cache", str(cache)]) == 0
    # train.eval_every is the transformer's own key: its points record different steps
    assert execute(["bridge", *bridge, "--grid", "train.eval_every=5,10", "--out", str(dirs["bridge_sweep"]),
                    "--cache", str(cache), "--no-vmap"]) == 0
    return dirs


@pytest.fixture(scope="session")
def grid_sweep(tmp_path_factory):
    """A toy sweep over two keys (2 × 3 values) with two seeds: 12 points, 11 recorded steps."""
    from cpi.cli import execute

    out = tmp_path_factory.mktemp("grid") / "sweep"
    assert execute(["sweep", *SAVED_TOY, "--grid", "knowledge.delta_m=0.6,0.7",
                    "--grid", "mixture.context_critical=0.3,0.5,0.7", "--seeds", "2", "--out", str(out)]) == 0
    return out
