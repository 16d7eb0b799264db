"""The timescale of the inversion (theory/NOTES.md §19, `cpi.theory.timescale`,
`cpi.experiments.timescale`): the flow's peak found in the variable s is the group flow's peak;
ρ_∞ and Ψ in closed form; the law ln t_peak = nΨ + ½ ln n + C against the exact flow; the
first epoch of SGD on the fast engine equals the one-dimensional recursion; the figure draws
its arrays and `headline` is a flat dict of numbers."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import cpi.figures
from cpi.experiments import timescale as experiment
from cpi.experiments.cache import normalise
from cpi.sims import config as cfg
from cpi.theory.closed_forms import paper_quantities
from cpi.theory.params import GroupCounts, Knowledge
from cpi.theory.pretrained import logit, z0
from cpi.theory.reduced import group_descent, group_flow
from cpi.theory.timescale import (
    balance_ratio, context_tails, first_epoch_gap, flow_peak, growth_rate, local_balance, peak_time_law,
)
from tests.tiny_experiments import line_data

K = Knowledge()


def test_context_tails_and_balance_ratio_in_closed_form():
    k_c, k_cs = context_tails(K)
    log_z0 = np.log(z0(K.n_subjects, K.n_answers, K.o_c, K.o_r))
    np.testing.assert_allclose(k_c, (1 - K.delta_c) * (logit(K.delta_c) + log_z0 - K.o_c), rtol=1e-12)
    np.testing.assert_allclose(k_cs, (1 - K.delta_c) * (logit(K.delta_m) - logit(K.delta_c)), rtol=1e-12)
    r_inf = balance_ratio(K)
    np.testing.assert_allclose(r_inf, 0.3618125238, atol=1e-9)
    # the local balance runs from ρ* at A = 0 to ρ_∞ as A → ∞, increasingly
    balance = local_balance(K, np.linspace(0, 40, 81))
    np.testing.assert_allclose(balance[0], paper_quantities(K)["rho_star"], rtol=1e-12)
    np.testing.assert_allclose(balance[-1], r_inf, rtol=1e-12)
    assert np.all(np.diff(balance) > -1e-12)
    assert float(growth_rate(K, r_inf - 1e-3)) == 0.0 and float(growth_rate(K, 0.5)) > 0


@pytest.mark.parametrize("n, n_c", [(20, 10), (40, 24), (80, 40)])
def test_flow_peak_is_the_group_flows_peak(n, n_c):
    """The peak found in the variable s is where the group flow's exact dA/dt changes sign."""
    peak = flow_peak(K, n_c, n - n_c)
    t = peak["t_peak"]
    out = group_flow(K, GroupCounts(n_c=n_c, n_cs=n - n_c), times=np.array([0.0, t * (1 - 1e-3), t, t * (1 + 1e-3)]))
    assert out["dA_dt"][1] > 0 > out["dA_dt"][3]
    assert abs(out["dA_dt"][2]) < 1e-3 * abs(out["dA_dt"][1])
    np.testing.assert_allclose(out["A"][2], peak["a_peak"], rtol=1e-7)


def test_gd_peak_step_is_near_the_flow_peak():
    """Full-batch GD (reduced engine) at η = 1 peaks within a few per cent of the flow."""
    for n, n_c in ((20, 10), (40, 20), (80, 40)):
        _, s = group_descent(K, GroupCounts(n_c=n_c, n_cs=n - n_c), lr=1.0, steps=1000, record=False)
        t = flow_peak(K, n_c, n - n_c)["t_peak"]
        assert abs(int(s["peak_step"]) - t) < 0.05 * t + 1


@pytest.mark.parametrize("rho", [0.5, 0.7])
def test_log_peak_time_follows_the_law(rho):
    """ln t_peak − (nΨ + ½ ln n) converges (its changes shrink like 1/n), and the slope of ln t_peak
    between n and 2n is Ψ."""
    ns = np.array([160, 320, 640, 1280])
    log_t = np.array([flow_peak(K, rho * n, (1 - rho) * n)["log_t_peak"] for n in ns])
    law = peak_time_law(K, rho, ns)
    residual = log_t - law["log_t"]
    changes = np.abs(np.diff(residual))
    assert np.all(changes[1:] < 0.8 * changes[:-1]) and changes[-1] < 0.02
    slope = (log_t[-1] - log_t[-2] - 0.5 * np.log(2)) / (ns[-1] - ns[-2])
    np.testing.assert_allclose(slope, law["psi"], rtol=2e-3)


def test_below_the_balance_ratio_the_peak_time_is_not_exponential():
    """Below ρ_∞ (ρ* < 0.3 < ρ_∞) ln t_peak / n falls towards 0 as n grows."""
    rates = [flow_peak(K, 0.3 * n, 0.7 * n)["log_t_peak"] / n for n in (80, 320, 1280)]
    assert rates[0] > rates[1] > rates[2] and rates[2] < 0.005


