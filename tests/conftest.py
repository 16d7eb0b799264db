"""Test-session setup, before any test module imports NumPy: one BLAS thread, as the `cpi`
entry point sets (tiny matrices; several threads only contend on a 2-core machine). And the
`float64` fixture: JAX's 64-bit mode for one test, for tests that compute with JAX
themselves (theory and sims switch it on per call; nothing switches it on for the process)."""

import os

import pytest

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


@pytest.fixture
def float64():
    """Run the test with JAX's 64-bit mode on (thread-local, undone after the test)."""
    import jax

    with jax.enable_x64(True):
        yield
