"""η* (Proposition 1 at t = 1) and Theorem 1."""

import numpy as np
import pytest

from tests.defaults import KNOWLEDGE, GroupCounts
from cpi.theory.closed_forms import two_step_state
from cpi.theory.eta_star import eta_star, theorem1_check, theta_c_after_one_step
from cpi.theory.reduced import group_trajectory


def test_eta_star_default_is_a_sign_change_far_above_lr_one():
    eta = eta_star(KNOWLEDGE, GroupCounts(10, 10))
    assert eta == pytest.approx(12.801035, abs=1e-5)  # regression value; > 12× the η = 1 of the runs
    f = theta_c_after_one_step(np.array([0.5, 1.0, eta * (1 - 1e-6), eta * (1 + 1e-6)]), KNOWLEDGE, GroupCounts(10, 10))
    assert f[0] > 0 and f[1] > 0 and f[2] > 0 > f[3]
    # the vectorised F agrees with the explicit two-step computation
    after = two_step_state(KNOWLEDGE, GroupCounts(10, 10), eta * (1 + 1e-6))["theta_c_step1"]
    assert f[3] == pytest.approx(after, rel=1e-12)


@pytest.mark.parametrize("n_c", [6, 8, 10, 12, 14])
def test_theorem1_just_above_eta_star(n_c):
    """M_C(1) > M_C(0) and M_C(1) > M_C(2) at η = 1.01 η*, also read off the scan; at
    0.99 η* the second inequality fails (C and CS only, where A(2) − A(1) = √2 η F(η))."""
    above = theorem1_check(KNOWLEDGE, GroupCounts(n_c, 20 - n_c), factor=1.01)
    assert above["holds"] and above["holds_in_gap"]
    traj = group_trajectory(KNOWLEDGE, GroupCounts(n_c, 20 - n_c), lr=above["lr"], steps=2)
    np.testing.assert_allclose(traj["reliance"], above["reliance"], rtol=1e-13)
    np.testing.assert_allclose(traj["A"], above["A"], rtol=1e-13)
    below = theorem1_check(KNOWLEDGE, GroupCounts(n_c, 20 - n_c), factor=0.99)
    assert below["rise"] and not below["fall"]
    assert below["A"][2] > below["A"][1] > below["A"][0]


def test_theorem1_unresolvable_when_c_points_dominate():
    """n_C = 19, n_CS = 1: η* ≈ 68 exists (F changes sign), but there the gaps are ≈ 47 and
    A(2) − A(1) = √2 η F(η) ≈ 1e-23, far below double-precision resolution of A ≈ 48: the
    step-2 fall of Theorem 1 is real but numerically invisible."""
    eta = eta_star(KNOWLEDGE, GroupCounts(19, 1))
    assert 60 < eta < 80
    f = theta_c_after_one_step(np.array([0.99 * eta, 1.01 * eta]), KNOWLEDGE, GroupCounts(19, 1))
    assert f[0] > 0 > f[1]
    assert abs(np.sqrt(2) * 1.01 * eta * f[1]) < 1e-20


def test_no_eta_star_without_initial_rise_or_without_cs_points():
    assert np.isnan(eta_star(KNOWLEDGE, GroupCounts(5, 15)))  # ρ < ρ*: F(0⁺) < 0
    assert np.isnan(eta_star(KNOWLEDGE, GroupCounts(20, 0)))  # only C examples: F > 0 for every η


def test_theorem1_fails_at_lr_one():
    """At η = 1 the first two steps both raise M_C: the inversion needs many steps."""
    r = two_step_state(KNOWLEDGE, GroupCounts(10, 10), 1.0)["reliance"]
    assert r[0] < r[1] < r[2]
