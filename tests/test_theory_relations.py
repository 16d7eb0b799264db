"""Several relations (tasks) with overlap γ: layout, the combined Gram, the relation group
form against the general form and the explicit d×d model, independence at γ = 0 and the
first-step transfer at γ > 0."""

import jax.numpy as jnp
import numpy as np
import pytest

from tests.explicit_descent import w_kq_trajectory

from tests.defaults import KNOWLEDGE, GroupCounts, Knowledge
from cpi.theory.closed_forms import lemma4_margins, margin, sigmoid
from cpi.theory.groups import GROUPS
from cpi.theory.embeddings import (
    embedding_dim,
    key_differences,
    paper_embeddings,
    relation_direction,
    relation_gram_matrix,
    relation_tokens,
    theta_directions,
    token_gram,
)
from cpi.theory.pretrained import logit, value_logit_table, z0
from cpi.theory.propositions import value_matrix
from cpi.theory.reduced import general_trajectory, group_trajectory
from cpi.theory.relations import (
    first_step_gaps,
    relation_gram,
    relation_group_trajectory,
    relation_margins,
    relation_examples,
)


BIG = KNOWLEDGE.replace(n_subjects=60, n_answers=120)  # room for fresh tokens on three relations


# --------------------------------------------------------------------------- R = 1 unchanged


def _paper_arrays_r1(k_s, k_a, o_c, o_r, delta_c, fact, strength):
    """The single-relation arrays as the paper defines them, written out here."""
    d, k = k_s + k_a + 3, k_s + k_a + 1
    phi = np.zeros((d, k))
    h = np.sqrt(0.5)
    phi[np.arange(k_s), np.arange(k_s)] = h
    phi[k_s + k_a, :k_s] = h
    phi[k_s + np.arange(k_a), k_s + np.arange(k_a)] = h
    phi[k_s + k_a + 1, k_s : k_s + k_a] = h
    phi[d - 1, k - 1] = 1.0
    zz = (k_a - 1) * np.exp(o_c) + np.exp(o_r) + k_s
    table = np.zeros((k, k))
    table[k_s : k_s + k_a] = o_c
    table[k - 1] = o_r
    table[k_s + np.arange(k_a), k_s + np.arange(k_a)] = logit(delta_c) + np.log(zz)
    mem = np.flatnonzero(fact >= 0)
    table[k_s + fact[mem], mem] = logit(strength[mem]) + np.log(zz)
    return phi, zz, table


def test_single_relation_arrays_unchanged_bitwise():
    k_s, k_a = 12, 20
    rng = np.random.default_rng(0)
    fact = np.where(rng.random(k_s) < 0.5, rng.integers(0, k_a, k_s), -1)
    strength = rng.uniform(0.3, 0.95, k_s)
    phi, zz, table = _paper_arrays_r1(k_s, k_a, 1.0, 0.5, 0.2, fact, strength)
    for new_phi in (paper_embeddings(k_s, k_a), paper_embeddings(k_s, k_a, 1, 0.0), paper_embeddings(k_s, k_a, 1, 0.4)):
        assert np.array_equal(new_phi, phi)
    assert embedding_dim(k_s, k_a) == k_s + k_a + 3
    gram = np.zeros((k_s + k_a + 1,) * 2)
    gram[:k_s, :k_s] = 0.5 * (1.0 + np.eye(k_s))
    gram[k_s:-1, k_s:-1] = 0.5 * (1.0 + np.eye(k_a))
    gram[-1, -1] = 1.0
    assert np.array_equal(token_gram(k_s, k_a), gram)
    np.testing.assert_allclose(phi.T @ phi, gram, atol=1e-15)
    assert z0(k_s, k_a, 1.0, 0.5) == zz
    o_c = rng.uniform(0.5, 2.0, 7)
    o_r = rng.uniform(0.1, 0.5, 7)
    assert np.array_equal(z0(k_s, k_a, o_c, o_r), (k_a - 1) * np.exp(o_c) + np.exp(o_r) + k_s)
    assert np.array_equal(value_logit_table(k_s, k_a, 1.0, 0.5, 0.2, fact, strength), table)
    theta_c, theta_s = theta_directions(k_s, k_a)
    assert np.array_equal(theta_c, np.eye(k_s + k_a + 3)[k_s + k_a + 1])
    assert np.array_equal(theta_s, np.eye(k_s + k_a + 3)[k_s + k_a])


