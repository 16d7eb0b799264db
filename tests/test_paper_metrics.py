"""The paper's accuracies (Figure 2: counterfactual vs parametric; Figure 1a: train accuracy)
against a plain NumPy forward pass of the d×d model, across the engines (fast, generic,
reduced), and how they move over training; and the `paper_metrics` experiment
(`cpi.experiments.paper_metrics`): its accuracies against the same NumPy forward pass, and its
figure drawing exactly the arrays of a tiny hand-made data dict.

The argmax rule everywhere: token y is chosen when z_y exceeds every other token's logit by
more than 1e-9 (float64); a token tied with another at the top is not chosen."""

from __future__ import annotations

import numpy as np
import pytest

import cpi.figures
from cpi.cli import execute as main
from cpi.sims import config as cfg
from cpi.sims import generic
from cpi.sims.sweep import load_sweep, run_sweep
from cpi.sims.train import run
from cpi.sims.world import build_world
from tests.explicit_descent import w_kq_trajectory
from tests.tiny_experiments import data_of, line_data, tiny_base

ACCURACIES = ("counterfactual_accuracy", "parametric_accuracy", "train_accuracy")
TIE = 1e-9

CONFIGS = {
    "default": {"train.steps": 40},
    "tie at step 0 (delta_c = delta_m)": {"knowledge.delta_c": 0.6, "train.steps": 20},
    "CF and S examples": {"mixture.context_critical": 0.4, "mixture.counterfactual": 0.2, "mixture.fact_recall": 0.2,
                        "mixture.fact_recall_seen": 0.5, "knowledge.delta_m": 0.7, "train.steps": 40},
    "filtering": {"mixture.filter": 0.3, "mixture.fact_recall": 0.1, "mixture.context_critical": 0.4,
                  "train.steps": 80},
    "two relations": {"world.n_relations": 2, "world.relation_overlap": 0.3, "world.n_subjects": 60,
                      "world.n_answers": 120, "mixture.counterfactual": 0.1, "mixture.counterfactual_relation": 1,
                      "mixture.fact_recall": 0.1, "train.lr": 2.0, "train.steps": 30},
}
TRAINED_VALUES = {"train.value_lr": 0.5, "mixture.fact_recall": 0.2, "mixture.fact_recall_seen": 0.5}


def config_of(values):
    return cfg.with_values(cfg.load(), values)


def numpy_logits(phi, w_kq, w_v, tokens, key_mask):
    """z (n, K) = Φᵀ W_V Φ[:, x] σ, σ = softmax over the visible keys of φ(y)ᵀ W_KQ φ(r): the
    model of the paper, written directly."""
    x = phi[:, tokens]  # (d, n, 3)
    scores = np.einsum("dny,de,en->ny", x, w_kq, x[:, :, 2])
    scores = np.where(key_mask, scores, -np.inf)
    sigma = np.exp(scores - scores.max(axis=1, keepdims=True))
    sigma /= sigma.sum(axis=1, keepdims=True)
    return (phi.T @ w_v @ np.einsum("dny,ny->dn", x, sigma)).T


def argmax_fraction(z, target):
    """The fraction of rows whose target token beats every other token by more than TIE."""
    rows = np.arange(len(target))
    others = z.copy()
    others[rows, target] = -np.inf
    return float(np.mean(z[rows, target] - others.max(axis=1) > TIE))


def numpy_accuracies(world, w_kq, w_v) -> dict:
    z_test = numpy_logits(world.embed, w_kq, w_v, world.test.tokens, world.test.key_mask)
    z_train = numpy_logits(world.embed, w_kq, w_v, world.train.tokens, world.train.key_mask)
    return {"counterfactual_accuracy": argmax_fraction(z_test, world.test.answer),
            "parametric_accuracy": argmax_fraction(z_test, world.test.fact),
            "train_accuracy": argmax_fraction(z_train, world.train.answer)}


def kq_trajectory(world, config):
    """W_KQ at every step by autodiff GD on the d×d model (W_V frozen, `tests.explicit_descent`)."""
    def visible(points):
        return np.array([t[m] for t, m in zip(points.tokens, points.key_mask)])

    return w_kq_trajectory(world.embed, world.w_v, visible(world.train), world.embed[:, world.train.tokens[:, 2]],
                           world.train.answer, config.train.lr, config.train.steps)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_accuracies_equal_a_numpy_forward_pass_at_every_step(name):
    config = config_of(CONFIGS[name])
    world = build_world(config)
    result = run(config)
    kq = kq_trajectory(world, config)
    expected = [numpy_accuracies(world, w, world.w_v) for w in kq]
    for key in ACCURACIES:
        want = np.array([e[key] for e in expected])
        np.testing.assert_allclose(result.metrics[key], want, rtol=0, atol=1e-12, err_msg=key)
    moved = [key for key in ACCURACIES if np.ptp(result.metrics[key]) > 0]
    assert moved, "the accuracies should move in these configs"


