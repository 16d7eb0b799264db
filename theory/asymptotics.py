"""Phase boundaries and long-time behaviour of the reduced dynamics.

Conventions: counts per group in `groups.GROUPS` order (C, CS, CF, S_seen, S_unseen);
A is the gap of a fresh conflict (or aligned) example, A = Σ_G n_G·test_G·α_G with test_G = 1
for context groups and −½ for S groups. M_C is increasing in A, so the shape of M_C(t)
is the shape of A(t).
"""

from __future__ import annotations

import numpy as np

from .closed_forms import (
    TEST_INNER,
    group_gram,
    lemma4_margins,
    rho_star,
    tail_coefficients,
)
from .groups import GROUPS
from .params import GroupCounts, Knowledge
from .summary import summarize  # the one definition shared with sims (re-exported here)

__all__ = [
    "rho_star",
    "initial_drift",
    "initial_direction",
    "long_time_slope",
    "a_infinity",
    "long_time_law",
    "summarize",
    "regime_details",
    "classify_regime",
    "REGIMES",
]

REGIMES = (
    "monotone fall",
    "inversion without recovery",
    "inversion with slow recovery",
    "monotone rise",
    "fall then slow recovery",
    "fall with transient rebound",
)
"""Labels of `classify_regime` (see its docstring). The last two are outside the paper's
picture: "fall then slow recovery" needs an initial fall with n_C ≥ n_CS, i.e. ρ* ≥ ½,
which happens only where Lemma 6 (|m_C| > |m_CS|) fails; "fall with transient rebound"
appears at small ρ < ρ* (default: n_C = 1..3 of 20) and is tiny (ΔM_C ≈ 1e-3)."""


def _margins_vector(m: dict) -> np.ndarray:
    return np.array([m["m_C"], m["m_CS"], m["m_CF"], m["m_S"], 0.0])


def initial_drift(knowledge: Knowledge, counts: GroupCounts) -> float:
    """dA/dt at t = 0 of the flow: (1/4n) Σ_G n_G test_G m_G. For C and CS examples only this
    is (1/4)(ρ m_C + (1 − ρ) m_CS): positive iff ρ > ρ*."""
    counts = counts.array()
    m = _margins_vector(lemma4_margins(knowledge))
    return float(np.sum(counts * TEST_INNER * 0.25 * m) / counts.sum())


def initial_direction(knowledge: Knowledge, counts: GroupCounts) -> int:
    """Sign (+1, 0, −1) of `initial_drift`: +1 = attention to context rises first."""
    return int(np.sign(initial_drift(knowledge, counts)))


def long_time_slope(n_c, n_cs) -> float:
    """C and CS only: (n + 1)A(t) ≈ (n_C − n_CS) ln t + const, so dA/d ln t → (n_C − n_CS)/(n + 1)."""
    return (n_c - n_cs) / (n_c + n_cs + 1.0)


def a_infinity(n_c, k_c, k_cs) -> float:
    """C and CS only, n_C = n_CS: A(t) → (n_C/(n + 1)) ln(k_C/k_CS), n = 2 n_C."""
    return n_c / (2.0 * n_c + 1.0) * np.log(k_c / k_cs)


_DIRECTIONS = np.array([1.0, -1.0, 1.0, 1.0, 0.0])
"""ε_G: the sign of h_G for all g (C, CF, S_seen drive towards x₁; CS towards the subject)."""


