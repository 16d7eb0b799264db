"""How deep the inversion is vs the strength of the pretrained knowledge.

Varies δ_M (memorised facts) or δ_C (context reliance) together with ρ. Computes the depth of
the first peak of M_C (`first_peak`) over (δ_M, ρ) and (δ_C, ρ) from the reduced dynamics,
the ρ* curve (Lemma 4) over each, and simulated points from a sweep over each pair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import knowledge_of
from cpi.theory.closed_forms import lemma4_margins, rho_star
from cpi.theory.reduced import group_trajectory

from cpi.theory.summary import first_peak

from .analysis import sweep_columns
from .configs import rho_max, theory_counts, with_values
from .simulations import cached_sweep

PARAMS = dict(
    steps=1000,
    n_rho=41,
    delta_m_range=(0.22, 0.95),
    delta_c_range=(0.04, 0.29),
    n_delta=41,
    sim_rho=(0.2, 0.35, 0.5, 0.65),
    sim_delta_m=(0.45, 0.6, 0.8),
    sim_delta_c=(0.06, 0.12, 0.2),
)
"""steps: GD steps (the window of the depth); n_rho: ρ points of the theory maps;
delta_m_range, delta_c_range, n_delta: the knowledge grids of the theory; sim_rho,
sim_delta_m, sim_delta_c: the simulated grid."""


def depth_map(base: Config, key: str, values: np.ndarray, rho: np.ndarray, steps: int) -> dict:
    """`first_peak` of the reduced dynamics over (knowledge value, ρ): one vmapped call per value."""
    rows = []
    for v in values:
        config = with_values(base, **{f"knowledge__{key}": float(v)})
        traj = group_trajectory(knowledge_of(config), theory_counts(config, rho), lr=config.train.lr, steps=steps)
        rows.append(first_peak(traj["reliance"]))
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def rho_star_curve(base: Config, key: str, values: np.ndarray) -> np.ndarray:
    """ρ* (Lemma 4) at each value of the knowledge parameter `key`."""
    out = []
    for v in values:
        config = with_values(base, **{f"knowledge__{key}": float(v)})
        m = lemma4_margins(knowledge_of(config))
        out.append(rho_star(m["m_C"], m["m_CS"]))
    return np.array(out)


def compute(base: Config, work: Path, steps: int, n_rho: int, delta_m_range, delta_c_range, n_delta: int,
            sim_rho, sim_delta_m, sim_delta_c) -> dict:
    """Depth, first-peak step and kind over (δ_M, ρ) and (δ_C, ρ): theory maps, ρ* curves
    and simulated points."""
    base = with_values(base, train__steps=int(steps))
    rho = np.linspace(0.0, rho_max(base), n_rho)
    data = dict(
        config=cfg.to_toml(base), steps=int(steps), theory_rho=rho, n_answers=base.world.n_answers,
        delta_c=base.knowledge.delta_c, delta_m=base.knowledge.delta_m,
    )
    rho_grid = ",".join(repr(float(r)) for r in sim_rho)
    for key, short, span, sim_values in (
        ("delta_m", "dm", delta_m_range, sim_delta_m),
        ("delta_c", "dc", delta_c_range, sim_delta_c),
    ):
        values = np.linspace(*span, n_delta)
        theory = depth_map(base, key, values, rho, steps)
        fine = np.linspace(*span, 4 * n_delta)
        result = cached_sweep(
            base,
            [f"knowledge.{key}=" + ",".join(repr(float(v)) for v in sim_values),
             f"mixture.context_critical={rho_grid}"],
            work,
        )
        sweep = sweep_columns(result)
        sim = first_peak(result.metrics["reliance"][:, : steps + 1])
        data.update({
            f"theory_{short}": values,
            f"theory_{short}_depth": theory["depth"],
            f"theory_{short}_peak_step": theory["peak_step"],
            f"theory_{short}_kind": theory["kind"],
            f"rho_star_{short}_x": fine,
            f"rho_star_{short}": rho_star_curve(base, key, fine),
            f"sim_{short}": np.array([getattr(c.knowledge, key) for c in result.configs]),
            f"sim_{short}_rho": sweep["rho"],
            f"sim_{short}_depth": sim["depth"],
            f"sim_{short}_peak_step": sim["peak_step"],
            f"sim_{short}_kind": sim["kind"],
            f"sim_{short}_configs": sweep["configs"],
        })
    return data


def headline(data: dict) -> dict:
    """The horizon, the base strengths, and the largest δ_C at which ρ* exceeds ½ (a balanced
    mixture never rises), from the closed-form ρ* curve."""
    above = data["rho_star_dc"] > 0.5
    return dict(
        steps=int(data["steps"]), delta_c=float(data["delta_c"]), delta_m=float(data["delta_m"]),
        balanced_never_rises_below_delta_c=float(data["rho_star_dc_x"][above].max()),
    )
