"""The experiments outside the idealisation (issue 10): `robustness` (random embeddings vs
dim, ρ* measured vs predicted), `optimizers` (GD, SGD, momentum, Adam) and `paper_metrics`
(the paper's Figures 2 and 1a in the toy).

Each computation runs at tiny parameters and is checked against an independent computation:
the exact per-point reduced dynamics (`cpi.sims.theory_inputs.point_trajectory`) for GD runs, single
`cpi.sims.train.run` calls for the seeds of a sweep, and a NumPy forward pass of the d×d model for
the accuracies. Each plot draws exactly the arrays of its (tiny, hand-made) data dict; the
layout checks of `tests/test_figures.py` run over these dicts too (`TINY_BEYOND`)."""

from __future__ import annotations

import numpy as np
import pytest

import cpi.figures
from cpi.experiments import get
from cpi.experiments.robustness import first_rise
from cpi.figures.style import artist
from cpi.sims import config as cfg
from cpi.sims.theory_inputs import initial_direction, point_trajectory
from cpi.sims.train import run
from cpi.sims.world import build_world
from tests.test_paper_metrics import numpy_accuracies


def tiny_base() -> cfg.Config:
    """A small world (25 tokens) with 4 training points: seconds per experiment."""
    return cfg.with_values(
        cfg.Config(),
        {"world.n_subjects": 8, "world.n_answers": 16, "mixture.n_train": 4, "mixture.n_test": 2,
         "mixture.n_aligned": 2, "train.steps": 6},
    )


def data_of(name, tmp_path, **params):
    return get(name).data(tiny_base(), data_dir=tmp_path, **params)


# ---------------------------------------------------------------------------- computations


def test_first_rise_interpolates_the_sign_change():
    rho = np.linspace(0, 1, 11)
    assert first_rise(rho, rho - 0.33) == pytest.approx(0.33, abs=1e-12)
    assert np.isnan(first_rise(rho, -np.ones(11)))
    assert first_rise(rho, np.where(rho < 0.45, -1.0, 1.0)) == pytest.approx(0.45, abs=1e-12)


def test_robustness_is_the_exact_per_point_dynamics_and_measures_rho_star(tmp_path):
    d = data_of("robustness", tmp_path, dims=(12, 60), seeds=2, steps=6, rho_dims=(60,), n_rho=5)
    assert d["sim_reliance"].shape == (2, 2, 7) and d["value_table_error"].shape == (2, 2)
    assert d["n_tokens"] == 25 and d["value_table_error"][0].min() > 1e-3 and d["value_table_error"][1].max() < 1e-8
    base = cfg.with_values(tiny_base(), {"world.embeddings": "random"})
    for i, dim in enumerate((12, 60)):
        for seed in (0, 1):
            config = cfg.with_values(base, {"world.dim": dim, "train.seed": seed})
            np.testing.assert_allclose(d["sim_reliance"][i, seed], point_trajectory(config)["reliance"],
                                       rtol=0, atol=1e-10)
    paper = run(tiny_base()).metrics["reliance"]
    np.testing.assert_allclose(d["paper_reliance"], paper, rtol=0, atol=1e-12)
    assert d["sim_drop"][1, 0] == pytest.approx(d["sim_reliance"][1, 0].max() - d["sim_reliance"][1, 0, -1])
    # ρ*: the first-step change of M_C from the theory at each grid mixture, interpolated
    np.testing.assert_allclose(d["rho_grid"], [0, 0.25, 0.5, 0.75, 1.0])
    for seed in (0, 1):
        change = []
        for rho in d["rho_grid"]:
            config = cfg.with_values(base, {"world.dim": 60, "train.seed": seed, "mixture.context_critical": rho})
            r = point_trajectory(config, steps=1)["reliance"]
            change.append(r[1] - r[0])
        np.testing.assert_allclose(d["rho_first_change"][0, seed], change, rtol=0, atol=1e-10)
        assert d["rho_star_measured"][0, seed] == pytest.approx(first_rise(d["rho_grid"], np.array(change)), abs=1e-9)
        predicted = initial_direction(cfg.with_values(base, {"world.dim": 60, "train.seed": seed}))["rho_star"]
        assert d["rho_star_predicted"][0, seed] == pytest.approx(predicted)
    assert cpi.figures.plot("robustness", d) is not None


def test_optimizers_gd_is_the_theory_and_sgd_seeds_are_single_runs(tmp_path):
    d = data_of("optimizers", tmp_path, steps=6, seeds=2, batch_sizes=(2,), momentum=0.9, momentum_batch=2,
                adam_factors=(1.0,))
    gd = cfg.with_values(tiny_base(), {"train.steps": 6})
    np.testing.assert_allclose(d["gd_reliance"], point_trajectory(gd)["reliance"], rtol=0, atol=1e-10)
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


# ---------------------------------------------------------------------------- plots of tiny data


def tiny_robustness() -> dict:
    rng = np.random.default_rng(1)
    step, dims = np.arange(6), np.array([20, 40, 100, 400])
    reliance = 0.3 + 0.5 * rng.uniform(size=(4, 3, 6))
    peak, final = reliance.max(-1), reliance[..., -1]
    return dict(
        step=step, dim=dims, seed=np.arange(3), n_tokens=30, paper_dim=33, lr=1.0, rho=0.5,
        paper_reliance=np.linspace(0.3, 0.6, 6), paper_peak=0.9, paper_final=0.59, paper_drop=0.31,
        paper_peak_step=3, paper_rho_star=0.27, sim_reliance=reliance, sim_initial=reliance[..., 0], sim_peak=peak,
        sim_final=final, sim_drop=peak - final, sim_peak_step=reliance.argmax(-1),
        sim_inversion=np.array([[False] * 3, [True] * 3, [True] * 3, [True] * 3]),
        value_table_error=np.array([[1.0] * 3, [0.5] * 3, [1e-12] * 3, [1e-13] * 3]),
        rho_dim=np.array([40, 400]), rho_grid=np.linspace(0, 1, 5),
        rho_first_change=rng.normal(size=(2, 3, 5)), rho_inversion=np.ones((2, 3, 5), dtype=bool),
        rho_star_measured=np.array([[0.12, 0.15, 0.1], [0.27, 0.26, 0.28]]),
        rho_star_predicted=np.array([[0.13, 0.14, 0.11], [0.27, 0.265, 0.275]]),
    )


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


TINY_BEYOND = {"robustness": tiny_robustness, "optimizers": tiny_optimizers, "paper_metrics": tiny_paper_metrics}
"""Tiny data dicts of these figures (`tests/test_figures.py` adds them to its TINY table)."""


def line_data(fig, gid):
    line = artist(fig, gid)
    return np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)


def test_robustness_plots_its_arrays():
    d = tiny_robustness()
    fig = cpi.figures.plot_robustness(d)
    x, y = line_data(fig, "paper_reliance")
    np.testing.assert_array_equal(y, d["paper_reliance"])
    for i in (0, 3):  # the smallest and the largest dimension are always drawn
        np.testing.assert_array_equal(line_data(fig, f"sim_reliance_mean_{i}")[1], d["sim_reliance"][i].mean(0))
    for key in ("peak", "final", "drop"):
        x, y = line_data(fig, f"sim_{key}_mean")
        np.testing.assert_array_equal(x, d["dim"])
        np.testing.assert_allclose(y, d[f"sim_{key}"].mean(1), rtol=0, atol=1e-15)
    for i in range(2):
        np.testing.assert_array_equal(artist(fig, f"rho_star_{i}").get_offsets(),
                                      np.column_stack([d["rho_star_predicted"][i], d["rho_star_measured"][i]]))


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