def test_accuracies_with_w_v_trained_equal_a_numpy_forward_pass():
    """W_V trains: the d×d parameters after t steps (one run per t) through the NumPy model."""
    for steps in (2, 25):
        config = config_of({**TRAINED_VALUES, "train.steps": steps})
        result = run(config)
        want = numpy_accuracies(result.world, result.params["kq"], result.params["v"])
        for key in ACCURACIES:
            assert abs(result.metrics[key][-1] - want[key]) < 1e-12, (steps, key)


def test_ties_count_as_not_chosen():
    # δ_C = δ_M: at step 0 (uniform attention) the context's answer and the memorised fact tie.
    tied = run(config_of(CONFIGS["tie at step 0 (delta_c = delta_m)"]))
    assert tied.metrics["counterfactual_accuracy"][0] == 0 and tied.metrics["parametric_accuracy"][0] == 0
    assert tied.metrics["counterfactual_accuracy"][-1] == 1
    # An unseen subject's answer ties with every other answer: never chosen, whatever W_KQ does.
    unseen = run(config_of({"mixture.context_critical": 0.5, "mixture.fact_recall": 0.5,
                            "mixture.fact_recall_seen": 0.0, "train.steps": 30}))
    np.testing.assert_allclose(unseen.metrics["train_accuracy"], 0.5, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["CF and S examples", "tie at step 0 (delta_c = delta_m)"])
def test_fast_engine_accuracies_equal_the_generic_model(name):
    config = config_of(CONFIGS[name])
    expected, _ = generic.simulate(generic.pack(build_world(config)), config.train.lr, 0.0, config.train.steps,
                                   train_values=False)
    result = run(config)
    for key in ACCURACIES:
        np.testing.assert_allclose(result.metrics[key], np.asarray(expected[key]), rtol=0, atol=1e-12, err_msg=key)


def test_reduced_engine_accuracies_equal_the_full_engine(tmp_path):
    base = config_of({"train.steps": 100, "mixture.fact_recall": 0.2, "mixture.fact_recall_seen": 0.5})
    grid = ["mixture.context_critical=0.2,0.4,0.8", "knowledge.delta_c=0.2,0.6"]
    full = run_sweep(base, grid, out=tmp_path / "full")
    reduced = run_sweep(base, grid, out=tmp_path / "reduced", engine="reduced")
    saved = load_sweep(tmp_path / "reduced")
    for key in ACCURACIES:
        np.testing.assert_allclose(reduced.metrics[key], full.metrics[key], rtol=0, atol=1e-10, err_msg=key)
        np.testing.assert_array_equal(saved.metrics[key], reduced.metrics[key])
        assert full.metrics[key].shape == (6, 101)
    assert {0.0, 1.0} <= set(np.unique(full.metrics["counterfactual_accuracy"]))
    assert 0 < np.nanmin(full.metrics["train_accuracy"]) < 1  # S_unseen points are never right


