"""When the inversion happens: the peak time of the reduced dynamics against the number of
examples n, and the first epoch of minibatch SGD (theory/NOTES.md §19).

C and CS examples only, the paper's embeddings, W_V frozen, W_KQ(0) = 0 (§0.8):

    g_C = A + α_C,   g_CS = A + α_CS,   A = n_C α_C + n_CS α_CS,   dα_G/dt = h_G(g_G)/n.

A moves at rate O(1) (dA/dt = ρ h_C(g_C) + (1 − ρ) h_CS(g_CS)); each example's own component
α_G at rate O(1/n). While α ≈ 0 the test gap follows the one-dimensional flow
dA/dt = F(A) = ρ h_C(A) + (1 − ρ) h_CS(A), which has no peak. Once attention sits on the
context (g → +∞) both drives decay like e^{−g}:

    h_C(g) ≈ K_C e^{−g},  K_C = ⟨v(c) − v(s), e_c − softmax(v(c))⟩       (C example)
    h_CS(g) ≈ −K_CS e^{−g}, K_CS = −⟨v(c) − v(s), e_c − softmax(v(c))⟩  (CS example)

so F(A) > 0 for every A exactly when ρ > ρ_∞ = K_CS / (K_C + K_CS) (`balance_ratio`): then A
grows without bound until the examples' own components turn it. In the variable
s (ds = dt / (n e^A)) the own components solve e^{α_C} = 1 + K_C s, e^{α_CS} = 1 − K_CS s, and

    ln e^{A(s)} = n φ(s) + O(1),   φ(s) = ρ ln(1 + K_C s) + (1 − ρ) ln(1 − K_CS s),

which peaks at s_p = (ρK_C − (1 − ρ)K_CS)/(K_C K_CS) with φ(s_p) = Ψ(ρ), the Bernoulli relative
entropy KL(ρ ‖ ρ_∞) (`growth_rate`). With t = n ∫ e^A ds and Laplace's method the peak time is

    ln t_peak = n Ψ(ρ) + ½ ln n + C(ρ) + o(1)           (`peak_time_law`),

exponential in n. Below ρ_∞ the one-dimensional flow has a balance point A* and the peak time
is of order n instead. `flow_peak` integrates the exact group flow to its peak in the variable
s, so that peaks at t ~ e^{200} are resolved.

The first epoch of SGD with minibatches dealt from a permutation (`cpi.sims.optimizers`):
before its first visit an example's α_i is 0, so its gap is A; during the first epoch every
example in a batch is visited for the first time and

    A_{k+1} = A_k + (η/b)[b_C(k) h_C(A_k) + (b − b_C(k)) h_CS(A_k)]    (`first_epoch_gap`),

b_C(k) the C examples in batch k. A step lowers A iff the batch's C fraction is below
ρ_bal(A) = −h_CS(A)/(h_C(A) − h_CS(A)) (`local_balance`), which runs from ρ* at A = 0 to ρ_∞.
"""

from __future__ import annotations

import numpy as np

from .closed_forms import conflict_reliance, drive, group_columns, representative_columns, sigmoid, softmax
from .groups import INDEX
from .params import Knowledge

__all__ = ["context_tails", "balance_ratio", "growth_rate", "peak_time_law", "local_balance", "one_d_drive",
           "first_epoch_gap", "flow_peak"]


def _c_cs_columns(knowledge: Knowledge):
    cols = representative_columns(knowledge)
    v1, v2, answer = group_columns(cols)
    rows = [INDEX["C"], INDEX["CS"]]
    return cols, v1[rows], v2[rows], answer[rows]


def context_tails(knowledge: Knowledge) -> tuple[float, float]:
    """(K_C, K_CS): h_C(g) ≈ K_C e^{−g} and h_CS(g) ≈ −K_CS e^{−g} as g → +∞ (attention on the
    context). Both carry the factor 1 − δ_C: K_C = (1 − δ_C)(logit δ_C + log Z₀ − o_c),
    K_CS = (1 − δ_C)(logit δ_M − logit δ_C)."""
    cols, v1, v2, answer = _c_cs_columns(knowledge)
    d = v1 - v2
    c = cols["c"]
    inner = [float(np.sum(softmax(v1[i]) * (d[i, c] - d[i]))) for i in range(2)]
    return inner[0], -inner[1]


