"""Closed forms of the paper at t = 0 (Lemmas 2, 4-6, Propositions 1-2, Theorem 1).

Notation. A training example has two visible keys (x₁, x₂): (c, s) for a context example
[c, s, r] (the relation key is masked, σ_r = 0) and (s, r) for a subject-only example [s, r].
Its attention gap is g = logit σ_{x₁}; the prediction is z = σ(g)v(x₁) + σ(−g)v(x₂), with
v(y) = V[:, y] the value logits of token y over all K output tokens, p = softmax(z).
The drive of a example is

    h(g) = σ(g)σ(−g)⟨v(x₁) − v(x₂), e_a − p⟩ = −∂ℓ/∂g,

so −∇_u ℓ = h(g)·k with k = φ(x₁) − φ(x₂) (Lemma 1-2: only u = W_KQ φ(r) moves).
At t = 0 (u = 0, σ = ½) h = ¼·m with the margin of Lemma 4

    m = ⟨v(x₁) − v(x₂), e_a − softmax(½v(x₁) + ½v(x₂))⟩.

Groups (one representative example each; every group's examples are alike up to relabelling):
C (s not memorised), CS (s memorised with fact c at δ_M), CF (s memorised with b ≠ c at δ_M,
answer c), S_seen ([s, r], s memorised with its answer at δ_S), S_unseen ([s, r], s not
memorised). Conflict test example: fresh c, s memorised with a ≠ c at δ_M.
"""

from __future__ import annotations

import numpy as np
from .numerics import expit, logsumexp

from .groups import CONTEXT_INDICES, GROUPS, INDEX, S_SEEN, S_UNSEEN
from .params import PAPER_KNOWLEDGE, GroupCounts, Knowledge
from .pretrained import logit, value_logit_table, z0


# Paper embeddings: inner products of key differences k = φ(x₁) − φ(x₂), fresh tokens per example.
SELF_INNER = np.array([2.0, 2.0, 2.0, 2.0, 2.0])
"""k_i·k_i for each group."""
DISTINCT_INNER = np.array(
    [
        [1.0, 1.0, 1.0, -0.5, -0.5],
        [1.0, 1.0, 1.0, -0.5, -0.5],
        [1.0, 1.0, 1.0, -0.5, -0.5],
        [-0.5, -0.5, -0.5, 1.5, 1.5],
        [-0.5, -0.5, -0.5, 1.5, 1.5],
    ]
)
"""k_i·k_j for two distinct examples of groups G, H: context·context 1, context·S −½, S·S 3/2."""
TEST_INNER = np.array([1.0, 1.0, 1.0, -0.5, -0.5])
"""k_test·k_j for a fresh conflict (or aligned) test example against a example of group G."""
THETA_C = np.array([1.0, 1.0, 1.0, 0.0, 0.0]) / np.sqrt(2.0)
"""θ_C·k for each group."""
THETA_S = np.array([-1.0, -1.0, -1.0, 1.0, 1.0]) / np.sqrt(2.0)
"""θ_S·k for each group."""


def sigmoid(x):
    """σ(x) = 1/(1 + e^{−x}), stable for both signs."""
    return expit(np.asarray(x, dtype=np.float64))


def softmax(z, axis=-1):
    """softmax along `axis`."""
    z = np.asarray(z, dtype=np.float64)
    return np.exp(z - logsumexp(z, axis=axis, keepdims=True))


def mix(g, v1, v2):
    """z = σ(g)v₁ + σ(−g)v₂; g broadcasts against the leading axes of v₁, v₂ (last axis K)."""
    g = np.asarray(g, dtype=np.float64)[..., None]
    return sigmoid(g) * np.asarray(v1) + sigmoid(-g) * np.asarray(v2)


def _answer_entry(x, answer):
    """x[..., a] with a broadcast against the leading axes of x."""
    x = np.asarray(x)
    answer = np.asarray(answer)
    lead = np.broadcast_shapes(x.shape[:-1], answer.shape)
    x = np.broadcast_to(x, lead + x.shape[-1:])
    idx = np.broadcast_to(answer, lead)
    return np.take_along_axis(x, idx[..., None], axis=-1)[..., 0]


