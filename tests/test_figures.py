"""Figures: each plotting function shows exactly the arrays it is given, data are saved and
reused, `make_figures` writes PNG and PDF, and the presentation layer never imports the
simulator.

Longer than 400 lines because it holds one tiny data dict and one exact-content check per
figure (ten figures; the other figures' tiny dicts and checks live with their experiments'
tests: test_robustness.py, test_optimizers.py, test_paper_metrics.py,
test_learned_pretraining.py, bridge_figure_data.py), plus the layout checks that run over all
of them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.collections import PathCollection

import cpi.figures
import cpi.figures.make
from cpi.experiments import EXPERIMENTS, NAMES, get
from cpi.theory.summary import INVERSION, NO_PEAK, NO_RISE, first_peak
from cpi.experiments.cache import data_bytes, experiment_data, is_saved
from cpi.figures.make import make_figures
from cpi.figures.style import artist
from cpi.sims import config as cfg
from tests.test_learned_pretraining import tiny_learned_pretraining
from tests.test_optimizers import tiny_optimizers
from tests.test_timescale import tiny_timescale
from tests.test_paper_metrics import tiny_paper_metrics
from tests.test_robustness import tiny_robustness

from .bridge_figure_data import BRIDGE_TINY, LATE_TINY, tiny_bridge_onset, tiny_bridge_prediction, tiny_bridge_timescale


# ---------------------------------------------------------------------------- tiny data dicts


def tiny_inversion() -> dict:
    step = np.arange(6)
    reliance = np.array([0.3, 0.6, 0.8, 0.7, 0.6, 0.55])
    return dict(
        step=step, sim_reliance=reliance, theory_reliance=reliance + 1e-3,
        sim_attention=np.linspace(0.5, 0.7, 6), theory_attention=np.linspace(0.5, 0.71, 6),
        sim_aligned=np.array([0.4, 0.3, 0.25, 0.3, 0.32, 0.33]),
        theory_aligned=np.array([0.4, 0.3, 0.25, 0.3, 0.32, 0.34]),
        sim_peak=0.8, sim_peak_step=2, theory_peak=0.801, theory_peak_step=2, rho=0.5, rho_star=0.27, lr=1.0,
        values_frozen=True,
    )


def tiny_tug_of_war() -> dict:
    step = np.arange(5)
    c, cs = np.array([0.3, 0.2, 0.1, 0.08, 0.07]), np.array([-0.1, -0.1, -0.09, -0.1, -0.11])
    return dict(
        step=step, lr=1.0, sim_C=c, sim_CS=cs, sim_sum=c + cs, sim_total=c + cs, theory_C=c * 1.01,
        theory_CS=cs * 1.01, theory_sum=(c + cs) * 1.01, theory_total=(c + cs) * 1.01, sim_sign_change=3,
        theory_sign_change=3, sim_peak_step=3, theory_peak_step=3, other_groups=False,
    )


def tiny_phase_diagram() -> dict:
    rng = np.random.default_rng(0)
    return dict(
        rho_star=0.27, m_C=3.0, m_CS=-1.1, n_train=4, lr=1.0, step=np.arange(5),
        theory_rho=np.array([0.0, 0.5, 1.0]), theory_reliance=rng.uniform(size=(3, 5)),
        theory_peak_step=np.array([0, 2, 4]),
        theory_rho_lines=np.linspace(0, 1, 4), theory_initial=np.full(4, 0.3),
        theory_peak=np.array([0.3, 0.5, 0.8, 0.9]), theory_final=np.array([0.1, 0.2, 0.5, 0.9]),
        theory_drop=np.array([0.2, 0.3, 0.3, 0.0]), theory_lines_peak_step=np.array([0, 1, 3, 4]),
        sim_rho=np.array([0.0, 0.5, 0.75]), sim_initial=np.full(3, 0.3), sim_peak=np.array([0.3, 0.6, 0.85]),
        sim_final=np.array([0.1, 0.3, 0.6]), sim_drop=np.array([0.2, 0.3, 0.25]), sim_peak_step=np.array([0, 2, 3]),
        sim_inversion=np.array([False, True, True]), sim_configs=np.array(["a", "b", "c"]),
        flow_time=np.geomspace(1e-2, 1e4, 6), flow_rho=np.array([0.25, 0.75]),
        flow_A=np.array([[0, 0.1, 0, -1, -2, -3.0], [0, 0.2, 1, 2, 2.5, 3.0]]),
        flow_slope=np.array([-0.4, 0.4]), flow_constant=np.array([1.0, np.nan]),
        flow_consistent=np.array([True, False]),
    )


def tiny_three_steps() -> dict:
    eta = np.geomspace(0.1, 100, 7)
    reliance = np.stack([np.full(7, 0.29), np.linspace(0.3, 0.95, 7), np.linspace(0.31, 0.94, 7)], axis=1)
    return dict(
        eta_star=12.8, rho=0.5, rho_star=0.27, theory_eta=eta, theory_reliance=reliance,
        theory_theta_c=np.linspace(0.16, -1e-3, 7), sim_eta=np.array([1.0, 10.0]),
        sim_reliance=np.array([[0.29, 0.4, 0.5], [0.29, 0.92, 0.927]]), sim_theta_c=np.array([0.15, 0.01]),
        sim_configs=np.array(["a", "b"]),
    )


def tiny_knowledge_strength() -> dict:
    data = dict(steps=4, theory_rho=np.array([0.0, 0.5, 1.0]), n_answers=80, delta_c=0.2, delta_m=0.6)
    for short, values in (("dm", np.array([0.3, 0.6, 0.9])), ("dc", np.array([0.05, 0.1, 0.2]))):
        data.update({
            f"theory_{short}": values,
            f"theory_{short}_depth": np.arange(9.0).reshape(3, 3) / 10,
            f"theory_{short}_peak_step": np.array([[0, 2, 4]] * 3),
            f"theory_{short}_kind": np.array([[1, 0, 2]] * 3),
            f"rho_star_{short}_x": np.linspace(values[0], values[-1], 5),
            f"rho_star_{short}": np.array([0.2, 0.3, 0.4, 0.55, 0.6]),
            f"sim_{short}": np.array([values[0], values[1], values[2]]),
            f"sim_{short}_rho": np.array([0.25, 0.5, 0.75]),
            f"sim_{short}_depth": np.array([0.1, 0.2, 0.0]),
            f"sim_{short}_peak_step": np.array([1, 2, 4]),
            f"sim_{short}_kind": np.array([0, 0, 2]),
            f"sim_{short}_configs": np.array(["a", "b", "c"]),
        })
    return data


def tiny_filtering() -> dict:
    step = np.arange(6)
    frac = np.array([0.0, 0.25, 0.5])
    sim_rel = np.array([[0.3, 0.6, 0.8, 0.7, 0.6, 0.55], [0.3, 0.7, 0.9, 0.88, 0.87, 0.86],
                        [0.3, 0.8, 0.9, 0.95, 0.95, 0.96]])
    return dict(
        step=step, rho=0.5, rho_star=0.27, n_context=4, lr=1.0,
        theory_fraction=frac, theory_dropped=np.array([0, 1, 2]),
        theory_counts=np.array([[2, 2, 0], [2, 1, 0], [2, 0, 0]]),
        theory_reliance=sim_rel + 1e-3, theory_aligned=np.full((3, 6), 0.3),
        theory_aligned_final=np.array([0.33, 0.25, 0.2]), aligned_initial=0.38,
        theory_peak=np.array([0.8, 0.9, 0.96]), theory_final=np.array([0.55, 0.86, 0.96]),
        theory_drop=np.array([0.25, 0.04, 0.0]), theory_peak_step=np.array([2, 2, 5]),
        theory_first_peak_step=np.array([2, 2, 5]), theory_depth=np.array([0.25, 0.04, 0.0]),
        sim_fraction=np.array([0.0, 0.5]), sim_theory_reliance=sim_rel[[0, 2]] + 1e-3, sim_reliance=sim_rel[[0, 2]],
        sim_aligned=np.full((2, 6), 0.3), sim_aligned_final=np.array([0.32, 0.21]),
        sim_peak=np.array([0.8, 0.96]), sim_final=np.array([0.55, 0.96]), sim_drop=np.array([0.25, 0.0]),
        sim_peak_step=np.array([2, 5]), sim_first_peak_step=np.array([2, 5]), sim_depth=np.array([0.25, 0.0]),
        sim_configs=np.array(["a", "b"]),
    )


def tiny_counterfactual() -> dict:
    step = np.arange(8)
    th = np.array([[0.3, 0.6, 0.8, 0.7, 0.6, 0.55, 0.5, 0.5], [0.3, 0.7, 0.8, 0.9, 0.85, 0.8, 0.8, 0.8],
                   [0.3, 0.8, 0.9, 0.95, 0.96, 0.96, 0.96, 0.96]])
    return dict(
        step=step, n_train=4, n_c=2, n_cs=2, rho=0.5, lr=1.0,
        theory_k=np.arange(3), theory_fraction=np.arange(3) / 4, theory_reliance=th,
        theory_peak=th.max(1), theory_final=th[:, -1], theory_drop=th.max(1) - th[:, -1],
        theory_peak_step=th.argmax(1), theory_first_peak_step=np.array([2, 3, 7]),
        theory_depth=np.array([0.3, 0.1, 0.0]),
        sim_k=np.array([0, 2]), sim_fraction=np.array([0.0, 0.5]), sim_reliance=th[[0, 2]] - 1e-3,
        sim_peak=th.max(1)[[0, 2]], sim_final=th[[0, 2], -1], sim_drop=np.array([0.3, 0.0]),
        sim_peak_step=np.array([2, 7]), sim_first_peak_step=np.array([2, 7]), sim_depth=np.array([0.3, 0.0]),
        sim_configs=np.array(["a", "b"]),
        flow_time=np.geomspace(1e-2, 1e6, 5), flow_reliance=np.tile(np.linspace(0.3, 0.9, 5), (3, 1)),
        flow_peak_time=np.array([30.0, 3000.0, 1e6]), flow_depth=np.array([0.3, 0.01, 0.0]),
        flow_kind=np.array([0, 0, 2]),
        needed_n=np.array([4, 8]), needed_horizon=np.array([10, 100, 1000]), needed=np.array([[0, 2, 3], [0, 1, -1]]),
        needed_max_cf=5, check_steps=np.array([100]), check_needed=np.array([[2.0], [1.0]]),
    )


def tiny_value_training() -> dict:
    step, checkpoint = np.arange(5), np.array([0, 2, 4])
    value_lr = np.array([0.0, 0.5, 1.0])
    rel = np.array([[0.3, 0.8, 0.7, 0.6, 0.55], [0.3, 0.8, 0.85, 0.8, 0.7], [0.3, 0.8, 0.9, 0.95, 0.96]])
    blocks = {f"dv_{k}": np.arange(9.0).reshape(3, 3) / (i + 1)
              for i, k in enumerate(("C_cs", "C_cc", "CS_cs", "CS_cc", "test_cc", "test_ac", "test_cs", "test_as"))}
    return dict(
        step=step, lr=1.0, value_lr=value_lr, checkpoint=checkpoint, sim_reliance=rel,
        sim_attention=np.linspace(0.5, 0.9, 15).reshape(3, 5), sim_aligned=np.full((3, 5), 0.3),
        sim_pull_C=np.full((3, 5), 0.1), sim_pull_CS=np.full((3, 5), -0.1),
        sim_peak=rel.max(1), sim_final=rel[:, -1], sim_drop=rel.max(1) - rel[:, -1], sim_peak_step=rel.argmax(1),
        sim_first_peak_step=np.array([1, 2, 4]), sim_depth=np.array([0.25, 0.15, 0.0]),
        margin_C=np.full((3, 3), 3.0), margin_CS=np.array([[-1.8, -1.8, -1.8], [-1.8, -1.0, -1.5], [-1.8, 0.5, 2.0]]),
        C_subject_prob=np.full((3, 3), 0.01), theory_reliance=rel[0] + 1e-3, theory_attention=np.linspace(0.5, 0.7, 5),
        theory_sigma=np.linspace(0, 1, 5), theory_reliance_of_sigma=np.linspace(0.1, 0.95, 5),
        test_value_gap_context=3.2, test_value_gap_subject=-4.0, shown_value_lr=np.array([0.0, 1.0]),
        detail_value_lr=np.array([0.5, 1.0]), sim_configs=np.array(["a", "b", "c"]), **blocks,
    )


def tiny_fact_recall() -> dict:
    step = np.arange(5)
    th = np.stack([np.array([[0.3, 0.8, 0.7, 0.6, 0.55], [0.3, 0.7, 0.65, 0.6, 0.5], [0.3, 0.65, 0.6, 0.55, 0.5]]),
                   np.array([[0.3, 0.8, 0.7, 0.6, 0.55], [0.3, 0.75, 0.8, 0.7, 0.6], [0.3, 0.7, 0.8, 0.75, 0.65]])])
    sim = th[:, [0, 2]] - 1e-3
    return dict(
        step=step, lr=1.0, n_c=2, n_cs=2, n_cf=0, delta_s=0.9, theory_k=np.arange(3), theory_reliance=th,
        theory_peak=th.max(-1), theory_final=th[..., -1], theory_drop=th.max(-1) - th[..., -1],
        theory_peak_step=th.argmax(-1), theory_first_peak_step=th.argmax(-1), theory_depth=th.max(-1) - th[..., -1],
        theory_sum_theta_c=np.full((2, 3), 3.3), theory_sum_theta_s=np.array([[-3.3, -1.0, 1.2], [-3.3, -3.3, -3.3]]),
        theory_mean_theta_c=np.full((2, 3), 0.2), theory_mean_theta_s=np.full((2, 3), -0.2), prop2_holds=True,
        sim_k=np.array([0, 2]), sim_reliance=sim, sim_peak=sim.max(-1), sim_final=sim[..., -1],
        sim_drop=sim.max(-1) - sim[..., -1], sim_peak_step=sim.argmax(-1), sim_first_peak_step=sim.argmax(-1),
        sim_depth=sim.max(-1) - sim[..., -1], sim_sum_theta_c=np.full((2, 2), 3.3),
        sim_sum_theta_s=np.array([[-3.3, 1.2], [-3.3, -3.3]]), sim_configs=np.array(["a", "b"]),
    )


def tiny_tasks() -> dict:
    step = np.arange(6)
    gam = np.array([0.0, 0.3, 0.6, 0.9])
    r = np.linspace(0.3, 0.9, 6)
    data = dict(step=step, lr=1.0, theory_gamma=gam, counterfactual=0.25,
                counts_aug=np.array([[2, 0, 2, 0, 0], [2, 2, 0, 0, 0]]), counts_ctrl=np.array([[2, 2, 0, 0, 0]] * 2))
    for name, shift in (("aug_r1", 0.05), ("aug_r2", 0.02), ("ctrl_r1", 0.0), ("ctrl_r2", 0.0)):
        data[f"theory_{name}"] = np.stack([r + shift * g for g in gam])
        data[f"theory_{name}_final"] = data[f"theory_{name}"][:, -1]
        data[f"theory_{name}_peak"] = data[f"theory_{name}"].max(-1)
        data[f"sim_{name}"] = data[f"theory_{name}"][[0, 2]] - 1e-3
        data[f"sim_{name}_final"] = data[f"sim_{name}"][:, -1]
    data.update(
        theory_transfer_final=data["theory_aug_r2_final"] - data["theory_ctrl_r2_final"],
        theory_aug_r2_first_peak_step=np.array([1, 1, 1, 1]), theory_aug_r2_end_slope=np.array([0.0, 0.0, 0.0, -0.01]),
        theory_step1_transfer_A=0.4 * gam, theory_step1_transfer_reliance=0.1 * gam, sim_gamma=np.array([0.0, 0.6]),
        sim_transfer_final=np.array([0.0, 0.012]), sim_configs=np.array(["a", "b", "c", "d"]),
    )
    return data


TINY = {
    "inversion": tiny_inversion,
    "tug_of_war": tiny_tug_of_war,
    "phase_diagram": tiny_phase_diagram,
    "three_steps": tiny_three_steps,
    "knowledge_strength": tiny_knowledge_strength,
    "filtering": tiny_filtering,
    "counterfactual": tiny_counterfactual,
    "value_training": tiny_value_training,
    "fact_recall": tiny_fact_recall,
    "tasks": tiny_tasks,
    "robustness": tiny_robustness,
    "optimizers": tiny_optimizers,
    "paper_metrics": tiny_paper_metrics,
    "learned_pretraining": tiny_learned_pretraining,
    **BRIDGE_TINY,
    "timescale": tiny_timescale,
    "bridge_prediction": tiny_bridge_prediction,
    "bridge_onset": tiny_bridge_onset,
    **LATE_TINY,
    "bridge_timescale": tiny_bridge_timescale,
}


def assert_line(fig, gid, x, y):
    line = artist(fig, gid)
    np.testing.assert_array_equal(line.get_xdata(), x)
    np.testing.assert_array_equal(line.get_ydata(), y)


def assert_offsets(fig, gid, x, y, values=None):
    points = artist(fig, gid)
    assert isinstance(points, PathCollection)
    np.testing.assert_array_equal(points.get_offsets(), np.column_stack([x, y]).reshape(-1, 2))
    if values is not None:
        np.testing.assert_array_equal(np.asarray(points.get_array()), values)


def mesh_values(fig, gid, shape):
    return np.ma.asarray(artist(fig, gid).get_array()).reshape(shape)


# ---------------------------------------------------------------------------- plotting functions


def test_every_experiment_has_parameters_a_computation_and_a_plot():
    assert list(cpi.figures.NAMES) == list(NAMES) == [e.name for e in EXPERIMENTS]
    assert list(TINY) == list(NAMES)
    for experiment in EXPERIMENTS:
        assert get(experiment.name) is experiment
        assert callable(experiment.compute) and isinstance(experiment.params, dict)
        assert cpi.figures.plot_function(experiment.name) is getattr(cpi.figures, f"plot_{experiment.name}")
    with pytest.raises(KeyError, match="experiments: inversion"):
        get("inverse")


def test_inversion_plots_its_arrays():
    d = tiny_inversion()
    fig = cpi.figures.plot_inversion(d)
    for key in ("sim_reliance", "theory_reliance", "sim_attention", "theory_attention", "sim_aligned",
                "theory_aligned"):
        assert_line(fig, key, d["step"], d[key])
    assert_line(fig, "sim_peak", [2], [0.8])
    assert "0.800" in fig._suptitle.get_text() and "step 2" in fig._suptitle.get_text()
    labels = [t.get_text() for legend in legends(fig) for t in legend.get_texts()]
    assert any("simulation (markers)" in s for s in labels) and any("theory (line)" in s for s in labels)


def test_tug_of_war_plots_its_arrays_and_marks_the_sign_change():
    d = tiny_tug_of_war()
    fig = cpi.figures.plot_tug_of_war(d)
    for suffix in ("", "_log"):
        for key in ("sim_C", "sim_CS", "sim_sum", "theory_C", "theory_CS", "theory_sum"):
            assert_line(fig, key + suffix, d["step"], d[key])
    assert any("t = 3" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    assert "step 3" in fig._suptitle.get_text()


def test_phase_diagram_plots_its_arrays():
    d = tiny_phase_diagram()
    fig = cpi.figures.plot_phase_diagram(d)
    np.testing.assert_array_equal(mesh_values(fig, "theory_reliance", (5, 3)), d["theory_reliance"].T)
    for key in ("initial", "peak", "final", "drop"):
        assert_line(fig, f"theory_{key}", d["theory_rho_lines"], d[f"theory_{key}"])
    for key in ("peak", "final", "drop"):
        assert_line(fig, f"sim_{key}", d["sim_rho"], d[f"sim_{key}"])
    inside = np.array([False, True, True, False])  # 0 < peak step < last step
    assert_line(fig, "theory_lines_peak_step", np.where(inside, d["theory_rho_lines"], np.nan),
                np.where(inside, d["theory_lines_peak_step"], np.nan))
    assert_line(fig, "sim_peak_step", d["sim_rho"][1:], d["sim_peak_step"][1:])
    for i in range(2):
        assert_line(fig, f"flow_A_{i}", d["flow_time"], d["flow_A"][i])
    law = artist(fig, "flow_law_0")
    np.testing.assert_allclose(law.get_ydata(), -0.4 * np.log(law.get_xdata()) + 1.0)
    with pytest.raises(KeyError):  # no constant, no asymptote
        artist(fig, "flow_law_1")


def test_three_steps_plots_its_arrays():
    d = tiny_three_steps()
    fig = cpi.figures.plot_three_steps(d)
    for t in range(3):
        assert_line(fig, f"theory_reliance_{t}", d["theory_eta"], d["theory_reliance"][:, t])
        assert_line(fig, f"sim_reliance_{t}", d["sim_eta"], d["sim_reliance"][:, t])
    assert_line(fig, "theory_gap", d["theory_eta"], d["theory_reliance"][:, 2] - d["theory_reliance"][:, 1])
    assert_line(fig, "sim_gap", d["sim_eta"], d["sim_reliance"][:, 2] - d["sim_reliance"][:, 1])
    assert_line(fig, "theory_theta_c", d["theory_eta"], d["theory_theta_c"])
    assert_line(fig, "sim_theta_c", d["sim_eta"], d["sim_theta_c"])
    assert "12.80" in fig._suptitle.get_text()


def test_knowledge_strength_plots_its_arrays():
    d = tiny_knowledge_strength()
    fig = cpi.figures.plot_knowledge_strength(d)
    for short in ("dm", "dc"):
        shown = mesh_values(fig, f"theory_{short}_depth", (3, 3))
        expected = np.ma.masked_where(d[f"theory_{short}_kind"] != 0, d[f"theory_{short}_depth"]).T
        np.testing.assert_array_equal(shown.mask, expected.mask)
        np.testing.assert_array_equal(shown.compressed(), expected.compressed())
        assert_line(fig, f"rho_star_{short}", d[f"rho_star_{short}_x"], d[f"rho_star_{short}"])
        inv = d[f"sim_{short}_kind"] == 0
        assert_offsets(fig, f"sim_{short}_inversion", d[f"sim_{short}"][inv], d[f"sim_{short}_rho"][inv],
                       d[f"sim_{short}_depth"][inv])
        assert_offsets(fig, f"sim_{short}_none", d[f"sim_{short}"][~inv], d[f"sim_{short}_rho"][~inv])


def test_filtering_plots_its_arrays():
    d = tiny_filtering()
    fig = cpi.figures.plot_filtering(d)
    for i in range(2):
        assert_line(fig, f"theory_reliance_{i}", d["step"], d["sim_theory_reliance"][i])
        assert_line(fig, f"sim_reliance_{i}", d["step"], d["sim_reliance"][i])
    for key in ("peak", "final", "drop"):
        assert_line(fig, f"theory_{key}", d["theory_fraction"], d[f"theory_{key}"])
        assert_line(fig, f"sim_{key}", d["sim_fraction"], d[f"sim_{key}"])
    assert_line(fig, "theory_aligned_final", d["theory_fraction"], d["theory_aligned_final"])
    assert_line(fig, "sim_aligned_final", d["sim_fraction"], d["sim_aligned_final"])
    title = fig._suptitle.get_text()
    assert "0.040 with 25% dropped" in title and "0.330 → 0.200" in title and "from 50% on" in title


def test_counterfactual_plots_its_arrays():
    d = tiny_counterfactual()
    fig = cpi.figures.plot_counterfactual(d)
    for i, k in enumerate(d["sim_k"]):
        assert_line(fig, f"theory_reliance_{i}", d["step"], d["theory_reliance"][k])
        assert_line(fig, f"sim_reliance_{i}", d["step"], d["sim_reliance"][i])
    for key in ("peak", "final", "drop"):
        assert_line(fig, f"theory_{key}", d["theory_k"], d[f"theory_{key}"])
        assert_line(fig, f"sim_{key}", d["sim_k"], d[f"sim_{key}"])
    assert_line(fig, "flow_peak_time", d["theory_k"], [30.0, 3000.0, np.nan])  # k = n_CS: no peak
    assert_line(fig, "flow_depth", d["theory_k"], [0.3, 0.01, np.nan])
    assert_line(fig, "sim_first_peak_step", [0], [2.0])  # the peak at the last step is not a peak
    assert_line(fig, "needed_0", d["needed_horizon"], [0, 2, 3])
    assert_line(fig, "needed_1", d["needed_horizon"], [0, 1, np.nan])  # none within max_cf
    for i in range(2):
        assert_line(fig, f"check_needed_{i}", d["check_steps"], d["check_needed"][i])
    assert "×100" in fig._suptitle.get_text() and "postpone" in fig._suptitle.get_text()


def test_value_training_plots_its_arrays():
    d = tiny_value_training()
    fig = cpi.figures.plot_value_training(d)
    assert_line(fig, "theory_reliance", d["step"], d["theory_reliance"])
    for i in (0, 2):  # shown: value_lr 0 and 1
        assert_line(fig, f"sim_reliance_{i}", d["step"], d["sim_reliance"][i])
        assert_line(fig, f"margin_CS_{i}", d["checkpoint"], d["margin_CS"][i])
        assert_line(fig, f"sim_mc_sigma_{i}", d["sim_attention"][i], d["sim_reliance"][i])
    for key in ("peak", "final", "depth"):
        assert_line(fig, f"sim_{key}", d["value_lr"], d[f"sim_{key}"])
    assert_line(fig, "sim_aligned_final", d["value_lr"], d["sim_aligned"][:, -1])
    for i in (1, 2):  # detail: value_lr 0.5 and 1
        for key in ("C_cs", "C_cc", "CS_cs", "CS_cc", "test_cc", "test_cs"):
            assert_line(fig, f"dv_{key}_{i}", d["checkpoint"], d[f"dv_{key}"][i])
    assert_line(fig, "theory_reliance_of_sigma", d["theory_sigma"], d["theory_reliance_of_sigma"])
    title = fig._suptitle.get_text()
    assert "value_lr ≤ 0.5" in title and "value_lr ≥ 1" in title and "frozen" in title


def test_fact_recall_plots_its_arrays():
    d = tiny_fact_recall()
    fig = cpi.figures.plot_fact_recall(d)
    for j, k in enumerate(d["sim_k"]):
        for i in range(2):
            if k == 0 and i == 1:
                continue
            assert_line(fig, f"theory_reliance_{i}_{j}", d["step"], d["theory_reliance"][i, k])
            assert_line(fig, f"sim_reliance_{i}_{j}", d["step"], d["sim_reliance"][i, j])
    for i in range(2):
        for key in ("peak", "final"):
            assert_line(fig, f"theory_{key}_{i}", d["theory_k"], d[f"theory_{key}"][i])
            assert_line(fig, f"sim_{key}_{i}", d["sim_k"], d[f"sim_{key}"][i])
        for key in ("c", "s"):
            assert_line(fig, f"theory_sum_theta_{key}_{i}", d["theory_k"], d[f"theory_sum_theta_{key}"][i])
            assert_line(fig, f"sim_sum_theta_{key}_{i}", d["sim_k"], d[f"sim_sum_theta_{key}"][i])
    assert "-3.30 → 1.20" in fig._suptitle.get_text()


def test_tasks_plots_its_arrays():
    d = tiny_tasks()
    fig = cpi.figures.plot_tasks(d)
    for j, g in ((0, 0), (1, 2)):  # simulated γ 0 and 0.6 = theory rows 0 and 2
        assert_line(fig, f"theory_aug_r2_{j}", d["step"], d["theory_aug_r2"][g])
        assert_line(fig, f"sim_aug_r2_{j}", d["step"], d["sim_aug_r2"][j])
        assert_line(fig, f"theory_ctrl_r2_{j}", d["step"], d["theory_ctrl_r2"][g])
    for key in ("aug_r1", "aug_r2", "ctrl_r2"):
        assert_line(fig, f"theory_{key}_final", d["theory_gamma"], d[f"theory_{key}_final"])
        assert_line(fig, f"sim_{key}_final", d["sim_gamma"], d[f"sim_{key}_final"])
    assert_line(fig, "theory_transfer_final", d["theory_gamma"], d["theory_transfer_final"])
    assert_line(fig, "sim_transfer_final", d["sim_gamma"], d["sim_transfer_final"])
    assert_line(fig, "theory_step1_transfer_A", d["theory_gamma"], d["theory_step1_transfer_A"])
    title = fig._suptitle.get_text()
    assert "+0.000 at $\\gamma$ = 0" in title and "+0.012 at $\\gamma$ = 0.6" in title
    assert "$\\gamma$ ≥ 0.9 relation 2" in title  # the last γ is horizon-limited


# ---------------------------------------------------------------------------- layout


def inversion_at_rho_035() -> dict:
    """Inversion data shaped like the default config at ρ = 0.35 (M_C falls far below its
    start, aligned accuracy ends near its top): the case whose legends used to cover data."""
    step = np.arange(301)

    def curve(*points):
        t, y = zip(*points)
        return np.interp(step, t, y)

    reliance = curve((0, 0.29), (16, 0.581), (50, 0.37), (100, 0.25), (200, 0.16), (300, 0.133))
    attention = curve((0, 0.5), (16, 0.65), (100, 0.48), (300, 0.38))
    aligned = curve((0, 0.38), (16, 0.319), (100, 0.39), (300, 0.432))
    return dict(
        step=step, sim_reliance=reliance, theory_reliance=reliance, sim_attention=attention,
        theory_attention=attention, sim_aligned=aligned, theory_aligned=aligned, sim_peak=0.581, sim_peak_step=16,
        theory_peak=0.581, theory_peak_step=16, rho=0.35, rho_star=0.27, lr=1.0, values_frozen=True,
    )


def phase_diagram_like_the_default() -> dict:
    """Phase-diagram data shaped like the default config's: peak and final rise across ρ, the
    drop peaks near ρ = 0.4, and the flows end at A = −7.6 ... 13 with slopes −8/21 ... 4/7."""
    d = tiny_phase_diagram()
    rho = np.linspace(0, 1, 101)
    peak = 0.29 + 0.67 / (1 + np.exp(-(rho - 0.36) / 0.04))
    final = 0.01 + 0.95 / (1 + np.exp(-(rho - 0.5) / 0.04))
    slopes = np.array([-8, 0, 4, 8, 12]) / 21
    t = np.geomspace(1e-2, 1e10, 200)
    d.update(
        theory_rho_lines=rho, theory_initial=np.full(101, 0.29), theory_peak=peak, theory_final=final,
        theory_drop=peak - final, theory_lines_peak_step=np.where(rho > 0.27, 10 + 990 * rho ** 4, 0).astype(int),
        sim_rho=rho[::5], sim_initial=np.full(21, 0.29), sim_peak=peak[::5], sim_final=final[::5],
        sim_drop=(peak - final)[::5], sim_peak_step=np.where(rho[::5] > 0.27, 20, 0),
        sim_inversion=rho[::5] > 0.27, flow_time=t, flow_rho=np.array([0.3, 0.5, 0.6, 0.7, 0.8]),
        flow_A=slopes[:, None] * np.log(t) + np.array([1.2, 0.6, 0.2, -0.1, -0.2])[:, None],
        flow_slope=slopes, flow_constant=np.array([1.2, 0.6, 0.2, -0.1, -0.2]), flow_consistent=np.ones(5, bool),
        step=np.arange(1001),
    )
    d["theory_reliance"] = np.tile(np.linspace(0.3, 0.9, 1001), (3, 1))
    return d


def within(box, xy: np.ndarray) -> np.ndarray:
    """Which display points (N, 2) lie inside the box."""
    return (xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1) & (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1)


def drawn(fig):
    fig.canvas.draw()  # constrained layout runs at draw time
    return fig.canvas.get_renderer()


def data_points(fig) -> np.ndarray:
    """Display coordinates of every plotted data example (artists tagged with a gid: lines, with
    their segments sampled finely, and marker collections) that lies inside its axes."""
    from matplotlib.lines import Line2D

    out = []
    for ax in fig.axes:
        box = ax.get_window_extent()
        for a in ax.get_children():
            if a.get_gid() is None or not a.get_visible():
                continue
            if isinstance(a, Line2D):
                xy = a.get_transform().transform(np.column_stack([a.get_xdata(), a.get_ydata()]).astype(float))
                xy = xy[np.all(np.isfinite(xy), axis=1)]
                if a.get_linestyle() not in ("None", "none", "") and len(xy) > 1:
                    f = np.linspace(0, 1, 25)[:, None, None]
                    xy = (xy[:-1] * (1 - f) + xy[1:] * f).reshape(-1, 2)
            elif isinstance(a, PathCollection):
                xy = a.get_offset_transform().transform(a.get_offsets())
            else:
                continue
            out.append(xy[within(box, xy)] if len(xy) else xy)
    return np.concatenate(out) if out else np.empty((0, 2))


def legends(fig) -> list:
    return [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]


@pytest.mark.parametrize("name, make",
                         [("inversion", inversion_at_rho_035), ("phase_diagram", phase_diagram_like_the_default)])
def test_legends_and_labels_cover_no_data(name, make):
    fig = cpi.figures.plot(name, make())
    renderer = drawn(fig)
    points = data_points(fig)
    assert len(points) > 100
    boxes = [legend.get_window_extent(renderer) for legend in legends(fig)]
    boxes += [t.get_window_extent(renderer) for ax in fig.axes for t in ax.texts if t.get_text()]
    assert boxes
    for box in boxes:
        inside = within(box, points)
        assert not inside.any(), f"{inside.sum()} data examples under {box}"


LAYOUT_CASES = [*TINY.items(), ("inversion", inversion_at_rho_035), ("phase_diagram", phase_diagram_like_the_default)]


@pytest.mark.parametrize("name, make", LAYOUT_CASES, ids=[f"{n}-{m.__name__}" for n, m in LAYOUT_CASES])
def test_every_text_lies_within_the_figure(name, make):
    from matplotlib.text import Text

    fig = cpi.figures.plot(name, make())
    renderer = drawn(fig)
    page = fig.bbox

    def inside(box):
        return box.x0 >= page.x0 - 1 and box.y0 >= page.y0 - 1 and box.x1 <= page.x1 + 1 and box.y1 <= page.y1 + 1

    axes = [axis for ax in fig.axes if ax.axison for axis in (ax.xaxis, ax.yaxis)]
    # Tick labels exist for ticks outside the view too; an axis's extent counts only the drawn ones.
    tick_labels = {id(t) for axis in axes for tick in axis.get_major_ticks() + axis.get_minor_ticks()
                   for t in (tick.label1, tick.label2)}
    for axis in axes:
        box = axis.get_tightbbox(renderer)
        assert box is None or inside(box), (axis, box, page)
    for text in fig.findobj(Text):
        if id(text) in tick_labels or not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        assert inside(box), (text.get_text(), box, page)


def test_first_peak_kinds():
    r = np.array([
        [0.3, 0.5, 0.9, 0.6, 0.7, 0.95],  # rises, falls to 0.6, recovers above the peak
        [0.3, 0.2, 0.1, 0.15, 0.1, 0.05],  # falls from step 0
        [0.3, 0.4, 0.5, 0.6, 0.7, 0.8],  # still rising
    ])
    out = first_peak(r)
    np.testing.assert_array_equal(out["kind"], [INVERSION, NO_RISE, NO_PEAK])
    np.testing.assert_array_equal(out["peak_step"], [2, 0, 5])
    np.testing.assert_allclose(out["depth"], [0.3, 0.3 - 0.05, 0.0])


# ---------------------------------------------------------------------------- data: save and reuse


def tiny_base() -> cfg.Config:
    return cfg.with_values(
        cfg.Config(),
        {"world.n_subjects": 8, "world.n_answers": 16, "mixture.n_train": 4, "mixture.n_test": 2,
         "mixture.n_aligned": 2, "train.steps": 6},
    )


def test_inversion_data_is_saved_and_reused(tmp_path, monkeypatch):
    base = tiny_base()
    inversion = get("inversion")
    first = experiment_data("inversion", base, tmp_path)
    # simulation and exact reduced theory agree (the figure's premise)
    np.testing.assert_allclose(first["sim_reliance"], first["theory_reliance"], atol=1e-10)
    np.testing.assert_allclose(first["sim_aligned"], first["theory_aligned"], atol=1e-10)
    assert cfg.load_text(first["config"]) == base
    saved = tmp_path / "inversion.npz"
    assert saved.exists()
    before = saved.read_bytes()

    def boom(*args, **kwargs):
        raise AssertionError("recomputed although the saved data match")

    monkeypatch.setattr(inversion.module, "compute", boom)
    again = experiment_data("inversion", base, tmp_path)
    assert again.keys() == first.keys()
    for key in first:
        np.testing.assert_array_equal(again[key], first[key])
    assert saved.read_bytes() == before
    assert is_saved("inversion", base, tmp_path)
    # a changed base config or force recomputes
    changed = cfg.with_values(base, {"train.lr": 0.5})
    assert not is_saved("inversion", changed, tmp_path)
    with pytest.raises(AssertionError, match="recomputed"):
        experiment_data("inversion", changed, tmp_path)
    with pytest.raises(AssertionError, match="recomputed"):
        experiment_data("inversion", base, tmp_path, force=True)


def test_counterfactual_needed_curve_is_counterfactual_needed_at_every_horizon():
    from cpi.experiments.counterfactual import counterfactual_needed_curve
    from tests.defaults import KNOWLEDGE
    from cpi.theory.mitigations import counterfactual_needed

    curve = counterfactual_needed_curve(KNOWLEDGE, 0.5, 20, max_cf=12, steps=120)
    assert curve[0] == 0 and np.all(np.diff(curve) >= 0)
    for steps in (30, 60, 120):
        expected = counterfactual_needed(KNOWLEDGE, rho=0.5, n=20, mode="add", criterion="discrete", steps=steps,
                                         max_cf=12)["n_cf"]
        assert curve[steps] == expected


def test_value_training_run_is_the_simulator_and_test_rows_move_together():
    from cpi.sims.train import run
    from cpi.sims.value_training import value_training_run

    base = cfg.with_values(tiny_base(), {"train.steps": 4})
    out = value_training_run(base, [0.0, 0.7], record_every=2)
    for i, value_lr in enumerate((0.0, 0.7)):
        expected = run(cfg.with_values(base, {"train.value_lr": value_lr}))
        for key in ("reliance", "attention_context", "neg_grad_theta_c_CS"):
            np.testing.assert_allclose(out[key][i], expected.metrics[key], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(out["checkpoint"], [0, 2, 4])
    assert np.all(out["dv_C_cc"][0] == 0) and np.all(out["dv_C_cc"][1, 1:] > 0)  # frozen vs trained W_V
    # unseen test tokens: the context row and the memorised-fact row of ΔV move together
    np.testing.assert_allclose(out["dv_test_cc"], out["dv_test_ac"], atol=1e-12)
    np.testing.assert_allclose(out["dv_test_cs"], out["dv_test_as"], atol=1e-12)


def test_parameters_enter_the_inputs_hash(tmp_path, monkeypatch):
    calls = []

    def fake(base, work, **params):
        calls.append(params)
        return tiny_three_steps()

    three_steps = get("three_steps")
    monkeypatch.setattr(three_steps.module, "compute", fake)
    experiment_data("three_steps", data_dir=tmp_path)
    experiment_data("three_steps", data_dir=tmp_path)
    assert len(calls) == 1 and calls[0] == three_steps.params
    experiment_data("three_steps", data_dir=tmp_path, n_eta=5)
    assert len(calls) == 2 and calls[1]["n_eta"] == 5
    with pytest.raises(TypeError, match="no parameter"):
        experiment_data("three_steps", data_dir=tmp_path, bogus=1)


def test_saved_data_have_deterministic_bytes():
    d = tiny_phase_diagram()
    assert data_bytes(d) == data_bytes(dict(reversed(list(d.items()))))


# ---------------------------------------------------------------------------- make step and CLI


@pytest.fixture
def fake_data(monkeypatch):
    """Every figure's computation replaced by its tiny data dict, made before any is replaced
    (a tiny dict may come from the experiment's own computation at a small scale)."""
    data = {name: make() for name, make in TINY.items()}
    for name in TINY:
        monkeypatch.setattr(get(name).module, "compute", lambda base, work, _data=data[name], **params: _data)


def one_line_figure(name, data):
    """A stand-in for `cpi.figures.plot`: one line, so that saving it costs little."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2), layout="constrained")
    ax.plot([0, 1], [0, 1])
    return fig


def test_make_figures_writes_png_and_pdf(tmp_path, fake_data, capsys, monkeypatch):
    """What `make_figures` writes, and that it reuses saved data: every figure but `inversion`
    is drawn as a stand-in here (each real figure is drawn by
    `test_every_text_lies_within_the_figure`, and written as PNG and PDF by the slow
    `test_make_figures_writes_every_real_figure`)."""
    monkeypatch.setattr(cpi.figures.make, "DPI", 40)  # small PNGs: the test is about what is written
    real = cpi.figures.make.plot
    monkeypatch.setattr(cpi.figures.make, "plot", lambda name, data: (real if name == "inversion" else one_line_figure)(
        name, data))
    stand_in_headlines(monkeypatch)
    paths = make_figures(tmp_path / "out")
    expected = [tmp_path / "out" / f"{name}.{ext}" for name in NAMES for ext in ("png", "pdf", "json")]
    assert paths == expected
    for path in paths:
        head = path.read_bytes()[:8]
        assert head.startswith({".png": b"\x89PNG", ".pdf": b"%PDF", ".json": b"{"}[path.suffix])
    assert all((tmp_path / "out" / "data" / f"{name}.npz").exists() for name in NAMES)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == len(NAMES) and all("data computed" in line for line in err)
    pdf = (tmp_path / "out" / "inversion.pdf").read_bytes()
    make_figures(tmp_path / "out", names=["inversion"])
    assert "data reused" in capsys.readouterr().err
    assert (tmp_path / "out" / "inversion.pdf").read_bytes() == pdf  # no timestamps


def stand_in_headlines(monkeypatch):
    """The fake data dicts hold what each figure draws, not every number its headline quotes:
    the headline summaries (tested on real data by tests/test_results_document.py) are stood in
    for all but `inversion`'s."""
    import cpi.experiments.summaries as summaries

    real = summaries.headline
    monkeypatch.setattr(summaries, "headline", lambda name, data: real(name, data) if name == "inversion"
                        else {"experiment": name, "version": summaries.SUMMARY_VERSION, "inputs": data.get("inputs"),
                              "numbers": {}})


@pytest.mark.slow
def test_make_figures_writes_every_real_figure(tmp_path, fake_data, monkeypatch):
    monkeypatch.setattr(cpi.figures.make, "DPI", 40)
    stand_in_headlines(monkeypatch)
    paths = make_figures(tmp_path / "out", progress=False)
    assert paths == [tmp_path / "out" / f"{name}.{ext}" for name in NAMES for ext in ("png", "pdf", "json")]
    for path in paths:
        assert path.read_bytes()[:8].startswith({".png": b"\x89PNG", ".pdf": b"%PDF", ".json": b"{"}[path.suffix])


def test_presentation_layer_does_not_import_the_simulator():
    code = (
        "import sys, cpi.figures, cpi.figures.make\n"
        "bad = [m for m in ('jax', 'cpi.sims', 'cpi.sims.train', 'cpi.experiments.cache',\n"
        "                   'cpi.experiments.inversion')\n"
        "       if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
