"""Reduced dynamics: the group recursion against the general per-example form, the explicit
d×d model, and the gradient flow."""

import jax.numpy as jnp
import numpy as np
import pytest

from tests.defaults import KNOWLEDGE, GroupCounts, Knowledge
from cpi.theory.closed_forms import sigmoid
from cpi.theory.groups import GROUPS
from cpi.theory.embeddings import paper_embeddings
from cpi.theory.propositions import value_matrix
from tests.explicit_descent import w_kq_trajectory
from cpi.theory.reduced import general_flow, general_trajectory, group_flow, group_trajectory, paper_examples


def test_default_trajectory_numbers():
    """Independently computed (a separate 20-line NumPy recursion): ρ = ½, n = 20, η = 1."""
    out = group_trajectory(KNOWLEDGE, GroupCounts(10, 10), lr=1.0, steps=300)
    r = out["reliance"]
    assert r.shape == (301,)
    assert r[0] == pytest.approx(0.289898, abs=5e-7)
    assert int(np.argmax(r)) == 32
    assert r.max() == pytest.approx(0.899163, abs=5e-7)
    assert r[-1] == pytest.approx(0.589637, abs=5e-7)


def _general_reliance(pts, test_gaps, which):
    a = test_gaps[:, which]
    z = sigmoid(a)[:, None] * pts["test_v1"][which] + sigmoid(-a)[:, None] * pts["test_v2"][which]
    zc = z[:, pts["test_context"][which]]
    if which == 0:
        return sigmoid(zc - z[:, pts["test_fact"][which]])
    return np.exp(zc - np.log(np.exp(z).sum(-1)))


MIXTURES = [(10, 10, 0, 0, 0), (7, 3, 4, 0, 0), (5, 3, 2, 4, 1), (0, 6, 3, 5, 2), (3, 0, 0, 8, 0)]


@pytest.mark.parametrize("counts", MIXTURES)
def test_general_form_equals_group_form(counts):
    """One α per point with the Gram built from explicit embedding vectors and full K×K
    value table == one α per group with the 5-class compressed softmax (to 1e-12)."""
    lr, steps = 1.7, 150
    pts = paper_examples(KNOWLEDGE.replace(delta_s=0.85), GroupCounts(*counts))
    gen = general_trajectory(pts["gram"], pts["v1"], pts["v2"], pts["answers"], lr, steps, pts["test_inner"])
    grp = group_trajectory(KNOWLEDGE.replace(delta_s=0.85), GroupCounts(*counts), lr=lr, steps=steps)
    np.testing.assert_allclose(gen["test_gaps"][:, 0], grp["A"], atol=1e-12)
    np.testing.assert_allclose(_general_reliance(pts, gen["test_gaps"], 0), grp["reliance"], atol=1e-12)
    np.testing.assert_allclose(_general_reliance(pts, gen["test_gaps"], 1), grp["aligned_accuracy"], atol=1e-12)
    for gi, name in enumerate(GROUPS):
        idx = np.flatnonzero(pts["group"] == gi)
        if idx.size == 0:
            assert np.all(np.isnan(grp[f"gap_{name}"]))
            continue
        np.testing.assert_allclose(gen["gaps"][:, idx], grp[f"gap_{name}"][:, None] * np.ones(idx.size), atol=1e-12)
        np.testing.assert_allclose(gen["loss"][:, idx], grp[f"loss_{name}"][:, None] * np.ones(idx.size), atol=1e-12)


@pytest.mark.usefixtures("float64")  # its own JAX reference computation
def test_group_form_equals_explicit_d_by_d_model():
    """Full-batch GD on the d×d matrix W_KQ of the explicit model (JAX autodiff, mean CE
    loss, relation key masked on context points) reproduces the group recursion."""
    counts = (4, 3, 2, 3, 1)
    lr, steps = 2.0, 40
    n_s, n_a = 20, 40
    args = (n_s, n_a, 0.2, 0.6, 1.0, 0.5)
    pts = paper_examples(Knowledge(*args, delta_s=0.9), GroupCounts(*counts))
    phi = jnp.asarray(paper_embeddings(n_s, n_a))
    w_v = jnp.asarray(value_matrix(pts["table"], np.asarray(phi)))
    r = phi[:, -1]
    queries = jnp.broadcast_to(r[:, None], (r.shape[0], len(pts["answers"])))
    ws = w_kq_trajectory(phi, w_v, pts["keys"], queries, pts["answers"], lr, steps)
    c_t, s_t = (int(x) for x in pts["test_keys"][0])
    test_key = phi[:, c_t] - phi[:, s_t]  # the conflict example's key difference
    a_full = np.asarray(jnp.einsum("tij,j,i->t", ws, r, test_key))
    grp = group_trajectory(Knowledge(*args, delta_s=0.9), GroupCounts(*counts), lr=lr, steps=steps)
    np.testing.assert_allclose(a_full, grp["A"], atol=1e-11)
    u_full = np.asarray(jnp.einsum("tij,j->ti", ws, r))
    theta_c = np.zeros(phi.shape[0])
    theta_c[n_s + n_a + 1] = 1
    np.testing.assert_allclose(u_full @ theta_c, grp["u_theta_c"], atol=1e-11)


