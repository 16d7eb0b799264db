"""What one float64 exp costs under XLA on this CPU, next to NumPy's, on the array the fast
engine exponentiates every step of the 328-point sweep.

That sweep's step computes, per device, a softmax over the output classes of every example,
an (84 points, 40 examples, 5 classes) array, and one over the attention slots, (84, 40, 3).
An XLA profile of its scan (`jax.profiler` with XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true)
put those two exponentials and one log at 43% of the scan's kernel time. This prints, for that
array, the nanoseconds per element of the following, under the XLA flags `cpi` runs with
(`cpi.cli.SPEED_FLAGS`: XLA's elemental emitter) and under XLA's defaults (its fusion emitters,
which `cpi` turns off because they compile the sweep's program more slowly), each in a
process of its own:
  xla-exp      jnp.exp in a compiled scan (what the engine runs)
  xla-poly     a hand-written exp in jnp (Cody-Waite reduction by ln 2, degree-13 Taylor
               polynomial, 2^n by bit arithmetic; within 1 ulp of NumPy's exp on [-708, 709])
  numpy-exp    np.exp on the same values, in a Python loop
  xla-square   x*x in a compiled scan: what one elementwise operation costs there

    .venv/bin/python benchmarks/elementwise.py

A benchmark: it prints numbers and never asserts them.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import numpy as np

SHAPE = (84, 40, 5)
STEPS = 2000
LN2_HI, LN2_LO, INV_LN2 = 6.93147180369123816490e-01, 1.90821492927058770002e-10, 1.44269504088896338700e+00
TAYLOR = [1 / math.factorial(k) for k in range(14)]


def poly_exp(x):
    import jax
    import jax.numpy as jnp

    """exp(x) = 2^n · p(r), n = round(x / ln 2), r = x − n ln 2 (in two parts), p the degree-13
    Taylor polynomial; 0 below −708, ∞ above 709."""
    xc = jnp.clip(x, -708.0, 709.0)
    n = jnp.round(xc * INV_LN2)
    r = (xc - n * LN2_HI) - n * LN2_LO
    p = TAYLOR[-1]
    for c in reversed(TAYLOR[:-1]):
        p = p * r + c
    two_n = jax.lax.bitcast_convert_type((n.astype(jnp.int64) + 1023) << 52, jnp.float64)
    return jnp.where(x < -708.0, 0.0, jnp.where(x > 709.0, jnp.inf, p * two_n))


def xla_ns(fn, x):
    """ns per element of fn over x, once per iteration of a compiled scan of STEPS iterations."""
    import jax
    run = jax.jit(lambda x: jax.lax.scan(lambda c, _: (c + 1e-9 * fn(c), None), x, None, length=STEPS)[0])
    run(x).block_until_ready()  # compile
    start = time.perf_counter()
    run(x).block_until_ready()
    return 1e9 * (time.perf_counter() - start) / (STEPS * x.size)


def numpy_ns(x):
    start = time.perf_counter()
    for _ in range(STEPS):
        np.exp(x)
    return 1e9 * (time.perf_counter() - start) / (STEPS * x.size)


def measure():
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    values = np.random.default_rng(0).standard_normal(SHAPE)
    grid = np.linspace(-708, 709, 400_001)
    error = np.max(np.abs(np.asarray(jax.jit(poly_exp)(grid)) / np.exp(grid) - 1))
    x = jnp.asarray(values)
    for name, ns in (("xla-exp", xla_ns(jnp.exp, x)), ("xla-poly", xla_ns(poly_exp, x)),
                     ("numpy-exp", numpy_ns(values)), ("xla-square", xla_ns(lambda c: c * c, x))):
        print(f"  {name:10s} {ns:6.2f} ns per element")
    print(f"  xla-poly's largest relative difference from np.exp on [-708, 709]: {error:.2e}")


def main():
    if os.environ.get("ELEMENTWISE_CHILD"):
        return measure()
    from cpi.cli import xla_flags_for_speed

    print(f"array {SHAPE} float64, {STEPS} iterations, numpy {np.__version__}")
    one_device = "--xla_force_host_platform_device_count=1"
    for label, flags in (("cpi's XLA flags", [one_device, *xla_flags_for_speed()]), ("XLA's defaults", [one_device])):
        print(f"{label}: {' '.join(flags)}", flush=True)
        env = dict(os.environ, ELEMENTWISE_CHILD="1", XLA_FLAGS=" ".join(flags))
        subprocess.run([sys.executable, __file__], env=env, check=True)


if __name__ == "__main__":
    main()
