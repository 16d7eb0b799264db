"""Fact-recall (S) points added to the training mix: subject-only examples, seen (their fact is
memorised) or unseen.

Varies the number k of S examples ADDED to the base's C, CS and CF examples (n = n0 + k), seen
or unseen. Computes M_C vs step with its peak, final value, drop and depth (reduced theory
for k = 0..n_s_max, simulation at a few k), and Proposition 2's t = 0 θ_C and θ_S components
of −∇L (summed and mean), also from the simulations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import counts_of, knowledge_of, reduced_trajectory
from cpi.theory.params import GroupCounts

from cpi.theory.groups import TRAINING_GROUPS
from cpi.theory.summary import window_summary

from .analysis import prefixed
from .configs import with_values
from .simulations import cached_run, cached_sweep

PARAMS = dict(n_s_max=12, sim_n_s=(0, 4, 10), held_out=4)
"""n_s_max: the most S examples of the theory; sim_n_s: the simulated numbers of S examples;
held_out: test and aligned examples (few, so that the vocabulary suffices)."""


def fact_recall_config(base: Config, counts: GroupCounts, k: int, seen: bool, held_out: int) -> Config:
    """`base` with k S examples (seen or not) ADDED to its C, CS and CF examples (`counts`, no S)."""
    n0 = counts.n_c + counts.n_cs + counts.n_cf
    n = n0 + k
    config = with_values(
        base, mixture__n_train=n, mixture__context_critical=counts.n_c / n,
        mixture__counterfactual=counts.n_cf / n, mixture__fact_recall=k / n,
        mixture__fact_recall_seen=1.0 if seen else 0.0, mixture__n_test=held_out, mixture__n_aligned=held_out,
        mixture__filter=0.0,
    )
    got = counts_of(config)
    want = counts.replace(n_s_seen=k if seen else 0, n_s_unseen=0 if seen else k)
    if got != want:
        raise RuntimeError(f"fact-recall mixture {got} is not the intended {want}")
    return config


def compute(base: Config, work: Path, n_s_max: int, sim_n_s, held_out: int) -> dict:
    """k = 0..n_s_max seen or unseen S examples added to the base's C/CS/CF examples (n = n0 + k,
    held-out sets of `held_out` points so that the vocabulary suffices): theory trajectories,
    Proposition 2's t = 0 θ components, and simulations at `sim_n_s`."""
    counts = counts_of(base).replace(n_s_seen=0, n_s_unseen=0)
    knowledge, ds = knowledge_of(base), base.knowledge.delta_s
    ks = np.arange(n_s_max + 1)
    theory = np.stack([
        np.stack([reduced_trajectory(fact_recall_config(base, counts, int(k), seen, held_out))["reliance"]
                  for k in ks])
        for seen in (True, False)
    ])  # (seen/unseen, k, T)
    from cpi.theory.closed_forms import initial_gradient_components
    from cpi.theory.propositions import proposition2

    prop2 = [proposition2(knowledge, counts.replace(n_s_seen=int(k))) for k in ks]
    unseen = [initial_gradient_components(knowledge, counts.replace(n_s_unseen=int(k))) for k in ks]
    n0 = sum(counts)
    sim_rel = np.full((2, len(sim_n_s), base.train.steps + 1), np.nan)
    sim_theta = np.full((2, 2, len(sim_n_s)), np.nan)  # (seen/unseen, θ_C/θ_S, k), summed loss
    sim_configs = []
    for j, k in enumerate(sim_n_s):
        if k == 0:
            config = fact_recall_config(base, counts, 0, True, held_out)
            m, _ = cached_run(config, work)
            runs = [(0, m), (1, m)]
            sim_configs.append(cfg.to_toml(config))
        else:
            config = fact_recall_config(base, counts, int(k), True, held_out)
            sweep = cached_sweep(config, ["mixture.fact_recall_seen=1,0"], work)
            runs = [(i, sweep.point_metrics(i)) for i in range(2)]
            sim_configs.append(cfg.to_toml(config))
        for i, m in runs:
            n = n0 + k
            sim_rel[i, j] = m["reliance"]
            for a, theta in enumerate(("c", "s")):
                parts = [m[key][0] for key in (f"neg_grad_theta_{theta}_{g}" for g in TRAINING_GROUPS)
                         if key in m]
                sim_theta[i, a, j] = n * np.nansum(parts)
    return dict(
        config=cfg.to_toml(base),
        step=np.arange(base.train.steps + 1),
        lr=base.train.lr,
        n_c=counts.n_c,
        n_cs=counts.n_cs,
        n_cf=counts.n_cf,
        delta_s=ds,
        theory_k=ks,
        theory_reliance=theory,
        **prefixed("theory", window_summary(theory)),
        theory_sum_theta_c=np.array([[p["sum_theta_c_with"] for p in prop2],
                                     [u["theta_c"] * (n0 + k) for u, k in zip(unseen, ks)]]),
        theory_sum_theta_s=np.array([[p["sum_theta_s_with"] for p in prop2],
                                     [u["theta_s"] * (n0 + k) for u, k in zip(unseen, ks)]]),
        theory_mean_theta_c=np.array([[p["theta_c_with"] for p in prop2], [u["theta_c"] for u in unseen]]),
        theory_mean_theta_s=np.array([[p["theta_s_with"] for p in prop2], [u["theta_s"] for u in unseen]]),
        prop2_holds=bool(all(p["raises_theta_s"] and p["theta_c_unchanged_sum"] for p in prop2[1:])),
        sim_k=np.asarray(sim_n_s, dtype=np.int64),
        sim_reliance=sim_rel,
        **prefixed("sim", window_summary(sim_rel)),
        sim_sum_theta_c=sim_theta[:, 0],
        sim_sum_theta_s=sim_theta[:, 1],
        sim_configs=np.array(sim_configs),
    )


def headline(data: dict) -> dict:
    """The t = 0 θ_S and θ_C pulls (summed loss) and the peak of M_C without and with seen
    subject-only examples (row 0: seen, row 1: unseen)."""
    k = data["sim_k"]
    out = dict(steps=int(data["step"][-1]), prop2_holds=bool(data["prop2_holds"]))
    for i, kk in enumerate(k):
        out[f"seen_theta_s_k{int(kk)}"] = float(data["sim_sum_theta_s"][0, i])
        out[f"seen_theta_c_k{int(kk)}"] = float(data["sim_sum_theta_c"][0, i])
        out[f"seen_peak_k{int(kk)}"] = float(data["sim_peak"][0, i])
        out[f"unseen_theta_s_k{int(kk)}"] = float(data["sim_sum_theta_s"][1, i])
        out[f"unseen_peak_k{int(kk)}"] = float(data["sim_peak"][1, i])
    return out