def test_small_step_discrete_approaches_flow():
    """t = η·steps; the GD/flow gap in M_C is O(η): halving η halves it."""
    horizon = 60.0
    times = np.linspace(0, horizon, 61)
    flow = group_flow(KNOWLEDGE, GroupCounts(10, 10), times=times)
    errs = []
    for lr in (0.2, 0.1, 0.05):
        steps = int(round(horizon / lr))
        traj = group_trajectory(KNOWLEDGE, GroupCounts(10, 10), lr=lr, steps=steps)
        idx = np.round(times / lr).astype(int)
        errs.append(np.max(np.abs(traj["reliance"][idx] - flow["reliance"])))
    assert errs[-1] < 1e-3
    assert errs[0] / errs[1] == pytest.approx(2.0, rel=0.05)
    assert errs[1] / errs[2] == pytest.approx(2.0, rel=0.05)


def test_flow_log_time_equals_linear_time_and_general_flow():
    times = np.array([0.0, 0.5, 3.0, 20.0, 100.0])
    counts = (5, 3, 2, 4, 1)
    a = group_flow(KNOWLEDGE, GroupCounts(*counts), times=times, log_time=True)
    b = group_flow(KNOWLEDGE, GroupCounts(*counts), times=times, log_time=False)
    np.testing.assert_allclose(a["A"], b["A"], atol=1e-9)
    pts = paper_examples(KNOWLEDGE, GroupCounts(*counts))
    gen = general_flow(pts["gram"], pts["v1"], pts["v2"], pts["answers"], times, pts["test_inner"])
    np.testing.assert_allclose(gen["test_gaps"][:, 0], a["A"], atol=1e-9)


def test_output_bookkeeping():
    out = group_trajectory(KNOWLEDGE, GroupCounts(6, 4, 0, 3, 0), lr=1.0, steps=20)
    for g in ("C", "CS", "S"):
        assert np.all(np.isfinite(out[f"neg_grad_theta_c_{g}"]))
    assert np.all(np.isnan(out["neg_grad_theta_c_CF"])) and np.all(np.isnan(out["loss_CF"]))
    total_c = out["neg_grad_theta_c_C"] + out["neg_grad_theta_c_CS"] + out["neg_grad_theta_c_S"]
    total_s = out["neg_grad_theta_s_C"] + out["neg_grad_theta_s_CS"] + out["neg_grad_theta_s_S"]
    np.testing.assert_allclose(total_c, out["neg_grad_theta_c"], atol=1e-15)
    np.testing.assert_allclose(total_s, out["neg_grad_theta_s"], atol=1e-15)
    assert np.all(out["neg_grad_theta_c_S"] == 0)
    # u(t+1) − u(t) = η·(−∇L) along θ_C and θ_S
    np.testing.assert_allclose(np.diff(out["u_theta_c"]), out["neg_grad_theta_c"][:-1], atol=1e-14)
    np.testing.assert_allclose(np.diff(out["u_theta_s"]), out["neg_grad_theta_s"][:-1], atol=1e-14)
    # without S examples A = √2 θ_C·u
    cs = group_trajectory(KNOWLEDGE, GroupCounts(12, 8), steps=20)
    np.testing.assert_allclose(cs["A"], np.sqrt(2) * cs["u_theta_c"], atol=1e-13)
    np.testing.assert_allclose(cs["attention_context"], sigmoid(cs["A"]), atol=0)


def test_broadcasting_over_mixtures_matches_single_runs():
    n_c = np.array([4, 10, 16])
    stacked = group_trajectory(KNOWLEDGE, GroupCounts(n_c, 20 - n_c), lr=1.0, steps=50)
    assert stacked["reliance"].shape == (3, 51)
    for i, nc in enumerate(n_c):
        single = group_trajectory(KNOWLEDGE, GroupCounts(int(nc), int(20 - nc)), lr=1.0, steps=50)
        np.testing.assert_allclose(stacked["reliance"][i], single["reliance"], atol=1e-15)
