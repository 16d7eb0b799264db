"""Test-session setup, before any test module imports NumPy or JAX: one BLAS thread, XLA's
own CPU reductions, deterministic GPU arithmetic and full-precision matrix products, as the
`cpi` entry point sets them (`cpi.cli.configure_arithmetic`: tiny
matrices, on which several BLAS threads contend and YNNPACK reductions are slow). And the
`float64` fixture: JAX's 64-bit mode for one test, for tests that compute with JAX
themselves (theory and sims switch it on per call; nothing switches it on for the process)."""

import pytest

from cpi.cli import configure_arithmetic

configure_arithmetic()


@pytest.fixture
def float64():
    """Run the test with JAX's 64-bit mode on (thread-local, undone after the test)."""
    import jax

    with jax.enable_x64(True):
        yield
