"""Summaries of a reliance curve M_C(t), defined once for simulation and theory alike.

- `summarize`: initial, peak (and its first step), final, the first peak that M_C falls
  from, the lowest M_C from that peak on (the trough), and `inversion`. Defined on the
  running maximum P(t) = max_{s ≤ t} M_C(s): M_C *inverts* when at some step t the running
  maximum has risen above the start and M_C has fallen below it, P(t) > M_C(0) + tol and
  P(t) − M_C(t) > tol, whatever happens later. The first such t fixes the first peak (P(t)
  and its first step); without one, the first peak is the peak. A slow recovery that
  overtakes the first peak (so that peak = final) is still an inversion. tol is
  `inversion_tol` of the dtype the curve was computed in.
- the fold (`fold_init`, `fold_update`, `fold_finish`): the same summary read one step at a
  time inside a compiled scan (both engines use it), so that a run or sweep that records
  only some steps (or none) still summarises every step. The tests check fold = summarize.
- `first_peak`: the shape of the curve's start as the figures draw it (first strict fall
  after a rise at step 1, the depth of the fall after it, its kind).
- `window_summary`: the columns the experiments store for a window of M_C.
- `reliance_drop`: the largest fall of M_C below its running maximum.

All of them read the last axis of an array of curves. The module imports JAX only inside
the fold, so that the figures can read `first_peak`'s kinds without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import jax.numpy as jnp

INVERSION_TOL = 1e-9
"""The tolerance of a rise or fall of M_C computed in float64."""

TIE_EPS = 8
"""A rise or fall of M_C computed in a dtype coarser than float64 counts when it exceeds
TIE_EPS machine epsilons of that dtype. The same M_C evaluated twice within one compiled
step (XLA may compute a value in two fusions, rounded differently) differs by up to 0.23
float32 epsilons (2.7e-8) in the runs measured, lr 1 to 1000 and up to 200 training examples:
8 epsilons (9.5e-7 in float32) stays well above that tie-level noise and far below the
smallest inversion the theory describes (a fall of about 1e-3)."""


def inversion_tol(dtype=None) -> float:
    """The tolerance of `summarize` and `fold_update` for M_C computed in `dtype` (default
    float64): INVERSION_TOL for float64, TIE_EPS machine epsilons for a coarser dtype."""
    eps = float(np.finfo(np.float64 if dtype is None else dtype).eps)
    return max(INVERSION_TOL, TIE_EPS * eps)

INVERSION, NO_RISE, NO_PEAK = 0, 1, 2
"""Kinds of a trajectory in `first_peak`: rise then fall; falls (or stays) from step 0;
rises without falling (by more than 1e-9) within the window."""


def _scalars(out: dict) -> dict:
    """The values of a summary of one curve as Python numbers."""
    kinds = {"peak_step": int, "first_peak_step": int, "trough_step": int, "inversion": bool}
    return {k: kinds.get(k, float)(v) for k, v in out.items()}


def summarize(reliance, tol: float = INVERSION_TOL) -> dict:
    """initial_reliance M_C(0), peak_reliance max_t M_C and peak_step (its first step; a NaN
    is the peak, as np.argmax has it), final_reliance, first_peak_reliance and
    first_peak_step (the running maximum P(t) at the first t with P(t) > M_C(0) + tol and
    P(t) − M_C(t) > tol; the peak when there is none), trough_reliance and trough_step (the
    lowest M_C at or after first_peak_step and its first step; NaN from a NaN on) and
    inversion (such a t exists).

    Along the last axis: one curve gives Python numbers, a stack of curves gives arrays."""
    r = np.asarray(reliance, dtype=np.float64)
    running = np.maximum.accumulate(r, axis=-1)  # NaN from the first NaN on
    before = np.concatenate([np.full_like(r[..., :1], -np.inf), running[..., :-1]], axis=-1)
    new_peak = (r > before) | (np.isnan(r) & ~np.isnan(before))
    steps = np.arange(r.shape[-1])
    running_step = np.maximum.accumulate(np.where(new_peak, steps, 0), axis=-1)
    initial = r[..., 0]
    fallen = (running > initial[..., None] + tol) & (running - r > tol)
    inversion = fallen.any(axis=-1)
    first = np.argmax(fallen, axis=-1)[..., None]
    peak, peak_step = running[..., -1], running_step[..., -1]
    first_step = np.where(inversion, np.take_along_axis(running_step, first, -1)[..., 0], peak_step)
    after = np.where(steps >= first_step[..., None], r, np.inf)
    trough_step = np.argmin(after, axis=-1)  # the first NaN, if any, as np.argmin has it
    out = {
        "initial_reliance": initial,
        "peak_reliance": peak,
        "peak_step": peak_step.astype(np.int64),
        "final_reliance": r[..., -1],
        "first_peak_reliance": np.where(inversion, np.take_along_axis(running, first, -1)[..., 0], peak),
        "first_peak_step": first_step.astype(np.int64),
        "trough_reliance": np.take_along_axis(after, trough_step[..., None], -1)[..., 0],
        "trough_step": trough_step.astype(np.int64),
        "inversion": inversion,
    }
    return _scalars(out) if r.ndim == 1 else out


class SummaryFold(NamedTuple):
    """The running state of `summarize` over steps 0..t, and of the first non-finite step."""

    initial: jnp.ndarray  # M_C(0)
    peak: jnp.ndarray  # P(t) = max M_C so far (NaN once a NaN was seen, as np.argmax does)
    peak_step: jnp.ndarray  # first step of the peak
    final: jnp.ndarray  # M_C(t)
    first_peak: jnp.ndarray  # P at the first fall (meaningful once `inversion`)
    first_peak_step: jnp.ndarray
    trough: jnp.ndarray  # lowest M_C since the first peak (since the peak until `inversion`)
    trough_step: jnp.ndarray
    inversion: jnp.ndarray  # M_C has fallen below a peak above its start
    finite_at_start: jnp.ndarray  # (M,) which of the M metrics were finite at step 0
    nonfinite_step: jnp.ndarray  # first step where one of those is not finite; -1: none


def fold_init(n_metrics: int, dtype=None) -> SummaryFold:
    """The fold before step 0, in `dtype` (default float64)."""
    import jax.numpy as jnp

    dtype = jnp.float64 if dtype is None else dtype
    zero = jnp.zeros((), dtype)
    step = jnp.zeros((), jnp.int32)
    return SummaryFold(zero, zero, step, zero, zero, step, zero, step, jnp.zeros((), bool),
                       jnp.zeros((n_metrics,), bool), jnp.full((), -1, jnp.int32))


def first_nonfinite_step(metrics) -> int | None:
    """The first step at which a metric that was finite at step 0 is not (None: there is
    none), for `metrics` of shape (steps, n_metrics): the rule `fold_update` folds, read over a
    whole trajectory."""
    finite = np.isfinite(np.asarray(metrics))
    bad = np.any(finite[:1] & ~finite, axis=-1)
    return int(bad.argmax()) if bad.any() else None


def fold_update(fold: SummaryFold, reliance, metrics, step, tol: float = INVERSION_TOL) -> SummaryFold:
    """Fold step `step` (steps come in order from 0) with reliance M_C and the vector of all
    metrics at that step; `tol` as in `summarize` (`inversion_tol` of the dtype computed in)."""
    import jax.numpy as jnp

    first = step == 0
    finite = jnp.isfinite(metrics)
    finite_at_start = jnp.where(first, finite, fold.finite_at_start)
    new_peak = first | (reliance > fold.peak) | (jnp.isnan(reliance) & ~jnp.isnan(fold.peak))
    initial = jnp.where(first, reliance, fold.initial)
    peak = jnp.where(new_peak, reliance, fold.peak)
    peak_step = jnp.where(new_peak, step, fold.peak_step).astype(jnp.int32)
    fallen = (peak > initial + tol) & (peak - reliance > tol)
    newly = fallen & ~fold.inversion
    # Until the first fall the trough restarts at every new peak; after it, only lower values move it.
    lower = (new_peak & ~fold.inversion) | (reliance < fold.trough) | (jnp.isnan(reliance) & ~jnp.isnan(fold.trough))
    bad = jnp.any(finite_at_start & ~finite)
    return SummaryFold(
        initial=initial,
        peak=peak,
        peak_step=peak_step,
        final=reliance,
        first_peak=jnp.where(newly, peak, fold.first_peak),
        first_peak_step=jnp.where(newly, peak_step, fold.first_peak_step).astype(jnp.int32),
        trough=jnp.where(lower, reliance, fold.trough),
        trough_step=jnp.where(lower, step, fold.trough_step).astype(jnp.int32),
        inversion=fold.inversion | fallen,
        finite_at_start=finite_at_start,
        nonfinite_step=jnp.where((fold.nonfinite_step < 0) & bad, step, fold.nonfinite_step).astype(jnp.int32),
    )


def fold_finish(fold: SummaryFold) -> dict:
    """The `summarize` dict of the folded trajectory, plus `nonfinite_step` (None: none).
    Works on a stack of folds (leading axes) too: then every value is an array (−1: none)."""
    initial, peak, final, first_peak, trough = (np.asarray(x, dtype=np.float64)
                                                for x in (fold.initial, fold.peak, fold.final, fold.first_peak,
                                                          fold.trough))
    peak_step = np.asarray(fold.peak_step).astype(np.int64)
    inversion = np.asarray(fold.inversion, dtype=bool)
    bad = np.asarray(fold.nonfinite_step).astype(np.int64)
    out = {
        "initial_reliance": initial,
        "peak_reliance": peak,
        "peak_step": peak_step,
        "final_reliance": final,
        "first_peak_reliance": np.where(inversion, first_peak, peak),
        "first_peak_step": np.where(inversion, np.asarray(fold.first_peak_step), peak_step).astype(np.int64),
        "trough_reliance": trough,
        "trough_step": np.asarray(fold.trough_step).astype(np.int64),
        "inversion": inversion,
    }
    if initial.ndim:
        return {**out, "nonfinite_step": bad}
    return {**_scalars(out), "nonfinite_step": None if bad < 0 else int(bad)}


def first_peak(reliance, tol: float = INVERSION_TOL) -> dict:
    """The first peak of M_C along the last axis and the depth of the fall after it.

    peak_step: first step after which M_C decreases (0 when it never rises, the last step
    when it never decreases); depth: M_C at that peak minus the lowest M_C after it (the
    inversion's depth within the window, unaffected by a later recovery above the peak);
    kind: INVERSION, NO_RISE or NO_PEAK (depth ≤ tol counts as no peak)."""
    r = np.asarray(reliance, dtype=np.float64)
    d = np.diff(r, axis=-1)
    rises = d[..., 0] > 0
    falling = d < 0
    has_fall = falling.any(axis=-1)
    peak_step = np.where(has_fall, np.argmax(falling, axis=-1), r.shape[-1] - 1)
    peak_step = np.where(rises, peak_step, 0)
    steps = np.arange(r.shape[-1])
    after = np.where(steps >= peak_step[..., None], r, np.inf)
    peak = np.take_along_axis(r, peak_step[..., None], axis=-1)[..., 0]
    depth = peak - after.min(axis=-1)
    kind = np.where(~rises, NO_RISE, np.where(depth > tol, INVERSION, NO_PEAK))
    return dict(peak_step=peak_step.astype(np.int64), peak=peak, depth=depth, kind=kind.astype(np.int64))


def window_summary(reliance) -> dict:
    """peak (max over the window), its step, final, drop = peak − final, and the step and
    depth of the first peak (`first_peak`) along the last axis."""
    r = np.asarray(reliance, dtype=np.float64)
    s, fp = summarize(r), first_peak(r)
    return dict(peak=s["peak_reliance"], peak_step=s["peak_step"], final=s["final_reliance"],
                drop=s["peak_reliance"] - s["final_reliance"], first_peak_step=fp["peak_step"], depth=fp["depth"])


def reliance_drop(reliance) -> np.ndarray:
    """Largest fall of M_C below its running maximum, max_t (max_{t' ≤ t} M_C(t') − M_C(t)),
    along the last axis (0 for a non-decreasing trajectory)."""
    r = np.asarray(reliance, dtype=np.float64)
    return np.max(np.maximum.accumulate(r, axis=-1) - r, axis=-1)
