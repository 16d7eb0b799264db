"""The phase diagram in the mixture ratio ρ = n_C/n (the CS examples fill the rest).

Varies ρ from 0 to its largest value. Computes (a) M_C over (ρ, step) from the reduced
dynamics at real-valued counts, (b) initial, peak, final and drop of M_C vs ρ, from theory
on a fine ρ grid and from a simulated ρ sweep, and (c) the long-time gradient flow of the
test attention gap A(t) at a few ρ, with the predicted ln t law.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import counts_of, knowledge_of
from cpi.theory.asymptotics import long_time_law
from cpi.theory.closed_forms import paper_quantities
from cpi.theory.reduced import group_flow, group_trajectory
from cpi.theory.summary import summarize

from .analysis import sweep_columns
from .configs import rho_max, theory_counts, with_values
from .simulations import cached_sweep

PARAMS = dict(n_rho=41, steps=1000, n_rho_lines=201, flow_rho=(0.3, 0.5, 0.6, 0.7, 0.8), t_max=1e10, n_times=400)
"""n_rho: ρ points of the heat map and the simulated sweep; steps: GD steps; n_rho_lines: ρ
points of the theory lines in (b); flow_rho: mixtures of the gradient flows in (c), up to
time t_max on n_times log-spaced times."""


def compute(base: Config, work: Path, n_rho: int, steps: int, n_rho_lines: int, flow_rho, t_max: float,
            n_times: int) -> dict:
    """Heat map, peak/final/drop lines and simulated points vs ρ, and long-time flows."""
    base = with_values(base, train__steps=int(steps))
    knowledge, lr = knowledge_of(base), base.train.lr
    q = paper_quantities(knowledge)
    top = rho_max(base)

    # (a) heat map and (b) lines: the reduced dynamics at real-valued counts
    rho = np.linspace(0.0, top, n_rho)
    heat = group_trajectory(knowledge, theory_counts(base, rho), lr=lr, steps=steps)["reliance"]
    rho_lines = np.linspace(0.0, top, n_rho_lines)
    lines = summarize(
        group_trajectory(knowledge, theory_counts(base, rho_lines), lr=lr, steps=steps)["reliance"]
    )
    heat_summary = summarize(heat)

    # simulation: the same ρ grid (counts round(ρn), so ρ_eff = n_C/n)
    sweep = sweep_columns(cached_sweep(base, [f"mixture.context_critical=0:{top!r}:{n_rho}"], work))

    # (c) long-time gradient flow at a few mixtures, with the ln t law
    times = np.geomspace(1e-2, t_max, n_times)
    flow_a, flow_rho_eff, slope, constant, consistent = [], [], [], [], []
    for r in flow_rho:
        counts = counts_of(with_values(base, mixture__context_critical=float(r)))
        flow_a.append(group_flow(knowledge, counts, times=times)["A"])
        law = long_time_law(knowledge, counts)
        flow_rho_eff.append(counts.n_c / base.mixture.n_train)
        slope.append(law["slope"])
        constant.append(law["constant"])
        consistent.append(law["consistent"])
    return dict(
        config=cfg.to_toml(base),
        rho_star=q["rho_star"],
        m_C=q["m_C"],
        m_CS=q["m_CS"],
        n_train=base.mixture.n_train,
        lr=lr,
        step=np.arange(steps + 1),
        theory_rho=rho,
        theory_reliance=heat,
        theory_peak_step=heat_summary["peak_step"],
        theory_rho_lines=rho_lines,
        theory_initial=lines["initial_reliance"],
        theory_peak=lines["peak_reliance"],
        theory_final=lines["final_reliance"],
        theory_drop=lines["peak_reliance"] - lines["final_reliance"],
        theory_lines_peak_step=lines["peak_step"],
        sim_rho=sweep["rho"],
        sim_initial=sweep["initial"],
        sim_peak=sweep["peak"],
        sim_final=sweep["final"],
        sim_drop=sweep["peak"] - sweep["final"],
        sim_peak_step=sweep["peak_step"],
        sim_inversion=sweep["inversion"],
        sim_configs=sweep["configs"],
        flow_time=times,
        flow_rho=np.array(flow_rho_eff),
        flow_A=np.array(flow_a),
        flow_slope=np.array(slope),
        flow_constant=np.array(constant),
        flow_consistent=np.array(consistent, dtype=bool),
    )


def headline(data: dict) -> dict:
    """ρ* and the margins behind it, the smallest ρ whose M_C rises, where the drop is deepest
    (exact theory over `theory_rho_lines`), and whether every gradient flow follows its ln t slope."""
    rho, rise = data["theory_rho_lines"], data["theory_peak"] - data["theory_initial"]
    deepest = int(np.argmax(data["theory_drop"]))
    return dict(
        steps=int(data["step"][-1]), n_rho=int(len(data["theory_rho"])), rho_star=float(data["rho_star"]),
        m_C=float(data["m_C"]), m_CS=float(data["m_CS"]),
        first_rising_rho=float(rho[rise > 1e-9].min()), last_flat_rho=float(rho[rise <= 1e-9].max()),
        deepest_drop=float(data["theory_drop"][deepest]), deepest_drop_rho=float(rho[deepest]),
        flows=int(len(data["flow_rho"])), flows_on_slope=int(np.sum(data["flow_consistent"])),
        flow_t_max=float(data["flow_time"][-1]),
    )
