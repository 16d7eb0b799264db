"""The small-falls experiment (issue 26 item 6): its finetuning with the subject-to-context probe is
the bridge's finetuning step for step, the probe is the attention it names, the toy cannot fall at
ρ = 1 under Adam, and (slow) the experiment at a tiny scale returns what its figure reads."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpi.bridge import corpus, measure
from cpi.bridge.finetune import finetune
from cpi.bridge.model import build
from cpi.experiments import bridge_small_falls as experiment
from cpi.experiments.cache import experiment_data
from cpi.experiments.configs import with_values
from cpi.sims.config import Config
from cpi.sims.train import run as toy_run

from .bridge_figure_data import tiny_bridge_small_falls
from .test_bridge_model import TINY, tiny


@pytest.fixture(scope="module")
def fresh():
    """(config, model, evaluation data) of the tiny config at ρ = 1 with an unpretrained model."""
    config = tiny("mixture.context_critical=1.0", "train.optimizer='adam'", "train.lr=0.03", "train.eval_every=5")
    world = corpus.build_corpus(config)
    model = build(config.transformer, world.vocab.size, jax.random.key(3))
    return config, model, measure.EvalData(world, world.train)


@pytest.mark.parametrize("trainable", ["attention", "attention_after_l1"])
def test_probe_finetuning_is_the_bridges_finetuning_with_the_probe_appended(fresh, trainable):
    config, model, data = fresh
    train = dataclasses.replace(config.train, trainable=trainable)
    rows = experiment.finetune_with_probe(model, train, data)
    plain = finetune(model, train, data)
    n = plain.shape[1]
    np.testing.assert_allclose(rows[:, :n], plain, rtol=1e-5, atol=1e-6)
    _, attention = jax.vmap(model)(jnp.asarray(data.conflict_tokens))
    direct = np.asarray(attention)[:, :, :, 1, 0].mean(axis=(0, 2))
    np.testing.assert_allclose(rows[0, n:], direct, rtol=1e-6)
    if trainable == "attention_after_l1":  # the first layer's attention is the pretrained model's throughout
        np.testing.assert_array_equal(rows[:, n], rows[0, n])
    else:
        assert np.ptp(rows[:, n]) > 0


def test_subject_context_attention_reads_position_one_to_zero():
    model = build(tiny().transformer, 50, jax.random.key(1))
    tokens = jnp.array([[10, 20, 1], [11, 21, 1]])
    got = np.asarray(experiment.subject_context_attention(model, tokens))
    _, attention = eqx.filter_vmap(model)(tokens)
    np.testing.assert_allclose(got, np.asarray(attention)[:, :, :, 1, 0].mean(axis=(0, 2)), rtol=1e-6)
    assert got.shape == (2,)


def test_the_toy_cannot_fall_at_rho_one_under_adam():
    """With only C examples every per-example drive pulls the shared context component of W_KQ φ(r)
    one way, so Adam's momentum and per-coordinate scaling cannot turn M_C down."""
    base = with_values(Config(), mixture__context_critical=1.0, train__steps=40)
    for optimizer, lr in (("adam", 0.5), ("adam", 5.0), ("gd", 1.0)):
        r = np.asarray(toy_run(with_values(base, train__optimizer=optimizer, train__lr=lr)).metrics["reliance"])
        assert r[-1] > r[0] + 0.1 and np.all(np.diff(r) >= -1e-12), (optimizer, lr)


def test_headline_reports_spreads_and_differences():
    d = tiny_bridge_small_falls()
    h = experiment.headline(d)
    assert h["seeds"] == 2 and h["lr_gd"] == 3.0 and h["lr_adam"] == 0.003
    mean, sd = h["c_only_gd_attention_fall_mean"], h["c_only_gd_attention_fall_sd"]
    assert mean == pytest.approx(d["drop"][0, 0, 0].mean()) and sd == pytest.approx(d["drop"][0, 0, 0].std(ddof=1))
    assert h["c_only_gd_frozen_l1_differs"] and h["toy_adam_fall_max"] == 0.0
    assert experiment.differ([0.1, 0.2], [0.5, 0.6]) and not experiment.differ([0.0, 0.2], [0.1, 0.3])


@pytest.mark.slow
def test_experiment_at_a_tiny_scale_returns_what_its_figure_reads(tmp_path):
    d = experiment_data("bridge_small_falls", None, tmp_path, seeds=(0,), overrides=tuple(TINY), steps=10,
                        toy_adam_factors=(1.0,))
    tiny_data = tiny_bridge_small_falls()
    assert not set(tiny_data) - set(d)
    for key, value in tiny_data.items():
        assert np.ndim(d[key]) == np.ndim(value), key
    assert d["reliance"].shape[:4] == (3, 2, 2, 1)
    # filtered: 4 of the 8 points dropped (at this tiny scale not all of them CS examples)
    assert int(d["n_CS"][[0, 2]].max()) == 0 and int(d["n_train"][1].max()) == 4
    assert int(d["n_C"][2].max()) == 0 and int(d["n_train"][2].max()) == 8  # CF only
    frozen = d["subject_context_layers"][:, :, 1, :, 0]
    np.testing.assert_array_equal(frozen, frozen[..., :1] * np.ones_like(frozen))
    assert np.all(d["toy_drop"] == 0.0)
    experiment.headline(d)
