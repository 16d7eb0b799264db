"""Optimizers and minibatches (`train.optimizer`, `train.batch_size`, `train.momentum`,
`train.weight_decay`): the fast engine's token-coordinate sgd equals the generic d×d model
trained by optax, minibatches are what they claim, adam runs on the generic engine, reruns are
byte-identical, and bad combinations are refused. The `optimizers` experiment
(`cpi.experiments.optimizers`): its GD curve is the exact reduced dynamics, its SGD seeds and
momentum and Adam runs are single runs, and its figure draws exactly the arrays of a tiny
hand-made data dict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import cpi.figures
from cpi.figures.style import artist
from cpi.sims import config as cfg
from cpi.sims import generic, optimizers
from cpi.sims.precision import precision
from cpi.core.errors import ConfigError
from cpi.sims.theory_inputs import example_trajectory
from cpi.sims.train import run
from cpi.sims.world import build_world
from tests.tiny_experiments import data_of, line_data, tiny_base

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


# ---------------------------------------------------------------------------- the experiment and its figure


def test_optimizers_gd_is_the_theory_and_sgd_seeds_are_single_runs(tmp_path):
    d = data_of("optimizers", tmp_path, steps=6, seeds=2, batch_sizes=(2,), momentum=0.9, momentum_batch=2,
                adam_factors=(1.0,))
    gd = cfg.with_values(tiny_base(), {"train.steps": 6})
    np.testing.assert_allclose(d["gd_reliance"], example_trajectory(gd)["reliance"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(d["theory_gd_reliance"], d["gd_reliance"], rtol=0, atol=1e-10)
    assert d["sgd_reliance"].shape == (1, 2, 7) and d["momentum_reliance"].shape == (2, 7)
    for seed in (0, 1):
        sgd = run(cfg.with_values(gd, {"train.optimizer": "sgd", "train.batch_size": 2, "train.seed": seed}))
        np.testing.assert_allclose(d["sgd_reliance"][0, seed], sgd.metrics["reliance"], rtol=0, atol=1e-12)
    mom = run(cfg.with_values(gd, {"train.optimizer": "sgd", "train.batch_size": 2, "train.seed": 1,
                                   "train.momentum": 0.9, "train.lr": 0.1}))
    np.testing.assert_allclose(d["momentum_reliance"][1], mom.metrics["reliance"], rtol=0, atol=1e-12)
    assert not np.array_equal(d["sgd_reliance"][0, 0], d["sgd_reliance"][0, 1])  # the seed draws the batches
    # the matched Adam rate: its first step moves θ_Cᵀu as far as GD's first step
    one = run(cfg.with_values(gd, {"train.optimizer": "adam", "train.lr": float(d["adam_lr"][0]), "train.steps": 1}))
    first_gd = run(cfg.with_values(gd, {"train.steps": 1})).metrics["u_theta_c"][1]
    assert one.metrics["u_theta_c"][1] == pytest.approx(first_gd, rel=1e-6)
    np.testing.assert_allclose(d["adam_reliance"][0, :2], one.metrics["reliance"], rtol=0, atol=1e-12)
    assert cpi.figures.plot("optimizers", d) is not None


def tiny_optimizers() -> dict:
    step = np.arange(8)
    r = np.array([0.3, 0.6, 0.85, 0.9, 0.8, 0.7, 0.62, 0.6])
    sgd = np.stack([np.stack([r + 0.01 * s for s in range(3)])] * 2)
    mom = np.stack([np.roll(r, 1) + 0.005 * s for s in range(3)])
    adam = np.stack([np.array([0.3, 0.7, 0.8, 0.72, 0.75, 0.8, 0.85, 0.88])] * 2)
    data = dict(step=step, lr=1.0, rho=0.5, seed=np.arange(3), gd_reliance=r, theory_gd_reliance=r + 1e-3,
                batch_size=np.array([2, 4]), n_train=8, sgd_reliance=sgd, momentum=0.9, momentum_batch=2,
                momentum_lr=0.1, momentum_reliance=mom, adam_lr=np.array([0.17, 0.05]),
                adam_factor=np.array([1.0, 0.3]),
                adam_matched_lr=0.17, gd_first_move=0.17, adam_unit_first_move=1.0, adam_reliance=adam)
    for prefix, x in (("gd", r), ("sgd", sgd), ("momentum", mom), ("adam", adam)):
        data.update({f"{prefix}_peak": x.max(-1), f"{prefix}_final": x[..., -1],
                     f"{prefix}_drop": x.max(-1) - x[..., -1],
                     f"{prefix}_first_peak": x.max(-1) - 0.01, f"{prefix}_trough": x[..., -1] - 0.01,
                     f"{prefix}_peak_step": x.argmax(-1), f"{prefix}_first_peak_step": x.argmax(-1)})
    return data


def test_optimizers_plots_its_arrays():
    d = tiny_optimizers()
    fig = cpi.figures.plot_optimizers(d)
    x, y = line_data(fig, "gd_reliance")
    np.testing.assert_array_equal(x, d["step"] + 1)
    np.testing.assert_array_equal(y, d["gd_reliance"])
    np.testing.assert_array_equal(line_data(fig, "theory_gd_reliance")[1], d["theory_gd_reliance"])
    for i in range(2):
        np.testing.assert_allclose(line_data(fig, f"sgd_mean_{i}")[1], d["sgd_reliance"][i].mean(0), atol=1e-15)
        np.testing.assert_array_equal(line_data(fig, f"adam_{i}")[1], d["adam_reliance"][i])
    np.testing.assert_allclose(line_data(fig, "momentum_mean")[1], d["momentum_reliance"].mean(0), atol=1e-15)
    np.testing.assert_array_equal(artist(fig, "first_peak_1").get_offsets()[:, 1], d["sgd_first_peak"][0])
    np.testing.assert_array_equal(artist(fig, "final_3").get_offsets()[:, 1], d["momentum_final"])
