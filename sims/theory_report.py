"""The theory's predictions for one config: the bridge from `Config` to `theory`'s explicit
numeric arguments, and the report that `cpi theory` prints."""

from __future__ import annotations

import math

import numpy as np

from theory.asymptotics import classify_regime, long_time_law
from theory.closed_forms import paper_quantities
from theory.eta_star import eta_star
from theory.reduced import group_trajectory
from theory.summary import summarize

from .config import Config, group_counts


def knowledge_args(config: Config) -> tuple:
    """(n_subjects, n_answers, delta_c, delta_m, o_c, o_r): the leading arguments of theory."""
    w, k = config.world, config.knowledge
    return (w.n_subjects, w.n_answers, k.delta_c, k.delta_m, k.o_c, k.o_r)


def count_args(config: Config) -> dict:
    """Group counts as theory's keyword arguments (n_c, n_cs, n_cf, n_s_seen, n_s_unseen)."""
    c = group_counts(config.mixture)
    return dict(n_c=c["C"], n_cs=c["CS"], n_cf=c["CF"], n_s_seen=c["S_seen"], n_s_unseen=c["S_unseen"])


def reduced_trajectory(config: Config, steps: int | None = None) -> dict:
    """The exact reduced (group) dynamics of `config` with W_V frozen: metrics at steps 0..steps."""
    return group_trajectory(
        *knowledge_args(config), **count_args(config), delta_s=config.knowledge.delta_s,
        lr=config.train.lr, steps=config.train.steps if steps is None else steps,
    )


def _finite_or_none(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def theory_report(config: Config) -> dict:
    """Closed forms (Z0, m_C, m_CS, ρ*, Lemma 5-6 checks, η*), the regime of the gradient
    flow, the long-time law, and the reduced-dynamics prediction of `cpi run`'s summary."""
    kargs, cargs = knowledge_args(config), count_args(config)
    q = paper_quantities(*kargs, delta_s=config.knowledge.delta_s)
    trajectory = reduced_trajectory(config)
    n = config.mixture.n_train
    report = {
        "Z0": float(q["Z0"]),
        "m_C": float(q["m_C"]),
        "m_CS": float(q["m_CS"]),
        "m_CF": float(q["m_CF"]),
        "k_C": float(q["k_C"]),
        "k_CS": float(q["k_CS"]),
        "rho_star": float(q["rho_star"]),
        "rho": cargs["n_c"] / n,
        "assumptions_hold": bool(q["assumptions"]),
        "lemma5_holds": bool(q["lemma5"]),
        "lemma6_holds": bool(q["lemma6"]),
        "eta_star": _finite_or_none(eta_star(*kargs, **cargs, delta_s=config.knowledge.delta_s)),
        "regime": classify_regime(*kargs, **cargs, delta_s=config.knowledge.delta_s),
        "counts": cargs,
        "values_frozen": config.train.value_lr == 0,
        **summarize(np.asarray(trajectory["reliance"])),
    }
    law = long_time_law(*kargs, **cargs, delta_s=config.knowledge.delta_s)
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
        f"regime of the gradient flow: {report['regime']}",
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
    if not report["values_frozen"]:
        lines.append("  note: train.value_lr > 0; these predictions assume W_V frozen")
    return "\n".join(lines)
