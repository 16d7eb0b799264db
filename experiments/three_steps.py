"""The first three steps vs the step size η (Proposition 1, Theorem 1).

Varies η. Computes M_C at steps 0, 1 and 2 and the θ_C component of −∇L after one step from
the closed forms on a log-spaced η grid, η* (the step size above which M_C falls at step 2),
and the same quantities from a simulated sweep over a few η.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import counts_of, knowledge_of
from cpi.theory.closed_forms import paper_quantities, theorem1_reliance
from cpi.theory.eta_star import eta_star, theta_c_after_one_step

from .analysis import theta_c_sum
from .configs import with_values
from .simulations import cached_sweep

PARAMS = dict(eta_range=(0.1, 1000.0), n_eta=241, sim_eta=(0.3, 1.0, 3.0, 8.0, 20.0, 50.0))
"""eta_range, n_eta: the log-spaced η grid of the theory; sim_eta: the simulated step sizes."""


def compute(base: Config, work: Path, eta_range, n_eta: int, sim_eta) -> dict:
    """M_C(0..2) and the step-1 θ_C component vs η, theory and simulation, and η*."""
    knowledge, counts = knowledge_of(base), counts_of(base)
    eta = np.geomspace(*eta_range, n_eta)
    reliance = np.array([theorem1_reliance(knowledge, counts, e) for e in eta])
    two = with_values(base, train__steps=2)
    result = cached_sweep(two, ["train.lr=" + ",".join(repr(float(e)) for e in sim_eta)], work)
    return dict(
        config=cfg.to_toml(two),
        eta_star=eta_star(knowledge, counts),
        rho=counts.n_c / base.mixture.n_train,
        rho_star=paper_quantities(knowledge)["rho_star"],
        theory_eta=eta,
        theory_reliance=reliance,
        theory_theta_c=theta_c_after_one_step(eta, knowledge, counts),
        sim_eta=np.array([c.train.lr for c in result.configs]),
        sim_reliance=result.metrics["reliance"][:, :3],
        sim_theta_c=theta_c_sum(result.metrics, (slice(None), 1)),
        sim_configs=np.array([cfg.to_toml(c) for c in result.configs]),
    )


def headline(data: dict) -> dict:
    """η*, the smallest rise of M_C in step 1 over all η, and the smallest η whose second
    step lowers M_C (exact theory on its η grid)."""
    eta, m = data["theory_eta"], data["theory_reliance"]
    falls = eta[m[:, 2] < m[:, 1]]
    return dict(
        eta_star=float(data["eta_star"]), rho=float(data["rho"]), eta_min=float(eta.min()), eta_max=float(eta.max()),
        step1_min_rise=float(np.min(m[:, 1] - m[:, 0])),
        step2_first_fall_eta=float(falls.min()) if falls.size else float("nan"),
    )
