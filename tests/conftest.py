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
about 360 s. The optimisation level changes how fast the compiled code runs, not what it
computes; `tests/test_simulator.py::test_the_optimised_build_computes_what_the_tests_check`
checks that on the default run, at XLA's own level. An optimisation level already in
XLA_FLAGS wins (`XLA_FLAGS=--xla_backend_optimization_level=2 python -m pytest` runs the
suite on the optimised build)."""

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
