"""η* of Proposition 1 and the check of Theorem 1.

After one GD step of rate η from u = 0 the gaps are g(1) = (η/4n)·M m (M the group Gram,
m the Lemma 4 margins), and the θ_C component of −∇_u L at t = 1 is

    F(η) = (1/(√2 n)) Σ_{G context} n_G h_G(g_G(1)).

F(0⁺) ∝ Σ n_G m_G > 0 when C examples dominate at t = 0 (ρ > ρ*). With C and CS examples
only, h_C > 0 > h_CS for every g, g_C(1) − g_CS(1) = η(m_C − m_CS)/4n grows with η, and
both tails decay like e^{−g}: F turns negative for η large enough. η* = the smallest η
with F(η) < 0 (first sign change on a log grid, refined with brentq). For C and CS only
the test gap moves by A(2) − A(1) = √2 η F(η), so η > η* is exactly Theorem 1's
M_C(1) > M_C(2) (M_C is increasing in A), while M_C(1) > M_C(0) is ρ > ρ*.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from .closed_forms import (
    THETA_C,
    drive,
    group_columns,
    group_gram,
    representative_columns,
    two_step_state,
)
from .groups import CONTEXT_MASK
from .params import GroupCounts, Knowledge


def theta_c_after_one_step(lr, knowledge: Knowledge, counts: GroupCounts):
    """F(η): θ_C component of −∇_u L after one step of rate η (vectorised over lr)."""
    lr = np.atleast_1d(np.asarray(lr, dtype=np.float64))
    cols = representative_columns(knowledge)
    v1, v2, answer = group_columns(cols)
    counts = counts.array()
    n = counts.sum()
    gram = group_gram(counts)
    h0 = drive(np.zeros(len(counts)), v1, v2, answer)
    g1 = lr[:, None] / n * (gram @ h0)[None, :]
    h1 = drive(g1, v1, v2, answer)
    return np.sum(counts * h1 * THETA_C * CONTEXT_MASK, axis=-1) / n


def eta_star(knowledge: Knowledge, counts: GroupCounts, lo: float = 1e-3, hi: float = 1e6,
             n_grid: int = 600) -> float:
    """Smallest η at which F(η) < 0 (NaN when F(0⁺) ≤ 0 or no sign change below `hi`)."""
    grid = np.geomspace(lo, hi, n_grid)
    f = theta_c_after_one_step(grid, knowledge, counts)
    if f[0] <= 0:
        return float("nan")
    neg = np.flatnonzero(f < 0)
    if neg.size == 0:
        return float("nan")
    i = neg[0]
    return float(
        brentq(lambda e: theta_c_after_one_step(e, knowledge, counts)[0], grid[i - 1], grid[i], xtol=1e-14, rtol=1e-14)
    )


def theorem1_check(knowledge: Knowledge, counts: GroupCounts, factor: float = 1.01) -> dict:
    """M_C and A at steps 0, 1, 2 at η = factor·η* and whether Theorem 1's M_C(1) > M_C(0),
    M_C(1) > M_C(2) hold there (`holds`), and the same for the gap A (`holds_in_gap`; M_C is
    increasing in A, but for large η* M_C(1) and M_C(2) can agree to double precision
    because M_C has saturated at its A → ∞ limit)."""
    eta = eta_star(knowledge, counts)
    lr = factor * eta
    state = two_step_state(knowledge, counts, lr)
    r, a = state["reliance"], state["A"]
    return dict(
        eta_star=eta,
        lr=lr,
        reliance=r,
        A=a,
        rise=bool(r[1] > r[0]),
        fall=bool(r[1] > r[2]),
        holds=bool(r[1] > r[0] and r[1] > r[2]),
        holds_in_gap=bool(a[1] > a[0] and a[1] > a[2]),
    )