def test_single_relation_group_and_points_reduce_to_paper_forms():
    counts = (5, 3, 2, 4, 1)
    rel = relation_examples(KNOWLEDGE, np.array([counts]))
    # The paper's key-difference inner products, written out: context points 1 apart and 2
    # with themselves, subject-only examples 3/2 apart and 2 with themselves, −1/2 across.
    is_s = np.isin(rel["group"], [3, 4])
    expected = np.where(is_s[:, None] & is_s[None, :], 1.5, np.where(is_s[:, None] ^ is_s[None, :], -0.5, 1.0))
    np.fill_diagonal(expected, 2.0)
    np.testing.assert_allclose(rel["gram"], expected, atol=1e-12)
    np.testing.assert_allclose(rel["test_inner"], np.where(is_s, -0.5, 1.0)[None, :].repeat(2, 0), atol=1e-12)
    a = group_trajectory(KNOWLEDGE, GroupCounts(*counts), lr=1.3, steps=80)
    b = relation_group_trajectory(KNOWLEDGE, np.array([counts]), lr=1.3, steps=80)
    for key, val in a.items():
        np.testing.assert_array_equal(b[key][0], val, err_msg=key)  # one computation: no rounding apart


# ---------------------------------------------------------------------------- layout and Gram


@pytest.mark.parametrize("n_rel,gamma", [(2, 0.0), (2, 0.3), (3, 0.3), (4, 0.7)])
def test_relation_embeddings_and_gram(n_rel, gamma):
    k_s, k_a = 6, 9
    phi = paper_embeddings(k_s, k_a, n_rel, gamma)
    assert phi.shape == (k_s + k_a + n_rel + 3, k_s + k_a + n_rel) == (embedding_dim(k_s, k_a, n_rel), phi.shape[1])
    np.testing.assert_allclose(phi.T @ phi, token_gram(k_s, k_a, n_rel, gamma), atol=1e-15)
    q = phi[:, relation_tokens(k_s, k_a, n_rel)]
    np.testing.assert_allclose(q.T @ q, (1 - gamma) * np.eye(n_rel) + gamma, atol=1e-15)
    np.testing.assert_allclose(q.T @ relation_direction(k_s, k_a, n_rel), np.sqrt(gamma), atol=1e-15)
    theta_c, theta_s = theta_directions(k_s, k_a, n_rel)
    assert np.all(q.T @ theta_c == 0) and np.all(q.T @ theta_s == 0)
    # relation_gram = (key Gram) ∘ (query Gram), the query Gram taken from the vectors
    rng = np.random.default_rng(1)
    first, second = rng.integers(0, phi.shape[1], 9), rng.integers(0, phi.shape[1], 9)
    rel = rng.integers(0, n_rel, 9)
    kd = key_differences(phi, first, second)
    qv = q[:, rel]
    np.testing.assert_allclose(relation_gram(kd, rel, gamma, n_rel), (kd.T @ kd) * (qv.T @ qv), atol=1e-14)
    rows = relation_gram(kd, rel, gamma, n_rel, kd[:, :4], rel[:4])
    np.testing.assert_allclose(rows, ((kd.T @ kd) * (qv.T @ qv))[:4], atol=1e-14)
    assert np.array_equal(relation_gram_matrix(n_rel, gamma), (1 - gamma) * np.eye(n_rel) + gamma)


# ----------------------------------------------------------------- general form == group form


def _reliance(pts, test_gaps, which):
    a = test_gaps[:, which]
    z = sigmoid(a)[:, None] * pts["test_v1"][which] + sigmoid(-a)[:, None] * pts["test_v2"][which]
    zc = z[:, pts["test_context"][which]]
    if which % 2 == 0:
        return sigmoid(zc - z[:, pts["test_fact"][which]])
    return np.exp(zc - np.log(np.exp(z).sum(-1)))


RELATION_MIXTURES = [
    [[5, 3, 2, 4, 1], [2, 4, 0, 3, 2]],
    [[4, 2, 1, 2, 1], [0, 3, 3, 2, 0], [3, 1, 0, 0, 4]],
]


