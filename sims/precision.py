"""The arithmetic a computation runs in: float64 or float32, every matrix product at that
precision. Both engines (`cpi.sims.engine`, `cpi.sims.generic`) and their callers enter it."""

from __future__ import annotations

import contextlib

import jax
import numpy as np


def precision(dtype: str):
    """The context in which a run of `dtype` computes: float64 needs JAX's 64-bit mode,
    switched on here for the duration (thread-local) rather than for the whole process; and
    every matrix product runs at the full precision of `dtype` (on a GPU, float32 products
    would otherwise run in TF32, with a 10-bit mantissa: measured on an H100, a float32 sweep
    then strayed 1.3e-3 from the same float32 run; on a CPU this changes nothing)."""
    stack = contextlib.ExitStack()
    stack.enter_context(jax.default_matmul_precision("highest"))
    if np.dtype(dtype) == np.float64:
        stack.enter_context(jax.enable_x64(True))
    return stack
