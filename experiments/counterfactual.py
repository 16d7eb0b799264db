"""Counterfactual augmentation as a mitigation: CF examples (context ≠ memorised fact, answer =
context) in place of, or added to, CS examples.

Varies the number k of CF examples (`mixture.counterfactual` = k/n, in place of k CS examples)
from 0 to the base's n_CS. Computes M_C vs step with its peak, final value, drop and depth
(reduced theory at every k, simulation at a few), the gradient flow's first peak time and
depth at every k, and, for several n, the number of CF examples to ADD so that M_C has no drop
within a horizon T, for every T (`counterfactual_needed_curve`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import counts_of, knowledge_of, reduced_trajectory
from cpi.theory.params import GroupCounts
from cpi.theory.reduced import group_flow, group_trajectory

from cpi.theory.summary import first_peak, window_summary

from .analysis import prefixed
from .configs import with_values
from .simulations import cached_sweep

PARAMS = dict(
    steps=1000, sim_counts=(0, 1, 2, 3, 4, 6), flow_t_max=1e12, n_flow=300, needed_n=(20, 40, 80),
    needed_steps=10000, needed_max_cf=40, check_steps=(300, 1000),
)
"""steps: GD steps; sim_counts: the simulated k; flow_t_max, n_flow: the gradient flow's
horizon and log-spaced times; needed_n, needed_steps, needed_max_cf: the training-set sizes,
longest horizon and most CF examples of the needed-CF curves; check_steps: horizons at which the
curves are checked against `cpi.theory.mitigations.counterfactual_needed`."""


def counterfactual_needed_curve(knowledge, rho: float, n: int, max_cf: int, steps: int, lr: float = 1.0,
                                tol: float = 1e-9) -> np.ndarray:
    """For every horizon T = 0..steps: the smallest number k ≤ max_cf of CF examples ADDED to a
    C/CS mixture of n points (n_C = round(ρn)) for which GD at rate lr has no drop of M_C
    (fall > tol below its running maximum) within the first T steps; −1 when none.
    This is `cpi.theory.mitigations.counterfactual_needed(..., criterion="discrete", steps=T)`
    for every T at once (one vmapped trajectory per k)."""
    n_c = round(rho * n)
    ks = np.arange(max_cf + 1)
    r = group_trajectory(knowledge, GroupCounts(n_c, n - n_c, ks), lr=lr, steps=steps)["reliance"]
    drop_so_far = np.maximum.accumulate(np.maximum.accumulate(r, axis=-1) - r, axis=-1)  # (k, T)
    ok = drop_so_far <= tol
    return np.where(ok.any(axis=0), np.argmax(ok, axis=0), -1)


def compute(base: Config, work: Path, steps: int, sim_counts, flow_t_max: float, n_flow: int,
            needed_n, needed_steps: int, needed_max_cf: int, check_steps) -> dict:
    """k CF examples in place of k CS examples for every k from 0 to the base's n_CS: discrete
    theory and simulation over `steps` steps, the gradient flow to `flow_t_max`; and the
    number of CF examples to ADD to remove the drop within a horizon."""
    base = with_values(base, train__steps=int(steps), mixture__counterfactual=0.0)
    knowledge, lr = knowledge_of(base), base.train.lr
    n = base.mixture.n_train
    counts = counts_of(base)
    n_c, n_cs = counts.n_c, counts.n_cs
    ks = np.arange(n_cs + 1)
    configs = [with_values(base, mixture__counterfactual=float(k / n)) for k in ks]
    th = np.stack([reduced_trajectory(c)["reliance"] for c in configs])
    bad = [int(k) for k in sim_counts if not 0 <= k <= n_cs]
    if bad:
        raise ValueError(f"sim_counts {bad} outside 0..{n_cs} (the CS examples of the base mixture)")
    sweep = cached_sweep(base, ["mixture.counterfactual=" + ",".join(repr(float(k / n)) for k in sim_counts)], work)
    sim = np.asarray(sweep.metrics["reliance"])[:, : steps + 1]

    times = np.concatenate([[0.0], np.geomspace(1e-2, flow_t_max, n_flow)])
    flows = []
    for k in ks:
        mixture = counts.replace(n_cs=n_cs - int(k), n_cf=int(k))
        flows.append(group_flow(knowledge, mixture, times=times)["reliance"])
    flows = np.stack(flows)
    fp = first_peak(flows)

    rho = n_c / n
    needed = np.stack([counterfactual_needed_curve(knowledge, rho, int(m), needed_max_cf, needed_steps, lr)
                       for m in needed_n])
    horizons = np.unique(np.round(np.geomspace(10, needed_steps, 200)).astype(np.int64))
    from cpi.theory.mitigations import counterfactual_needed

    check = np.array([[counterfactual_needed(knowledge, rho=rho, n=int(m), mode="add", criterion="discrete",
                                             steps=int(s), max_cf=needed_max_cf, lr=lr)["n_cf"]
                       for s in check_steps] for m in needed_n], dtype=np.float64)
    return dict(
        config=cfg.to_toml(base),
        step=np.arange(steps + 1),
        n_train=n,
        n_c=n_c,
        n_cs=n_cs,
        rho=rho,
        lr=lr,
        theory_k=ks,
        theory_fraction=ks / n,
        theory_reliance=th,
        **prefixed("theory", window_summary(th)),
        sim_k=np.asarray(sim_counts, dtype=np.int64),
        sim_fraction=np.array([c.mixture.counterfactual for c in sweep.configs]),
        sim_reliance=sim,
        **prefixed("sim", window_summary(sim)),
        sim_configs=np.array([cfg.to_toml(c) for c in sweep.configs]),
        flow_time=times,
        flow_reliance=flows,
        flow_peak_time=times[fp["peak_step"]],
        flow_depth=fp["depth"],
        flow_kind=fp["kind"],
        needed_n=np.asarray(needed_n, dtype=np.int64),
        needed_horizon=horizons,
        needed=needed[:, horizons],
        needed_max_cf=needed_max_cf,
        check_steps=np.asarray(check_steps, dtype=np.int64),
        check_needed=check,
    )


def headline(data: dict) -> dict:
    """The gradient flow's peak time as 0 ... n_CS CS examples are replaced by CF examples, the
    simulated drop at each, and how many must be replaced before no fall is left."""
    k, time, kind = data["theory_k"], data["flow_peak_time"], data["flow_kind"]
    out = dict(steps=int(data["step"][-1]), n_cs=int(data["n_cs"]), flow_peak_time_0=float(time[0]))
    falls = kind == 0
    out["flow_peak_time_last_falling"] = float(time[falls][-1])
    out["last_falling_k"] = int(k[falls][-1])
    out["no_fall_k"] = int(k[~falls].min()) if (~falls).any() else -1
    for kk, drop in zip(data["sim_k"], data["sim_drop"]):
        out[f"sim_drop_k{int(kk)}"] = float(drop)
    return out
