"""Analysis shared by several experiments: summaries of reliance curves M_C(t), sums of the
θ_C pushes over groups, and the per-point columns of a sweep.

The reliance-curve summaries (`summaries`, `window_summary`, `first_peak`) are kept together
here, unchanged in what they compute, for a later merge with `theory.summary`.
"""

from __future__ import annotations

import numpy as np

from sims import config as cfg
from sims.config import group_counts

CONTEXT_GROUPS = ("C", "CS", "CF")
"""Training groups whose θ_C components are summed into the total (S points have none)."""

INVERSION, NO_RISE, NO_PEAK = 0, 1, 2
"""Kinds of a trajectory in `first_peak`: rise then fall; falls (or stays) from step 0;
rises without falling (by more than 1e-9) within the window."""


# ---------------------------------------------------------------------------- reliance curves


def summaries(reliance: np.ndarray) -> dict:
    """initial, peak, peak step and final along the last axis of `reliance`."""
    peak_step = np.argmax(reliance, axis=-1)
    return dict(
        initial=reliance[..., 0],
        peak=np.take_along_axis(reliance, peak_step[..., None], axis=-1)[..., 0],
        peak_step=peak_step.astype(np.int64),
        final=reliance[..., -1],
    )


def first_peak(reliance, tol: float = 1e-9) -> dict:
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
    """peak (max over the window), its step, final, drop = peak − final, and the depth of the
    first peak (`first_peak`) along the last axis."""
    r = np.asarray(reliance, dtype=np.float64)
    s, fp = summaries(r), first_peak(r)
    return dict(peak=s["peak"], peak_step=s["peak_step"], final=s["final"], drop=s["peak"] - s["final"],
                first_peak_step=fp["peak_step"], depth=fp["depth"])


def prefixed(prefix: str, values: dict) -> dict:
    """`values` with every key written `<prefix>_<key>`."""
    return {f"{prefix}_{k}": v for k, v in values.items()}


# ---------------------------------------------------------------------------- θ_C pushes


def first_nonpositive(x: np.ndarray) -> int:
    """First index at which a series that starts positive is ≤ 0 (−1: never, or no start > 0)."""
    x = np.asarray(x)
    if not x.size or not x[0] > 0:
        return -1
    hits = np.flatnonzero(x <= 0)
    return int(hits[0]) if hits.size else -1


def theta_c_sum(metrics: dict, index=...) -> np.ndarray:
    """θ_C component of −∇L summed over the context groups present in `metrics`."""
    parts = [np.asarray(metrics[f"neg_grad_theta_c_{g}"])[index] for g in CONTEXT_GROUPS
             if f"neg_grad_theta_c_{g}" in metrics]
    return np.nansum(np.stack(parts), axis=0)


# ---------------------------------------------------------------------------- sweeps


def sweep_columns(result) -> dict:
    """Per-point summaries and effective ρ = n_C/n of a sweep (`sims.sweep.run_sweep`), as arrays."""
    rows = result.summaries
    counts = [group_counts(c.mixture) for c in result.configs]
    return dict(
        rho=np.array([k["C"] / c.mixture.n_train for k, c in zip(counts, result.configs)]),
        initial=np.array([r["initial_reliance"] for r in rows]),
        peak=np.array([r["peak_reliance"] for r in rows]),
        peak_step=np.array([r["peak_step"] for r in rows], dtype=np.int64),
        final=np.array([r["final_reliance"] for r in rows]),
        inversion=np.array([r["inversion"] for r in rows], dtype=bool),
        configs=np.array([cfg.to_toml(c) for c in result.configs]),
    )
