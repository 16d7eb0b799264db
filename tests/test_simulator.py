"""The full simulator against an independent NumPy implementation and the paper's formulas."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpi.sims.config import load, with_values
from cpi.sims.model import example_losses, logits
from cpi.sims.generic import pack
from cpi.sims.train import run
from cpi.sims.world import build_world
from cpi.theory.groups import TRAINING_GROUPS, has_context
from tests.reference_model import Reference


@pytest.fixture(scope="module")
def default_run():
    return run(load())


def test_default_run_matches_the_independent_reference_at_every_step(default_run):
    expected = Reference().trajectory(lr=1.0, steps=300)
    got = default_run.metrics["reliance"]
    assert got.shape == (301,)
    np.testing.assert_allclose(got, expected, atol=1e-10, rtol=0)
    # The numbers of the acceptance criterion, computed independently.
    assert abs(got[0] - 0.2899) < 1e-4
    assert int(np.argmax(got)) == 32 and abs(got.max() - 0.8992) < 1e-4
    assert abs(got[300] - 0.5896) < 1e-4
    assert default_run.summary["inversion"] is True


@pytest.mark.parametrize(
    "overrides, counts",
    [
        ({"mixture.context_critical": 0.3, "train.lr": 2.0, "train.steps": 120},
         dict(n_c=6, n_cs=14)),
        ({"mixture.context_critical": 0.4, "mixture.counterfactual": 0.2, "mixture.fact_recall": 0.2,
          "mixture.fact_recall_seen": 0.5, "knowledge.delta_m": 0.7, "train.steps": 80},
         dict(n_c=8, n_cs=4, n_cf=4, n_s_seen=2, n_s_unseen=2, delta_m=0.7)),
        ({"world.n_subjects": 30, "world.n_answers": 50, "mixture.n_train": 12, "mixture.n_test": 5,
          "mixture.n_aligned": 3, "knowledge.o_c": 1.5, "knowledge.o_r": 0.2, "train.steps": 60},
         dict(n_subjects=30, n_answers=50, n_c=6, n_cs=6, n_test=5, o_c=1.5, o_r=0.2)),
    ],
)
def test_other_configs_match_the_reference(overrides, counts):
    config = with_values(load(), overrides)
    got = run(config).metrics["reliance"]
    expected = Reference(**counts).trajectory(lr=config.train.lr, steps=config.train.steps)
    np.testing.assert_allclose(got, expected, atol=1e-10, rtol=0)


def test_seed_only_relabels_tokens(default_run):
    other = run(with_values(load(), {"train.seed": 7}))
    np.testing.assert_allclose(other.metrics["reliance"], default_run.metrics["reliance"], atol=1e-12)


def _random_state(world, seed=0):
    rng = np.random.default_rng(seed)
    d = world.embed.shape[0]
    return {
        "kq": rng.normal(scale=0.5, size=(d, d)),
        "v": world.w_v + rng.normal(scale=0.05, size=(d, d)),
    }


def test_forward_pass_matches_direct_numpy():
    config = with_values(load(), {"mixture.fact_recall": 0.2})
    world = build_world(config)
    params = _random_state(world)
    phi = world.embed
    for tokens, mask in zip(world.train.tokens, world.train.key_mask):
        keys = tokens[mask]
        x = phi[:, keys]
        scores = x.T @ params["kq"] @ phi[:, tokens[-1]]
        sigma = np.exp(scores - scores.max())
        sigma /= sigma.sum()
        z_expected = phi.T @ params["v"] @ (x @ sigma)
        with jax.enable_x64(True):  # the model in float64, for this computation only
            z, s = logits({k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(phi),
                          jnp.asarray(tokens), jnp.asarray(mask))
        np.testing.assert_allclose(np.asarray(z), z_expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(s)[mask], sigma, rtol=1e-12, atol=1e-15)
        assert np.all(np.asarray(s)[~mask] == 0)


def test_autodiff_gradient_equals_lemma_1():
    config = with_values(load(), {"mixture.fact_recall": 0.2, "mixture.counterfactual": 0.1})
    world = build_world(config)
    params = _random_state(world, seed=1)
    ref = Reference()  # only its Lemma 1 formula is used, with this world's Φ and W_V
    ref.phi, ref.k, ref.r = world.embed, world.embed.shape[1], world.relation
    data = pack(world)
    with jax.enable_x64(True):  # the oracle's float64, for this computation only
        grad = jax.grad(lambda kq: jnp.mean(example_losses({"kq": kq, "v": jnp.asarray(params["v"])},
                                                           data["embed"], data["train"])))(
            jnp.asarray(params["kq"]))
    expected = -np.mean(
        [ref.lemma1_neg_grad(params["kq"], list(t[m]), a, w_v=params["v"])
         for t, m, a in zip(world.train.tokens, world.train.key_mask, world.train.answer)],
        axis=0,
    )
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-9, atol=1e-12)


def test_built_value_matrix_reproduces_the_value_logit_table():
    world = build_world(with_values(load(), {"mixture.fact_recall": 0.2, "mixture.counterfactual": 0.1}))
    phi, table = world.embed, world.value_table
    np.testing.assert_allclose(phi.T @ world.w_v @ phi, table, atol=1e-10, rtol=0)
    # And the table says what Lemma 3 says, checked through softmax probabilities.
    def prob(column, row):
        p = np.exp(table[:, column] - table[:, column].max())
        return (p / p.sum())[row]

    for tokens, fact, group in zip(world.train.tokens, world.train.fact, world.train.group):
        c, s = tokens[0], tokens[1]
        name = TRAINING_GROUPS[group]
        if has_context(name):
            assert abs(prob(c, c) - 0.2) < 1e-12  # context predicts itself w.p. δ_C
        if name in ("CS", "CF"):
            assert abs(prob(s, fact) - 0.6) < 1e-12  # memorised subject: δ_M on its fact
        if name == "S" and fact >= 0:
            assert abs(prob(s, fact) - 0.9) < 1e-12  # seen fact-recall subject: δ_S
        if name == "C":  # not memorised: flat over answers
            answers = np.arange(40, 120)
            assert np.ptp(table[answers, s]) == 0


@pytest.mark.parametrize("value_lr", [0.0, 0.5])
def test_only_u_ever_changes(value_lr):
    config = with_values(load(), {"train.value_lr": value_lr, "train.steps": 50,
                                  "mixture.fact_recall": 0.2})
    result = run(config)
    world = build_world(config)
    r = world.embed[:, world.relation]
    w_kq = result.params["kq"]
    assert np.abs(w_kq @ r).max() > 0.1  # u moved
    np.testing.assert_allclose(w_kq - np.outer(w_kq @ r, r), 0, atol=1e-14)
    np.testing.assert_allclose(result.metrics["u_theta_c"][-1], world.theta_c @ w_kq @ r, rtol=1e-12)
    if value_lr == 0:
        np.testing.assert_array_equal(result.params["v"], world.w_v)
    else:
        assert np.abs(result.params["v"] - world.w_v).max() > 1e-3


def test_group_pushes_sum_to_the_full_gradient_and_match_lemma_2(default_run):
    m = default_run.metrics
    # Lemma 2 at t = 0: the θ_C component of each point's update is σ_sσ_c/√2 · m_G; σ = ½.
    from cpi.theory.pretrained import logit, z0

    log_z0 = np.log(z0(40, 80, 1.0, 0.5))
    # m_C computed by hand from Lemma 4's closed form: λ_C[logit δ_C + log Z₀ − o_c].
    zc = 0.5 * (logit(0.2) + log_z0) + 0.5
    lam = 1 - np.exp(zc) / (np.exp(zc) + 79 * np.e + np.exp(0.5) + 40)
    m_c = lam * (logit(0.2) + log_z0 - 1.0)
    assert abs(m_c - 3.005676) < 1e-6
    np.testing.assert_allclose(m["neg_grad_theta_c_C"][0], 0.5 * 0.25 * m_c / np.sqrt(2), rtol=1e-12)
    np.testing.assert_allclose(m["neg_grad_theta_s_C"], -m["neg_grad_theta_c_C"], rtol=1e-12)
    # The pushes, times η, are the steps of θ_Cᵀu.
    steps = np.diff(m["u_theta_c"])
    np.testing.assert_allclose(steps, (m["neg_grad_theta_c_C"] + m["neg_grad_theta_c_CS"])[:-1],
                               rtol=1e-9, atol=1e-14)


def test_float32_runs_close_to_float64(default_run):
    single = run(with_values(load(), {"train.dtype": "float32"}))
    assert single.metrics["reliance"].dtype == np.float32
    np.testing.assert_allclose(single.metrics["reliance"], default_run.metrics["reliance"], atol=1e-4)


def test_the_optimised_build_computes_what_the_tests_check(default_run, tmp_path):
    """The suite runs XLA without backend optimisation (`tests/conftest.py`); a `cpi run` of
    the default config compiled at XLA's own optimisation level gives the same metrics."""
    from tests.conftest import TEST_OPTIMIZATION, xla_flags_at_xla_level

    flags = xla_flags_at_xla_level()
    assert TEST_OPTIMIZATION not in flags
    env = {**os.environ, "XLA_FLAGS": flags, "CPI_COMPILATION_CACHE": "0"}
    subprocess.run([sys.executable, "-m", "cpi.cli", "run", "--out", str(tmp_path / "run")], check=True, env=env,
                   capture_output=True)
    with np.load(tmp_path / "run" / "metrics.npz") as saved:
        optimised = {k: saved[k] for k in saved.files}
    assert set(optimised) == set(default_run.metrics)
    for name, values in default_run.metrics.items():
        np.testing.assert_allclose(optimised[name], values, rtol=0, atol=1e-12, err_msg=name)
