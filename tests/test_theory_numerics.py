"""theory.numerics against SciPy's special functions, and the `cpi run` path free of SciPy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.special as special

from cpi.theory.numerics import expit, logsumexp

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("shape, axis, keepdims", [((6,), None, False), ((5, 7), -1, False), ((5, 7), 0, True),
                                                   ((3, 4, 5), (0, 2), False), ((3, 4, 5), None, True)])
def test_logsumexp_equals_scipy(shape, axis, keepdims):
    a = np.random.default_rng(0).normal(size=shape) * 300.0  # exponentials that would overflow
    a.flat[0] = -np.inf
    ours, theirs = logsumexp(a, axis=axis, keepdims=keepdims), special.logsumexp(a, axis=axis, keepdims=keepdims)
    assert np.shape(ours) == np.shape(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=0)


def test_logsumexp_of_nothing_but_minus_infinity_is_minus_infinity():
    assert logsumexp(np.full(3, -np.inf)) == -np.inf
    np.testing.assert_array_equal(logsumexp(np.array([[-np.inf, -np.inf], [0.0, 0.0]]), axis=1), [-np.inf, np.log(2)])


def test_expit_equals_scipy_to_an_ulp_over_the_whole_range():
    x = np.linspace(-700.0, 700.0, 200_001)  # beyond, σ is subnormal and SciPy rounds it to 0
    np.testing.assert_allclose(expit(x), special.expit(x), rtol=5e-16, atol=0)
    assert expit(0.0) == 0.5 and expit(1e308) == 1.0 and expit(-1e308) == 0.0


def test_cpi_run_imports_neither_scipy_nor_matplotlib(tmp_path):
    code = ("import sys; from cpi.cli import main\n"
            f"assert main(['run', '--set', 'train.steps=3', '--out', {str(tmp_path / 'r')!r}]) == 0\n"
            "bad = [m for m in ('scipy', 'matplotlib') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)


def test_commands_that_compute_nothing_do_not_import_jax(tmp_path):
    """`cpi --version`, `cpi config` and help configure JAX through its environment and never
    import it (importing it costs a second); a command that computes then finds the options set."""
    code = ("import sys; from cpi.cli import main\n"
            "for argv in (['--version'], ['config'], ['sweep', '--help']):\n"
            "    try:\n"
            "        main(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "assert 'jax' not in sys.modules\n"
            "import os, jax\n"
            "assert jax.config.jax_default_matmul_precision == 'highest'\n"
            "assert jax.config.jax_compilation_cache_dir == os.environ['CPI_COMPILATION_CACHE_DIR']\n")
    env = {**os.environ, "CPI_COMPILATION_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("CPI_COMPILATION_CACHE", None)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, env=env)
