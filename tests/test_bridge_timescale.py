"""The bridge timescale experiment: per-example losses at the recorded steps and the minibatch
visit bookkeeping on a tiny model (exact), and the experiment's data at a tiny scale."""

import dataclasses

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

from cpi.bridge import corpus, measure, pretrain
from cpi.bridge.finetune import (batch_indices, finetune, finetune_with_losses, optimizer, record_steps,
                                 steps_then_metrics, visits)
from cpi.bridge.model import answer_logits, cross_entropy, trainable_filter
from cpi.sims.optimizers import batch_weights

from .test_bridge_model import TINY, tiny


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """(config, model, data) of the tiny config with minibatches of 2 (4 steps per epoch)."""
    config = tiny("train.optimizer=adamw", "train.batch_size=2", "train.steps=10", "train.eval_every=3",
                  "train.lr=0.01")
    world = corpus.build_corpus(config)
    model, _ = pretrain.pretrained(config, world.vocab, tmp_path_factory.mktemp("cache"))
    return config, model, measure.EvalData(world, world.train)


def test_point_losses_are_finetunings_steps_and_their_losses(tiny_run):
    config, model, data = tiny_run
    rows, losses = finetune_with_losses(model, config.train, data)
    np.testing.assert_allclose(rows, finetune(model, config.train, data), rtol=1e-4, atol=1e-5)
    full = dataclasses.replace(config.train, optimizer="gd", batch_size=0, steps=3)
    np.testing.assert_array_equal(finetune_with_losses(model, full, data)[0], finetune(model, full, data))
    assert losses.shape == (len(record_steps(config.train)), len(data.train_target))
    direct = np.asarray(cross_entropy(answer_logits(model, data.train_tokens), data.train_target))
    np.testing.assert_array_equal(losses[0], direct)
    names = measure.metric_names(data, config.transformer.layers)
    for g, name in enumerate(corpus.GROUPS):
        if f"loss_{name}" in names:
            np.testing.assert_allclose(losses[:, data.train_group == g].mean(axis=1),
                                       rows[:, names.index(f"loss_{name}")], rtol=1e-6)


def test_visits_count_the_minibatches_of_each_epoch():
    train = tiny("train.optimizer=sgd", "train.batch_size=2", "train.steps=10").train
    n, steps = 8, np.array([0, 1, 3, 4, 5, 8, 10])
    count, in_epoch = visits(train, steps, n)
    # by hand: each epoch of 4 steps deals a permutation of the 8 points in pairs
    chosen = np.stack([np.asarray(batch_weights(train.seed, t, n, 2, jnp.float32)) > 0 for t in range(10)])
    assert (chosen.sum(axis=1) == 2).all()
    for e in range(2):
        assert (chosen[4 * e:4 * e + 4].sum(axis=0) == 1).all()  # every point once an epoch
    for t in range(10):
        index = np.sort(np.asarray(batch_indices(train.seed, t, n, 2)))
        np.testing.assert_array_equal(index, np.flatnonzero(chosen[t]))
    for k, t in enumerate(steps):
        np.testing.assert_array_equal(count[k], chosen[:t].sum(axis=0))
        begin = 0 if t == 0 else (t - 1) // 4 * 4
        np.testing.assert_array_equal(in_epoch[k], chosen[begin:t].any(axis=0))
    assert not in_epoch[0].any() and in_epoch[3].all() and in_epoch[5].all()  # steps 0, 4, 8
    np.testing.assert_array_equal(in_epoch[4], chosen[4])  # step 5: the first batch of epoch 2
    assert (count[-1] >= 2).all() and count[-1].sum() == 20
    full, _ = visits(dataclasses.replace(train, batch_size=0), np.array([0, 3]), n)
    assert (full[1] == 3).all()