def long_time_law(knowledge: Knowledge, counts: GroupCounts) -> dict:
    """Matched asymptotics of the flow for any mixture of groups.

    Ansatz g_G = ε_G ln t + a_G (ε_C = ε_CF = ε_S = +1, ε_CS = −1; unseen S examples have
    h ≡ 0 and stay at α = 0). With g = Mα on the active groups, α = M⁻¹g, so
    dα/dt = M⁻¹ε/t must equal h_G/n ≈ ε_G κ_G e^{−ε_G g_G}/n, κ = tail coefficient. This
    needs β_G = ε_G (M⁻¹ε)_G > 0 ("consistent") and gives a_G = −ε_G ln(n β_G/κ_G);
    A = rᵀα ≈ slope·ln t + constant with slope = rᵀM⁻¹ε, constant = rᵀM⁻¹a.
    For C and CS only: slope = (n_C − n_CS)/(n + 1), and at n_C = n_CS the constant is
    A∞ = (n_C/(n + 1)) ln(k_C/k_CS)."""
    counts = counts.array()
    active = (counts > 0) & (_DIRECTIONS != 0)
    tails = tail_coefficients(knowledge)
    kappa = np.array([tails["k_C"], tails["k_CS"], tails["k_CF"], tails["k_S"], np.nan])
    n = counts.sum()
    m_full = group_gram(counts)
    idx = np.flatnonzero(active)
    if idx.size == 0:
        return dict(slope=0.0, constant=0.0, consistent=True, offsets={}, beta={})
    m_act = m_full[np.ix_(idx, idx)]
    eps = _DIRECTIONS[idx]
    r = (TEST_INNER * counts)[idx]
    minv_eps = np.linalg.solve(m_act, eps)
    beta = eps * minv_eps
    consistent = bool(np.all(beta > 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        a = -eps * np.log(n * beta / kappa[idx])
    slope = float(r @ minv_eps)
    constant = float(r @ np.linalg.solve(m_act, a)) if consistent else np.nan
    names = [GROUPS[i] for i in idx]
    return dict(
        slope=slope,
        constant=constant,
        consistent=consistent,
        offsets=dict(zip(names, a.tolist())),
        beta=dict(zip(names, beta.tolist())),
    )


def regime_details(knowledge: Knowledge, counts: GroupCounts, t_max: float = 1e8, n_grid: int = 1500) -> dict:
    """Classify the flow's A(t) on [0, t_max] (log-spaced grid, exact dA/dt from the
    right-hand side): the initial direction, the turning points of A (sign changes of
    dA/dt), and the long-time slope. See `classify_regime` for the labels."""
    from .reduced import group_flow  # lazy: `summarize` etc. stay importable without JAX

    drift0 = initial_drift(knowledge, counts)
    law = long_time_law(knowledge, counts)
    times = np.concatenate([[0.0], np.geomspace(1e-3, t_max, n_grid)])
    flow = group_flow(knowledge, counts, times=times)
    rate = flow["dA_dt"]
    # dA/dt is a sum of per-group drives of size ~1/t; ignore values at round-off level.
    sign = np.sign(rate)
    tol = 1e-12 / (1.0 + times)
    sign[np.abs(rate) < tol] = 0
    nz = np.flatnonzero(sign != 0)
    seq = sign[nz]
    changes = np.flatnonzero(np.diff(seq) != 0)
    turning_times = times[nz[changes + 1]]
    turning_kinds = ["max" if seq[c] > 0 else "min" for c in changes]
    first = int(seq[0]) if seq.size else 0
    direction = int(np.sign(drift0)) if drift0 != 0 else first
    # The long-time law fixes the eventual sign of dA/dt when the slope is non-zero: a turning
    # example beyond t_max that it implies is appended with time inf.
    last = int(seq[-1]) if seq.size else direction
    if law["slope"] != 0 and np.sign(law["slope"]) != last and abs(law["slope"]) > 1e-12:
        turning_times = np.append(turning_times, np.inf)
        turning_kinds.append("min" if law["slope"] > 0 else "max")
    return dict(
        initial_drift=drift0,
        initial_direction=direction,
        turning_times=turning_times,
        turning_kinds=turning_kinds,
        slope=law["slope"],
        A_final=float(flow["A"][-1]),
        times=times,
        A=flow["A"],
        dA_dt=rate,
        label=_label(direction, turning_kinds, law["slope"]),
    )


def _label(direction: int, kinds: list, slope: float) -> str:
    if direction >= 0:
        if not kinds:
            return "monotone rise"
        if len(kinds) == 1:
            return "inversion without recovery"
        if kinds[:2] == ["max", "min"]:
            return "inversion with slow recovery"
    else:
        if not kinds:
            return "monotone fall"
        if len(kinds) == 1:
            return "fall then slow recovery"
        if kinds[:2] == ["min", "max"]:
            return "fall with transient rebound"
    return "unclassified: turning points " + ",".join(kinds)


def classify_regime(knowledge: Knowledge, counts: GroupCounts, t_max: float = 1e8) -> str:
    """One of REGIMES for the gradient flow (the η → 0 limit; at η = 1, n = 20 the discrete
    run is already close to it). Derived from the initial direction (sign of
    Σ n_G test_G m_G, i.e. ρ vs ρ* for C/CS), the turning points of A(t) on a log grid up
    to t_max, and the sign of the long-time slope (which supplies a turning point beyond
    t_max when the last observed direction disagrees with it):

    - "monotone rise": A never turns (only C-like examples, or n_C ≫ n_CS with the trough
      beyond any horizon the law can see — in practice n_CS = 0);
    - "inversion without recovery": A rises, peaks, then falls for good (n_C < n_CS:
      A → −∞ like (n_C − n_CS)/(n + 1)·ln t; n_C = n_CS: A → A∞ from above);
    - "inversion with slow recovery": A rises, peaks, dips, then recovers like
      (n_C − n_CS)/(n + 1)·ln t (n_C > n_CS; the peak time grows steeply with ρ:
      t ≈ 51 at 11/20, 6.5e2 at 14/20, 1.9e7 at 19/20), or towards A∞ from below
      (n_C = n_CS with the dip below A∞, e.g. δ_C = 0.32, δ_M = 0.995);
    - "monotone fall": A decreases from t = 0 (ρ < ρ*) and never turns;
    - "fall then slow recovery": initial fall, then a single minimum (ρ* ≥ ½ and
      n_C ≥ n_CS — only outside Lemma 6's region; at n_C = n_CS the "recovery" is to A∞);
    - "fall with transient rebound": fall, small rebound (min then max), then a fall for
      good (small ρ: C examples are still being fitted after the CS examples are).
    """
    return regime_details(knowledge, counts, t_max)["label"]
