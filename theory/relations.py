"""Several relations (tasks) with a tunable overlap γ: exact reduced dynamics (issue 5).

Layout (`cpi.theory.embeddings`): R relation tokens r_1..r_R are the last R token ids, with
φ(r_i)·φ(r_j) = γ for i ≠ j (Γ = (1 − γ)I + γ11ᵀ the relation Gram). Every training example
carries a relation j_i, its query: [c, s, r_j] (keys c, s; the relation key is masked) or
[s, r_j] (keys s, r_j). The prediction of example i is read at its query, with attention
logits φ(y)ᵀW_KQ φ(r_{j_i}).

Reduction. Lemma 1 holds per example with u replaced by W_KQ φ(r_{j_i}):
∇_{W_KQ} ℓ_i = −h_i(g_i) k_i φ(r_{j_i})ᵀ, so from W_KQ(0) = 0

    W_KQ(t) = Σ_i α_i(t) k_i φ(r_{j_i})ᵀ,   α_i ← α_i + (η/n) h_i(g_i),
    g_i = k_iᵀ W_KQ φ(r_{j_i}) = Σ_l α_l (k_i·k_l) Γ_{j_i j_l}:

the Gram of the reduced dynamics is the elementwise product of the key Gram and the
relation Gram (`relation_gram`); `reduced.general_trajectory` runs it unchanged. The key
Gram itself sees γ through the S examples, whose key k = φ(s) − φ(r_j) contains the relation:
for distinct examples, context·context 1, context·S −½ (as for R = 1), and S·S
φ(s)·φ(s') + φ(r_j)·φ(r_l) = ½ + Γ_jl (3/2 on one relation, ½ + γ across relations).
A held-out conflict example on relation j has gap A_j = Σ_l α_l (k_test·k_l) Γ_{j j_l}.

Group form (`relation_group_trajectory`): one α per (relation, group),

    g_{jG} = (2 − D_GG) α_{jG} + Σ_{l,H} n_{lH} D^{jl}_{GH} Γ_jl α_{lH},
    A_j    = Σ_{l,H} n_{lH} test_H Γ_jl α_{lH},

D^{jl} = `closed_forms.DISTINCT_INNER` with the S·S block replaced by ½ + Γ_jl. At γ = 0,
Γ = I and relation j's α evolve from relation j's examples alone (the other relations enter
only through the mean-loss normalisation 1/n: relation j runs the single-relation recursion
at rate η n_j/n). The value columns do not depend on the relation; the vocabulary has R
relation rows (all o_r), so the 5-class softmax of `cpi.theory.reduced` carries multiplicity R
on the relation class and Z₀ = (K_A − 1)e^{o_c} + R e^{o_r} + K_S.

First step (exact, `first_step_gaps`): α_{lH}(1) = (η/4n) m_H for every relation, so

    A_j(1) = (η/4n)[c_j + γ Σ_{l≠j} c_l],   c_l = Σ_H n_{lH} test_H m_H,

with m_H the Lemma 4 margins of the R-relation vocabulary (`relation_margins`). The
transfer to relation j is exactly linear in γ at step 1: a relation-1 block of n_CF
counterfactual examples adds γ η n_CF m_CF/(4n) to every other relation's test gap.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .closed_forms import TEST_INNER
from .embeddings import key_differences, paper_embeddings, relation_gram_matrix, relation_tokens
from .groups import GROUPS, has_context
from .integrate import descend, float64
from .params import Knowledge
from .pretrained import value_logit_table
from .reduced_outputs import class_outputs
from .reduced_system import (
    ANSWER_CLASS,
    MOVING_CLASSES,
    class_columns,
    group_key_columns,
    held_out_readout,
    moving_classes,
    relation_group_gram,
    relation_system,
    unit_response,
)

__all__ = [
    "relation_gram",
    "relation_examples",
    "class_columns",
    "relation_margins",
    "relation_group_gram",
    "relation_group_trajectory",
    "first_step_gaps",
]


# ----------------------------------------------------------------------------- general form


def relation_gram(keys, relations, relation_overlap: float = 0.0, n_relations=None, other_keys=None,
                  other_relations=None):
    """Gram of the reduced dynamics with per-example relations:

        Gram_il = (k_i·k_l)·Γ_{j_i j_l},   Γ = (1 − γ)I + γ11ᵀ (the relation Gram).

    keys: (d, n) key-difference vectors k_i (built with embeddings that contain the examples'
    relations, e.g. `paper_embeddings(..., n_relations, relation_overlap)`); relations: (n,)
    relation ids 0..R−1 (each example's query). With other_keys (d, m) and other_relations
    (m,) it returns the (m, n) rows of held-out examples instead (their test_inner).
    n_relations defaults to 1 + the largest id (only matters for the validity check)."""
    keys = np.asarray(keys, dtype=np.float64)
    relations = np.asarray(relations, dtype=int)
    rows_k = keys if other_keys is None else np.asarray(other_keys, dtype=np.float64)
    rows_r = relations if other_relations is None else np.asarray(other_relations, dtype=int)
    if n_relations is None:
        n_relations = int(max(relations.max(initial=0), rows_r.max(initial=0))) + 1
    gamma_mat = relation_gram_matrix(n_relations, relation_overlap)
    return (rows_k.T @ keys) * gamma_mat[np.ix_(rows_r, relations)]


def relation_examples(knowledge: Knowledge, counts, relation_overlap: float = 0.0) -> dict:
    """An explicit example set for the general form with R = counts.shape[0] relations: fresh
    subject and answer tokens per example, the full K×K value table (K = K_S + K_A + R), key
    vectors from `paper_embeddings(..., R, γ)` and the Gram from `relation_gram`.

    counts: (R, 5) group counts per relation (GROUPS order). Examples are ordered by relation,
    then group. Held-out examples follow, two per relation: index 2j the conflict example on
    relation j (s memorised with a ≠ c), 2j + 1 the aligned example (fact = c).

    Returns gram, v1, v2, answers, group (index into GROUPS), relation, keys (n, 2) token
    ids, table, phi, test_inner (2R, n), test_keys (2R, 2), test_relation, test_v1,
    test_v2 (2R, K), test_context, test_fact."""
    n_subjects, n_answers, delta_c, delta_m, o_c, o_r, delta_s = knowledge
    counts = np.asarray(counts, dtype=int)
    if counts.ndim != 2 or counts.shape[1] != len(GROUPS):
        raise ValueError("counts must have shape (n_relations, 5)")
    n_rel = counts.shape[0]
    n = int(counts.sum())
    rel_tok = relation_tokens(n_subjects, n_answers, n_rel)
    fact = -np.ones(n_subjects, dtype=int)
    strength = np.full(n_subjects, 0.5)
    next_answer = iter(range(n_answers))
    next_subject = iter(range(n_subjects))

    def answer_token() -> int:
        try:
            return n_subjects + next(next_answer)
        except StopIteration:
            raise ValueError("not enough answer tokens for fresh tokens per example") from None

    def subject_token() -> int:
        try:
            return next(next_subject)
        except StopIteration:
            raise ValueError("not enough subjects for fresh tokens per example") from None

    keys, answers, group, relation = [], [], [], []
    for j in range(n_rel):
        for gi, count in enumerate(counts[j]):
            for _ in range(count):
                s = subject_token()
                if has_context(GROUPS[gi]):
                    c = answer_token()
                    keys.append((c, s))
                    answers.append(c)
                    if GROUPS[gi] == "CS":
                        fact[s], strength[s] = c - n_subjects, delta_m
                    elif GROUPS[gi] == "CF":
                        fact[s], strength[s] = answer_token() - n_subjects, delta_m
                else:
                    a = answer_token()
                    keys.append((s, rel_tok[j]))
                    answers.append(a)
                    if GROUPS[gi] == "S_seen":
                        fact[s], strength[s] = a - n_subjects, delta_s
                group.append(gi)
                relation.append(j)
    test_context, test_fact, test_keys, test_relation = [], [], [], []
    for j in range(n_rel):
        for aligned in (False, True):
            s = subject_token()
            c = answer_token()
            a = c if aligned else answer_token()
            fact[s], strength[s] = a - n_subjects, delta_m
            test_keys.append((c, s))
            test_context.append(c)
            test_fact.append(a)
            test_relation.append(j)
    table = value_logit_table(n_subjects, n_answers, o_c, o_r, delta_c, fact, strength, n_relations=n_rel)
    keys = np.array(keys, dtype=int).reshape(n, 2)
    test_keys = np.array(test_keys, dtype=int)
    relation = np.array(relation, dtype=int)
    test_relation = np.array(test_relation, dtype=int)
    phi = paper_embeddings(n_subjects, n_answers, n_rel, relation_overlap)
    kd = key_differences(phi, keys[:, 0], keys[:, 1])
    kt = key_differences(phi, test_keys[:, 0], test_keys[:, 1])
    return dict(
        gram=relation_gram(kd, relation, relation_overlap, n_rel),
        v1=table[:, keys[:, 0]].T,
        v2=table[:, keys[:, 1]].T,
        answers=np.array(answers, dtype=int),
        group=np.array(group, dtype=int),
        relation=relation,
        keys=keys,
        table=table,
        phi=phi,
        test_inner=relation_gram(kd, relation, relation_overlap, n_rel, kt, test_relation),
        test_keys=test_keys,
        test_relation=test_relation,
        test_v1=table[:, test_keys[:, 0]].T,
        test_v2=table[:, test_keys[:, 1]].T,
        test_context=np.array(test_context),
        test_fact=np.array(test_fact),
    )


# ------------------------------------------------------------------------------- group form
# The class-form system (`class_columns`, `relation_group_gram`, `relation_system`) is built in
# `cpi.theory.reduced_system`; the names stay importable from here.


def relation_margins(knowledge: Knowledge, n_relations: int = 1) -> np.ndarray:
    """Lemma 4 margins m_G = 4h_G(0) for the R-relation vocabulary, shape (…, 5) in GROUPS
    order (m_S_unseen = 0). For R = 1 these are `closed_forms.lemma4_margins`."""
    cols = moving_classes(class_columns(knowledge, n_relations))
    x1, x2, _, _ = (np.moveaxis(x, (-2, -1), (0, 1)) for x in group_key_columns(cols))  # (5, C, …)
    answer = np.eye(MOVING_CLASSES)[ANSWER_CLASS].reshape((1, MOVING_CLASSES) + (1,) * (x1.ndim - 2))
    with float64():
        h, _ = unit_response(jnp.zeros(x1.shape[:1] + x1.shape[2:]), x1, x2, cols["still"][None], answer)
        return 4.0 * np.moveaxis(np.asarray(h), 0, -1)


def relation_group_trajectory(
    knowledge: Knowledge,
    counts,
    n_relations=None,
    relation_overlap=0.0,
    lr=1.0,
    steps: int = 300,
) -> dict:
    """Discrete GD (rate η = lr, mean loss over all n = Σ counts examples) on W_KQ with W_V
    frozen, R relations with overlap γ, one α per (relation, group).

    counts: (..., R, 5) group counts per relation (GROUPS order); n_relations, if given,
    must equal R (relations with no examples still count in the vocabulary). The fields of
    `knowledge`, relation_overlap and lr broadcast with counts' leading axes.
    Every output has shape lead + (R, steps + 1), lead the broadcast shape of the arguments'
    leading axes (a stack); axis −2 is the relation j. Keys: step,
    and those of `cpi.theory.reduced_outputs` (time = η·step, A, reliance, aligned_accuracy,
    alpha_G, gap_G, loss_G, attention_*, loss_S, u_theta_c/s, neg_grad_theta_c/s[_G]).
    For R = 1 this is `reduced.group_trajectory` (the same computation)."""
    system, layout = relation_system(knowledge, counts, n_relations, relation_overlap, lr)
    recorded, _ = descend(system, int(steps))
    steps_arr = np.arange(steps + 1)
    out = class_outputs(recorded, layout, layout.lr[:, None] * steps_arr)
    out["step"] = np.broadcast_to(steps_arr, out["reliance"].shape).copy()
    n_rel = layout.counts.shape[1]
    return {k: np.asarray(v).reshape(layout.shape + (n_rel, steps + 1)) for k, v in out.items()}


def first_step_gaps(knowledge: Knowledge, counts, relation_overlap: float = 0.0, lr: float = 1.0) -> dict:
    """The conflict test gap on each relation after one GD step, in closed form:

        A_j(1) = own_j + transfer_j,   own_j = (η/4n) c_j,
        transfer_j = γ (η/4n) Σ_{l≠j} c_l,   c_l = Σ_H n_lH test_H m_H,

    m = `relation_margins` (R-relation vocabulary). Also the flow's initial slope
    dA_j/dt(0) = A_j(1)/η, and the conflict reliance M_C after the step with and without
    the transfer. Scalar knowledge, counts (R, 5). Returns own, transfer, A1, slope,
    reliance1, reliance1_without_transfer (each (R,)), margins (5,)."""
    counts = np.asarray(counts, dtype=np.float64)
    n_rel = counts.shape[0]
    gamma = relation_overlap if n_rel > 1 else 0.0
    m = relation_margins(knowledge, n_rel)
    n = counts.sum()
    c = counts @ (TEST_INNER * m)
    own = lr / (4.0 * n) * c
    transfer = gamma * lr / (4.0 * n) * (c.sum() - c)
    cols = moving_classes(class_columns(knowledge, n_rel))
    _, _, t1, t2 = group_key_columns(cols)

    def reliance(a):
        with float64():
            return np.asarray(held_out_readout(jnp.asarray(a), t1[None], t2[None], cols["still"])[0])

    a1 = own + transfer
    return dict(
        own=own,
        transfer=transfer,
        A1=a1,
        slope=a1 / lr,
        reliance1=reliance(a1),
        reliance1_without_transfer=reliance(own),
        margins=m,
    )
