"""Two relations (tasks) that share part of their embedding (overlap γ), with CF examples on
relation 1 only: does augmentation on one task carry over to the other?

Varies γ, with and without the CF examples (`counterfactual`·n of them, in place of relation
1's CS examples). Computes M_C per relation vs step from the relation group form of the reduced
dynamics at every γ, its final value and peak, the transfer to relation 2 (final M_C with
minus without CF examples), the first-step transfer, and the same from one simulated sweep over
(with/without CF) × a few γ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import knowledge_of, relation_counts
from cpi.theory.summary import first_peak

from .configs import with_values
from .simulations import cached_sweep

PARAMS = dict(
    gammas=tuple(round(0.025 * i, 3) for i in range(36)), sim_gammas=(0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.85),
    steps=600, counterfactual=0.25, held_out=5,
)
"""gammas: the overlaps of the theory; sim_gammas: those simulated; steps: GD steps;
counterfactual: the fraction of CF examples; held_out: test and aligned examples per world."""


def compute(base: Config, work: Path, gammas, sim_gammas, steps: int, counterfactual: float,
            held_out: int) -> dict:
    """Two relations (tasks) with overlap γ; `counterfactual`·n CF examples all on relation 1
    (`mixture.counterfactual_relation = 1`, in place of its CS examples) against the control
    without them. Theory: the relation group form at every γ of `gammas`; simulation: one
    vmapped sweep over (with/without CF) × `sim_gammas`."""
    from cpi.theory.relations import first_step_gaps, relation_group_trajectory

    two = with_values(base, world__n_relations=2, world__relation_overlap=0.0, mixture__counterfactual_relation=1,
                      mixture__n_test=held_out, mixture__n_aligned=held_out, train__steps=int(steps),
                      mixture__counterfactual=0.0)
    aug = with_values(two, mixture__counterfactual=float(counterfactual))
    knowledge, lr = knowledge_of(two), two.train.lr
    gam = np.asarray(gammas, dtype=np.float64)
    out = dict(config=cfg.to_toml(aug), step=np.arange(steps + 1), lr=lr, theory_gamma=gam,
               counterfactual=float(counterfactual))
    for name, config in (("aug", aug), ("ctrl", two)):
        counts = relation_counts(config)
        rel = relation_group_trajectory(knowledge, counts, n_relations=2, relation_overlap=gam, lr=lr,
                                        steps=steps)["reliance"]  # (G, 2, T)
        out[f"counts_{name}"] = counts
        for j in range(2):
            out[f"theory_{name}_r{j + 1}"] = rel[:, j]
            out[f"theory_{name}_r{j + 1}_final"] = rel[:, j, -1]
            out[f"theory_{name}_r{j + 1}_peak"] = rel[:, j].max(axis=-1)
    out["theory_transfer_final"] = out["theory_aug_r2_final"] - out["theory_ctrl_r2_final"]
    r2 = out["theory_aug_r2"]
    out["theory_aug_r2_first_peak_step"] = first_peak(r2)["peak_step"]
    out["theory_aug_r2_end_slope"] = (r2[:, -1] - r2[:, -11]) / 10  # per step, over the last 10 steps
    first = [first_step_gaps(knowledge, out["counts_aug"], relation_overlap=float(g), lr=lr) for g in gam]
    out["theory_step1_transfer_A"] = np.array([f["transfer"][1] for f in first])
    out["theory_step1_transfer_reliance"] = np.array([f["reliance1"][1] - f["reliance1_without_transfer"][1]
                                                      for f in first])
    sweep = cached_sweep(two, [f"mixture.counterfactual=0,{float(counterfactual)!r}",
                               "world.relation_overlap=" + ",".join(repr(float(g)) for g in sim_gammas)], work)
    n_g = len(sim_gammas)
    for i, name in enumerate(("ctrl", "aug")):
        rows = slice(i * n_g, (i + 1) * n_g)
        for j in range(2):
            rel = np.asarray(sweep.metrics[f"reliance_r{j + 1}"])[rows, : steps + 1]
            out[f"sim_{name}_r{j + 1}"] = rel
            out[f"sim_{name}_r{j + 1}_final"] = rel[:, -1]
    out["sim_gamma"] = np.array([c.world.relation_overlap for c in sweep.configs[:n_g]])
    out["sim_transfer_final"] = out["sim_aug_r2_final"] - out["sim_ctrl_r2_final"]
    out["sim_configs"] = np.array([cfg.to_toml(c) for c in sweep.configs])
    return out


def headline(data: dict) -> dict:
    """Relation 1's final M_C under CF augmentation (range over γ) and relation 2's gain over
    the unaugmented control at each simulated overlap γ."""
    out = dict(steps=int(data["step"][-1]), r1_final_min=float(data["sim_aug_r1_final"].min()),
               r1_final_max=float(data["sim_aug_r1_final"].max()))
    for g, gain in zip(data["sim_gamma"], data["sim_transfer_final"]):
        out[f"gain_{round(100 * float(g)):03d}"] = float(gain)
    return out
