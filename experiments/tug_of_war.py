"""The tug of war behind the inversion, at the base config: nothing is varied.

Computes the θ_C component of −∇L contributed by the C and the CS examples at every step
(simulation and exact reduced theory), their sum, the total over every context group, the
first step at which the C + CS sum is no longer positive, and the peak step of M_C.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import counts_of, reduced_trajectory

from .analysis import first_nonpositive, theta_c_sum
from .simulations import cached_run

PARAMS: dict = {}
"""No parameters of its own: everything comes from the base config."""


def compute(base: Config, work: Path) -> dict:
    """θ_C pushes of the C and CS groups vs step, their sum and its sign change."""
    metrics, summary = cached_run(base, work)
    theory = reduced_trajectory(base)
    data = dict(config=cfg.to_toml(base), step=metrics["step"], lr=base.train.lr)
    for values, prefix in ((metrics, "sim"), (theory, "theory")):
        for g in ("C", "CS"):
            key = f"neg_grad_theta_c_{g}"
            data[f"{prefix}_{g}"] = values[key] if key in values else np.zeros_like(values["reliance"])
        data[f"{prefix}_sum"] = data[f"{prefix}_C"] + data[f"{prefix}_CS"]
        data[f"{prefix}_total"] = theta_c_sum(values)
        data[f"{prefix}_sign_change"] = first_nonpositive(data[f"{prefix}_sum"])
        data[f"{prefix}_peak_step"] = int(np.argmax(values["reliance"]))
    counts = counts_of(base)
    data["other_groups"] = any((counts.n_cf, counts.n_s_seen, counts.n_s_unseen))
    return data


def headline(data: dict) -> dict:
    """The step at which the C and CS pulls on θ_C sum to zero or less, in simulation and
    theory, and the step of M_C's peak."""
    return dict(
        steps=int(data["step"][-1]), sim_sign_change=int(data["sim_sign_change"]),
        theory_sign_change=int(data["theory_sign_change"]), sim_peak_step=int(data["sim_peak_step"]),
    )
