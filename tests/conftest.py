"""Test-session setup, before any test module imports NumPy or JAX: one BLAS thread, XLA's
own CPU reductions, deterministic GPU arithmetic and full-precision matrix products, as the
`cpi` entry point sets them (`cpi.cli.configure_process`: tiny
matrices, on which several BLAS threads contend and YNNPACK reductions are slow). And the
`float64` fixture: JAX's 64-bit mode for one test, for tests that compute with JAX
themselves (theory and sims switch it on per call; nothing switches it on for the process)."""

import os

import pytest

from cpi.cli import BLAS_THREAD_VARIABLES, DETERMINISTIC_FLAG, YNN_FUSION_FLAG, configure_numerics, xla_flags_for_speed

for _name in BLAS_THREAD_VARIABLES:
    os.environ.setdefault(_name, "1")
if YNN_FUSION_FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *xla_flags_for_speed()]).strip()
if DETERMINISTIC_FLAG.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {DETERMINISTIC_FLAG}".strip()
configure_numerics()


@pytest.fixture
def float64():
    """Run the test with JAX's 64-bit mode on (thread-local, undone after the test)."""
    import jax

    with jax.enable_x64(True):
        yield
