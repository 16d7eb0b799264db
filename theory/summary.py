"""The summary of a reliance trajectory, defined once for simulation and theory alike.

Two forms of the same definition: `summarize` reads a whole trajectory; the fold
(`fold_init`, `fold_update`, `fold_finish`) reads it one step at a time inside a compiled
scan, so that a run or sweep that records only some steps (or none) still summarises every
step. The tests check that the two agree exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

INVERSION_TOL = 1e-9


def _summary(initial: float, peak: float, peak_step: int, final: float) -> dict:
    return {
        "initial_reliance": initial,
        "peak_reliance": peak,
        "peak_step": peak_step,
        "final_reliance": final,
        "inversion": bool(peak > initial + INVERSION_TOL and final < peak - INVERSION_TOL),
    }


def summarize(reliance) -> dict:
    """initial, peak (and its first step), final reliance M_C, and `inversion`: true when
    M_C rises above its start and then falls below its peak (both by more than 1e-9)."""
    reliance = np.asarray(reliance, dtype=np.float64)
    peak_step = int(np.argmax(reliance))
    return _summary(float(reliance[0]), float(reliance[peak_step]), peak_step, float(reliance[-1]))


class SummaryFold(NamedTuple):
    """The running state of `summarize` over steps 0..t, and of the first non-finite step."""

    initial: jnp.ndarray  # M_C(0)
    peak: jnp.ndarray  # max M_C so far (NaN once a NaN was seen, as np.argmax does)
    peak_step: jnp.ndarray  # first step of the peak
    final: jnp.ndarray  # M_C(t)
    finite_at_start: jnp.ndarray  # (M,) which of the M metrics were finite at step 0
    nonfinite_step: jnp.ndarray  # first step where one of those is not finite; -1: none


def fold_init(n_metrics: int, dtype=jnp.float64) -> SummaryFold:
    zero = jnp.zeros((), dtype)
    return SummaryFold(zero, zero, jnp.zeros((), jnp.int32), zero,
                       jnp.zeros((n_metrics,), bool), jnp.full((), -1, jnp.int32))


def fold_update(fold: SummaryFold, reliance, metrics, step) -> SummaryFold:
    """Fold step `step` (steps come in order from 0) with reliance M_C and the vector of all
    metrics at that step."""
    first = step == 0
    finite = jnp.isfinite(metrics)
    finite_at_start = jnp.where(first, finite, fold.finite_at_start)
    new_peak = first | (reliance > fold.peak) | (jnp.isnan(reliance) & ~jnp.isnan(fold.peak))
    bad = jnp.any(finite_at_start & ~finite)
    return SummaryFold(
        initial=jnp.where(first, reliance, fold.initial),
        peak=jnp.where(new_peak, reliance, fold.peak),
        peak_step=jnp.where(new_peak, step, fold.peak_step).astype(jnp.int32),
        final=reliance,
        finite_at_start=finite_at_start,
        nonfinite_step=jnp.where((fold.nonfinite_step < 0) & bad, step, fold.nonfinite_step).astype(jnp.int32),
    )


def fold_finish(fold: SummaryFold) -> dict:
    """The `summarize` dict of the folded trajectory, plus `nonfinite_step` (None: none).
    Works on a batch of folds (leading axes) too: then every value is an array."""
    initial, peak, final = (np.asarray(x, dtype=np.float64) for x in (fold.initial, fold.peak, fold.final))
    step = np.asarray(fold.peak_step)
    bad = np.asarray(fold.nonfinite_step)
    if initial.ndim == 0:
        out = _summary(float(initial), float(peak), int(step), float(final))
        out["nonfinite_step"] = None if bad < 0 else int(bad)
        return out
    return {
        "initial_reliance": initial,
        "peak_reliance": peak,
        "peak_step": step.astype(np.int64),
        "final_reliance": final,
        "inversion": (peak > initial + INVERSION_TOL) & (final < peak - INVERSION_TOL),
        "nonfinite_step": bad.astype(np.int64),
    }
