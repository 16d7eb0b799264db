"""Several relations (tasks) with a tunable overlap γ: exact reduced dynamics (issue 5).

Layout (`theory.embeddings`): R relation tokens r_1..r_R are the last R token ids, with
φ(r_i)·φ(r_j) = γ for i ≠ j (Γ = (1 − γ)I + γ11ᵀ the relation Gram). Every training point
carries a relation j_i, its query: [c, s, r_j] (keys c, s; the relation key is masked) or
[s, r_j] (keys s, r_j). The prediction of point i is read at its query, with attention
logits φ(y)ᵀW_KQ φ(r_{j_i}).

Reduction. Lemma 1 holds per point with u replaced by W_KQ φ(r_{j_i}):
∇_{W_KQ} ℓ_i = −h_i(g_i) k_i φ(r_{j_i})ᵀ, so from W_KQ(0) = 0

    W_KQ(t) = Σ_i α_i(t) k_i φ(r_{j_i})ᵀ,   α_i ← α_i + (η/n) h_i(g_i),
    g_i = k_iᵀ W_KQ φ(r_{j_i}) = Σ_l α_l (k_i·k_l) Γ_{j_i j_l}:

the Gram of the reduced dynamics is the elementwise product of the key Gram and the
relation Gram (`relation_gram`); `reduced.general_trajectory` runs it unchanged. The key
Gram itself sees γ through the S points, whose key k = φ(s) − φ(r_j) contains the relation:
for distinct points, context·context 1, context·S −½ (as for R = 1), and S·S
φ(s)·φ(s') + φ(r_j)·φ(r_l) = ½ + Γ_jl (3/2 on one relation, ½ + γ across relations).
A held-out conflict point on relation j has gap A_j = Σ_l α_l (k_test·k_l) Γ_{j j_l}.

Group form (`relation_group_trajectory`): one α per (relation, group),

    g_{jG} = (2 − D_GG) α_{jG} + Σ_{l,H} n_{lH} D^{jl}_{GH} Γ_jl α_{lH},
    A_j    = Σ_{l,H} n_{lH} test_H Γ_jl α_{lH},

D^{jl} = `closed_forms.DISTINCT_INNER` with the S·S block replaced by ½ + Γ_jl. At γ = 0,
Γ = I and relation j's α evolve from relation j's points alone (the other relations enter
only through the mean-loss normalisation 1/n: relation j runs the single-relation recursion
at rate η n_j/n). The value columns do not depend on the relation; the vocabulary has R
relation rows (all o_r), so the 5-class softmax of `theory.reduced` carries multiplicity R
on the relation class and Z₀ = (K_A − 1)e^{o_c} + R e^{o_r} + K_S.

First step (exact, `first_step_gaps`): α_{lH}(1) = (η/4n) m_H for every relation, so

    A_j(1) = (η/4n)[c_j + γ Σ_{l≠j} c_l],   c_l = Σ_H n_{lH} test_H m_H,

with m_H the Lemma 4 margins of the R-relation vocabulary (`relation_margins`). The
transfer to relation j is exactly linear in γ at step 1: a relation-1 block of n_CF
counterfactual points adds γ η n_CF m_CF/(4n) to every other relation's test gap.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.special import expit, logsumexp  # noqa: E402

from .closed_forms import DISTINCT_INNER, GROUPS, SELF_INNER, TEST_INNER, THETA_C, THETA_S  # noqa: E402
from .embeddings import key_differences, paper_embeddings, relation_gram_matrix, relation_tokens  # noqa: E402
from .pretrained import logit, value_logit_table, z0  # noqa: E402

__all__ = [
    "relation_gram",
    "relation_points",
    "class_columns",
    "relation_margins",
    "relation_group_gram",
    "relation_group_trajectory",
    "first_step_gaps",
]

_C, _B = 2, 3  # class indices of the answer c and of the other fact b
_S_BLOCK = np.zeros((5, 5), dtype=bool)
_S_BLOCK[3:, 3:] = True


# ----------------------------------------------------------------------------- general form


def relation_gram(keys, relations, relation_overlap: float = 0.0, n_relations=None, other_keys=None, other_relations=None):
    """Gram of the reduced dynamics with per-point relations:

        Gram_il = (k_i·k_l)·Γ_{j_i j_l},   Γ = (1 − γ)I + γ11ᵀ (the relation Gram).

    keys: (d, n) key-difference vectors k_i (built with embeddings that contain the points'
    relations, e.g. `paper_embeddings(..., n_relations, relation_overlap)`); relations: (n,)
    relation ids 0..R−1 (each point's query). With other_keys (d, m) and other_relations
    (m,) it returns the (m, n) rows of held-out points instead (their test_inner).
    n_relations defaults to 1 + the largest id (only matters for the validity check)."""
    keys = np.asarray(keys, dtype=np.float64)
    relations = np.asarray(relations, dtype=int)
    rows_k = keys if other_keys is None else np.asarray(other_keys, dtype=np.float64)
    rows_r = relations if other_relations is None else np.asarray(other_relations, dtype=int)
    if n_relations is None:
        n_relations = int(max(relations.max(initial=0), rows_r.max(initial=0))) + 1
    gamma_mat = relation_gram_matrix(n_relations, relation_overlap)
    return (rows_k.T @ keys) * gamma_mat[np.ix_(rows_r, relations)]


def relation_points(
    n_subjects: int,
    n_answers: int,
    delta_c: float,
    delta_m: float,
    o_c: float,
    o_r: float,
    counts,
    relation_overlap: float = 0.0,
    delta_s: float = 0.9,
) -> dict:
    """An explicit point set for the general form with R = counts.shape[0] relations: fresh
    subject and answer tokens per point, the full K×K value table (K = K_S + K_A + R), key
    vectors from `paper_embeddings(..., R, γ)` and the Gram from `relation_gram`.

    counts: (R, 5) group counts per relation (GROUPS order). Points are ordered by relation,
    then group. Held-out points follow, two per relation: index 2j the conflict point on
    relation j (s memorised with a ≠ c), 2j + 1 the aligned point (fact = c).

    Returns gram, v1, v2, answers, group (index into GROUPS), relation, keys (n, 2) token
    ids, table, phi, test_inner (2R, n), test_keys (2R, 2), test_relation, test_v1,
    test_v2 (2R, K), test_context, test_fact."""
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
            raise ValueError("not enough answer tokens for fresh tokens per point") from None

    def subject_token() -> int:
        try:
            return next(next_subject)
        except StopIteration:
            raise ValueError("not enough subjects for fresh tokens per point") from None

    keys, answers, group, relation = [], [], [], []
    for j in range(n_rel):
        for gi, count in enumerate(counts[j]):
            for _ in range(count):
                s = subject_token()
                if GROUPS[gi] in ("C", "CS", "CF"):
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


def class_columns(n_subjects, n_answers, delta_c, delta_m, o_c, o_r, n_relations: int = 1, delta_s=0.9) -> dict:
    """Value columns compressed to the 5 output classes (subjects ×K_S, relations ×R, answer
    c, other fact b, remaining answers ×(K_A − 2)), broadcast over the numeric arguments
    (last axis = class). Keys: flat (an unmemorised subject, also every relation column),
    context (v(c)), mem_c / mem_b (a subject memorised at δ_M with fact c / b), seen (fact c
    at δ_S), logmult (log-multiplicity of each class)."""
    ks, ka, dc, dm, oc, orr, ds = np.broadcast_arrays(
        *[np.asarray(a, dtype=np.float64) for a in (n_subjects, n_answers, delta_c, delta_m, o_c, o_r, delta_s)]
    )
    if np.any(ka < 2) or np.any(ks < 1):
        raise ValueError("need at least one subject and two answers")
    log_z0 = np.log(z0(ks, ka, oc, orr, n_relations))
    zero = np.zeros_like(oc)

    def col(c_val, b_val):
        return np.stack([zero, orr, c_val, b_val, oc], axis=-1)

    with np.errstate(divide="ignore"):
        logmult = np.stack([np.log(ks), zero + np.log(n_relations), zero, zero, np.log(ka - 2)], axis=-1)
    return dict(
        flat=col(oc, oc),
        context=col(logit(dc) + log_z0, oc),
        mem_c=col(logit(dm) + log_z0, oc),
        mem_b=col(oc, logit(dm) + log_z0),
        seen=col(logit(ds) + log_z0, oc),
        logmult=logmult,
    )


def _pairs(cols: dict):
    """(x1, x2) of the 5 groups (…, 5, 5) and of the two test points (…, 2, 5)."""
    x1 = np.stack([cols["context"]] * 3 + [cols["seen"], cols["flat"]], axis=-2)
    x2 = np.stack([cols["flat"], cols["mem_c"], cols["mem_b"], cols["flat"], cols["flat"]], axis=-2)
    t1 = np.stack([cols["context"], cols["context"]], axis=-2)
    t2 = np.stack([cols["mem_b"], cols["mem_c"]], axis=-2)
    return x1, x2, t1, t2


def _drive_np(g, x1, x2, logmult):
    """h(g) on the 5-class columns (NumPy), the answer being class c."""
    s, sn = expit(g), expit(-g)
    z = s[..., None] * x1 + sn[..., None] * x2
    lse = logsumexp(z + logmult, axis=-1)
    p = np.exp(z - lse[..., None])
    d = x1 - x2
    return s * sn * np.sum(np.exp(logmult) * p * (d[..., _C : _C + 1] - d), axis=-1)


def relation_margins(n_subjects, n_answers, delta_c, delta_m, o_c, o_r, n_relations: int = 1, delta_s=0.9) -> np.ndarray:
    """Lemma 4 margins m_G = 4h_G(0) for the R-relation vocabulary, shape (…, 5) in GROUPS
    order (m_S_unseen = 0). For R = 1 these are `closed_forms.lemma4_margins`."""
    cols = class_columns(n_subjects, n_answers, delta_c, delta_m, o_c, o_r, n_relations, delta_s)
    x1, x2, _, _ = _pairs(cols)
    return 4.0 * _drive_np(np.zeros(x1.shape[:-1]), x1, x2, cols["logmult"][..., None, :])


def relation_group_gram(counts, relation_overlap: float = 0.0):
    """(M, T): M (R·5, R·5) with g = Mα for α flattened relation-major ((j, G) ↦ 5j + G), and
    T (R, R·5) with A = Tα (conflict test point on each relation). Counts (R, 5)."""
    counts = np.asarray(counts, dtype=np.float64)
    n_rel = counts.shape[0]
    gam = relation_gram_matrix(n_rel, relation_overlap)
    # D^{jl}_{GH}: distinct-point key inner products; the S·S block is ½ + Γ_jl.
    d = np.where(_S_BLOCK[None, None], 0.5 + gam[:, :, None, None], DISTINCT_INNER[None, None])
    blocks = d * gam[:, :, None, None] * counts[None, :, None, :]  # (j, l, G, H)
    m = blocks.transpose(0, 2, 1, 3).reshape(5 * n_rel, 5 * n_rel)
    m = m + np.kron(np.eye(n_rel), np.diag(SELF_INNER - np.diag(DISTINCT_INNER)))
    t = (gam[:, :, None] * (TEST_INNER * counts)[None]).reshape(n_rel, 5 * n_rel)
    return m, t


def _params(knowledge, counts, n_relations, relation_overlap, delta_s, lr):
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim < 2 or counts.shape[-1] != len(GROUPS):
        raise ValueError("counts must have shape (..., n_relations, 5)")
    n_rel = counts.shape[-2]
    if n_relations is not None and int(n_relations) != n_rel:
        raise ValueError(f"n_relations = {n_relations} but counts has {n_rel} rows")
    if np.any(counts < 0):
        raise ValueError("counts must be non-negative")
    scalars = [np.asarray(a, dtype=np.float64) for a in (*knowledge, relation_overlap, delta_s, lr)]
    shape = np.broadcast_shapes(counts.shape[:-2], *[a.shape for a in scalars])
    scalars = [np.broadcast_to(a, shape).reshape(-1) for a in scalars]
    counts = np.broadcast_to(counts, shape + counts.shape[-2:]).reshape((-1, n_rel, 5))
    ks, ka, dc, dm, oc, orr, gam, ds, lr = scalars
    if np.any(gam < 0) or np.any(gam >= 1):
        raise ValueError("relation_overlap must lie in [0, 1)")
    n = counts.sum(axis=(-2, -1))
    if np.any(n <= 0):
        raise ValueError("need at least one training point")
    cols = class_columns(ks, ka, dc, dm, oc, orr, n_rel, ds)
    x1, x2, t1, t2 = _pairs(cols)
    mt = [relation_group_gram(c, g) for c, g in zip(counts, gam)]
    params = dict(
        x1=x1,
        x2=x2,
        t1=t1,
        t2=t2,
        logmult=cols["logmult"],
        gram=np.stack([m for m, _ in mt]),
        test=np.stack([t for _, t in mt]),
        step=lr / n,
    )
    return shape, params, counts, n, lr, gam


def _metrics(alpha, P):
    n_rel = P["test"].shape[0]
    gaps = (P["gram"] @ alpha).reshape(n_rel, 5)
    a_gap = P["test"] @ alpha
    lm = P["logmult"]
    s, sn = jax.nn.sigmoid(gaps), jax.nn.sigmoid(-gaps)
    z = s[..., None] * P["x1"] + sn[..., None] * P["x2"]  # (R, 5, 5)
    lse = jax.scipy.special.logsumexp(z + lm, axis=-1)
    p = jnp.exp(z - lse[..., None])
    d = P["x1"] - P["x2"]
    h = s * sn * jnp.sum(jnp.exp(lm) * p * (d[:, _C : _C + 1] - d), axis=-1)
    zt = jax.nn.sigmoid(a_gap)[:, None, None] * P["t1"] + jax.nn.sigmoid(-a_gap)[:, None, None] * P["t2"]
    return dict(
        alpha=alpha.reshape(n_rel, 5),
        gaps=gaps,
        A=a_gap,
        drive=h,
        loss=lse - z[..., _C],
        reliance=jax.nn.sigmoid(zt[:, 0, _C] - zt[:, 0, _B]),
        aligned_accuracy=jnp.exp(zt[:, 1, _C] - jax.scipy.special.logsumexp(zt[:, 1] + lm, axis=-1)),
    )


def _scan_one(P, steps: int):
    def body(alpha, _):
        m = _metrics(alpha, P)
        return alpha + P["step"] * m["drive"].reshape(-1), m

    _, out = jax.lax.scan(body, jnp.zeros(P["gram"].shape[-1]), None, length=steps + 1)
    return out


_scan_batch = jax.jit(jax.vmap(_scan_one, in_axes=(0, None)), static_argnums=1)


def relation_group_trajectory(
    n_subjects,
    n_answers,
    delta_c,
    delta_m,
    o_c,
    o_r,
    counts,
    n_relations=None,
    relation_overlap=0.0,
    delta_s=0.9,
    lr=1.0,
    steps: int = 300,
) -> dict:
    """Discrete GD (rate η = lr, mean loss over all n = Σ counts points) on W_KQ with W_V
    frozen, R relations with overlap γ, one α per (relation, group).

    counts: (..., R, 5) group counts per relation (GROUPS order); n_relations, if given,
    must equal R (relations with no points still count in the vocabulary). The numeric
    arguments (knowledge, relation_overlap, delta_s, lr) broadcast with counts' leading axes.
    Every output has shape batch + (R, steps + 1); axis −2 is the relation j:
      step, time (= η·step),
      A (gap of a conflict test point on relation j), reliance (its M_C),
      attention_context (σ(A)), aligned_accuracy (p_c on an aligned point on relation j),
      alpha_G, gap_G, loss_G for G in GROUPS (the group-G points of relation j; NaN where
      that relation has none), attention_context_{C,CS,CF}, attention_subject_{S_seen,
      S_unseen}, loss_S (mean over relation j's S points),
      u_theta_c, u_theta_s: θ_C·W_KQ φ(r_j), θ_S·W_KQ φ(r_j),
      neg_grad_theta_c_G, neg_grad_theta_s_G (G in C, CS, CF, S) and their totals
      neg_grad_theta_c, neg_grad_theta_s: writing −∇_{W_KQ}L = Σ_j w_j φ(r_j)ᵀ with
      w_j = (1/n) Σ_{i on relation j} h_i k_i, these are θ_C·w_j and θ_S·w_j split by group.
      Then u_theta_c[j](t+1) − u_theta_c[j](t) = η Σ_l Γ_jl neg_grad_theta_c[l](t).
    For R = 1 this is `reduced.group_trajectory` (to rounding)."""
    knowledge = (n_subjects, n_answers, delta_c, delta_m, o_c, o_r)
    shape, P, counts, n, lr_flat, _ = _params(knowledge, counts, n_relations, relation_overlap, delta_s, lr)
    n_rel = counts.shape[-2]
    raw = _scan_batch(jax.tree_util.tree_map(jnp.asarray, P), int(steps))
    raw = {k: np.moveaxis(np.asarray(v), 1, -1) for k, v in raw.items()}
    # raw: A, reliance, aligned_accuracy (B, R, T); alpha, gaps, drive, loss (B, R, 5, T)
    steps_arr = np.arange(steps + 1)
    cnt = counts[..., None]  # (B, R, 5, 1)
    present = cnt > 0
    nan = np.nan
    out = dict(
        A=raw["A"],
        reliance=raw["reliance"],
        attention_context=expit(raw["A"]),
        aligned_accuracy=raw["aligned_accuracy"],
    )
    alpha, gaps, h, loss = raw["alpha"], raw["gaps"], raw["drive"], raw["loss"]
    for gi, name in enumerate(GROUPS):
        pr = present[:, :, gi]
        out[f"alpha_{name}"] = np.where(pr, alpha[:, :, gi], nan)
        out[f"gap_{name}"] = np.where(pr, gaps[:, :, gi], nan)
        out[f"loss_{name}"] = np.where(pr, loss[:, :, gi], nan)
        key = "attention_context_" if gi < 3 else "attention_subject_"
        out[key + name] = np.where(pr, expit(gaps[:, :, gi]), nan)
    n_s = cnt[:, :, 3] + cnt[:, :, 4]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["loss_S"] = np.where(n_s > 0, (cnt[:, :, 3] * loss[:, :, 3] + cnt[:, :, 4] * loss[:, :, 4]) / n_s, nan)
    # u_j = W_KQ φ(r_j) = Σ_{l,H} n_lH α_lH k_H Γ_lj
    gmat = np.stack([relation_gram_matrix(n_rel, g) for g in np.broadcast_to(relation_overlap, shape).reshape(-1)])
    for theta, name in ((THETA_C, "c"), (THETA_S, "s")):
        w = np.sum(cnt * alpha * theta[None, None, :, None], axis=2)  # (B, R, T): Σ_H n_lH α_lH θ·k_H
        out[f"u_theta_{name}"] = np.einsum("bjl,blt->bjt", gmat, w)
        grad = cnt * h * theta[None, None, :, None] / n[:, None, None, None]
        for gi, gname in enumerate(("C", "CS", "CF")):
            out[f"neg_grad_theta_{name}_{gname}"] = np.where(present[:, :, gi], grad[:, :, gi], nan)
        out[f"neg_grad_theta_{name}_S"] = np.where(n_s > 0, grad[:, :, 3] + grad[:, :, 4], nan)
        out[f"neg_grad_theta_{name}"] = grad.sum(axis=2)
    out["time"] = lr_flat[:, None, None] * steps_arr[None, None, :] * np.ones((1, n_rel, 1))
    out["step"] = np.broadcast_to(steps_arr, out["reliance"].shape).copy()
    batch_shape = tuple(shape)
    return {k: np.asarray(v).reshape(batch_shape + (n_rel, steps + 1)) for k, v in out.items()}


def first_step_gaps(
    n_subjects,
    n_answers,
    delta_c,
    delta_m,
    o_c,
    o_r,
    counts,
    relation_overlap: float = 0.0,
    delta_s: float = 0.9,
    lr: float = 1.0,
) -> dict:
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
    m = relation_margins(n_subjects, n_answers, delta_c, delta_m, o_c, o_r, n_rel, delta_s)
    n = counts.sum()
    c = counts @ (TEST_INNER * m)
    own = lr / (4.0 * n) * c
    transfer = gamma * lr / (4.0 * n) * (c.sum() - c)
    cols = class_columns(n_subjects, n_answers, delta_c, delta_m, o_c, o_r, n_rel, delta_s)

    def reliance(a):
        z = expit(a)[:, None] * cols["context"] + expit(-a)[:, None] * cols["mem_b"]
        return expit(z[:, _C] - z[:, _B])

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