def balance_ratio(knowledge: Knowledge) -> float:
    """ρ_∞ = K_CS/(K_C + K_CS): above it the C examples' pull on the test gap beats the CS
    examples' at every attention, so the one-dimensional flow rises without a balance point."""
    k_c, k_cs = context_tails(knowledge)
    return k_cs / (k_c + k_cs)


def growth_rate(knowledge: Knowledge, rho) -> np.ndarray:
    """Ψ(ρ) = ρ ln(ρ/ρ_∞) + (1 − ρ) ln((1 − ρ)/(1 − ρ_∞)) for ρ > ρ_∞, else 0: the rate of
    ln t_peak per example."""
    r_inf = balance_ratio(knowledge)
    rho = np.asarray(rho, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = rho * np.log(rho / r_inf) + np.where(rho < 1, (1 - rho) * np.log((1 - rho) / (1 - r_inf)), 0.0)
    return np.where(rho > r_inf, kl, 0.0)


def peak_time_law(knowledge: Knowledge, rho, n) -> dict:
    """The large-n law of the flow's peak time for ρ > ρ_∞: ln t_peak ≈ nΨ + ½ ln n + C.

    Returns rho_inf, psi (Ψ), s_peak (s_p), curvature (|φ''(s_p)| = [K_C K_CS/(K_C + K_CS)]² /
    (ρ(1 − ρ))), log_t (nΨ + ½ ln n, the law without its constant) and a_peak (nΨ, the leading
    test gap at the peak)."""
    k_c, k_cs = context_tails(knowledge)
    rho = np.asarray(rho, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    psi = growth_rate(knowledge, rho)
    return dict(
        rho_inf=k_cs / (k_c + k_cs),
        psi=psi,
        s_peak=(rho * k_c - (1 - rho) * k_cs) / (k_c * k_cs),
        curvature=(k_c * k_cs / (k_c + k_cs)) ** 2 / (rho * (1 - rho)),
        log_t=n * psi + 0.5 * np.log(n),
        a_peak=n * psi,
    )


def one_d_drive(knowledge: Knowledge, gap) -> tuple[np.ndarray, np.ndarray]:
    """(h_C(A), h_CS(A)): the drives of a C and a CS example whose own component is 0, at gap A."""
    _, v1, v2, answer = _c_cs_columns(knowledge)
    gap = np.asarray(gap, dtype=np.float64)[..., None]
    h = drive(gap, v1, v2, answer)
    return h[..., 0], h[..., 1]


def local_balance(knowledge: Knowledge, gap) -> np.ndarray:
    """ρ_bal(A) = −h_CS(A)/(h_C(A) − h_CS(A)): a first-visit batch with a C fraction below it
    lowers A. ρ_bal(0) = ρ*, ρ_bal(A) → ρ_∞ as A → ∞."""
    h_c, h_cs = one_d_drive(knowledge, gap)
    return -h_cs / (h_c - h_cs)


def first_epoch_gap(knowledge: Knowledge, batch_c, batch_size: int, lr: float) -> dict:
    """The one-dimensional recursion of the first epoch of minibatch SGD,
    A_{k+1} = A_k + (η/b)[b_C(k) h_C(A_k) + (b − b_C(k)) h_CS(A_k)], A_0 = 0.

    batch_c: (..., steps) C examples in each batch (real values allowed: ρb gives the expected
    recursion). Returns gap (..., steps + 1) and reliance (M_C of a conflict example, same shape)."""
    batch_c = np.asarray(batch_c, dtype=np.float64)
    gap = np.zeros(batch_c.shape[:-1] + (batch_c.shape[-1] + 1,))
    for k in range(batch_c.shape[-1]):
        h_c, h_cs = one_d_drive(knowledge, gap[..., k])
        b_c = batch_c[..., k]
        gap[..., k + 1] = gap[..., k] + lr / batch_size * (b_c * h_c + (batch_size - b_c) * h_cs)
    cols = representative_columns(knowledge)
    return dict(gap=gap, reliance=conflict_reliance(gap, cols))


def flow_peak(knowledge: Knowledge, n_c: float, n_cs: float, t_switch: float = 10.0, s_max: float = 1e3,
              rtol: float = 1e-11, atol: float = 1e-12) -> dict:
    """The gradient flow of C and CS examples (group form) integrated to the peak of the test
    gap A (the peak of M_C, which increases with A).

    Up to t_switch in τ = ln(1 + t); then in s with ds = dt/(n e^A), where
    dα_G/ds = e^A h_G(A + α_G) = e^{−α_G} σ(g_G)² I_G(g_G) (I_G = h_G/(σσ)) and
    d ln t/ds = n e^{A − ln t}: every right-hand side stays O(1) while A grows like nΨ.

    Returns t_peak (nan if A never rises, 0 if it falls from the start; inf if no peak by s_max),
    log_t_peak, a_peak (A at the peak), alpha_c, alpha_cs (own components at the peak)."""
    from scipy.integrate import solve_ivp

    _, v1, v2, answer = _c_cs_columns(knowledge)
    c = int(answer[0])
    d = v1 - v2
    n = float(n_c + n_cs)
    counts = np.array([n_c, n_cs], dtype=np.float64)

    def inner(g):  # I_G(g) = ⟨d_G, e_c − p_G(g)⟩
        z = sigmoid(g)[:, None] * v1 + sigmoid(-g)[:, None] * v2
        p = softmax(z)
        return np.sum(p * (d[:, c][:, None] - d), axis=-1)

    def gaps(alpha):
        return counts @ alpha + alpha

    h0 = drive(np.zeros(2), v1, v2, answer)
    if counts @ h0 <= 0:
        return dict(t_peak=0.0, log_t_peak=-np.inf, a_peak=0.0, alpha_c=0.0, alpha_cs=0.0)

    # phase 1: t in τ = ln(1 + t)
    def f_tau(tau, alpha):
        g = gaps(alpha)
        return np.exp(tau) * sigmoid(g) * sigmoid(-g) * inner(g) / n

    def slope_tau(tau, alpha):  # dA/dτ ∝ Σ n_G h_G
        g = gaps(alpha)
        return counts @ (sigmoid(g) * sigmoid(-g) * inner(g))

    slope_tau.terminal, slope_tau.direction = True, -1
    one = solve_ivp(f_tau, (0.0, np.log1p(t_switch)), np.zeros(2), rtol=rtol, atol=atol, method="DOP853",
                    events=slope_tau)
    if not one.success:
        raise RuntimeError(one.message)
    if one.t_events[0].size:
        alpha = one.y_events[0][0]
        t = float(np.expm1(one.t_events[0][0]))
        return dict(t_peak=t, log_t_peak=float(np.log(t)), a_peak=float(counts @ alpha), alpha_c=float(alpha[0]),
                    alpha_cs=float(alpha[1]))

    # phase 2: s, state (α_C, α_CS, ln t)
    def f_s(s, y):
        alpha, log_t = y[:2], y[2]
        g = gaps(alpha)
        a = counts @ alpha
        d_alpha = np.exp(-alpha) * sigmoid(g) ** 2 * inner(g)
        return np.append(d_alpha, n * np.exp(a - log_t))

    def slope_s(s, y):
        alpha = y[:2]
        g = gaps(alpha)
        return counts @ (np.exp(-alpha) * sigmoid(g) ** 2 * inner(g))

    slope_s.terminal, slope_s.direction = True, -1
    y0 = np.append(one.y[:, -1], np.log(t_switch))
    two = solve_ivp(f_s, (0.0, s_max), y0, rtol=rtol, atol=atol, method="DOP853", events=slope_s)
    if not two.success:
        raise RuntimeError(two.message)
    if not two.t_events[0].size:
        return dict(t_peak=np.inf, log_t_peak=np.inf, a_peak=np.nan, alpha_c=np.nan, alpha_cs=np.nan)
    y = two.y_events[0][0]
    with np.errstate(over="ignore"):
        t_peak = float(np.exp(y[2]))  # inf beyond float64 (t ~ e^{710}); log_t_peak stays exact
    return dict(t_peak=t_peak, log_t_peak=float(y[2]), a_peak=float(counts @ y[:2]),
                alpha_c=float(y[0]), alpha_cs=float(y[1]))
