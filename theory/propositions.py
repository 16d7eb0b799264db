"""Propositions 2 and 3 of the paper, in the explicit forms this project checks.

Proposition 2 (S examples at t = 0). A seen S example [s, r] has keys (s, r) with σ_s = σ_r = ½
at u = 0 and key difference k = φ(s) − φ(r): θ_C·k = 0, θ_S·k = 1/√2, and margin
m_S = λ_S[logit δ_S + log Z₀ − o_c] > 0. Its contribution to −∇_u L is therefore
(1/n)(m_S/4)k: nothing along θ_C, a positive amount along θ_S. With the MEAN loss, adding
n_S such examples also rescales the other groups' contributions by n/(n + n_S): the θ_C
component keeps its sign but shrinks; in the paper's per-group (sum) accounting it is
unchanged.

Proposition 3 (one step on W_V). With the tied head W_H = Φ and W_V = Φ G⁻¹ V G⁻¹ Φᵀ
(G = ΦᵀΦ the K×K token Gram), the value logits are V = ΦᵀW_VΦ, the prediction of example i is
z_i = V w_i (w_i ∈ R^K its attention weights on tokens) and −∇_{W_V} ℓ_i = Φ(e_{a_i} − p_i)x̄_iᵀ
with x̄_i = Φw_i. One GD step of rate η on the mean loss therefore changes V by

    ΔV = Φᵀ ΔW_V Φ = (η/n) Σ_i G(e_{a_i} − p_i)(G w_i)ᵀ.

Because G couples every subject to every other (½ off the diagonal), each example's update
reaches all subject columns, its own subject's column with twice the weight.
"""

from __future__ import annotations

import numpy as np
from .numerics import logsumexp

from .closed_forms import initial_gradient_components, sigmoid, softmax
from .embeddings import paper_embeddings, token_gram
from .params import GroupCounts, Knowledge
from .reduced import paper_examples

__all__ = [
    "paper_embeddings",
    "token_gram",
    "proposition2",
    "attention_weights",
    "value_step",
    "value_matrix",
    "proposition3",
]


def proposition2(knowledge: Knowledge, counts: GroupCounts) -> dict:
    """t = 0 θ-components of −∇_u L without and with the counts' n_s_seen seen S examples (mean loss),
    the S group's own contribution, and the sum-loss (n·component) view.

    Keys: theta_c_without, theta_s_without, theta_c_with, theta_s_with, theta_c_S,
    theta_s_S, sum_theta_c_without/with, sum_theta_s_without/with, raises_theta_s,
    theta_c_unchanged_sum, theta_c_sign_unchanged."""
    without_s = counts.replace(n_s_seen=0)
    without = initial_gradient_components(knowledge, without_s)
    with_s = initial_gradient_components(knowledge, counts)
    n0 = without_s.total
    n1 = counts.total
    out = dict(
        theta_c_without=without["theta_c"],
        theta_s_without=without["theta_s"],
        theta_c_with=with_s["theta_c"],
        theta_s_with=with_s["theta_s"],
        theta_c_S=with_s["theta_c_S"],
        theta_s_S=with_s["theta_s_S"],
        sum_theta_c_without=n0 * without["theta_c"],
        sum_theta_c_with=n1 * with_s["theta_c"],
        sum_theta_s_without=n0 * without["theta_s"],
        sum_theta_s_with=n1 * with_s["theta_s"],
    )
    out["raises_theta_s"] = bool(out["theta_s_with"] > out["theta_s_without"])
    out["theta_c_unchanged_sum"] = bool(np.isclose(out["sum_theta_c_with"], out["sum_theta_c_without"],
                                                   rtol=1e-12, atol=0))
    out["theta_c_sign_unchanged"] = bool(np.sign(out["theta_c_with"]) == np.sign(out["theta_c_without"]))
    return out


def attention_weights(keys, gaps, n_tokens: int) -> np.ndarray:
    """w ∈ R^{n×K}: σ(g_i) on the first visible key of example i, σ(−g_i) on the second."""
    keys = np.asarray(keys)
    gaps = np.asarray(gaps, dtype=np.float64)
    w = np.zeros((len(keys), n_tokens))
    rows = np.arange(len(keys))
    w[rows, keys[:, 0]] += sigmoid(gaps)
    w[rows, keys[:, 1]] += sigmoid(-gaps)
    return w


def value_step(table, gram, weights, answers, lr: float) -> np.ndarray:
    """V' = V + (η/n) Σ_i G(e_{a_i} − p_i)(G w_i)ᵀ with p_i = softmax(V w_i): one GD step of
    rate η on W_V (mean loss), written in token space."""
    table = np.asarray(table, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    n = weights.shape[0]
    p = softmax(weights @ table.T)  # rows: p_i = softmax(V w_i)
    resid = -p
    resid[np.arange(n), np.asarray(answers)] += 1.0
    return table + lr / n * (gram @ resid.T) @ (gram @ weights.T).T


def value_matrix(table, phi) -> np.ndarray:
    """W_V = Φ G⁻¹ V G⁻¹ Φᵀ, the d×d value matrix with ΦᵀW_VΦ = V (G = ΦᵀΦ)."""
    g_inv = np.linalg.inv(phi.T @ phi)
    return phi @ g_inv @ table @ g_inv @ phi.T


def proposition3(knowledge: Knowledge, counts: GroupCounts, lr: float = 1.0, gaps=None) -> dict:
    """One W_V step at attention `gaps` (default: t = 0, all gaps 0) on an explicit example set
    (`reduced.paper_examples`). Returns the new table V', and for every C example the probability
    its subject's value column gives its answer, before (p_before) and after (p_after);
    holds = every C example's subject became more predictive of its answer."""
    pts = paper_examples(knowledge, counts)
    n_subjects, n_answers = knowledge.n_subjects, knowledge.n_answers
    k = n_subjects + n_answers + 1
    gaps = np.zeros(len(pts["answers"])) if gaps is None else np.asarray(gaps, dtype=np.float64)
    w = attention_weights(pts["keys"], gaps, k)
    table = pts["table"]
    new = value_step(table, token_gram(n_subjects, n_answers), w, pts["answers"], lr)
    c_examples = np.flatnonzero(pts["group"] == 0)
    subj = pts["keys"][c_examples, 1]
    ans = pts["answers"][c_examples]

    def prob(tab):
        cols = tab[:, subj]
        return np.exp(cols[ans, np.arange(len(subj))] - logsumexp(cols, axis=0))

    before, after = prob(table), prob(new)
    return dict(table=new, p_before=before, p_after=after, holds=bool(np.all(after > before)))
