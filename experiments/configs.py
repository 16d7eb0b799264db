"""Configs and group counts that experiments derive from their base config."""

from __future__ import annotations

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import counts_of
from cpi.theory.params import GroupCounts


def with_values(config: Config, **values) -> Config:
    """`config` with `section__key=value` replacements (validated)."""
    return cfg.with_values(config, {k.replace("__", "."): v for k, v in values.items()})


def theory_counts(base: Config, rho) -> GroupCounts:
    """Group counts for the reduced dynamics at (possibly fractional) ρ: n_C = ρn,
    n_CS = n − n_C − (CF and S examples of the base mixture). Real counts interpolate between
    mixtures; at ρ = k/n they are exactly the mixture a simulation trains on."""
    counts = counts_of(base)
    n = base.mixture.n_train
    others = counts.n_cf + counts.n_s_seen + counts.n_s_unseen
    rho = np.asarray(rho, dtype=np.float64)
    return counts.replace(n_c=rho * n, n_cs=n - rho * n - others)


def rho_max(base: Config) -> float:
    """The largest ρ the base mixture allows: 1 − (CF fraction) − (fact-recall fraction)."""
    m = base.mixture
    return float(round(1.0 - m.counterfactual - m.fact_recall, 12))
