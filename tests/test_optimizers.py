"""Optimizers and minibatches (`train.optimizer`, `train.batch_size`, `train.momentum`,
`train.weight_decay`): the fast engine's token-coordinate sgd equals the generic d×d model
trained by optax, minibatches are what they claim, adam runs on the generic engine, reruns are
byte-identical, and bad combinations are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from cpi.sims import config as cfg
from cpi.sims import generic, optimizers
from cpi.sims.precision import precision
from cpi.core.errors import ConfigError
from cpi.sims.train import run
from cpi.sims.world import build_world

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "sgd, momentum, weight decay, batches of 6": [
        "train.optimizer='sgd'", "train.momentum=0.8", "train.weight_decay=0.05", "train.batch_size=6"],
    "sgd with W_V trained, batches of 7": [
        "train.optimizer='sgd'", "train.momentum=0.5", "train.batch_size=7", "train.value_lr=0.5",
        "mixture.counterfactual=0.2"],
    "gd with weight decay, full batch": ["train.weight_decay=0.1"],
}


@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_the_fast_engine_runs_sgd_exactly(overrides):
    config = cfg.load(overrides=[*overrides, "train.steps=40"])
    world = build_world(config)
    t = config.train
    with precision("float64"):
        hyper = optimizers.hyper(t)
        expected, expected_params = generic.simulate(
            generic.pack(world), t.lr, t.value_lr, t.steps, train_values=t.value_lr > 0, hyper=hyper, name=t.optimizer,
            batch_size=t.batch_size)
    result = run(config)
    for name, values in result.metrics.items():
        if name != "step":
            np.testing.assert_allclose(values, np.asarray(expected[name]), rtol=0, atol=1e-12, err_msg=name)
    for name in ("kq", "v"):
        np.testing.assert_allclose(result.params[name], np.asarray(expected_params[name]), rtol=0, atol=1e-12)


def test_minibatches_deal_every_point_once_per_epoch():
    n, b = 20, 6
    with precision("float64"):
        weights = np.array([np.asarray(optimizers.batch_weights(np.uint32(3), t, n, b, np.float64))
                            for t in range(9)])
    assert np.all(np.isclose(weights.sum(axis=1), 1.0))
    assert set(np.unique(weights)) == {0.0, 1 / b}
    for epoch in range(3):  # three steps of six points, two points sit out
        counts = (weights[3 * epoch:3 * epoch + 3] > 0).sum(axis=0)
        assert counts.max() == 1 and counts.sum() == 18
    assert not np.array_equal(weights[:3], weights[3:6])  # a new order every epoch


def test_adam_runs_on_the_generic_engine_and_reruns_byte_identically(tmp_path):
    args = ["run", "--set", "train.optimizer='adam'", "--set", "train.lr=0.05", "--set", "train.batch_size=5",
            "--set", "train.steps=30", "--set", "train.seed=4"]
    outputs = []
    for name in ("a", "b"):
        done = subprocess.run([sys.executable, "-m", "cpi", *args, "--out", str(tmp_path / name)],
                              capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        outputs.append((tmp_path / name / "metrics.npz").read_bytes())
    assert outputs[0] == outputs[1]
    with np.load(tmp_path / "a" / "metrics.npz") as metrics:
        assert metrics["reliance"].shape == (31,) and np.all(np.isfinite(metrics["reliance"]))


def test_adam_leaves_the_token_coordinates():
    """Adam normalises each d×d entry: its W_KQ after a step is not Φ A Φ_Rᵀ for any A."""
    config = cfg.load(overrides=["train.optimizer='adam'", "train.lr=0.05", "train.steps=3"])
    world = build_world(config)
    kq = run(config).params["kq"]
    phi = world.embed
    phi_r = phi[:, -1:]
    coefficients, *_ = np.linalg.lstsq(phi, kq @ np.linalg.pinv(phi_r.T), rcond=None)
    assert np.abs(phi @ coefficients @ phi_r.T - kq).max() > 1e-6


def test_seeds_matter_with_minibatches():
    metrics = [run(cfg.load(overrides=["train.optimizer='sgd'", "train.batch_size=5", "train.steps=20",
                                       f"train.seed={seed}"])).metrics["reliance"] for seed in (0, 1)]
    assert not np.array_equal(*metrics)
    assert cfg.seeds_matter(cfg.load(overrides=["train.optimizer='sgd'", "train.batch_size=5"]))
    assert not cfg.seeds_matter(cfg.load())


@pytest.mark.parametrize("overrides, words", [
    (["train.optimizer='rmsprop'"], "one of 'gd', 'sgd', 'adam', 'adamw'"),
    (["train.momentum=0.9"], "needs train.optimizer = 'sgd'"),
    (["train.batch_size=4"], "needs a stochastic optimizer"),
    (["train.optimizer='sgd'", "train.batch_size=21"], "[1, 20]"),
    (["train.optimizer='sgd'", "train.momentum=1"], "train.momentum"),
    (["train.weight_decay=-1"], "train.weight_decay"),
])
def test_bad_optimizer_settings_are_refused(overrides, words):
    with pytest.raises(ConfigError, match=None) as caught:
        cfg.load(overrides=overrides)
    assert words in str(caught.value)


def test_the_reduced_engine_refuses_other_optimizers():
    from cpi.sims.chunks import reduced_engine_problem

    assert reduced_engine_problem(cfg.load()) is None
    for overrides in (["train.optimizer='sgd'", "train.batch_size=5"], ["train.optimizer='adam'"],
                      ["train.weight_decay=0.1"]):
        assert "train." in reduced_engine_problem(cfg.load(overrides=overrides))


def test_jax_x64_is_left_as_found():
    assert not jax.config.jax_enable_x64
