"""The calibrated toy: the toy at a transformer run's own measured strengths, mixture and step.

A bridge comparison puts the toy beside the transformer. The toy's defaults (δ_C 0.2, δ_M 0.6,
GD at η = 1) are not the transformer's: its pretrained model has δ_C ≈ 0.3 and δ_M ≈ 0.996
(measured as docs/bridge.md says) and it finetunes with its own optimizer and learning rate.
`calibrate` gives the toy config that stands beside one transformer run:

- `knowledge.delta_c`, `knowledge.delta_m`: the run's measured δ_C, δ_M (clamped into
  [CLAMP, 1 − CLAMP] when a measured value lies outside, and `clamped` says so: the config's
  range is the open interval (0, 1));
- `mixture.context_critical`: the run's ρ = n_C/n (the toy keeps its own n_train, so its count is
  round(ρ n_train), as `cpi run` builds it);
- `train.lr`: the step size of full-batch GD on W_KQ (W_V frozen) at which the toy's M_C changes
  over the first recorded interval of the transformer (`interval` = its `train.eval_every`,
  5 steps by default: the change M_C(5) − M_C(0), not the first single step, which the
  transformer does not record) by exactly the transformer's change. The root is found on the
  exact reduced dynamics (`cpi.sims.theory_inputs.reduced_trajectory`): the smallest step size on
  a log grid where the change crosses the target, refined by Brent's method to machine precision.
  When no step size on the grid reaches the target (a target the toy cannot produce, e.g. a fall
  where the toy must rise), `matched` is False and the step size is the grid's closest.

What the calibration cannot match, by construction: the toy's initial M_C is a function of the
strengths alone. With W_KQ = 0 a conflict example [c, s, r] reads z = ½v(c) + ½v(s), and with the
Lemma 3 table z_c − z_a = ½(logit δ_C − logit δ_M) (the log Z₀ and o_c terms cancel), so

    M_C(0) = σ(½(logit δ_C − logit δ_M))          (`toy_initial`)

whatever Z₀, o_c, ρ or the step size. At the transformer's strengths this is ≈ 0.04, where the
transformer's own M_C(0) is ≈ 0.28: the transformer does not add its context and subject
pathways' logits with equal weights. `effective_delta_m` is the δ_M at which the toy would start
where the transformer does (at the measured δ_C); `initial_tolerance` the spread of the toy's
M_C(0) that the strengths' spread over seeds allows (first-order propagation).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit

from cpi.sims.config import Config
from cpi.sims.theory_inputs import counts_of, knowledge_of
from cpi.theory.reduced import group_trajectory

from .configs import with_values

CLAMP = 1e-6
"""Measured strengths are clamped into [CLAMP, 1 − CLAMP] (the config's range is (0, 1))."""

LR_GRID = np.geomspace(1e-4, 1e4, 161)
"""The step sizes scanned for the first crossing of the target change (20 per decade)."""


def toy_initial(delta_c, delta_m):
    """The toy's M_C(0) at strengths δ_C, δ_M: σ(½(logit δ_C − logit δ_M)), exact (module doc)."""
    return expit(0.5 * (logit(np.asarray(delta_c, dtype=np.float64)) - logit(np.asarray(delta_m, dtype=np.float64))))


def effective_delta_m(delta_c, initial):
    """The δ_M at which the toy's M_C(0) is `initial` at δ_C = `delta_c`:
    σ(logit δ_C − 2 logit M_C(0)), the inverse of `toy_initial` in δ_M."""
    return expit(logit(np.asarray(delta_c, dtype=np.float64)) - 2.0 * logit(np.asarray(initial, dtype=np.float64)))


def initial_tolerance(delta_c_sd, delta_m_sd, delta_c, delta_m):
    """The spread of the toy's M_C(0) implied by spreads of the strengths (first order):
    |∂M/∂δ_C| sd(δ_C) + |∂M/∂δ_M| sd(δ_M), with ∂M/∂δ = ±½ M(1 − M)/(δ(1 − δ))."""
    m = toy_initial(delta_c, delta_m)
    slope = 0.5 * m * (1.0 - m)
    return float(slope * (abs(delta_c_sd) / (delta_c * (1 - delta_c)) + abs(delta_m_sd) / (delta_m * (1 - delta_m))))


def _clamp(value: float) -> tuple[float, bool]:
    clamped = float(np.clip(value, CLAMP, 1.0 - CLAMP))
    return clamped, clamped != float(value)


def change_over(config: Config, lr, interval: int) -> np.ndarray:
    """The toy's M_C(interval) − M_C(0) under full-batch GD at each step size of `lr` (W_V frozen,
    the exact reduced dynamics of one relation; vectorised over `lr`)."""
    return _changes(knowledge_of(config), counts_of(config))(lr, interval)


def _changes(knowledge, counts):
    def change(lr, interval: int) -> np.ndarray:
        lr = np.asarray(lr, dtype=np.float64)
        r = np.asarray(group_trajectory(knowledge, counts, lr=lr, steps=int(interval))["reliance"])
        return r[..., interval] - r[..., 0]
    return change


def match_lr(config: Config, target: float, interval: int) -> tuple[float, bool]:
    """(η, matched): the smallest step size at which the toy's change of M_C over `interval` GD
    steps equals `target` (a crossing on LR_GRID refined by Brent's method), or the grid's closest
    step size and False when the change never crosses the target. One relation (the group form
    of the reduced dynamics)."""
    if config.world.n_relations != 1:
        raise ValueError("the calibrated toy has one relation")
    change = _changes(knowledge_of(config), counts_of(config))
    values = change(LR_GRID, interval) - float(target)
    crossing = np.flatnonzero(np.sign(values[:-1]) * np.sign(values[1:]) <= 0)
    if crossing.size == 0:
        return float(LR_GRID[int(np.argmin(np.abs(values)))]), False
    i = int(crossing[0])
    if values[i] == 0.0:
        return float(LR_GRID[i]), True
    if values[i + 1] == 0.0:
        return float(LR_GRID[i + 1]), True
    lr = brentq(lambda x: float(change(x, interval)) - float(target), LR_GRID[i], LR_GRID[i + 1], xtol=1e-15,
                rtol=4 * np.finfo(float).eps, maxiter=200)
    return float(lr), True


def calibrate(base: Config, delta_c: float, delta_m: float, rho: float, change: float, interval: int = 5) -> dict:
    """The calibrated toy for one transformer run (module doc): its `config` (base with the
    strengths, ρ and the matched step size), and what was done: `delta_c`, `delta_m` (as
    measured), `toy_delta_c`, `toy_delta_m` (as used), `clamped`, `rho`, `toy_rho` (the toy's
    n_C/n), `target` (the transformer's change over `interval`), `lr`, `matched`, `achieved`
    (the toy's change at `lr`), `interval`, `initial` (the toy's M_C(0))."""
    dc, clamped_c = _clamp(delta_c)
    dm, clamped_m = _clamp(delta_m)
    config = with_values(base, knowledge__delta_c=dc, knowledge__delta_m=dm,
                         mixture__context_critical=float(np.clip(rho, 0.0, 1.0)), train__value_lr=0.0,
                         train__optimizer="gd", train__batch_size=0, world__n_relations=1)
    lr, matched = match_lr(config, change, interval)
    config = with_values(config, train__lr=lr)
    n = config.mixture.n_train
    return dict(config=config, delta_c=float(delta_c), delta_m=float(delta_m), toy_delta_c=dc, toy_delta_m=dm,
                clamped=bool(clamped_c or clamped_m), rho=float(rho), toy_rho=round(float(rho) * n) / n,
                target=float(change), lr=lr, matched=bool(matched), achieved=float(change_over(config, lr, interval)),
                interval=int(interval), initial=float(toy_initial(dc, dm)))


def calibrate_runs(base: Config, results, bridge_configs) -> list[dict]:
    """`calibrate` for each transformer run (metrics, summary) of `results` with its bridge config:
    its measured δ_C, δ_M, its ρ = counts C / n_train, and its M_C's change over its first
    recorded interval (`train.eval_every` steps)."""
    out = []
    for (metrics, summary), config in zip(results, bridge_configs):
        step = np.asarray(metrics["step"])
        reliance = np.asarray(metrics["reliance"], dtype=np.float64)
        rho = summary["counts"]["C"] / config.mixture.n_train
        out.append(calibrate(base, summary["delta_c"], summary["delta_m"], rho, reliance[1] - reliance[0],
                             int(step[1] - step[0])))
    return out


def calibration_arrays(calibrations: list[dict], prefix: str = "toy_") -> dict:
    """The per-run record of `calibrate` as arrays for an experiment's data (one entry per run)."""
    keys = ("lr", "matched", "clamped", "achieved", "target")
    out = {f"{prefix}{k}": np.array([c[k] for c in calibrations]) for k in keys}
    out[f"{prefix}initial_closed_form"] = np.array([c["initial"] for c in calibrations])
    out[f"{prefix}delta_c"] = np.array([c["toy_delta_c"] for c in calibrations])
    out[f"{prefix}delta_m"] = np.array([c["toy_delta_m"] for c in calibrations])
    out[f"{prefix}mixture_rho"] = np.array([c["toy_rho"] for c in calibrations])
    out[f"{prefix}interval"] = int(calibrations[0]["interval"]) if calibrations else 0
    return out
