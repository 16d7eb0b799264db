"""Analysis shared by several experiments: sums of the θ_C pushes over groups and the
per-example columns of a sweep. Summaries of a reliance curve M_C(t) live in `cpi.theory.summary`.
"""

from __future__ import annotations

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import group_counts
from cpi.theory.groups import CONTEXT_GROUPS

# ---------------------------------------------------------------------------- columns


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
    """θ_C component of −∇L summed over the context groups present in `metrics` (S examples
    have none)."""
    parts = [np.asarray(metrics[f"neg_grad_theta_c_{g}"])[index] for g in CONTEXT_GROUPS
             if f"neg_grad_theta_c_{g}" in metrics]
    return np.nansum(np.stack(parts), axis=0)


# ---------------------------------------------------------------------------- sweeps


def sweep_columns(result) -> dict:
    """Per-example summaries and effective ρ = n_C/n of a sweep (`cpi.sims.sweep.run_sweep`), as arrays."""
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


def mean_sd(values, finite_only: bool = False) -> tuple[float, float]:
    """(mean, standard deviation with ddof = 1) of a number over seeds (sd 0 for one value); with
    `finite_only`, over its finite values only (NaN for none)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if finite_only:
        v = v[np.isfinite(v)]
        if v.size == 0:
            return float("nan"), 0.0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