def test_counterfactual_accuracy_rises_and_the_fall_needs_less_context():
    """Default: the conflict answer flips to the context's at step 2 and stays (M_C → 0.571 >
    ½: no fall, unlike the paper's Figure 2). ρ = 0.4: it rises at step 4 and falls back to
    the memorised fact at step 59. Train accuracy stays 1 throughout (C and CS examples)."""
    default = run(config_of({"train.steps": 300})).metrics
    lower = run(config_of({"train.steps": 100, "mixture.context_critical": 0.4})).metrics
    for m in (default, lower):
        # all conflict examples are alike: the argmax is c exactly when M_C > ½
        np.testing.assert_array_equal(m["counterfactual_accuracy"], (m["reliance"] > 0.5).astype(float))
        np.testing.assert_allclose(m["counterfactual_accuracy"] + m["parametric_accuracy"], 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(m["train_accuracy"], 1.0, rtol=0, atol=1e-12)
    assert np.flatnonzero(np.diff(default["counterfactual_accuracy"])).tolist() == [1]
    assert default["counterfactual_accuracy"][0] == 0 and default["counterfactual_accuracy"][-1] == 1
    assert np.flatnonzero(np.diff(lower["counterfactual_accuracy"])).tolist() == [3, 58]
    assert lower["counterfactual_accuracy"][-1] == 0 and lower["parametric_accuracy"][-1] == 1


def test_cpi_run_writes_the_accuracies(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--set", "train.steps=5", "--out", str(out)]) == 0
    with np.load(out / "metrics.npz") as archive:
        assert set(ACCURACIES) <= set(archive.files)
        assert archive["counterfactual_accuracy"].shape == (6,)


# ---------------------------------------------------------------------------- the experiment and its figure


def test_paper_metrics_accuracies_equal_a_numpy_forward_pass(tmp_path):
    d = data_of("paper_metrics", tmp_path, steps=6, rhos=(0.5, 0.25), dim=40, seeds=2)
    assert d["random_cf"].shape == (2, 2, 7) and d["paper_cf"].shape == (2, 7)
    np.testing.assert_allclose(d["paper_benchmark"], np.exp(-d["paper_loss"]))
    for i, rho in enumerate((0.5, 0.25)):
        cases = [(cfg.with_values(tiny_base(), {"mixture.context_critical": rho}), d["paper_cf"][i],
                  d["paper_par"][i], d["paper_train"][i])]
        seed = i  # one random world per mixture
        config = cfg.with_values(tiny_base(), {"mixture.context_critical": rho, "world.embeddings": "random",
                                               "world.dim": 40, "train.seed": seed})
        cases.append((config, d["random_cf"][i, seed], d["random_par"][i, seed], d["random_train"][i, seed]))
        for config, cf, par, train in cases:
            world = build_world(config)
            start = numpy_accuracies(world, np.zeros_like(world.w_v), world.w_v)
            result = run(config)
            end = numpy_accuracies(world, result.params["kq"], world.w_v)
            for j, want in ((0, start), (-1, end)):
                assert cf[j] == pytest.approx(want["counterfactual_accuracy"], abs=1e-12)
                assert par[j] == pytest.approx(want["parametric_accuracy"], abs=1e-12)
                assert train[j] == pytest.approx(want["train_accuracy"], abs=1e-12)
        np.testing.assert_allclose(d["theory_reliance"][i], d["paper_reliance"][i], rtol=0, atol=1e-10)
        np.testing.assert_allclose(d["random_reliance"][i, seed], result.metrics["reliance"], rtol=0, atol=1e-12)
    assert cpi.figures.plot("paper_metrics", d) is not None


def tiny_paper_metrics() -> dict:
    step = np.arange(8)
    cf = np.array([[0, 0, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0, 0, 0]], dtype=float)
    reliance = np.array([[0.3, 0.5, 0.8, 0.9, 0.8, 0.7, 0.6, 0.58], [0.3, 0.45, 0.7, 0.72, 0.6, 0.45, 0.3, 0.2]])
    loss = np.tile(np.linspace(2.0, 1.0, 8), (2, 1))
    random_cf = np.stack([np.stack([c * 0.9, c * 0.7]) for c in cf])
    random_loss = np.stack([loss, loss], axis=1)
    return dict(
        step=step, lr=1.0, rho=np.array([0.5, 0.4]), dim=300, seed=np.arange(2), n_test=10,
        theory_reliance=reliance + 1e-3, paper_cf=cf, paper_par=1 - cf, paper_train=np.ones((2, 8)),
        paper_reliance=reliance, paper_loss=loss, paper_benchmark=np.exp(-loss),
        random_cf=random_cf, random_par=1 - random_cf, random_train=np.ones((2, 2, 8)),
        random_reliance=np.stack([reliance, reliance - 0.02], axis=1), random_loss=random_loss,
        random_benchmark=np.exp(-random_loss),
    )


def test_paper_metrics_plots_its_arrays():
    d = tiny_paper_metrics()
    fig = cpi.figures.plot_paper_metrics(d)
    for i in range(2):
        for key in ("cf", "par"):
            x, y = line_data(fig, f"paper_{key}_{i}")
            np.testing.assert_array_equal(x, d["step"] + 1)
            np.testing.assert_array_equal(y, d[f"paper_{key}"][i])
            np.testing.assert_allclose(line_data(fig, f"random_{key}_mean_{i}")[1], d[f"random_{key}"][i].mean(0),
                                       atol=1e-15)
        x, y = line_data(fig, f"paper_path_{i}")
        np.testing.assert_array_equal(x, d["paper_benchmark"][i])
        np.testing.assert_array_equal(y, d["paper_reliance"][i])
