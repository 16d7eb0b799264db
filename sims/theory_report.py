"""The report that `cpi theory` prints for one config: the closed forms, the regime of the
gradient flow, the long-time law and the reduced-dynamics prediction of `cpi run`'s summary,
from the theory inputs of `cpi.sims.theory_inputs`, and why the regime and the prediction
disagree where they do. `cpi.report.format_theory` puts it into words."""

from __future__ import annotations

import math

import numpy as np

from cpi.theory.asymptotics import long_time_law, regime_details
from cpi.theory.closed_forms import paper_quantities
from cpi.theory.eta_star import eta_star
from cpi.theory.pretrained import z0
from cpi.theory.relations import relation_margins
from cpi.theory.summary import summarize

from .config import Config
from .pretraining import world_strengths
from .theory_inputs import counts_of, initial_direction, knowledge_of, example_trajectory, reduced_trajectory
from .world import build_world


def flow_time(t: float | None) -> str:
    """A gradient-flow time t = lr·steps in words: "300", "32.6", "3.22e7"; None or inf: "inf"."""
    if t is None or math.isinf(t):
        return "inf"
    if t == int(t) and t < 1e6:
        return str(int(t))
    return f"{t:.3g}".replace("e+0", "e").replace("e+", "e")


def _finite_or_none(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def inexact_reasons(config: Config) -> list[str]:
    """Why the reduced dynamics is not an identity for `config` (empty: it is exact). The
    reduction u = Σ α_i k_i, g = Gram·α needs W_V frozen and full-batch gradient descent
    without momentum or weight decay; any embeddings do."""
    t = config.train
    reasons = []
    if t.optimizer not in ("gd", "sgd") or t.momentum > 0:
        reasons.append(f"train.optimizer = {t.optimizer!r}" + (f" with momentum {t.momentum:g}" if t.momentum else "")
                       + ": the update is not the gradient step the reduction follows")
    if t.batch_size > 0:
        reasons.append(f"train.batch_size = {t.batch_size}: minibatches, not the full-batch gradient")
    if t.weight_decay > 0:
        reasons.append(f"train.weight_decay = {t.weight_decay:g}: the decay adds a term outside the reduction")
    if t.value_lr > 0:
        reasons.append(f"train.value_lr = {t.value_lr:g}: W_V trains, the reduction needs it frozen")
    return reasons


def nearest_exact(config: Config) -> Config:
    """`config` with full-batch gradient descent at its train.lr, W_V frozen, no weight decay:
    the nearest config whose reduced dynamics is exact."""
    import dataclasses

    train = dataclasses.replace(config.train, optimizer="gd", batch_size=0, momentum=0.0, weight_decay=0.0,
                                value_lr=0.0)
    return dataclasses.replace(config, train=train)


def theory_report(config: Config) -> dict:
    """The report of `config`: `paper_report` for the paper's embeddings, `random_report` for
    random ones, with `exact` (whether the prediction is an identity for this config) and
    `inexact_reasons` (why not); when not exact the prediction is that of `nearest_exact`."""
    reasons = inexact_reasons(config)
    paper = config.world.embeddings == "paper" and config.knowledge.pretraining == "constructed"
    report = (paper_report if paper else random_report)(config)
    report.update(exact=not reasons, inexact_reasons=reasons)
    return report


def random_report(config: Config) -> dict:
    """For random embeddings or a learned W_V (any world whose value table is not the paper's
    Lemma 3 table on the paper's embeddings): the Lemma 3 table's achieved error (random
    embeddings, constructed W_V), the achieved strengths δ_C, δ_M of the world's table, the
    config's own margins, initial drift, initial direction and ρ*
    (`theory_inputs.initial_direction`), and the exact per-example prediction
    (`theory_inputs.example_trajectory`, with the world's own value table: the learned one under
    learned pretraining) of the nearest exact config. The paper's closed forms that need its
    embeddings and table (η*, regime, long-time law) are None."""
    exact_config = nearest_exact(config)
    world = build_world(exact_config)
    counts = counts_of(config)
    n = sum(counts)
    start = initial_direction(exact_config, world)
    trajectory = example_trajectory(exact_config, world=world)
    report = {
        "embeddings": config.world.embeddings,
        "pretraining": config.knowledge.pretraining,
        **world_strengths(world),
        "dim": int(world.embed.shape[0]),
        "value_table_error": world.value_table_error,
        "Z0": (float(paper_quantities(knowledge_of(config))["Z0"]) if config.knowledge.pretraining == "constructed"
               else None),  # a learned table has no Z0
        **start,
        "rho": counts.n_c / n,
        "n_train_after_filter": n,
        "eta_star": None,
        **_NO_FLOW,
        "horizon_time": config.train.lr * config.train.steps,
        "counts": counts._asdict(),
        "values_frozen": config.train.value_lr == 0,
        **summarize(np.asarray(trajectory["reliance"])),
    }
    for j in range(1, config.world.n_relations + 1 if config.world.n_relations > 1 else 1):
        report[f"final_reliance_r{j}"] = float(trajectory[f"reliance_r{j}"][-1])
    return report


def paper_report(config: Config) -> dict:
    """Closed forms (Z0, m_C, m_CS, ρ*, Lemma 5-6 checks, η*), the regime of the gradient
    flow with its turning points (`flow_versus_horizon`), the long-time law, and the
    reduced-dynamics prediction of `cpi run`'s summary.

    With several relations, Z0 and the margins are those of the R-relation vocabulary, and
    the single-relation quantities (η*, regime, long-time law) are left out (None)."""
    knowledge, counts = knowledge_of(config), counts_of(config)
    q = paper_quantities(knowledge)
    trajectory = reduced_trajectory(config)
    summary = summarize(np.asarray(trajectory["reliance"]))
    n = sum(counts)
    n_relations = config.world.n_relations
    eta = None if n_relations > 1 else _finite_or_none(eta_star(knowledge, counts))
    flow = _NO_FLOW if n_relations > 1 else flow_versus_horizon(regime_details(knowledge, counts), summary, eta,
                                                                config.train.lr, config.train.steps)
    report = {
        "Z0": float(q["Z0"]),
        "m_C": float(q["m_C"]),
        "m_CS": float(q["m_CS"]),
        "m_CF": float(q["m_CF"]),
        "k_C": float(q["k_C"]),
        "k_CS": float(q["k_CS"]),
        "rho_star": float(q["rho_star"]),
        "rho": counts.n_c / n,
        "n_train_after_filter": n,
        "assumptions_hold": bool(q["assumptions"]),
        "lemma5_holds": bool(q["lemma5"]),
        "lemma6_holds": bool(q["lemma6"]),
        "eta_star": eta,
        **flow,
        "horizon_time": config.train.lr * config.train.steps,
        "counts": counts._asdict(),
        "values_frozen": config.train.value_lr == 0,
        **summary,
    }
    if n_relations > 1:
        margins = relation_margins(knowledge, n_relations=n_relations)
        m_c, m_cs = float(margins[0]), float(margins[1])
        report.update(
            Z0=float(z0(knowledge.n_subjects, knowledge.n_answers, knowledge.o_c, knowledge.o_r, n_relations)),
            m_C=m_c, m_CS=m_cs,
            m_CF=float(margins[2]), rho_star=-m_cs / (m_c - m_cs), eta_star=None, regime=None,
            lemma6_holds=bool(abs(m_c) > abs(m_cs)), lemma5_holds=bool(m_c > 0 > m_cs),
        )
        for j in range(n_relations):
            report[f"final_reliance_r{j + 1}"] = float(trajectory[f"reliance_r{j + 1}"][-1])
        return report
    law = long_time_law(knowledge, counts)
    if law["consistent"]:  # the matched asymptotics exist: A(t) ≈ slope·ln t + constant
        report["long_time_slope"] = round(law["slope"], 12) + 0.0  # exact 0 at n_C = n_CS
        report["long_time_constant"] = law["constant"]
    return report


_NO_FLOW = {"regime": None, "flow_turning_points": None, "flow_inversion": None, "flow_first_peak_time": None,
            "horizon_note": None}
"""The flow's entries of a report without the paper's single-relation closed forms."""


def flow_versus_horizon(details: dict, summary: dict, eta: float | None, lr: float, steps: int) -> dict:
    """The gradient flow's long-time regime next to the finite horizon of `steps` steps at `lr`.

    From `cpi.theory.asymptotics.regime_details` (`details`): regime (its label),
    flow_turning_points ([kind, t] with t None for a turning point beyond the flow's grid),
    flow_inversion (the flow's A rises above A(0) and then turns down at a maximum, as
    `summarize` defines an inversion; M_C increases with A) and flow_first_peak_time (the
    time of that maximum; None when there is none or it lies beyond the grid). horizon_note
    says why the regime and `summary` (of the steps) disagree on the inversion, None when they
    agree: the flow's first peak comes after the horizon t = lr·steps, or the steps at lr
    do not follow the flow (lr above η*, where one step already overshoots)."""
    times, a = np.asarray(details["times"]), np.asarray(details["A"])
    turns = list(zip(details["turning_kinds"], np.asarray(details["turning_times"], dtype=float).tolist()))
    first = None  # time of the flow's first maximum above A(0): the flow's first peak
    for kind, t in turns:
        if kind != "max":
            continue
        above = a[-1] > a[0] if math.isinf(t) else np.interp(t, times, a) > a[0]
        if above:
            first = t
            break
    flow_inverts = first is not None
    horizon = lr * steps
    note = None
    if flow_inverts and not summary["inversion"]:
        if first > horizon:
            where = "beyond t = 1e8" if math.isinf(first) else f"at t = {flow_time(first)}"
            note = (f"the gradient flow first peaks {where}, after this horizon ends (t = {flow_time(horizon)}), "
                    "so within the horizon M_C has not yet fallen below a peak")
        elif eta is not None and lr > eta:
            note = (f"lr {lr:g} is above eta* = {eta:.4g}: the steps overshoot the gradient flow (which first "
                    f"peaks at t = {flow_time(first)}, within this horizon) and do not fall below their peak")
        else:
            note = (f"the gradient flow first peaks at t = {flow_time(first)}, within this horizon, "
                    f"but the steps at lr "
                    f"{lr:g} do not follow it closely enough to fall below their peak")
    elif summary["inversion"] and not flow_inverts:
        if eta is not None and lr > eta:
            note = (f"lr {lr:g} is above eta* = {eta:.4g}: the first step overshoots (Proposition 1), an "
                    "inversion of the steps that the gradient flow (the lr -> 0 limit) does not have")
        else:
            note = (f"the steps at lr {lr:g} depart from the gradient flow (the lr -> 0 limit), which never "
                    "falls below a peak")
    return {
        "regime": details["label"],
        "flow_turning_points": [[kind, None if math.isinf(t) else t] for kind, t in turns],
        "flow_inversion": flow_inverts,
        "flow_first_peak_time": None if first is None or math.isinf(first) else first,
        "horizon_note": note,
    }