def test_an_unvisited_point_is_untouched_by_plain_sgd_on_its_own_subject():
    """The bookkeeping matches what training does: with every parameter trained by SGD and an
    untied head, the embedding row of a point's subject moves exactly when the point has been in
    a minibatch (every finetuning example has its own subject)."""
    config = tiny("transformer.tied_head=false", "train.optimizer=sgd", "train.trainable=all", "train.lr=0.5",
                  "train.batch_size=2", "train.steps=6")
    world = corpus.build_corpus(config)
    model = pretrain.initial_model(config, world.vocab)
    data = measure.EvalData(world, world.train)
    params, static = eqx.partition(model, trainable_filter(model, "all"))
    opt = optimizer(config.train)
    state = opt.init(params)
    segment = steps_then_metrics(static, opt, config.train, len(data.train_target),
                                 observe=lambda m, d: m.embed.weight)
    subjects = np.asarray(data.train_tokens)[:, 1]
    before = np.asarray(model.embed.weight)[subjects]
    count, _ = visits(config.train, np.arange(1, 7), len(subjects))
    assert 0 < (count[0] > 0).sum() < len(subjects)
    for k in range(6):
        params, state, weight = segment(params, state, data, jnp.int32(k), 1)
        moved = np.any(np.asarray(weight)[subjects] != before, axis=1)
        np.testing.assert_array_equal(moved, count[k] > 0)


SMALL = dict(seeds=(0,), n_train=8, batch_size=2, epochs=2, eval_every=1, optimizers=("adamw", "sgd"),
             lrs=(0.01, 1.0), trainables=("attention", "all"), weight_decay=0.01, overrides=tuple(TINY))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from cpi.experiments.cache import experiment_data

    data_dir = tmp_path_factory.mktemp("data")
    return data_dir, experiment_data("bridge_timescale", None, data_dir, **SMALL)


def test_experiment_sets_are_the_per_point_losses_of_its_runs(small):
    from cpi.experiments import bridge_timescale as bt

    data_dir, d = small
    assert d["reliance"].shape == (2, 1, 9) and list(d["step"]) == list(range(9))
    config = bt.run_config(TINY, 0, 8, 2, 2, 1, "sgd", 1.0, 0.01, "all")
    assert config.train.trainable == "all" and config.train.weight_decay == 0
    assert config.train.steps == 8 and config.train.batch_size == 2
    world = corpus.build_corpus(config)
    model, cached = pretrain.pretrained(config, world.vocab, data_dir / "sims" / "checkpoint")
    assert cached
    data = measure.EvalData(world, world.train)
    rows, losses = finetune_with_losses(model, config.train, data)
    _, in_epoch = visits(config.train, record_steps(config.train), 8)
    c = np.asarray(data.train_group) == 0
    loss, fall = bt.set_losses(losses.astype(np.float64), ~in_epoch, c)
    np.testing.assert_array_equal(d["loss_C_unvisited"][1, 0], loss)
    np.testing.assert_array_equal(d["fall_C_unvisited"][1, 0], fall)
    assert np.isnan(loss[0 + 4]) and np.isnan(d["loss_C_visited"][1, 0, 0])  # all visited at step 4, none at 0
    h = bt.headline(d)
    assert h["steps_per_epoch"] == 4 and h["seeds"] == 1 and h["sgd_lr1_all_lr"] == 1.0
    peak = int(np.argmax(d["reliance"][1, 0]))
    assert h["sgd_lr1_all_peak_epoch_mean"] == peak / 4 and h["sgd_lr1_all_peak_before_one_epoch"] == int(peak < 4)



def test_figure_draws_its_arrays_and_skips_empty_sets():
    import cpi.figures
    from cpi.figures.style import artist

    from .bridge_figure_data import tiny_bridge_timescale

    d = tiny_bridge_timescale()
    fig = cpi.figures.plot_bridge_timescale(d)
    epoch = d["step"] / d["steps_per_epoch"]
    np.testing.assert_array_equal(artist(fig, "reliance_sgd_lr3_all_mean").get_ydata(), d["reliance"][1].mean(axis=0))
    np.testing.assert_array_equal(artist(fig, "reliance_adamw_lr0p003_mean").get_xdata(), epoch)
    line = artist(fig, "loss_C_unvisited_sgd_lr3_all_mean")
    np.testing.assert_array_equal(line.get_xdata(), epoch[[0, 1, 3, 5]])
    np.testing.assert_array_equal(line.get_ydata(), d["loss_C_unvisited"][1][:, [0, 1, 3, 5]].mean(axis=0))
    assert "before one epoch" in fig._suptitle.get_text()
