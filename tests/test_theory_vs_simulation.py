"""Theory against simulation: the exact reduced dynamics (theory/, group form) against the full
d×d model trained by autodiff (sims/), which share only the value-logit table of Lemma 3."""

from __future__ import annotations

import numpy as np
import pytest

from cpi.cli import execute as main
from cpi.sims.config import load, with_values
from cpi.sims.theory_inputs import counts_of, knowledge_of, reduced_trajectory
from cpi.sims.theory_report import theory_report
from cpi.sims.train import run
from cpi.theory.closed_forms import initial_gradient_components

CONFIGS = {
    "default": {},
    "rho 0.3, lr 2": {"mixture.context_critical": 0.3, "train.lr": 2.0},
    "rho 0.8": {"mixture.context_critical": 0.8, "train.steps": 400},
    "CF and S": {"mixture.context_critical": 0.4, "mixture.counterfactual": 0.2,
                 "mixture.fact_recall": 0.2, "mixture.fact_recall_seen": 0.5},
    "other knowledge": {"knowledge.delta_c": 0.1, "knowledge.delta_m": 0.8, "knowledge.o_c": 1.4,
                        "knowledge.o_r": 0.3, "mixture.n_train": 16, "mixture.context_critical": 0.625,
                        "world.n_subjects": 36, "world.n_answers": 60, "train.lr": 0.5},
}
COMPARED = ["reliance", "attention_context", "aligned_accuracy", "u_theta_c", "u_theta_s",
            "attention_context_C", "attention_context_CS", "attention_context_CF",
            "loss_C", "loss_CS", "loss_CF", "loss_S",
            "neg_grad_theta_c_C", "neg_grad_theta_c_CS", "neg_grad_theta_c_CF", "neg_grad_theta_c_S",
            "neg_grad_theta_s_C", "neg_grad_theta_s_CS", "neg_grad_theta_s_CF", "neg_grad_theta_s_S"]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_reduced_dynamics_equal_the_full_model_at_every_step(name):
    config = with_values(load(), CONFIGS[name])
    simulated = run(config).metrics
    reduced = reduced_trajectory(config)
    checked = 0
    for key in COMPARED:
        if key in simulated:
            np.testing.assert_allclose(np.asarray(reduced[key]), simulated[key], atol=1e-10, rtol=0,
                                       err_msg=key)
            checked += 1
    assert checked >= 9
    assert len(simulated["reliance"]) == config.train.steps + 1 >= 301


@pytest.mark.parametrize("name", ["default", "CF and S"])
def test_closed_form_t0_components_equal_autodiff(name):
    config = with_values(load(), CONFIGS[name])
    simulated = run(with_values(config, {"train.steps": 1})).metrics
    closed = initial_gradient_components(knowledge_of(config), counts_of(config))
    total_c = sum(simulated[f"neg_grad_theta_c_{g}"][0] for g in ["C", "CS", "CF", "S"]
                  if f"neg_grad_theta_c_{g}" in simulated)
    total_s = sum(simulated[f"neg_grad_theta_s_{g}"][0] for g in ["C", "CS", "CF", "S"]
                  if f"neg_grad_theta_s_{g}" in simulated)
    assert total_c == pytest.approx(closed["theta_c"], abs=1e-12)
    assert total_s == pytest.approx(closed["theta_s"], abs=1e-12)


@pytest.mark.parametrize("name", ["default", "rho 0.3, lr 2", "CF and S"])
def test_cpi_theory_json_agrees_with_cpi_run(name, tmp_path, capsys):
    import json

    sets = [a for k, v in CONFIGS[name].items() for a in ("--set", f"{k}={v}")]
    assert main(["theory", "--json", *sets]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert main(["run", *sets, "--out", str(tmp_path)]) == 0
    simulated = json.loads((tmp_path / "summary.json").read_text())
    assert predicted["peak_step"] == simulated["peak_step"]
    assert predicted["inversion"] == simulated["inversion"]
    for key in ["initial_reliance", "peak_reliance", "final_reliance"]:
        assert predicted[key] == pytest.approx(simulated[key], abs=1e-10)
    for key in ["Z0", "m_C", "m_CS", "rho_star", "eta_star", "regime"]:
        assert key in predicted


def test_theory_report_numbers_at_default():
    report = theory_report(load())
    assert report["m_C"] == pytest.approx(3.005676, abs=1e-6)
    assert report["m_CS"] == pytest.approx(-1.111257, abs=1e-6)
    assert report["rho_star"] == pytest.approx(0.269923, abs=1e-6)
    assert report["long_time_slope"] == 0.0
    assert report["long_time_constant"] == pytest.approx(0.6003, abs=1e-4)
