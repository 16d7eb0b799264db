"""Learned pretraining: does the inversion survive when W_V is learned instead of constructed?

Varies `pretrain.steps`, the length of the learned pretraining of W_V (`cpi.sims.pretraining`: fact
points and context-copy examples, W_KQ = 0), with the other pretrain keys of the base config and
knowledge.pretraining = "learned". For each length in `shown` it computes M_C over finetuning
steps from simulation (`cpi.sims.train.run`) and from the exact per-example reduced dynamics with the
learned value table (`cpi.sims.theory_inputs.example_trajectory`; W_V frozen and full-batch GD, so the
reduction is exact), with the achieved δ_C, δ_M and the world's own margins and ρ*; the base
config's constructed W_V as the reference; and over the finer grid `grid` of lengths, the
achieved δ_C, δ_M and the initial, peak and final M_C of the reduced dynamics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import initial_direction, example_trajectory
from cpi.sims.world import build_world
from cpi.sims.pretraining import world_strengths
from cpi.theory.summary import summarize

from .configs import with_values
from .simulations import cached_run

PARAMS = dict(shown=(300, 1000, 3000), grid=(0, 150, 300, 450, 600, 800, 1000, 1300, 1600, 2000, 2500, 3000, 4000),
              steps=1000)
"""shown: the pretraining lengths (pretrain.steps) simulated and drawn over finetuning steps;
grid: the lengths of the reduced-dynamics scan; steps: finetuning steps."""


def compute(base: Config, work: Path, shown, grid, steps: int) -> dict:
    """M_C vs finetuning step for each learned pretraining length in `shown` (simulation and
    exact per-example theory), the constructed-W_V reference, and the achieved strengths and
    M_C summaries over the lengths in `grid`."""
    constructed = with_values(base, knowledge__pretraining="constructed", train__steps=int(steps))
    learned = with_values(constructed, knowledge__pretraining="learned")
    ref_metrics, ref_summary = cached_run(constructed, work)
    data = dict(
        config=cfg.to_toml(learned),
        step=ref_metrics["step"],
        lr=base.train.lr,
        pretrain_lr=base.pretrain.lr,
        fact_repeats=base.pretrain.fact_repeats,
        context_repeats=base.pretrain.context_repeats,
        rho=cfg.group_counts(base.mixture)["C"] / base.mixture.n_train,
        constructed_reliance=ref_metrics["reliance"],
        constructed_delta_c=ref_summary["achieved_delta_c"],
        constructed_delta_m=ref_summary["achieved_delta_m"],
        shown=np.asarray(shown, dtype=np.int64),
        grid=np.asarray(grid, dtype=np.int64),
    )
    rows: dict[str, list] = {}
    for length in shown:
        config = with_values(learned, pretrain__steps=int(length))
        metrics, summary = cached_run(config, work)
        world = build_world(config)
        theory = example_trajectory(config, world=world)
        start = initial_direction(config, world)
        for key, value in dict(
            sim_reliance=metrics["reliance"], theory_reliance=theory["reliance"],
            delta_c=summary["achieved_delta_c"], delta_m=summary["achieved_delta_m"],
            sim_peak=summary["peak_reliance"], sim_peak_step=summary["peak_step"],
            sim_final=summary["final_reliance"], sim_inversion=summary["inversion"],
            m_C=start["m_C"], m_CS=start["m_CS"], rho_star=np.nan if start["rho_star"] is None else start["rho_star"],
        ).items():
            rows.setdefault(key, []).append(value)
    for length in grid:
        config = with_values(learned, pretrain__steps=int(length))
        world = build_world(config)
        summary = summarize(example_trajectory(config, world=world)["reliance"])
        for key, value in dict(
            **{f"grid_{k[len('achieved_'):]}": v for k, v in world_strengths(world).items()},
            grid_initial=summary["initial_reliance"], grid_peak=summary["peak_reliance"],
            grid_final=summary["final_reliance"], grid_peak_step=summary["peak_step"],
        ).items():
            rows.setdefault(key, []).append(value)
    data.update({k: np.asarray(v) for k, v in rows.items()})
    return data


def headline(data: dict) -> dict:
    """For each simulated pretraining length, the achieved δ_C, δ_M and M_C's initial, peak and
    final values; over the reduced scan of lengths, the deepest fall and where it is."""
    out = dict(steps=int(data["step"][-1]))
    for i, length in enumerate(data["shown"]):
        tag = int(length)
        out[f"delta_c_{tag}"] = float(data["delta_c"][i])
        out[f"delta_m_{tag}"] = float(data["delta_m"][i])
        out[f"initial_{tag}"] = float(data["sim_reliance"][i][0])
        out[f"peak_{tag}"] = float(data["sim_peak"][i])
        out[f"final_{tag}"] = float(data["sim_final"][i])
    fall = np.asarray(data["grid_peak"]) - np.asarray(data["grid_final"])
    deepest = int(np.argmax(fall))
    out.update(
        deepest_fall=float(fall[deepest]), deepest_fall_length=int(data["grid"][deepest]),
        deepest_fall_delta_c=float(data["grid_delta_c"][deepest]),
        deepest_fall_delta_m=float(data["grid_delta_m"][deepest]),
    )
    return out
