"""Closed forms at t = 0: Lemma 4 margins, Lemmas 5-6, Proposition 1, Theorem 1's first steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.defaults import KNOWLEDGE, GroupCounts, Knowledge
from cpi.theory.closed_forms import (
    THETA_C,
    THETA_S,
    assumptions_hold,
    group_columns,
    initial_gradient_components,
    lemma4_margins,
    lemma5_holds,
    lemma6_holds,
    margin,
    paper_quantities,
    representative_columns,
    two_step_state,
)
from cpi.theory.embeddings import paper_embeddings, theta_directions
from cpi.theory.groups import GROUPS
from cpi.theory.propositions import value_matrix
from cpi.theory.reduced import group_trajectory, paper_examples


def test_default_numbers():
    q = paper_quantities(KNOWLEDGE)
    # independent numbers (computed separately by hand / a 20-line script)
    assert q["Z0"] == pytest.approx(79 * np.e + np.exp(0.5) + 40, rel=1e-14)
    assert q["m_C"] == pytest.approx(3.005676, abs=5e-7)
    assert q["m_CS"] == pytest.approx(-1.111257, abs=5e-7)
    assert q["rho_star"] == pytest.approx(0.269923, abs=5e-7)
    a_inf = 10 / 21 * np.log(q["k_C"] / q["k_CS"])
    assert a_inf == pytest.approx(0.6003, abs=5e-5)
    assert q["initial_reliance"] == pytest.approx(0.289898, abs=5e-7)
    assert q["lemma5"] and q["lemma6"] and q["assumptions"]


def test_lemma4_closed_form_equals_direct_margin():
    """λ·(logit difference) of Lemma 4 equals ⟨v₁ − v₂, e_a − softmax(½v₁ + ½v₂)⟩."""
    for args in [KNOWLEDGE[:6], (10, 30, 0.15, 0.7, 2.0, 0.3), (60, 61, 0.5, 0.99, 0.7, 0.7)]:
        m = lemma4_margins(Knowledge(*args, delta_s=0.8))
        v1, v2, a = group_columns(representative_columns(Knowledge(*args, delta_s=0.8)))
        direct = margin(v1, v2, a)
        expected = [m["m_C"], m["m_CS"], m["m_CF"], m["m_S"], m["m_S_unseen"]]
        np.testing.assert_allclose(direct, expected, rtol=1e-12, atol=1e-14)


def _explicit_loss_u(phi, w_v, x1, x2, answer):
    """ℓ(u) of the explicit d-dimensional model: attention of the query over the two
    visible keys, logits φ(y)ᵀu, prediction W_Hᵀ W_V x̄ with the tied head W_H = Φ."""
    phi = jnp.asarray(phi)
    w_v = jnp.asarray(w_v)

    def loss(u):
        keys = jnp.stack([phi[:, x1], phi[:, x2]], axis=1)
        sig = jax.nn.softmax(keys.T @ u)
        z = phi.T @ (w_v @ (keys @ sig))
        return -jax.nn.log_softmax(z)[answer]

    return loss


@pytest.mark.usefixtures("float64")  # its own JAX reference computation
def test_margins_match_autodiff_of_explicit_model():
    """−∇_u ℓ at u = 0, by JAX autodiff of the explicit model, equals (m/4)·k for each group
    (Lemmas 1-2 and 4), so its θ_C / θ_S components are m θ·k / 4."""
    args = (12, 30, 0.2, 0.6, 1.0, 0.5)
    pts = paper_examples(Knowledge(*args, delta_s=0.85), GroupCounts(1, 1, 1, 1, 1))
    phi = paper_embeddings(12, 30)
    w_v = value_matrix(pts["table"], phi)
    np.testing.assert_allclose(phi.T @ w_v @ phi, pts["table"], atol=1e-11)
    theta_c, theta_s = theta_directions(12, 30)
    m = lemma4_margins(Knowledge(*args, delta_s=0.85))
    margins = [m["m_C"], m["m_CS"], m["m_CF"], m["m_S"], 0.0]
    for i, name in enumerate(GROUPS):
        x1, x2 = pts["keys"][i]
        loss = _explicit_loss_u(phi, w_v, x1, x2, pts["answers"][i])
        neg_grad = -np.asarray(jax.grad(loss)(jnp.zeros(phi.shape[0])))
        k = phi[:, x1] - phi[:, x2]
        np.testing.assert_allclose(neg_grad, margins[i] / 4 * k, atol=1e-12, err_msg=name)
        assert neg_grad @ theta_c == pytest.approx(margins[i] / 4 * THETA_C[i], abs=1e-12)
        assert neg_grad @ theta_s == pytest.approx(margins[i] / 4 * THETA_S[i], abs=1e-12)


def test_lemma1_gradient_is_rank_one_in_w_kq():
    """−∇_{W_KQ} ℓ = (−∇_u ℓ) φ(r)ᵀ: only u = W_KQ φ(r) matters (Lemma 1), at a random W_KQ."""
    pts = paper_examples(KNOWLEDGE.replace(n_subjects=12, n_answers=30), GroupCounts(1, 1))
    phi = paper_embeddings(12, 30)
    w_v = jnp.asarray(value_matrix(pts["table"], phi))
    r = phi[:, -1]
    x1, x2 = pts["keys"][0]
    loss_u = _explicit_loss_u(phi, w_v, x1, x2, pts["answers"][0])
    w = jnp.asarray(np.random.default_rng(0).normal(size=(phi.shape[0], phi.shape[0])) * 0.3)
    grad_w = np.asarray(jax.grad(lambda W: loss_u(W @ jnp.asarray(r)))(w))
    grad_u = np.asarray(jax.grad(loss_u)(w @ jnp.asarray(r)))
    np.testing.assert_allclose(grad_w, np.outer(grad_u, r), atol=1e-13)


@st.composite
def assumption_region(draw):
    """The paper's region: δ_C > 3/(K_A − 1), δ_M > 2δ_C, o_c ≥ o_r > 0 (K_A > K_S).
    Non-empty only for K_A ≥ 8 (δ_M < 1 forces δ_C < ½)."""
    n_answers = draw(st.integers(8, 2000))
    n_subjects = draw(st.integers(1, n_answers - 1))
    lo = 3.0 / (n_answers - 1)
    delta_c = draw(st.floats(lo, 0.5, exclude_min=True, exclude_max=True))
    frac = draw(st.floats(0.0, 1.0, exclude_min=True, exclude_max=True))
    delta_m = 2 * delta_c + frac * (1 - 2 * delta_c)
    assume(2 * delta_c < delta_m < 1.0)
    o_r = draw(st.floats(1e-3, 10.0))
    o_c = draw(st.floats(o_r, 12.0))
    return n_subjects, n_answers, delta_c, delta_m, o_c, o_r


@settings(max_examples=200, deadline=None)
@given(assumption_region())
def test_lemma5_signs_hold_in_the_whole_assumption_region(args):
    assert assumptions_hold(args[1], args[2], args[3], args[4], args[5])
    m = lemma4_margins(Knowledge(*args))
    assert lemma5_holds(m["m_C"], m["m_CS"])


def test_lemma6_fails_inside_the_assumption_region():
    """|m_C| > |m_CS| is NOT implied by the stated assumptions: δ_C = 0.05 > 3/79 and
    δ_M = 0.9 > 2δ_C at the default vocabulary give |m_CS| ≈ 1.95 m_C, so ρ* ≈ 0.66 > ½ and
    a balanced mixture starts by moving attention AWAY from the context."""
    args = (40, 80, 0.05, 0.9, 1.0, 0.5)
    assert assumptions_hold(80, 0.05, 0.9, 1.0, 0.5)
    q = paper_quantities(Knowledge(*args))
    assert q["lemma5"] and not q["lemma6"]
    assert not lemma6_holds(q["m_C"], q["m_CS"])
    assert abs(q["m_CS"]) / q["m_C"] > 1.9
    assert q["rho_star"] > 0.5
    comps = initial_gradient_components(Knowledge(*args), GroupCounts(n_c=10, n_cs=10))
    assert comps["theta_c"] < 0  # Proposition 1's t = 0 sign fails with |D_C| = |D_CS|


def test_proposition1_t0_signs_default():
    for n_c in range(10, 21):
        comps = initial_gradient_components(KNOWLEDGE, GroupCounts(n_c=n_c, n_cs=20 - n_c))
        assert comps["theta_c"] > 0 > comps["theta_s"]
        assert comps["theta_c"] == pytest.approx(comps["theta_c_C"] + comps["theta_c_CS"], rel=1e-14)


def test_two_step_closed_form_matches_scan():
    """Theorem 1's M_C(0..2) from explicit K-dim columns equals the 5-class scan."""
    for counts in [(10, 10, 0, 0, 0), (5, 3, 2, 4, 1)]:
        for lr in (1.0, 13.0):
            closed = two_step_state(KNOWLEDGE, GroupCounts(*counts), lr)
            traj = group_trajectory(KNOWLEDGE, GroupCounts(*counts), lr=lr, steps=2)
            np.testing.assert_allclose(closed["reliance"], traj["reliance"], rtol=1e-13)
            np.testing.assert_allclose(closed["A"], traj["A"], rtol=1e-13, atol=1e-15)