@pytest.mark.parametrize("gamma", [0.0, 0.3])
@pytest.mark.parametrize("counts", RELATION_MIXTURES)
def test_general_form_equals_relation_group_form(counts, gamma):
    """One α per point (Gram from explicit embedding vectors ∘ relation Gram, full K×K
    table) == one α per (relation, group), to 1e-12, on every relation."""
    counts = np.array(counts)
    lr, steps = 1.7, 150
    pts = relation_examples(BIG.replace(delta_s=0.85), counts, gamma)
    gen = general_trajectory(pts["gram"], pts["v1"], pts["v2"], pts["answers"], lr, steps, pts["test_inner"])
    grp = relation_group_trajectory(BIG.replace(delta_s=0.85), counts, len(counts), gamma, lr=lr, steps=steps)
    assert grp["reliance"].shape == (len(counts), steps + 1)
    for j in range(len(counts)):
        np.testing.assert_allclose(gen["test_gaps"][:, 2 * j], grp["A"][j], atol=1e-12)
        np.testing.assert_allclose(_reliance(pts, gen["test_gaps"], 2 * j), grp["reliance"][j], atol=1e-12)
        np.testing.assert_allclose(_reliance(pts, gen["test_gaps"], 2 * j + 1), grp["aligned_accuracy"][j], atol=1e-12)
        for gi, name in enumerate(GROUPS):
            idx = np.flatnonzero((pts["group"] == gi) & (pts["relation"] == j))
            if idx.size == 0:
                assert np.all(np.isnan(grp[f"gap_{name}"][j]))
                continue
            np.testing.assert_allclose(gen["gaps"][:, idx], grp[f"gap_{name}"][j][:, None] * np.ones(idx.size),
                                       atol=1e-12)
            np.testing.assert_allclose(gen["loss"][:, idx], grp[f"loss_{name}"][j][:, None] * np.ones(idx.size),
                                       atol=1e-12)
    # the R-relation margins equal Lemma 4's m computed on the full table
    m_full = margin(pts["v1"], pts["v2"], pts["answers"])
    np.testing.assert_allclose(m_full, relation_margins(BIG.replace(delta_s=0.85), len(counts))[pts["group"]],
                               atol=1e-12)


@pytest.mark.usefixtures("float64")  # its own JAX reference computation
def test_relation_group_form_equals_explicit_d_by_d_model():
    """Full-batch GD on the d×d W_KQ (JAX autodiff of the mean CE; every point queried by its
    own relation, relation key masked on context points), R = 2, γ = 0.3."""
    counts = np.array([[3, 2, 2, 2, 1], [2, 3, 1, 2, 1]])
    gamma, lr, steps = 0.3, 2.0, 40
    k_s, k_a = 30, 50
    knowledge = (k_s, k_a, 0.2, 0.6, 1.0, 0.5)
    pts = relation_examples(Knowledge(*knowledge, delta_s=0.9), counts, gamma)
    phi_np = paper_embeddings(k_s, k_a, 2, gamma)
    phi = jnp.asarray(phi_np)
    w_v = jnp.asarray(value_matrix(pts["table"], phi_np))
    rt = relation_tokens(k_s, k_a, 2)
    queries = phi[:, rt[pts["relation"]]]
    ws = w_kq_trajectory(phi, w_v, pts["keys"], queries, pts["answers"], lr, steps)
    grp = relation_group_trajectory(Knowledge(*knowledge, delta_s=0.9), counts, 2, gamma, lr=lr, steps=steps)
    theta_c, theta_s = theta_directions(k_s, k_a, 2)
    for j in range(2):
        c, s = (int(x) for x in pts["test_keys"][2 * j])
        a_full = np.asarray(jnp.einsum("tij,j,i->t", ws, phi[:, rt[j]], phi[:, c] - phi[:, s]))
        np.testing.assert_allclose(a_full, grp["A"][j], atol=1e-10)
        u = np.asarray(jnp.einsum("tij,j->ti", ws, phi[:, rt[j]]))
        np.testing.assert_allclose(u @ theta_c, grp["u_theta_c"][j], atol=1e-10)
        np.testing.assert_allclose(u @ theta_s, grp["u_theta_s"][j], atol=1e-10)
    assert abs(grp["A"][0, -1] - grp["A"][1, -1]) > 0.1  # the two relations really differ


# ------------------------------------------------------------------------- transfer between tasks

TASK = [10, 10, 0, 0, 0]  # relation 2: a C/CS mixture at ρ = ½


