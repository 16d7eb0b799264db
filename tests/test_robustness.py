"""The `robustness` experiment (`cpi.experiments.robustness`) and its figure: random
embeddings against the dimension, and ρ* measured (the first rise over a grid of mixtures)
against ρ* predicted from each world's own margins.

The computation runs at tiny parameters and is checked against the exact per-example reduced
dynamics (`cpi.sims.theory_inputs.example_trajectory`) and a single run of the paper's world; the
plot draws exactly the arrays of a tiny hand-made data dict (the layout checks of
`tests/test_figures.py` run over it too)."""

from __future__ import annotations

import numpy as np
import pytest

import cpi.figures
from cpi.experiments.robustness import first_rise
from cpi.figures.style import artist
from cpi.sims import config as cfg
from cpi.sims.theory_inputs import initial_direction, example_trajectory
from cpi.sims.train import run
from tests.tiny_experiments import data_of, line_data, tiny_base


# ---------------------------------------------------------------------------- computation


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
            np.testing.assert_allclose(d["sim_reliance"][i, seed], example_trajectory(config)["reliance"],
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
            r = example_trajectory(config, steps=1)["reliance"]
            change.append(r[1] - r[0])
        np.testing.assert_allclose(d["rho_first_change"][0, seed], change, rtol=0, atol=1e-10)
        assert d["rho_star_measured"][0, seed] == pytest.approx(first_rise(d["rho_grid"], np.array(change)), abs=1e-9)
        predicted = initial_direction(cfg.with_values(base, {"world.dim": 60, "train.seed": seed}))["rho_star"]
        assert d["rho_star_predicted"][0, seed] == pytest.approx(predicted)
    assert cpi.figures.plot("robustness", d) is not None


# ---------------------------------------------------------------------------- plot of tiny data


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