def drive(g, v1, v2, answer):
    """h(g) = σ(g)σ(−g)⟨v₁ − v₂, e_a − p⟩ = −∂ℓ/∂g, vectorised over leading axes.

    ⟨d, e_a − p⟩ is evaluated as Σ_y p_y(d_a − d_y), which never forms 1 − p_a."""
    g = np.asarray(g, dtype=np.float64)
    z = mix(g, v1, v2)
    p = softmax(z)
    d = np.asarray(v1) - np.asarray(v2)
    inner = np.sum(p * (_answer_entry(d, answer)[..., None] - d), axis=-1)
    return sigmoid(g) * sigmoid(-g) * inner


def example_loss(g, v1, v2, answer):
    """ℓ = −log softmax(σ(g)v₁ + σ(−g)v₂)_a."""
    z = mix(g, v1, v2)
    return logsumexp(z, axis=-1) - _answer_entry(z, answer)


def margin(v1, v2, answer):
    """Lemma 4's m = ⟨v₁ − v₂, e_a − softmax(½v₁ + ½v₂)⟩ = 4h(0)."""
    return 4.0 * drive(0.0, v1, v2, answer)


def representative_columns(knowledge: Knowledge = PAPER_KNOWLEDGE) -> dict:
    """Value columns v(y) ∈ R^K of one representative token of each kind, each read off
    `value_logit_table` (so they carry the table's exact Lemma 3 construction).

    Answer tokens: c = K_S (the context / answer), b = K_S + 1 (another answer: the CF
    example's memorised fact and the conflict example's parametric answer a).
    Keys: context v(c); flat (a subject that is not memorised); relation v(r);
    memorised_c (fact c at δ_M: CS example, aligned example); memorised_b (fact b at δ_M: CF
    example, conflict example); seen_c (fact c at δ_S: a seen S example whose answer is c).
    """
    n_subjects, n_answers, delta_c, delta_m, o_c, o_r, delta_s = knowledge
    if n_answers < 2 or n_subjects < 1:
        raise ValueError("need at least one subject and two answers")
    k = n_subjects + n_answers + 1
    c, b = n_subjects, n_subjects + 1

    def subject_column(fact: int, strength: float) -> np.ndarray:
        facts = -np.ones(n_subjects, dtype=int)
        facts[0] = fact
        strengths = np.full(n_subjects, 0.5)
        strengths[0] = strength
        table = value_logit_table(n_subjects, n_answers, o_c, o_r, delta_c, facts, strengths)
        return table[:, 0].copy()

    base = value_logit_table(
        n_subjects, n_answers, o_c, o_r, delta_c, -np.ones(n_subjects, dtype=int), np.full(n_subjects, 0.5)
    )
    return dict(
        c=c,
        b=b,
        K=k,
        context=base[:, c].copy(),
        flat=base[:, 0].copy(),
        relation=base[:, k - 1].copy(),
        memorised_c=subject_column(0, delta_m),
        memorised_b=subject_column(1, delta_m),
        seen_c=subject_column(0, delta_s),
    )


