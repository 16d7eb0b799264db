"""Proposition 2 (S examples at t = 0) and Proposition 3 (one step on W_V)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.defaults import KNOWLEDGE, GroupCounts, Knowledge
from cpi.theory.closed_forms import lemma4_margins
from cpi.theory.propositions import (
    attention_weights,
    paper_embeddings,
    proposition2,
    proposition3,
    token_gram,
    value_matrix,
    value_step,
)
from cpi.theory.reduced import paper_examples


def test_token_gram_is_phi_transpose_phi():
    phi = paper_embeddings(7, 11)
    np.testing.assert_allclose(phi.T @ phi, token_gram(7, 11), atol=1e-15)


@pytest.mark.parametrize("n_s", [1, 5, 20])
def test_proposition2(n_s):
    out = proposition2(KNOWLEDGE, GroupCounts(10, 10, n_s_seen=n_s))
    assert out["theta_c_S"] == 0.0
    m_s = lemma4_margins(KNOWLEDGE)["m_S"]
    assert out["theta_s_S"] == pytest.approx(n_s * m_s / (4 * np.sqrt(2) * (20 + n_s)), rel=1e-13)
    assert out["raises_theta_s"] and out["theta_c_unchanged_sum"] and out["theta_c_sign_unchanged"]
    # mean loss: θ_C is diluted by n/(n + n_S), not unchanged
    assert out["theta_c_with"] == pytest.approx(out["theta_c_without"] * 20 / (20 + n_s), rel=1e-13)


@pytest.mark.usefixtures("float64")  # its own JAX reference computation
def test_value_step_equals_autodiff_of_explicit_w_v():
    """ΔV = (η/n)Σ G(e_a − p)(Gw)ᵀ equals Φᵀ(W_V − η∇_{W_V}L)Φ by JAX autodiff."""
    n_s, n_a, lr = 12, 30, 3.0
    pts = paper_examples(KNOWLEDGE.replace(n_subjects=n_s, n_answers=n_a), GroupCounts(3, 2, 1, 2, 1))
    phi = paper_embeddings(n_s, n_a)
    gaps = np.random.default_rng(1).normal(size=len(pts["answers"]))
    w = attention_weights(pts["keys"], gaps, phi.shape[1])
    answers = jnp.asarray(pts["answers"])

    def loss(w_v):
        z = (jnp.asarray(phi).T @ w_v @ (jnp.asarray(phi) @ jnp.asarray(w).T)).T
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), answers[:, None], 1))

    w_v = jnp.asarray(value_matrix(pts["table"], phi))
    stepped = np.asarray(w_v - lr * jax.grad(loss)(w_v))
    expected = value_step(pts["table"], token_gram(n_s, n_a), w, pts["answers"], lr)
    np.testing.assert_allclose(phi.T @ stepped @ phi, expected, atol=1e-11)


def test_proposition3_default():
    out = proposition3(KNOWLEDGE, GroupCounts(10, 10), lr=1.0)
    assert out["holds"]
    assert np.all(out["p_after"] - out["p_before"] > 1e-4)


@settings(max_examples=25, deadline=None)
@given(
    n_answers=st.integers(12, 120),
    delta_c=st.floats(0.05, 0.45),
    ratio=st.floats(2.05, 4.0),
    o_r=st.floats(0.05, 2.0),
    extra=st.floats(0.0, 2.0),
    frac_c=st.floats(0.1, 1.0),
    lr=st.floats(0.01, 50.0),
)
def test_proposition3_random(n_answers, delta_c, ratio, o_r, extra, frac_c, lr):
    if delta_c <= 3 / (n_answers - 1) or ratio * delta_c >= 1:
        return
    n_subjects = n_answers - 2
    n = (n_answers - 2) // 2
    n_c = max(1, int(frac_c * n))
    knowledge = Knowledge(n_subjects, n_answers, delta_c, ratio * delta_c, o_r + extra, o_r)
    out = proposition3(knowledge, GroupCounts(n_c, n - n_c), lr=lr)
    assert out["holds"]