def test_relations_independent_at_zero_overlap():
    """γ = 0: relation 2's reliance does not depend on what relation 1's points are (n_1
    fixed), and equals relation 2 trained alone at rate η n_2/n (mean-loss normalisation)."""
    others = [[0, 0, 20, 0, 0], [20, 0, 0, 0, 0], [5, 5, 5, 3, 2], [0, 20, 0, 0, 0], [0, 0, 0, 20, 0]]
    out = relation_group_trajectory(KNOWLEDGE, np.array([[o, TASK] for o in others]), 2, 0.0, steps=300)
    assert out["reliance"].shape == (len(others), 2, 301)
    for i in range(1, len(others)):
        np.testing.assert_allclose(out["reliance"][i, 1], out["reliance"][0, 1], atol=1e-12, rtol=0)
    alone = relation_group_trajectory(KNOWLEDGE, np.array([[0] * 5, TASK]), 2, 0.0, lr=0.5, steps=300)
    np.testing.assert_allclose(alone["reliance"][1], out["reliance"][0, 1], atol=1e-12, rtol=0)


def test_overlap_transfers_counterfactual_points_and_first_step_formula():
    """γ > 0: CF examples on relation 1 raise relation 2's test gap; after one step by exactly
    γ η n_CF m_CF/(4n) (first_step_gaps), linear in γ; the trajectory agrees."""
    lr = 1.0
    for n_cf in (10, 20):
        counts = np.array([[0, 0, n_cf, 0, 0], TASK])
        n = counts.sum()
        m = relation_margins(KNOWLEDGE, 2)
        transfers = []
        for gamma in (0.0, 0.1, 0.3):
            traj = relation_group_trajectory(KNOWLEDGE, counts, 2, gamma, lr=lr, steps=300)
            first = first_step_gaps(KNOWLEDGE, counts, gamma, lr=lr)
            np.testing.assert_allclose(traj["A"][:, 1], first["A1"], atol=1e-14)
            np.testing.assert_allclose(traj["reliance"][:, 1], first["reliance1"], atol=1e-14)
            assert first["transfer"][1] == pytest.approx(gamma * lr * n_cf * m[2] / (4 * n), rel=1e-13, abs=1e-16)
            assert first["own"][1] == pytest.approx(lr * 10 * (m[0] + m[1]) / (4 * n), rel=1e-13)
            transfers.append(first["transfer"][1])
            if gamma == 0.0:
                base = traj["reliance"][1]
            else:
                assert traj["reliance"][1, 1] > base[1]
                assert traj["reliance"][1].max() > base.max() and traj["reliance"][1, -1] > base[-1] + 0.01
        assert transfers[2] == pytest.approx(3 * transfers[1], rel=1e-12)
    # R-relation margins: Z₀ carries R e^{o_r}; R = 1 gives Lemma 4's margins
    lem = lemma4_margins(KNOWLEDGE)
    np.testing.assert_allclose(relation_margins(KNOWLEDGE, 1), [lem["m_C"], lem["m_CS"], lem["m_CF"], lem["m_S"], 0.0],
                               atol=1e-13)


def test_relation_bookkeeping_and_broadcasting():
    gamma = 0.25
    counts = np.array([[6, 4, 2, 3, 1], [0, 5, 0, 2, 0], [3, 3, 3, 0, 0]])
    out = relation_group_trajectory(KNOWLEDGE, counts, 3, gamma, lr=1.5, steps=30)
    gmat = (1 - gamma) * np.eye(3) + gamma
    for name in ("c", "s"):
        np.testing.assert_allclose(
            np.diff(out[f"u_theta_{name}"], axis=-1), 1.5 * gmat @ out[f"neg_grad_theta_{name}"][:, :-1], atol=1e-13
        )
        parts = [out[f"neg_grad_theta_{name}_{g}"] for g in ("C", "CS", "CF", "S")]
        np.testing.assert_allclose(np.nansum(parts, axis=0), out[f"neg_grad_theta_{name}"], atol=1e-15)
    assert np.all(np.isnan(out["gap_C"][1])) and np.all(np.isfinite(out["gap_C"][0]))
    np.testing.assert_allclose(out["attention_context"], sigmoid(out["A"]), atol=0)
    assert np.all(out["time"] == 1.5 * out["step"])
    # stack axes broadcast with the knowledge arguments
    stacked = relation_group_trajectory(KNOWLEDGE, counts, 3, np.array([[0.0], [gamma]]), lr=1.5, steps=30)
    assert stacked["reliance"].shape == (2, 1, 3, 31)
    np.testing.assert_allclose(stacked["reliance"][1, 0], out["reliance"], atol=1e-15)
    with pytest.raises(ValueError):
        relation_group_trajectory(KNOWLEDGE, counts, 2, gamma)
    with pytest.raises(ValueError):
        paper_embeddings(4, 4, 2, 1.0)
