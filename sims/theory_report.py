"""The report that `cpi theory` prints for one config: the closed forms, the regime of the
gradient flow, the long-time law and the reduced-dynamics prediction of `cpi run`'s summary,
from the theory inputs of `sims.theory_inputs`."""

from __future__ import annotations

import math

import numpy as np

from theory.asymptotics import classify_regime, long_time_law
from theory.closed_forms import paper_quantities
from theory.eta_star import eta_star
from theory.pretrained import z0
from theory.relations import relation_margins
from theory.summary import summarize

from .config import Config
from .pretraining import world_strengths
from .theory_inputs import counts_of, initial_direction, knowledge_of, point_trajectory, reduced_trajectory
from .world import build_world


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
    (`theory_inputs.initial_direction`), and the exact per-point prediction
    (`theory_inputs.point_trajectory`, with the world's own value table: the learned one under
    learned pretraining) of the nearest exact config. The paper's closed forms that need its
    embeddings and table (η*, regime, long-time law) are None."""
    exact_config = nearest_exact(config)
    world = build_world(exact_config)
    counts = counts_of(config)
    n = sum(counts)
    start = initial_direction(exact_config, world)
    trajectory = point_trajectory(exact_config, world=world)
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
        "regime": None,
        "counts": counts._asdict(),
        "values_frozen": config.train.value_lr == 0,
        **summarize(np.asarray(trajectory["reliance"])),
    }
    for j in range(1, config.world.n_relations + 1 if config.world.n_relations > 1 else 1):
        report[f"final_reliance_r{j}"] = float(trajectory[f"reliance_r{j}"][-1])
    return report


def paper_report(config: Config) -> dict:
    """Closed forms (Z0, m_C, m_CS, ρ*, Lemma 5-6 checks, η*), the regime of the gradient
    flow, the long-time law, and the reduced-dynamics prediction of `cpi run`'s summary.

    With several relations, Z0 and the margins are those of the R-relation vocabulary, and
    the single-relation quantities (η*, regime, long-time law) are left out (None)."""
    knowledge, counts = knowledge_of(config), counts_of(config)
    q = paper_quantities(knowledge)
    trajectory = reduced_trajectory(config)
    n = sum(counts)
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
        "eta_star": _finite_or_none(eta_star(knowledge, counts)),
        "regime": classify_regime(knowledge, counts),
        "counts": counts._asdict(),
        "values_frozen": config.train.value_lr == 0,
        **summarize(np.asarray(trajectory["reliance"])),
    }
    n_relations = config.world.n_relations
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


def _format_random(report: dict) -> list[str]:
    def num(x, fmt=".6f"):
        return "n/a" if x is None else format(x, fmt)

    if report.get("pretraining") == "learned":
        first = [f"{report['embeddings']} embeddings in R^{report['dim']}; W_V learned in pretraining "
                 f"(sims.pretraining): the prediction uses the learned value table, achieved delta_c "
                 f"{report['achieved_delta_c']:.4f}, delta_m {report['achieved_delta_m']:.4f}"]
    else:
        first = [f"random embeddings in R^{report['dim']}: the Lemma 3 value table is realised to within "
                 f"{report['value_table_error']:.3g} (max |Phi^T W_V Phi - V|)"]
    return first + [
        f"this world's own margins (Lemma 4, mean per group): m_C = {num(report['m_C'])}, "
        f"m_CS = {num(report['m_CS'])}, m_CF = {num(report['m_CF'])}",
        f"  initial drift of the test gap dA/dt(0) = {report['initial_drift']:.6g}: context reliance starts "
        f"to {report['initial_direction']}",
        f"  rho* = {num(report['rho_star'])} (from this world's pushes of C and C+S points); this mixture has "
        f"rho = {report['rho']:.4g}",
        "  (eta*, the regime and the long-time law are closed forms of the paper's embeddings and table: n/a)",
    ]


def format_report(report: dict, config: Config) -> str:
    """The human-readable form of `theory_report`."""
    per_point = "pretraining" in report
    lines = _format_random(report) if per_point else _format_paper(report)
    form = "per-point form, one alpha per point" if per_point else "group form"
    if report["exact"]:
        lines.append(f"exact reduced-dynamics prediction ({form}) at lr {config.train.lr:g}, "
                     f"{config.train.steps} steps:")
    else:
        lines += [
            "no exact prediction for this config: " + "; ".join(report["inexact_reasons"]) + ".",
            f"nearest exact prediction (full-batch gd at lr {config.train.lr:g}, W_V frozen, no weight decay; "
            f"{form}), {config.train.steps} steps, to compare with:",
        ]
    lines.append(
        f"  initial {report['initial_reliance']:.4f} -> peak {report['peak_reliance']:.4f} at step "
        f"{report['peak_step']} -> final {report['final_reliance']:.4f}; inversion: "
        f"{'yes' if report['inversion'] else 'no'}")
    for j in range(1, config.world.n_relations + 1 if config.world.n_relations > 1 else 1):
        lines.append(f"  relation {j}: final {report[f'final_reliance_r{j}']:.4f}")
    return "\n".join(lines)


def _format_paper(report: dict) -> list[str]:
    eta = report["eta_star"]
    lines = [
        f"closed forms (Lemmas 3-6): Z0 = {report['Z0']:.6g}, m_C = {report['m_C']:.6f}, "
        f"m_CS = {report['m_CS']:.6f}",
        f"  rho* = {report['rho_star']:.6f} (no initial rise of context reliance below it); "
        f"this mixture has rho = {report['rho']:.4g}",
        f"  paper's assumptions hold: {report['assumptions_hold']}; Lemma 5 (m_C > 0 > m_CS): "
        f"{report['lemma5_holds']}; Lemma 6 (|m_C| > |m_CS|): {report['lemma6_holds']}",
        f"  eta* (Proposition 1's sign flip at t = 1): {'none' if eta is None else f'{eta:.6g}'}",
        f"regime of the gradient flow: {report['regime'] or 'n/a (several relations)'}",
    ]
    if "long_time_slope" in report:
        lines.append(
            f"  long-time law of the test attention gap: A(t) ~ {report['long_time_slope']:.4g} ln t"
            f" + {report['long_time_constant']:.4g}  (t = lr x steps)"
        )
    return lines
