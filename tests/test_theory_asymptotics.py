"""Phase boundary ρ*, the ln t law, A∞, the shared summary and the regime labels."""

import math

import numpy as np
import pytest

from tests.defaults import KNOWLEDGE, GroupCounts, Knowledge
from cpi.theory.asymptotics import (
    a_infinity,
    classify_regime,
    initial_direction,
    long_time_law,
    long_time_slope,
    regime_details,
    summarize,
)
from cpi.theory.closed_forms import paper_quantities
from cpi.theory.reduced import group_flow, group_trajectory

LEMMA6_COUNTEREXAMPLE = KNOWLEDGE.replace(delta_c=0.05, delta_m=0.9)  # ρ* ≈ 0.66 > ½


@pytest.mark.parametrize("knowledge", [KNOWLEDGE, LEMMA6_COUNTEREXAMPLE, Knowledge(20, 50, 0.1, 0.5, 2.0, 1.0)])
def test_initial_direction_flips_at_rho_star(knowledge):
    """With n = 1000 points, the first GD step moves A down for n_C = ⌊ρ*n⌋ and up for
    n_C = ⌈ρ*n⌉ (scan recursion vs closed-form ρ*)."""
    n = 1000
    rs = paper_quantities(knowledge)["rho_star"]
    lo, hi = math.floor(rs * n), math.ceil(rs * n)
    assert lo < rs * n < hi
    traj = group_trajectory(knowledge, GroupCounts(np.array([lo, hi]), np.array([n - lo, n - hi])), lr=1.0, steps=1)
    assert traj["A"][0, 1] < 0 < traj["A"][1, 1]
    assert initial_direction(knowledge, GroupCounts(lo, n - lo)) == -1
    assert initial_direction(knowledge, GroupCounts(hi, n - hi)) == 1


@pytest.mark.parametrize("counts", [(14, 6), (6, 14), (17, 3)])
def test_log_t_slope_of_long_flow(counts):
    """dA/d ln t measured on the flow (secant between t = 1e9 and 1e11) vs (n_C − n_CS)/(n + 1).

    Tolerance 5e-5, justified by the measured size of the corrections: A(t) − (slope·ln t +
    const) decays like c/t (up to a slowly varying factor), with c ≈ 5e2 for (14, 6) and c ≈ 1e5
    for (17, 3) (whose transient trough sits at t ≈ 1.6e5); the secant is then off by
    ≲ c/(1e9·ln 100) ≈ 2e-5, and the integrator (rtol 1e-11, log-time) adds ≈ 1e-7. The 1/t
    decay itself is checked too."""
    times = np.array([0.0, 1e7, 1e8, 1e9, 1e11])
    flow = group_flow(KNOWLEDGE, GroupCounts(*counts), times=times)
    measured = (flow["A"][4] - flow["A"][3]) / math.log(100.0)
    assert measured == pytest.approx(long_time_slope(*counts), abs=5e-5)
    law = long_time_law(KNOWLEDGE, GroupCounts(*counts))
    assert law["slope"] == pytest.approx(long_time_slope(*counts), abs=1e-14)
    resid = flow["A"][1:] - law["slope"] * np.log(times[1:]) - law["constant"]
    assert abs(resid[3]) < 1e-5
    # corrections ∝ 1/t up to a slowly varying factor: a decade shrinks them 7-11 fold
    assert 7.0 < resid[0] / resid[1] < 11.0


def test_a_infinity_at_balanced_mixture():
    q = paper_quantities(KNOWLEDGE)
    a_inf = a_infinity(10, q["k_C"], q["k_CS"])
    assert a_inf == pytest.approx(0.6003, abs=5e-5)
    assert long_time_law(KNOWLEDGE, GroupCounts(10, 10))["constant"] == pytest.approx(a_inf, abs=1e-12)
    flow = group_flow(KNOWLEDGE, GroupCounts(10, 10), times=np.array([0.0, 1e8]))
    assert flow["A"][-1] == pytest.approx(a_inf, abs=1e-6)


@pytest.mark.parametrize("counts", [(5, 3, 2, 4, 1), (8, 4, 0, 3, 0), (6, 6, 3, 0, 0)])
def test_general_log_law_with_cf_and_s_points(counts):
    """The matched-asymptotics law rᵀM⁻¹(ε ln t + a) for mixtures with CF and S examples."""
    law = long_time_law(KNOWLEDGE, GroupCounts(*counts))
    assert law["consistent"]
    flow = group_flow(KNOWLEDGE, GroupCounts(*counts), times=np.array([0.0, 1e9, 1e11]))
    measured = (flow["A"][2] - flow["A"][1]) / math.log(100.0)
    assert measured == pytest.approx(law["slope"], abs=5e-5)
    assert flow["A"][2] == pytest.approx(law["slope"] * math.log(1e11) + law["constant"], abs=1e-5)


def test_summarize():
    s = summarize(np.array([0.2, 0.5, 0.9, 0.7, 0.6]))
    assert s == dict(initial_reliance=0.2, peak_reliance=0.9, peak_step=2, final_reliance=0.6,
                     first_peak_reliance=0.9, first_peak_step=2, trough_reliance=0.6, trough_step=4, inversion=True)
    assert not summarize(np.array([0.2, 0.3, 0.4]))["inversion"]
    assert not summarize(np.array([0.4, 0.3, 0.2]))["inversion"]
    d = summarize(group_trajectory(KNOWLEDGE, GroupCounts(10, 10), steps=300)["reliance"])
    assert d["inversion"] and d["peak_step"] == 32
    assert d["peak_reliance"] == pytest.approx(0.899163, abs=5e-7)


@pytest.mark.parametrize(
    "knowledge,n_c,label",
    [
        (KNOWLEDGE, 0, "monotone fall"),
        (KNOWLEDGE, 2, "fall with transient rebound"),
        (KNOWLEDGE, 5, "monotone fall"),
        (KNOWLEDGE, 6, "inversion without recovery"),
        (KNOWLEDGE, 10, "inversion without recovery"),
        (KNOWLEDGE, 14, "inversion with slow recovery"),
        (KNOWLEDGE, 19, "inversion with slow recovery"),
        (KNOWLEDGE, 20, "monotone rise"),
        (LEMMA6_COUNTEREXAMPLE, 12, "fall then slow recovery"),
        (LEMMA6_COUNTEREXAMPLE, 14, "monotone rise"),
    ],
)
def test_classify_regime(knowledge, n_c, label):
    assert classify_regime(knowledge, GroupCounts(n_c, 20 - n_c)) == label


def test_regime_turning_points_match_discrete_run():
    """The flow's peak time at ρ = ½ sits next to the discrete peak (η = 1 ⇒ t = step)."""
    d = regime_details(KNOWLEDGE, GroupCounts(10, 10))
    assert d["turning_kinds"] == ["max"]
    assert abs(d["turning_times"][0] - 32) < 1.5
