"""W_V trained together with W_KQ: does training the values prevent the inversion?

Varies `train.value_lr` (the step size of W_V; 0 = frozen, the paper's setting). Computes, from
simulation only (`cpi.sims.value_training.value_training_run`), M_C, σ_c, aligned accuracy and
the θ_C pulls of the C and CS examples vs step, with peak, final value, drop and depth; every
`record_every` steps the blocks of the value-logit change ΔV and the value margins; and, as
the reference, the frozen-W_V reduced theory and M_C as a function of σ_c on a test example.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cpi.theory.numerics import expit

from cpi.core import store
from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import knowledge_of, reduced_trajectory
from cpi.sims.value_training import VALUE_BLOCKS, value_training_run

from cpi.theory.summary import window_summary

from .analysis import prefixed
from .configs import with_values
from .simulations import cached_arrays

PARAMS = dict(
    value_lrs=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0), steps=1000, record_every=10,
    shown=(0.0, 0.3, 0.5, 0.55, 0.6, 1.0), detail=(0.5, 1.0),
)
"""value_lrs: the simulated W_V step sizes; steps: GD steps; record_every: steps between
recorded value tables; shown, detail: the value_lrs the figure singles out (in value_lrs)."""


def compute(base: Config, work: Path, value_lrs, steps: int, record_every: int, shown, detail) -> dict:
    """W_KQ and W_V trained together at every value_lr of `value_lrs` (simulation only; the
    theory's frozen-W_V trajectory as the reference), with the value-logit blocks recorded
    every `record_every` steps; `shown` / `detail` are the value_lrs the figure singles out."""
    missing = [v for v in (*shown, *detail) if v not in value_lrs]
    if missing:
        raise ValueError(f"shown/detail value_lr {missing} are not in value_lrs {value_lrs}")
    base = with_values(base, train__steps=int(steps), train__value_lr=0.0)
    keyed_by = {"config": cfg.to_toml(base), "value_lrs": [float(v) for v in value_lrs],
                "record_every": int(record_every)}
    sim = cached_arrays(store.VALUE_TRAINING, keyed_by, work, lambda: value_training_run(base, value_lrs, record_every))
    frozen = reduced_trajectory(base)
    knowledge = knowledge_of(base)
    from cpi.theory.pretrained import logit, z0

    log_z0 = np.log(z0(knowledge.n_subjects, knowledge.n_answers, knowledge.o_c, knowledge.o_r, base.world.n_relations))
    d_context = float(logit(base.knowledge.delta_c) + log_z0 - base.knowledge.o_c)  # V[c,c] − V[a,c] on a test example
    d_subject = float(base.knowledge.o_c - logit(base.knowledge.delta_m) - log_z0)  # V[c,s] − V[a,s]
    sigma = np.linspace(0.0, 1.0, 201)
    data = dict(
        config=cfg.to_toml(base),
        step=sim["step"],
        lr=base.train.lr,
        value_lr=np.asarray(sim["value_lr"], dtype=np.float64),
        checkpoint=sim["checkpoint"],
        sim_reliance=sim["reliance"],
        sim_attention=sim["attention_context"],
        sim_aligned=sim.get("aligned_accuracy", np.full_like(sim["reliance"], np.nan)),
        sim_pull_C=sim.get("neg_grad_theta_c_C", np.full_like(sim["reliance"], np.nan)),
        sim_pull_CS=sim.get("neg_grad_theta_c_CS", np.full_like(sim["reliance"], np.nan)),
        **prefixed("sim", window_summary(sim["reliance"])),
        margin_C=sim["margin_C"],
        margin_CS=sim["margin_CS"],
        C_subject_prob=sim["C_subject_prob"],
        theory_reliance=frozen["reliance"],
        theory_attention=frozen["attention_context"],
        theory_sigma=sigma,
        theory_reliance_of_sigma=expit(sigma * d_context + (1 - sigma) * d_subject),
        test_value_gap_context=d_context,
        test_value_gap_subject=d_subject,
        shown_value_lr=np.asarray(shown, dtype=np.float64),
        detail_value_lr=np.asarray(detail, dtype=np.float64),
        sim_configs=np.array([cfg.to_toml(with_values(base, train__value_lr=float(v))) for v in sim["value_lr"]]),
    )
    for key in VALUE_BLOCKS:
        data[f"dv_{key}"] = sim[f"dv_{key}"]
    return data


def headline(data: dict) -> dict:
    """Drop of M_C with W_V frozen and trained (range over value_lr below and from the
    threshold), aligned accuracy at the end, and the value-logit changes of an attended context
    token (ΔV[c, c]) and its subject (ΔV[c, s]) at the largest value_lr."""
    lr, drop, aligned = data["value_lr"], data["sim_drop"], data["sim_aligned"][:, -1]
    inverts = drop > 0.05
    trained = (lr > 0) & inverts
    last = int(np.argmax(lr))
    return dict(
        steps=int(data["step"][-1]), frozen_drop=float(drop[lr == 0][0]),
        frozen_aligned_final=float(aligned[lr == 0][0]),
        inverting_drop_min=float(drop[trained].min()), inverting_drop_max=float(drop[trained].max()),
        last_inverting_value_lr=float(lr[inverts].max()), first_flat_value_lr=float(lr[~inverts].min()),
        flat_drop_max=float(drop[~inverts].max()), flat_aligned_final_min=float(aligned[~inverts].min()),
        flat_aligned_final_max=float(aligned[~inverts].max()),
        top_value_lr=float(lr[last]), dv_cc=float(data["dv_C_cc"][last, -1]), dv_cs=float(data["dv_C_cs"][last, -1]),
    )
