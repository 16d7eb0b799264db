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
from .theory_inputs import counts_of, knowledge_of, reduced_trajectory


def _finite_or_none(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def theory_report(config: Config) -> dict:
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


def format_report(report: dict, config: Config) -> str:
    """The human-readable form of `theory_report`."""
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
    lines += [
        f"reduced-dynamics prediction at lr {config.train.lr:g}, {config.train.steps} steps:",
        f"  initial {report['initial_reliance']:.4f} -> peak {report['peak_reliance']:.4f} at step "
        f"{report['peak_step']} -> final {report['final_reliance']:.4f}; inversion: "
        f"{'yes' if report['inversion'] else 'no'}",
    ]
    for j in range(1, config.world.n_relations + 1 if config.world.n_relations > 1 else 1):
        lines.append(f"  relation {j}: final {report[f'final_reliance_r{j}']:.4f}")
    if not report["values_frozen"]:
        lines.append("  note: train.value_lr > 0; these predictions assume W_V frozen")
    return "\n".join(lines)