def group_columns(cols: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(v(x₁), v(x₂), answer) for one representative example of each group in GROUPS."""
    v1 = np.stack([cols["context"], cols["context"], cols["context"], cols["seen_c"], cols["flat"]])
    v2 = np.stack([cols["flat"], cols["memorised_c"], cols["memorised_b"], cols["relation"], cols["relation"]])
    answer = np.full(len(GROUPS), cols["c"])
    return v1, v2, answer


def conflict_reliance(gap, cols: dict):
    """M_C = p_c/(p_c + p_a) on a conflict example with attention gap A (s memorised with a ≠ c)."""
    z = mix(gap, cols["context"], cols["memorised_b"])
    return sigmoid(z[..., cols["c"]] - z[..., cols["b"]])


def aligned_accuracy(gap, cols: dict):
    """p_c on an aligned held-out example (s memorised with fact c at δ_M) with gap A."""
    z = mix(gap, cols["context"], cols["memorised_c"])
    return np.exp(z[..., cols["c"]] - logsumexp(z, axis=-1))


def lemma4_margins(knowledge: Knowledge = PAPER_KNOWLEDGE) -> dict:
    """Lemma 4 in closed form: m = λ·(difference of the two value logits on the answer row),
    λ = 1 − p_c at t = 0 (p = softmax(½v(c) + ½v(s))).

        m_C    = λ_C [logit δ_C + log Z₀ − o_c]                  (> 0)
        m_CS   = λ_CS [logit δ_C − logit δ_M]                    (< 0 iff δ_M > δ_C)
        m_CF   = λ_CF [logit δ_C + log Z₀ − o_c] + μ_CF [logit δ_M + log Z₀ − o_c],
                 μ_CF = p_b at t = 0 (v(c) − v(s) has a second, negative entry on row b)
        m_S    = λ_S [logit δ_S + log Z₀ − o_c]   (seen S example, key pair (s, r))
        m_S_unseen = 0 (v(s) = v(r): an unseen S example never drives attention).
    """
    n_subjects, n_answers, delta_c, delta_m, o_c, o_r, delta_s = knowledge
    cols = representative_columns(knowledge)
    v1, v2, _ = group_columns(cols)
    p = softmax(0.5 * v1 + 0.5 * v2)
    c, b = cols["c"], cols["b"]
    log_z0 = np.log(z0(n_subjects, n_answers, o_c, o_r))
    lam = 1.0 - p[:, c]
    out = dict(
        lambda_C=lam[INDEX["C"]],
        lambda_CS=lam[INDEX["CS"]],
        lambda_CF=lam[INDEX["CF"]],
        mu_CF=p[INDEX["CF"], b],
        lambda_S=lam[S_SEEN],
    )
    out["m_C"] = out["lambda_C"] * (logit(delta_c) + log_z0 - o_c)
    out["m_CS"] = out["lambda_CS"] * (logit(delta_c) - logit(delta_m))
    out["m_CF"] = out["lambda_CF"] * (logit(delta_c) + log_z0 - o_c) + out["mu_CF"] * (logit(delta_m) + log_z0 - o_c)
    out["m_S"] = out["lambda_S"] * (logit(delta_s) + log_z0 - o_c)
    out["m_S_unseen"] = 0.0
    return {key: float(val) for key, val in out.items()}


def tail_coefficients(knowledge: Knowledge = PAPER_KNOWLEDGE) -> dict:
    """κ with h(g) ≈ ε κ e^{−|g|} as g → ε∞ (ε the group's eventual direction).

    k_C  = ⟨v(c) − v(s), e_c − softmax(v(c))⟩          (C, g_C → +∞)
    k_CS = −⟨v(c) − v(s), e_c − softmax(v(s))⟩         (CS, g_CS → −∞)
    k_CF = ⟨v(c) − v(s), e_c − softmax(v(c))⟩          (CF, g_CF → +∞)
    k_S  = ⟨v(s) − v(r), e_a − softmax(v(s))⟩          (seen S, g_S → +∞)
    """
    cols = representative_columns(knowledge)
    v1, v2, answer = group_columns(cols)
    d = v1 - v2
    c = cols["c"]

    def inner(row, p):
        return float(np.sum(p * (d[row, c] - d[row])))

    return dict(
        k_C=inner(INDEX["C"], softmax(v1[INDEX["C"]])),
        k_CS=-inner(INDEX["CS"], softmax(v2[INDEX["CS"]])),
        k_CF=inner(INDEX["CF"], softmax(v1[INDEX["CF"]])),
        k_S=inner(S_SEEN, softmax(v1[S_SEEN])),
    )


def assumptions_hold(n_answers: int, delta_c: float, delta_m: float, o_c: float = 1.0, o_r: float = 0.5) -> bool:
    """The paper's conditions: δ_C > 3/(K_A − 1), δ_M > 2δ_C, o_c ≥ o_r > 0."""
    return bool(delta_c > 3.0 / (n_answers - 1) and delta_m > 2.0 * delta_c and o_c >= o_r > 0)


def lemma5_holds(m_c: float, m_cs: float) -> bool:
    """Lemma 5: m_C > 0 > m_{CS}."""
    return bool(m_c > 0.0 > m_cs)


def lemma6_holds(m_c: float, m_cs: float) -> bool:
    """Lemma 6: |m_C| > |m_{CS}|. NOT implied by the paper's assumptions (see NOTES.md)."""
    return bool(abs(m_c) > abs(m_cs))


def rho_star(m_c: float, m_cs: float) -> float:
    """ρ* = |m_CS|/(m_C + |m_CS|): below it (C and CS examples only) attention to context
    falls from t = 0, since dA ∝ ρ m_C + (1 − ρ) m_CS."""
    return abs(m_cs) / (m_c + abs(m_cs))


def group_gram(counts: np.ndarray) -> np.ndarray:
    """M with g = M α for one α per group: M_GH = [G = H](self − distinct) + n_H·distinct_GH."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.diag(SELF_INNER - np.diag(DISTINCT_INNER)) + DISTINCT_INNER * counts[None, :]


def initial_gradient_components(knowledge: Knowledge, counts: GroupCounts) -> dict:
    """θ_C and θ_S components of −∇_u L at t = 0 (mean loss over n examples), per group and
    in total (Propositions 1-2, Lemma 2 with σ_c = σ_s = ½):

        θ_C·(−∇L) = (1/(4√2 n)) (n_C m_C + n_CS m_CS + n_CF m_CF)
        θ_S·(−∇L) = (1/(4√2 n)) (−n_C m_C − n_CS m_CS − n_CF m_CF + n_S m_S).
    """
    m = lemma4_margins(knowledge)
    margins = np.array([m["m_C"], m["m_CS"], m["m_CF"], m["m_S"], 0.0])
    counts = counts.array()
    n = counts.sum()
    per_c = counts * 0.25 * margins * THETA_C / n
    per_s = counts * 0.25 * margins * THETA_S / n
    out = {}
    for i in CONTEXT_INDICES:
        out[f"theta_c_{GROUPS[i]}"] = float(per_c[i])
        out[f"theta_s_{GROUPS[i]}"] = float(per_s[i])
    out["theta_c_S"] = float(per_c[S_SEEN] + per_c[S_UNSEEN])
    out["theta_s_S"] = float(per_s[S_SEEN] + per_s[S_UNSEEN])
    out["theta_c"] = float(per_c.sum())
    out["theta_s"] = float(per_s.sum())
    return out


def two_step_state(knowledge: Knowledge, counts: GroupCounts, lr: float) -> dict:
    """Two explicit GD steps from u = 0 (full K-dimensional value columns, no scan):
    α(1) = (η/n)h(0) = (η/4n)m, α(2) = α(1) + (η/n)h(Mα(1)). Returns α, gaps, the test gap
    A and the conflict reliance M_C at steps 0, 1, 2, and the θ_C/θ_S components of −∇L at
    step 1 (the sign Proposition 1 says flips for η > η*)."""
    cols = representative_columns(knowledge)
    v1, v2, answer = group_columns(cols)
    counts = counts.array()
    n = counts.sum()
    gram = group_gram(counts)
    test_row = TEST_INNER * counts
    alphas = [np.zeros(len(GROUPS))]
    for _ in range(2):
        alpha = alphas[-1]
        alphas.append(alpha + lr / n * drive(gram @ alpha, v1, v2, answer))
    alphas = np.array(alphas)
    gaps = alphas @ gram.T
    test_gap = alphas @ test_row
    h1 = drive(gaps[1], v1, v2, answer)
    return dict(
        alpha=alphas,
        gaps=gaps,
        A=test_gap,
        reliance=conflict_reliance(test_gap, cols),
        theta_c_step1=float(np.sum(counts * h1 * THETA_C) / n),
        theta_s_step1=float(np.sum(counts * h1 * THETA_S) / n),
    )


def theorem1_reliance(knowledge: Knowledge, counts: GroupCounts, lr: float) -> np.ndarray:
    """Theorem 1's three numbers: the conflict reliance M_C at steps 0, 1, 2 at rate η."""
    return two_step_state(knowledge, counts, lr)["reliance"]


def paper_quantities(knowledge: Knowledge = PAPER_KNOWLEDGE) -> dict:
    """Every t = 0 closed form for one knowledge configuration: Z0, λ and m per group
    (Lemma 4), k_C, k_CS (long-time tails), ρ*, the predicates of Lemmas 5-6 and of the
    paper's assumptions, and the conflict reliance at t = 0 (A = 0)."""
    k = knowledge
    out = dict(Z0=float(z0(k.n_subjects, k.n_answers, k.o_c, k.o_r)))
    out.update(lemma4_margins(knowledge))
    out.update(tail_coefficients(knowledge))
    out["rho_star"] = float(rho_star(out["m_C"], out["m_CS"]))
    out["lemma5"] = lemma5_holds(out["m_C"], out["m_CS"])
    out["lemma6"] = lemma6_holds(out["m_C"], out["m_CS"])
    out["assumptions"] = assumptions_hold(k.n_answers, k.delta_c, k.delta_m, k.o_c, k.o_r)
    cols = representative_columns(knowledge)
    out["initial_reliance"] = float(conflict_reliance(0.0, cols))
    return out
