"""The documented outputs of the class-form reduced dynamics (group and relation forms),
assembled once from the raw states of `cpi.theory.integrate` (descent or flow).

Argmax: a token is chosen when its logit exceeds every other token's by more than
`reduced_system.ARGMAX_TOLERANCE` (a tie at the top counts as not chosen).

Per relation j (axis −2 of every output) and recorded time (last axis):
  time, A (gap of the conflict test example on relation j), reliance (its M_C),
  attention_context (σ(A)), aligned_accuracy (p_c on an aligned example),
  counterfactual_accuracy / parametric_accuracy (1 where the conflict example's argmax is the
  context's answer c / the memorised fact b, else 0: its examples are interchangeable),
  alpha_G, gap_G, loss_G for G in GROUPS (NaN where relation j has no example of G),
  accuracy_G (1 where group G's argmax is its answer, else 0; NaN where absent) and
  train_accuracy = Σ_G n_jG accuracy_G / Σ_G n_jG (relation j's training examples),
  attention_context_{C,CS,CF} (σ(g_G)), attention_subject_{S_seen,S_unseen} (σ(g_S)),
  loss_S (mean over relation j's S examples),
  u_theta_c, u_theta_s: θ_C·W_KQ φ(r_j), θ_S·W_KQ φ(r_j) (= θ·u for one relation),
  neg_grad_theta_c_G, neg_grad_theta_s_G for G in C, CS, CF, S and the totals
  neg_grad_theta_c, neg_grad_theta_s: writing −∇_{W_KQ}L = Σ_j w_j φ(r_j)ᵀ with
  w_j = (1/n) Σ_{i on relation j} h_i k_i, these are θ_C·w_j and θ_S·w_j split by group
  (not multiplied by η), so u_theta_c[j](t+1) − u_theta_c[j](t) = η Σ_l Γ_jl neg_grad_theta_c[l](t).
"""

from __future__ import annotations

import numpy as np
from .numerics import expit

from .closed_forms import THETA_C, THETA_S
from .groups import CONTEXT_GROUPS, GROUPS, S_SEEN, S_UNSEEN, has_context
from .reduced_system import Layout


def class_outputs(raw: dict, layout: Layout, time) -> dict:
    """The outputs above, each (B, R, T), from raw states (B, T, ...) of a stack of
    class-form systems (`reduced_system.relation_system`) and the time of each state
    (B, T)."""
    counts = layout.counts
    stack, n_rel = counts.shape[:2]
    n_times = raw["A"].shape[1]

    def per_unit(x):  # (B, T, 5R) -> (B, R, 5, T)
        return np.moveaxis(np.asarray(x).reshape(stack, n_times, n_rel, len(GROUPS)), 1, -1)

    def per_relation(x):  # (B, T, R) -> (B, R, T)
        return np.moveaxis(np.asarray(x), 1, -1)

    alpha, gaps, h, loss, correct = (per_unit(raw[k]) for k in ("alpha", "gaps", "drive", "loss", "correct"))
    a_gap = per_relation(raw["A"])
    out = dict(
        time=np.broadcast_to(np.asarray(time, dtype=np.float64)[:, None, :], (stack, n_rel, n_times)).copy(),
        A=a_gap,
        reliance=per_relation(raw["reliance"]),
        attention_context=expit(a_gap),
        aligned_accuracy=per_relation(raw["aligned_accuracy"]),
        counterfactual_accuracy=per_relation(raw["counterfactual"]),
        parametric_accuracy=per_relation(raw["parametric"]),
    )
    cnt = counts[..., None]  # (B, R, 5, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["train_accuracy"] = np.sum(cnt * correct, axis=2) / cnt.sum(axis=2)
    present = cnt > 0
    nan = np.nan
    for gi, name in enumerate(GROUPS):
        here = present[:, :, gi]
        out[f"alpha_{name}"] = np.where(here, alpha[:, :, gi], nan)
        out[f"gap_{name}"] = np.where(here, gaps[:, :, gi], nan)
        out[f"loss_{name}"] = np.where(here, loss[:, :, gi], nan)
        out[f"accuracy_{name}"] = np.where(here, correct[:, :, gi], nan)
        key = "attention_context_" if has_context(name) else "attention_subject_"
        out[key + name] = np.where(here, expit(gaps[:, :, gi]), nan)
    n_s = cnt[:, :, S_SEEN] + cnt[:, :, S_UNSEEN]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["loss_S"] = np.where(
            n_s > 0, (cnt[:, :, S_SEEN] * loss[:, :, S_SEEN] + cnt[:, :, S_UNSEEN] * loss[:, :, S_UNSEEN]) / n_s, nan)
    # u_j = W_KQ φ(r_j) = Σ_{l,H} n_lH α_lH k_H Γ_lj
    overlap = layout.overlap[:, None, None]
    gamma = (1.0 - overlap) * np.eye(n_rel) + overlap  # (B, R, R)
    for theta, name in ((THETA_C, "c"), (THETA_S, "s")):
        w = np.sum(cnt * alpha * theta[None, None, :, None], axis=2)  # (B, R, T): Σ_H n_lH α_lH θ·k_H
        out[f"u_theta_{name}"] = np.einsum("bjl,blt->bjt", gamma, w)
        grad = cnt * h * theta[None, None, :, None] / layout.n[:, None, None, None]
        for gname in CONTEXT_GROUPS:
            gi = GROUPS.index(gname)
            out[f"neg_grad_theta_{name}_{gname}"] = np.where(present[:, :, gi], grad[:, :, gi], nan)
        out[f"neg_grad_theta_{name}_S"] = np.where(n_s > 0, grad[:, :, S_SEEN] + grad[:, :, S_UNSEEN], nan)
        out[f"neg_grad_theta_{name}"] = grad.sum(axis=2)
    return out