def _fast_world(n: int, seeds=(0, 1, 2)):
    from pathlib import Path
    import tempfile

    from cpi.experiments.seeded import swept

    base = experiment.fitted(cfg.Config(), n, 0.5)
    config = experiment.with_values(base, train__optimizer="sgd", train__batch_size=10, train__steps=n // 10)
    with tempfile.TemporaryDirectory() as work:
        out = swept(config, {"train.seed": list(seeds)}, Path(work))
    return config, out["reliance"]


def test_first_epoch_of_sgd_is_the_one_dimensional_recursion():
    """Before an example's first visit its own α is 0, so in the first epoch the fast engine's M_C
    is the recursion A ← A + (η/b)[b_C h_C(A) + (b − b_C) h_CS(A)] driven by the same batches."""
    n = 60
    config, engine = _fast_world(n)
    know = experiment.knowledge_of(config)
    batch_c = np.array([experiment._batch_c(s, n // 10, n, n // 2, 10) for s in (0, 1, 2)])
    assert len({tuple(b) for b in batch_c}) > 1  # the seeds draw different batches
    rec = first_epoch_gap(know, batch_c, 10, 1.0)["reliance"]
    np.testing.assert_allclose(engine, rec, atol=1e-12, rtol=0)
    # the expected recursion (b_C = ρb) only rises
    expected = first_epoch_gap(know, np.full(200, 5.0), 10, 1.0)["reliance"]
    assert np.all(np.diff(expected) > 0)


# ---------------------------------------------------------------------------- experiment, figure, headline


@lru_cache(maxsize=1)
def _tiny_computed() -> dict:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as work:
        data = experiment.compute(cfg.Config(), Path(work), n_train=(20, 40), rho=(0.5, 0.6), rho_grid=(0.3, 0.7, 5),
                                  rho_grid_n=(40,), gd_steps=400, sgd_steps=300, sgd_seeds=2, batch_size=10,
                                  first_epoch_n=(40,), first_epoch_seeds=2)
    return normalise(data)


def tiny_timescale() -> dict:
    """A small real data dict of the experiment (2 n, 2 ρ, 2 seeds)."""
    return dict(_tiny_computed())


def test_timescale_experiment_small_run_and_headline():
    d = tiny_timescale()
    np.testing.assert_allclose(d["epoch_engine_reliance"], d["epoch_recursion_reliance"], atol=1e-12)
    assert d["gd_peak_step"][0, 0] == 32 and d["gd_peak_step"][0, 1] > 32
    assert np.all(d["sgd_peak_step"][0, 0] > 0)
    h = experiment.headline(d)
    assert all(isinstance(k, str) and type(v) in (int, float, str) for k, v in h.items())
    assert h["gd_peak_step_rho50_n20"] == 32 and h["sgd_seeds"] == 2 and h["gd_horizon_steps"] == 400
    np.testing.assert_allclose(h["sgd_peak_epoch_rho50_n20_mean"], d["sgd_peak_step"][0, 0].mean() * 10 / 20)
    assert h["first_epoch_max_abs_error"] < 1e-12


def test_timescale_plots_its_arrays():
    d = tiny_timescale()
    fig = cpi.figures.plot_timescale(d)
    x, y = line_data(fig, "flow_log_peak_time_0")
    np.testing.assert_array_equal(x, d["n_train"])
    np.testing.assert_allclose(y, d["flow_log_peak_time"][0] / np.log(10), rtol=1e-15)
    np.testing.assert_allclose(line_data(fig, "epoch_recursion_0")[1], d["epoch_recursion_reliance"][-1, 0, :5])
    np.testing.assert_allclose(line_data(fig, "grid_psi_0")[1], d["grid_psi"][0])


@pytest.mark.slow
def test_timescale_default_experiment(tmp_path):
    """The default experiment: the first epoch is the recursion for every n and seed, GD and SGD
    peak near the flow, and ln t_peak at n = 1280 is the law's to 0.2%."""
    d = experiment.compute(cfg.Config(), tmp_path, **experiment.PARAMS)
    h = experiment.headline(d)
    assert h["first_epoch_max_abs_error"] < 1e-12
    flow = np.exp(d["flow_log_peak_time"])
    gd = d["gd_peak_step"]
    assert np.all(np.abs(gd[gd >= 0] - flow[gd >= 0]) < 0.1 * flow[gd >= 0] + 1)
    for key in ("rho50", "rho60", "rho70"):
        assert abs(h[f"flow_log_peak_over_law_{key}_n1280"] - 1) < 2e-3
        assert h[f"sgd_peak_epoch_{key}_n20_mean"] > 1
