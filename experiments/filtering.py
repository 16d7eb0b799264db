"""Filtering as a mitigation: drop the context-bearing training examples whose subject alone
already predicts the answer (lowest no-context loss), `mixture.filter` of them.

Varies the filtered fraction. Computes M_C vs step, its peak, final value, drop and
first-peak depth, and the final accuracy on aligned examples: from the reduced dynamics of the
filtered counts at every fraction, and from one simulation at each of a few fractions (each
filtered set has its own size).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import counts_of, knowledge_of, reduced_trajectory
from cpi.theory.closed_forms import paper_quantities

from cpi.theory.summary import window_summary

from .analysis import prefixed
from .configs import with_values
from .simulations import cached_run

PARAMS = dict(fractions=tuple(round(0.05 * i, 2) for i in range(13)), sim_fractions=(0.0, 0.1, 0.25, 0.4, 0.6))
"""fractions: the filtered fractions of the theory; sim_fractions: those simulated."""


def compute(base: Config, work: Path, fractions, sim_fractions) -> dict:
    """Theory (reduced dynamics of the filtered counts) at every fraction of `fractions`,
    simulations at `sim_fractions`."""
    counts0 = counts_of(base)
    n_context = counts0.n_c + counts0.n_cs + counts0.n_cf

    def theory(f):
        config = with_values(base, mixture__filter=float(f))
        t = reduced_trajectory(config)
        aligned = t.get("aligned_accuracy", np.full_like(t["reliance"], np.nan))
        return counts_of(config), np.asarray(t["reliance"]), np.asarray(aligned)

    th = [theory(f) for f in fractions]
    at_sim = [theory(f) for f in sim_fractions]
    sims = [cached_run(with_values(base, mixture__filter=float(f)), work) for f in sim_fractions]
    th_rel, th_aligned = np.stack([t[1] for t in th]), np.stack([t[2] for t in th])
    sim_rel = np.stack([m["reliance"] for m, _ in sims])
    sim_aligned = np.stack([m.get("aligned_accuracy", np.full(sim_rel.shape[1], np.nan)) for m, _ in sims])
    q = paper_quantities(knowledge_of(base))
    return dict(
        config=cfg.to_toml(base),
        step=np.arange(sim_rel.shape[1]),
        rho=counts0.n_c / base.mixture.n_train,
        rho_star=q["rho_star"],
        n_context=n_context,
        lr=base.train.lr,
        theory_fraction=np.asarray(fractions, dtype=np.float64),
        theory_dropped=np.array([n_context - sum(t[0][:3]) for t in th]),
        theory_counts=np.array([t[0][:3] for t in th]),
        theory_reliance=th_rel,
        theory_aligned=th_aligned,
        theory_aligned_final=th_aligned[:, -1],
        aligned_initial=float(th_aligned[0, 0]),
        **prefixed("theory", window_summary(th_rel)),
        sim_fraction=np.asarray(sim_fractions, dtype=np.float64),
        sim_theory_reliance=np.stack([t[1] for t in at_sim]),
        sim_reliance=sim_rel,
        sim_aligned=sim_aligned,
        sim_aligned_final=sim_aligned[:, -1],
        **prefixed("sim", window_summary(sim_rel)),
        sim_configs=np.array([cfg.to_toml(with_values(base, mixture__filter=float(f))) for f in sim_fractions]),
    )


def headline(data: dict) -> dict:
    """The simulated drop and final aligned accuracy at each filtered fraction, and the smallest
    fraction at which the exact theory no longer falls within the horizon."""
    out = dict(steps=int(data["step"][-1]), rho=float(data["rho"]))
    for f, drop, aligned in zip(data["sim_fraction"], data["sim_drop"], data["sim_aligned_final"]):
        tag = f"{round(100 * float(f)):02d}"
        out[f"drop_{tag}"] = float(drop)
        out[f"aligned_final_{tag}"] = float(aligned)
    flat = data["theory_fraction"][data["theory_drop"] < 1e-3]
    out["no_fall_from_fraction"] = float(flat.min()) if flat.size else float("nan")
    return out
