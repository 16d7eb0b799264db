"""The onset derivatives of the bridge (`cpi.bridge.onset`): d_G = −⟨∇M_C, ∇L_G⟩ is the limit of
one gradient step's change of M_C (float64, tiny model), the mixture's derivative is the bridge's
own GD finetuning step (its loss is the mean over points), and the experiment's headline is a
flat dict of finite numbers read off its data."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpi.bridge import corpus, measure, onset, pretrain
from cpi.bridge.model import cross_entropy, answer_logits, trainable_filter

from .bridge_figure_data import tiny_bridge_onset
from .test_bridge_model import TINY, tiny


def _world_and_model(*extra, dtype=None):
    config = tiny(*extra)
    world = corpus.build_corpus(config)
    model = pretrain.initial_model(config, world.vocab)
    if dtype is not None:
        model = jax.tree_util.tree_map(lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x, model)
    return config, world, model


def _grad_of_group_loss(model, tokens, target):
    """∇ of the mean cross-entropy over the points, over the query and key maps, written apart
    from `cpi.bridge.onset`."""
    params, static = eqx.partition(model, trainable_filter(model, "attention"))
    loss = lambda p, s: jnp.mean(cross_entropy(answer_logits(eqx.combine(p, s), tokens), target))
    return params, static, eqx.filter_jit(jax.grad(loss))(params, static)


_reliance = eqx.filter_jit(onset.reliance)


def test_derivatives_are_the_limit_of_one_descent_step(float64):
    """(M_C(θ₀ − h∇L_G) − M_C(θ₀))/h → d_G for every group of a mixture of all four, the error
    shrinking in proportion to h."""
    _, world, model = _world_and_model("mixture.n_train=12", "mixture.context_critical=0.25",
                                       "mixture.counterfactual=0.25", "mixture.fact_recall=0.25", dtype=jnp.float64)
    data = onset.onset_data(world)
    assert data.groups == ("C", "CS", "CF", "S")
    d = onset.derivatives(model, data)
    assert d["d_C"].dtype == np.float64
    m = lambda mdl: float(_reliance(mdl, data.conflict_tokens, data.conflict_context, data.conflict_fact))
    m0 = m(model)
    for group, tokens, target in zip(data.groups, data.tokens, data.target):
        params, static, grad = _grad_of_group_loss(model, tokens, target)
        errors = []
        for h in (1e-3, 1e-4, 1e-5):
            stepped = jax.tree_util.tree_map(lambda p, g: p - h * g, params, grad)
            errors.append(abs((m(eqx.combine(stepped, static)) - m0) / h - float(d[f"d_{group}"])))
        scale = abs(float(d[f"d_{group}"]))
        assert scale > 1e-6
        assert errors[-1] < 1e-4 * scale + 1e-10, (group, errors, scale)
        assert errors[1] < 0.2 * errors[0] and errors[2] < 0.2 * errors[1]  # first order in h
        # the group's derivative is the mean of its points' shares
        np.testing.assert_allclose(d[f"d_{group}_points"].mean(), d[f"d_{group}"], rtol=1e-10)


def test_reliance_is_the_bridges_measure():
    config, world, model = _world_and_model()
    data = onset.onset_data(world)
    evaluated = eqx.filter_jit(measure.evaluate)(model, measure.EvalData(world, world.train))
    value = _reliance(model, data.conflict_tokens, data.conflict_context, data.conflict_fact)
    np.testing.assert_allclose(float(value), float(evaluated[0]), rtol=1e-6)


def test_mixture_derivative_is_the_bridges_gd_finetuning_step():
    """One step of the bridge's own GD finetuning (mean loss over the mixture's examples) moves
    M_C by h·(ρ d_C + (1 − ρ) d_CS), ρ = n_C/n; a summed loss would move it n times as far."""
    from cpi.bridge.finetune import finetune

    h = 1e-2
    config, world, model = _world_and_model("train.optimizer=gd", f"train.lr={h}", "train.steps=1",
                                            "train.eval_every=1", "mixture.context_critical=0.25")
    data = onset.onset_data(world)
    d = onset.derivatives(model, data)
    rho = len(data.group("C")[1]) / len(world.train.target)
    assert rho == 0.25
    expected = h * onset.mixture_derivative(float(d["d_C"]), float(d["d_CS"]), rho)
    rows = finetune(model, config.train, measure.EvalData(world, world.train))
    assert abs(expected) > 1e-5
    np.testing.assert_allclose(rows[1, 0] - rows[0, 0], expected, rtol=3e-2)


def test_weighted_descent_starts_along_the_derivative(float64):
    _, world, model = _world_and_model(dtype=jnp.float64)
    data = onset.onset_data(world)
    d = onset.derivatives(model, data)
    rhos, lr = np.array([0.0, 0.3, 1.0]), 1e-5
    curves = onset.weighted_descent(model, data, rhos, lr, 2)
    assert curves.shape == (3, 3)
    np.testing.assert_allclose(curves[:, 0], float(d["reliance"]))
    np.testing.assert_allclose((curves[:, 1] - curves[:, 0]) / lr,
                               onset.mixture_derivative(float(d["d_C"]), float(d["d_CS"]), rhos), rtol=1e-3)


def test_rho_hat_is_where_the_mixture_derivative_changes_sign():
    r = onset.rho_hat(0.3, -0.1)
    assert r == pytest.approx(0.25)
    assert onset.mixture_derivative(0.3, -0.1, r) == pytest.approx(0.0, abs=1e-15)
    assert onset.rho_hat(0.3, 0.1) == 0.0 and onset.rho_hat(-0.3, -0.1) == 1.0
    assert math.isnan(onset.rho_hat(-0.3, 0.1))


def test_weighted_descent_needs_both_groups():
    _, world, model = _world_and_model("mixture.context_critical=1.0")
    data = onset.onset_data(world)
    assert data.groups == ("C",)
    with pytest.raises(ValueError, match="no CS examples"):
        onset.weighted_descent(model, data, [0.5], 0.1, 1)


def test_lambda_margin_is_lemma_4s_margin_at_the_toys_prediction():
    from cpi.experiments.bridge_onset import lambda_margin
    from cpi.theory.closed_forms import margin

    _, world, model = _world_and_model()
    points = world.train
    v_c, v_s = measure.value_columns(model, points.tokens)
    z = 0.5 * (v_c + v_s)
    p = np.exp(z - z.max(-1, keepdims=True))
    p_toy = (p / p.sum(-1, keepdims=True))[np.arange(len(points.target)), points.target]
    np.testing.assert_allclose(lambda_margin(model, points, p_toy), margin(v_c, v_s, points.target), rtol=1e-9)
    np.testing.assert_allclose(lambda_margin(model, points, 1 - (1 - p_toy) / 2),
                               margin(v_c, v_s, points.target) / 2, rtol=1e-9)


def test_headline_is_flat_finite_and_read_off_the_data():
    from cpi.experiments.bridge_onset import headline

    data = tiny_bridge_onset()
    numbers = headline(data)
    assert all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in numbers.values())
    assert all(math.isfinite(v) for v in numbers.values() if isinstance(v, float))
    assert numbers["n_seeds"] == 2 and numbers["horizon_steps"] == 6
    assert numbers["pretrain1000_rho_hat_mean"] == pytest.approx(0.0035)
    assert numbers["pretrain100_rho_star_lambda_n"] == 1  # the NaN seed left out
    assert numbers["pretrain100_onset_rise_lr0.3_n"] == 1
    assert numbers["pretrain1000_onset_rise_lr3_sd"] == pytest.approx(np.std([0.01, 0.015], ddof=1))
    assert numbers["pretrain100_minus_default_rho_hat_mean"] == pytest.approx(np.mean([0.138, 0.085]))
    assert numbers["pretrain1000_mixture_onset_rise_mean"] == pytest.approx(0.0075)
    assert numbers["mixture_rho_min_nonzero"] == 0.03125
    assert headline(data) == numbers


@pytest.mark.slow
def test_experiment_at_tiny_scale_reads_its_own_pieces(tmp_path):
    """The experiment's numbers equal the pieces recomputed from its checkpoints."""
    from cpi.bridge.config import load
    from cpi.experiments.bridge_onset import headline
    from cpi.experiments.bridge_phase import RISE, rise_onset
    from cpi.experiments.cache import experiment_data

    params = dict(seeds=(0, 1), overrides=tuple(TINY), weak_pretrain_steps=(10,), rhos=(0.0, 0.1, 0.5),
                  lrs=(3.0, 0.3), steps=8, early_steps=2, mixture_rhos=(0.0, 0.5))
    data = experiment_data("bridge_onset", None, tmp_path, **params)
    assert data["reliance"].shape == (2, 2, 2, 3, 9)
    for a, steps in enumerate(data["arm_pretrain_steps"]):
        for i, seed in enumerate(data["seeds"]):
            config = load(overrides=[*TINY, f"pretrain.steps={steps}", f"train.seed={seed}"])
            world = corpus.build_corpus(config)
            model, cached = pretrain.pretrained(config, world.vocab, tmp_path / "sims" / "checkpoint")
            assert cached
            d = onset.derivatives(model, onset.onset_data(world))
            assert data["d_C"][a, i] == float(d["d_C"]) and data["d_CS"][a, i] == float(d["d_CS"])
            assert data["rho_star"][a, i] == measure.knowledge(model, world)["rho_star"] or np.isnan(
                data["rho_star"][a, i])
            np.testing.assert_equal(data["rho_hat"][a, i], onset.rho_hat(float(d["d_C"]), float(d["d_CS"])))
            for j in range(2):
                np.testing.assert_equal(data["onset_rise"][a, i, j],
                                        rise_onset(data["rho"], data["rise"][a, i, j] - RISE))
    assert list(data["mixture_rho"]) == [0.0, 0.5]
    for i in range(2):
        np.testing.assert_equal(data["mixture_onset_rise"][i], rise_onset(data["mixture_rho"],
                                                                          data["mixture_rise"][i] - RISE))
    numbers = headline(data)
    assert numbers["n_seeds"] == 2 and numbers["pretrain10_pretrain_steps"] == 10


@pytest.mark.slow
def test_default_model_first_gd_step_follows_the_derivatives(tmp_path):
    """At the bridge's default pretrained model (seed 0) one step of its GD finetuning at ρ = ½
    moves M_C by lr·(½ d_C + ½ d_CS) (float32: to 5%)."""
    from cpi.bridge.config import load
    from cpi.bridge.finetune import finetune

    lr = 0.05
    config = load(overrides=["train.optimizer=gd", f"train.lr={lr}", "train.steps=1", "train.eval_every=1"])
    world = corpus.build_corpus(config)
    model, _ = pretrain.pretrained(config, world.vocab, tmp_path)
    d = onset.derivatives(model, onset.onset_data(world))
    rows = finetune(model, config.train, measure.EvalData(world, world.train))
    expected = lr * onset.mixture_derivative(float(d["d_C"]), float(d["d_CS"]), 0.5)
    np.testing.assert_allclose(rows[1, 0] - rows[0, 0], expected, rtol=5e-2)
