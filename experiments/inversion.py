"""The inversion itself, at the base config: nothing is varied.

Computes M_C, the attention σ_c and the accuracy on aligned points at every step, from one
simulation (`cpi.sims.train.run`) and from the exact reduced theory (`reduced_trajectory`), with
the peak of M_C in each, ρ = n_C/n and ρ* (Lemma 4).
"""

from __future__ import annotations

from pathlib import Path

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
