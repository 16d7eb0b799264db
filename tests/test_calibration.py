"""The calibrated toy (cpi.experiments.calibration): its initial M_C is the closed form of the
strengths alone, its step size reproduces the transformer's change over the first recorded
interval, out-of-range strengths are clamped and reported, and the committed bridge summary
states how the toy's initial M_C compares with the transformer's at the same strengths."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logit

from cpi.experiments import calibration as cal
from cpi.experiments.configs import with_values
from cpi.sims.config import Config
from cpi.sims.theory_inputs import reduced_trajectory

ROOT = Path(__file__).resolve().parents[1]
MEASURED = (0.3035, 0.99555)
"""δ_C, δ_M of the order the bridge transformer's pretrained model has."""


@pytest.mark.parametrize("delta_c, delta_m, o_c, n_answers", [(0.2, 0.6, 1.0, 80), (*MEASURED, 1.0, 80),
                                                              (*MEASURED, 2.5, 120), (0.05, 0.3, 0.4, 60)])
def test_toy_initial_is_the_closed_form_of_the_strengths_alone(delta_c, delta_m, o_c, n_answers):
    """M_C(0) = σ(½(logit δ_C − logit δ_M)): log Z₀ and o_c cancel (Lemma 3's table)."""
    config = with_values(Config(), knowledge__delta_c=delta_c, knowledge__delta_m=delta_m, knowledge__o_c=o_c,
                         world__n_answers=n_answers)
    engine = reduced_trajectory(config, steps=1)["reliance"][0]
    assert engine == pytest.approx(cal.toy_initial(delta_c, delta_m), abs=1e-12)


def test_toy_initial_of_the_fast_engine():
    from cpi.sims.train import run

    config = with_values(Config(), knowledge__delta_c=MEASURED[0], knowledge__delta_m=MEASURED[1], train__steps=1)
    assert run(config).metrics["reliance"][0] == pytest.approx(cal.toy_initial(*MEASURED), abs=1e-12)


def test_effective_delta_m_inverts_the_closed_form():
    for delta_c, initial in ((0.3, 0.275), (0.2, 0.29), (0.5, 0.1)):
        dm = cal.effective_delta_m(delta_c, initial)
        assert cal.toy_initial(delta_c, dm) == pytest.approx(initial, abs=1e-14)
    assert cal.effective_delta_m(0.2, cal.toy_initial(0.2, 0.6)) == pytest.approx(0.6, abs=1e-14)


def test_initial_tolerance_is_the_first_order_propagation():
    dc, dm, sc, sm, h = 0.3, 0.99, 0.02, 0.001, 1e-7
    dmc = (cal.toy_initial(dc + h, dm) - cal.toy_initial(dc - h, dm)) / (2 * h)
    dmm = (cal.toy_initial(dc, dm + h) - cal.toy_initial(dc, dm - h)) / (2 * h)
    assert cal.initial_tolerance(sc, sm, dc, dm) == pytest.approx(abs(dmc) * sc + abs(dmm) * sm, rel=1e-6)


@pytest.mark.parametrize("target", [0.02, 0.0871, 0.35])
def test_matched_step_reproduces_the_target_change(target):
    c = cal.calibrate(Config(), *MEASURED, rho=0.5, change=target, interval=5)
    assert c["matched"] and not c["clamped"]
    r = reduced_trajectory(c["config"], steps=5)["reliance"]
    assert r[5] - r[0] == pytest.approx(target, abs=1e-8)
    assert c["achieved"] == pytest.approx(target, abs=1e-8)
    assert c["config"].train.lr == c["lr"] and c["config"].knowledge.delta_m == MEASURED[1]
    assert c["config"].mixture.context_critical == 0.5 and c["toy_rho"] == 0.5
    smaller = with_values(c["config"], train__lr=0.999 * c["lr"])
    r = reduced_trajectory(smaller, steps=5)["reliance"]
    assert r[5] - r[0] < target  # the smallest step size that reaches the target
    assert c["initial"] == pytest.approx(cal.toy_initial(*MEASURED), abs=1e-15)


def test_unreachable_target_is_reported():
    """At ρ = ½ above the toy's ρ* M_C can only rise at first: a fall is not matched."""
    c = cal.calibrate(Config(), *MEASURED, rho=0.5, change=-0.1, interval=5)
    assert not c["matched"] and c["lr"] in cal.LR_GRID


@pytest.mark.parametrize("delta_m, used", [(1.0, 1 - cal.CLAMP), (0.9999999, 1 - cal.CLAMP), (0.995, 0.995)])
def test_strengths_outside_the_range_are_clamped_and_reported(delta_m, used):
    c = cal.calibrate(Config(), 0.3, delta_m, rho=0.5, change=0.05, interval=5)
    assert c["toy_delta_m"] == used and c["delta_m"] == delta_m
    assert c["clamped"] == (used != delta_m)
    assert c["config"].knowledge.delta_m == used
    low = cal.calibrate(Config(), 0.0, 0.9, rho=0.5, change=0.05, interval=5)
    assert low["clamped"] and low["toy_delta_c"] == cal.CLAMP


def test_calibration_arrays_record_every_run():
    runs = [cal.calibrate(Config(), 0.3, dm, rho=0.5, change=0.05, interval=5) for dm in (0.99, 1.0)]
    arrays = cal.calibration_arrays(runs)
    np.testing.assert_array_equal(arrays["toy_clamped"], [False, True])
    np.testing.assert_array_equal(arrays["toy_delta_m"], [0.99, 1 - cal.CLAMP])
    assert arrays["toy_interval"] == 5


def test_committed_summary_states_the_initial_mismatch():
    """The bridge's committed summary: the calibrated toys' mean M_C(0) is the closed form at the
    seeds' mean strengths to within the spread the strengths allow, and the transformer's own
    M_C(0) lies far outside that spread (a finding the results document states: the transformer
    does not weigh its context and subject pathways ½ and ½ as the toy does); the δ_M at which the
    toy would start where the transformer does lies far below the measured δ_M."""
    numbers = json.loads((ROOT / "figures" / "bridge_inversion.json").read_text(encoding="utf-8"))["numbers"]
    tol = numbers["toy_initial_tolerance"]
    at_mean = cal.toy_initial(numbers["delta_c_mean"], numbers["delta_m_mean"])
    assert abs(numbers["toy_initial_mean"] - at_mean) <= tol
    assert abs(numbers["gap_initial_mean"]) > tol + numbers["initial_sd"] + numbers["toy_initial_sd"]
    assert numbers["toy_clamped_seeds"] == 0 and numbers["toy_matched_seeds"] == numbers["seeds"]
    assert logit(numbers["effective_delta_m_mean"]) < logit(numbers["delta_m_mean"]) - 1.0
