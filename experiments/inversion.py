"""The inversion itself, at the base config: nothing is varied.

Computes M_C, the attention σ_c and the accuracy on aligned examples at every step, from one
simulation (`cpi.sims.train.run`) and from the exact reduced theory (`reduced_trajectory`), with
the peak of M_C in each, ρ = n_C/n and ρ* (Lemma 4).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import counts_of, knowledge_of, reduced_trajectory
from cpi.theory.closed_forms import paper_quantities
from cpi.theory.summary import summarize

from .simulations import cached_run

PARAMS: dict = {}
"""No parameters of its own: everything comes from the base config."""


def compute(base: Config, work: Path) -> dict:
    """Simulated and theoretical M_C, σ_c and aligned accuracy vs step, and their peaks."""
    metrics, summary = cached_run(base, work)
    theory = reduced_trajectory(base)
    q = paper_quantities(knowledge_of(base))
    th = summarize(theory["reliance"])
    data = dict(
        config=cfg.to_toml(base),
        step=metrics["step"],
        sim_reliance=metrics["reliance"],
        sim_attention=metrics["attention_context"],
        theory_reliance=theory["reliance"],
        theory_attention=theory["attention_context"],
        theory_aligned=theory["aligned_accuracy"],
        sim_peak=summary["peak_reliance"],
        sim_peak_step=summary["peak_step"],
        sim_inversion=summary["inversion"],
        theory_peak=th["peak_reliance"],
        theory_peak_step=th["peak_step"],
        rho=counts_of(base).n_c / base.mixture.n_train,
        rho_star=q["rho_star"],
        lr=base.train.lr,
        values_frozen=base.train.value_lr == 0,
    )
    if "aligned_accuracy" in metrics:
        data["sim_aligned"] = metrics["aligned_accuracy"]
    return data


def headline(data: dict) -> dict:
    """M_C's rise and fall at the base config (simulation), where the exact theory peaks, how
    far the two differ anywhere, and the aligned accuracy's dip."""
    sim, aligned = data["sim_reliance"], data["theory_aligned"]
    low = int(np.argmin(aligned))
    return dict(
        steps=int(data["step"][-1]), rho=float(data["rho"]), rho_star=float(data["rho_star"]),
        initial=float(sim[0]), peak=float(data["sim_peak"]), peak_step=int(data["sim_peak_step"]),
        final=float(sim[-1]), drop=float(data["sim_peak"] - sim[-1]),
        theory_peak_step=int(data["theory_peak_step"]),
        sim_theory_gap=float(np.max(np.abs(sim - data["theory_reliance"]))),
        aligned_initial=float(aligned[0]), aligned_low=float(aligned[low]), aligned_low_step=low,
        aligned_final=float(aligned[-1]),
    )
