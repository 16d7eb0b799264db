"""Test-session setup, before any test module imports NumPy: one BLAS thread, as the `cpi`
entry point sets (tiny matrices; several threads only contend on a 2-core machine)."""

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
