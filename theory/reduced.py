"""Exact reduced dynamics of W_KQ with W_V frozen (THEORY.md, "Exact reduction").

With W_KQ(0) = 0 and W_V frozen, every gradient of the mean loss lies in the span of the
key differences k_i = φ(x₁ᵢ) − φ(x₂ᵢ) (Lemma 1: −∇_u ℓ_i = h_i(g_i) k_i), so

    u(t) = Σ_i α_i(t) k_i,   g = Gram·α   (Gram_ij = k_iᵀk_j),
    α_i ← α_i + (η/n) h_i(g_i)                          (gradient descent, rate η)
    dα_i/dt = h_i(g_i)/n                               (gradient flow, t = η·steps)

with h the drive of `closed_forms.drive`. A held-out point with key difference k has gap
kᵀu = Σ_j (kᵀk_j) α_j: its row of inner products is all it needs.

Two forms:
- GENERAL (`general_trajectory`, `general_flow`): one α per point, any Gram matrix, any
  value columns; `paper_points` builds an explicit instance with the paper's embeddings.
- GROUP (`group_trajectory`, `group_flow`): the paper's embeddings make all points of a group
  interchangeable, so one α per group suffices (GROUPS = C, CS, CF, S_seen, S_unseen):
      g_G = (self − distinct)·α_G + Σ_H n_H·distinct_GH·α_H,   A = Σ_H n_H·test_H·α_H.
  The value columns only take five distinct values per column (rows: the K_S subjects, the
  relation, the answer c, the other fact b, the K_A − 2 remaining answers), so the softmax
  is evaluated on 5 classes with log-multiplicities: exact, and independent of K in cost.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402
from scipy.special import expit, logsumexp  # noqa: E402

from .closed_forms import (  # noqa: E402
    DISTINCT_INNER,
    GROUPS,
    SELF_INNER,
    TEST_INNER,
    THETA_C,
    THETA_S,
    drive,
    point_loss,
)
from .pretrained import logit, z0  # noqa: E402
from .relations import relation_points  # noqa: E402

# ----------------------------------------------------------------------------- general form


def general_trajectory(gram, v1, v2, answers, lr: float, steps: int, test_inner=None) -> dict:
    """Discrete GD on the mean loss in α-coordinates, one α per point.

    gram: (n, n) key-difference Gram matrix; v1, v2: (n, K) value columns of each point's
    two visible keys; answers: (n,) target token; test_inner: (m, n) rows k_testᵀk_j.
    Returns arrays with leading axis steps+1 (index 0 = before any update): alpha, gaps,
    drive, loss, and test_gaps (steps+1, m) if test_inner is given."""
    gram = np.asarray(gram, dtype=np.float64)
    n = gram.shape[0]
    alpha = np.zeros(n)
    alphas, gaps, drives, losses = [], [], [], []
    for _ in range(steps + 1):
        g = gram @ alpha
        h = drive(g, v1, v2, answers)
        alphas.append(alpha)
        gaps.append(g)
        drives.append(h)
        losses.append(point_loss(g, v1, v2, answers))
        alpha = alpha + lr / n * h
    out = dict(alpha=np.array(alphas), gaps=np.array(gaps), drive=np.array(drives), loss=np.array(losses))
    if test_inner is not None:
        out["test_gaps"] = out["alpha"] @ np.asarray(test_inner, dtype=np.float64).T
    return out


def _integrate(rhs, y0, times, log_time: bool, rtol: float, atol: float, method: str = "DOP853"):
    """Integrate dy/dt = rhs(t, y) from t = 0 and return y at `times` (shape (len(times), dim)).

    log_time: integrate in τ = ln(1 + t) (dy/dτ = (1 + t)·rhs), which keeps the right-hand
    side O(1) when the drives decay like 1/t: the right choice for long horizons."""
    times = np.asarray(times, dtype=np.float64)
    if np.any(np.diff(times) < 0) or times[0] < 0:
        raise ValueError("times must be sorted and non-negative")
    if log_time:
        tau = np.log1p(times)

        def f(s, y):
            t = np.expm1(s)
            return (1.0 + t) * rhs(t, y)

        sol = solve_ivp(f, (0.0, tau[-1]), y0, t_eval=tau, rtol=rtol, atol=atol, method=method)
    else:
        sol = solve_ivp(rhs, (0.0, times[-1]), y0, t_eval=times, rtol=rtol, atol=atol, method=method)
    if not sol.success:
        raise RuntimeError(sol.message)
    return sol.y.T


def general_flow(
    gram, v1, v2, answers, times, test_inner=None, log_time: bool = True, rtol: float = 1e-11, atol: float = 1e-12
) -> dict:
    """Gradient flow dα/dt = h(Gram·α)/n, evaluated at `times` (the η → 0 limit of
    `general_trajectory` with t = η·steps). Same keys as `general_trajectory`."""
    gram = np.asarray(gram, dtype=np.float64)
    n = gram.shape[0]
    alpha = _integrate(lambda t, a: drive(gram @ a, v1, v2, answers) / n, np.zeros(n), times, log_time, rtol, atol)
    gaps = alpha @ gram.T
    out = dict(alpha=alpha, gaps=gaps, drive=drive(gaps, v1, v2, answers), loss=point_loss(gaps, v1, v2, answers))
    if test_inner is not None:
        out["test_gaps"] = alpha @ np.asarray(test_inner, dtype=np.float64).T
    return out


def paper_points(
    n_subjects: int,
    n_answers: int,
    delta_c: float,
    delta_m: float,
    o_c: float,
    o_r: float,
    n_c: int,
    n_cs: int,
    n_cf: int = 0,
    n_s_seen: int = 0,
    n_s_unseen: int = 0,
    delta_s: float = 0.9,
) -> dict:
    """An explicit point set for the general form: fresh tokens per point, the full K×K value
    table of Lemma 3, and the Gram matrix computed from the paper's embedding vectors (not
    from the group formulas). Points are ordered by group (GROUPS order); two held-out
    points follow: index 0 the conflict point (s memorised with a ≠ c), 1 the aligned point.

    Returns gram, v1, v2, answers, group (index into GROUPS), keys (n, 2) token ids,
    table, test_inner (2, n), test_keys (2, 2), test_v1, test_v2 (2, K), test_context,
    test_fact (2,). This is `relations.relation_points` with one relation."""
    pts = relation_points(
        n_subjects, n_answers, delta_c, delta_m, o_c, o_r,
        np.array([[n_c, n_cs, n_cf, n_s_seen, n_s_unseen]]), 0.0, delta_s,
    )
    keep = ("gram", "v1", "v2", "answers", "group", "keys", "table", "test_inner", "test_v1",
            "test_v2", "test_keys", "test_context", "test_fact")
    return {key: pts[key] for key in keep}


# ------------------------------------------------------------------------------- group form

N_CLASSES = 5
"""Output-token classes: subjects (K_S), relation (1), answer c (1), fact b (1), other answers (K_A − 2)."""
_C, _B = 2, 3
_ROWS = GROUPS + ("conflict", "aligned")


def _group_params(n_subjects, n_answers, delta_c, delta_m, o_c, o_r, n_c, n_cs, n_cf, n_s_seen, n_s_unseen, delta_s, lr):
    """Broadcast the numeric arguments and build the per-configuration arrays of the group
    recursion: class-compressed value columns of each group's two keys (and of the two test
    points), log-multiplicities of the classes, counts, group Gram and test row."""
    args = np.broadcast_arrays(
        *[
            np.asarray(a, dtype=np.float64)
            for a in (n_subjects, n_answers, delta_c, delta_m, o_c, o_r, n_c, n_cs, n_cf, n_s_seen, n_s_unseen, delta_s, lr)
        ]
    )
    shape = args[0].shape
    ks, ka, dc, dm, oc, orr, nc, ncs, ncf, nss, nsu, ds, lr = (a.reshape(-1) for a in args)
    if np.any(ka < 2) or np.any(ks < 1):
        raise ValueError("need at least one subject and two answers")
    log_z0 = np.log(z0(ks, ka, oc, orr))
    lc, lm, ls = logit(dc) + log_z0, logit(dm) + log_z0, logit(ds) + log_z0
    zero = np.zeros_like(oc)

    def col(c_val, b_val):
        return np.stack([zero, orr, c_val, b_val, oc], axis=-1)

    ctx, flat = col(lc, oc), col(oc, oc)
    mem_c, mem_b, seen = col(lm, oc), col(oc, lm), col(ls, oc)
    x1 = np.stack([ctx, ctx, ctx, seen, flat, ctx, ctx], axis=1)  # (B, 7, 5)
    x2 = np.stack([flat, mem_c, mem_b, flat, flat, mem_b, mem_c], axis=1)
    with np.errstate(divide="ignore"):
        logmult = np.stack([np.log(ks), zero, zero, zero, np.log(ka - 2)], axis=-1)
    counts = np.stack([nc, ncs, ncf, nss, nsu], axis=-1)
    n = counts.sum(-1)
    if np.any(n <= 0):
        raise ValueError("need at least one training point")
    gram = np.diag(SELF_INNER - np.diag(DISTINCT_INNER))[None] + DISTINCT_INNER[None] * counts[:, None, :]
    test_row = TEST_INNER[None] * counts
    params = dict(x1=x1, x2=x2, logmult=logmult, gram=gram, test_row=test_row, step=lr / n)
    return shape, params, counts, n, lr


def _group_metrics(alpha, P, xp, sig, lse_fn):
    """Everything recorded at one state α (shape (5,)) of the group recursion."""
    gaps = P["gram"] @ alpha
    a_gap = P["test_row"] @ alpha
    g = xp.concatenate([gaps, xp.stack([a_gap, a_gap])])
    s, sn = sig(g), sig(-g)
    z = s[:, None] * P["x1"] + sn[:, None] * P["x2"]
    lse = lse_fn(z + P["logmult"][None, :], axis=-1)
    p = xp.exp(z - lse[:, None])
    d = P["x1"] - P["x2"]
    inner = xp.sum(xp.exp(P["logmult"])[None, :] * p * (d[:, _C : _C + 1] - d), axis=-1)
    h = s * sn * inner
    return dict(
        alpha=alpha,
        gaps=gaps,
        A=a_gap,
        drive=h[:5],
        loss=(lse - z[:, _C])[:5],
        reliance=sig(z[5, _C] - z[5, _B]),
        aligned_accuracy=p[6, _C],
    )


def _jax_lse(x, axis):
    return jax.scipy.special.logsumexp(x, axis=axis)


def _scan_one(P, steps: int):
    def body(alpha, _):
        m = _group_metrics(alpha, P, jnp, jax.nn.sigmoid, _jax_lse)
        return alpha + P["step"] * m["drive"], m

    _, out = jax.lax.scan(body, jnp.zeros(len(GROUPS)), None, length=steps + 1)
    return out


_scan_batch = jax.jit(jax.vmap(_scan_one, in_axes=(0, None)), static_argnums=1)


def _assemble(raw: dict, counts: np.ndarray, n: np.ndarray, shape, time) -> dict:
    """Turn the raw per-state arrays (batch, T, ...) into the documented output dict."""
    counts_b = counts[:, None, :]  # (B, 1, 5)
    n_b = n[:, None]
    alpha, gaps, h, loss = raw["alpha"], raw["gaps"], raw["drive"], raw["loss"]
    present = counts_b > 0
    nan = np.nan

    def masked(x, gi):
        return np.where(present[..., gi], x, nan)

    out = dict(
        time=time,
        A=raw["A"],
        reliance=raw["reliance"],
        attention_context=expit(raw["A"]),
        aligned_accuracy=raw["aligned_accuracy"],
        u_theta_c=np.sum(counts_b * alpha * THETA_C, axis=-1),
        u_theta_s=np.sum(counts_b * alpha * THETA_S, axis=-1),
    )
    for gi, name in enumerate(GROUPS):
        out[f"alpha_{name}"] = masked(alpha[..., gi], gi)
        out[f"gap_{name}"] = masked(gaps[..., gi], gi)
        out[f"loss_{name}"] = masked(loss[..., gi], gi)
        key = "attention_context_" if gi < 3 else "attention_subject_"
        out[key + name] = masked(expit(gaps[..., gi]), gi)
    n_s = counts_b[..., 3] + counts_b[..., 4]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["loss_S"] = np.where(
            n_s > 0, (counts_b[..., 3] * loss[..., 3] + counts_b[..., 4] * loss[..., 4]) / n_s, nan
        )
    grad_c = counts_b * h * THETA_C / n_b[..., None]
    grad_s = counts_b * h * THETA_S / n_b[..., None]
    for gi, name in enumerate(("C", "CS", "CF")):
        out[f"neg_grad_theta_c_{name}"] = masked(grad_c[..., gi], gi)
        out[f"neg_grad_theta_s_{name}"] = masked(grad_s[..., gi], gi)
    out["neg_grad_theta_c_S"] = np.where(n_s > 0, grad_c[..., 3] + grad_c[..., 4], nan)
    out["neg_grad_theta_s_S"] = np.where(n_s > 0, grad_s[..., 3] + grad_s[..., 4], nan)
    out["neg_grad_theta_c"] = grad_c.sum(-1)
    out["neg_grad_theta_s"] = grad_s.sum(-1)
    batch_shape = tuple(shape)
    for key, val in out.items():
        val = np.asarray(val)
        if val.ndim == 2:
            out[key] = val.reshape(batch_shape + val.shape[1:])
        else:
            out[key] = np.broadcast_to(val, batch_shape + val.shape[-1:]).copy()
    return out


def group_trajectory(
    n_subjects,
    n_answers,
    delta_c,
    delta_m,
    o_c,
    o_r,
    n_c,
    n_cs,
    n_cf=0,
    n_s_seen=0,
    n_s_unseen=0,
    delta_s=0.9,
    lr=1.0,
    steps: int = 300,
) -> dict:
    """Discrete GD (rate η = lr, mean loss) for the paper embeddings, one α per group.

    Every numeric argument may be an array; they broadcast together (e.g. n_c and n_cs over
    41 mixtures) and every output then has shape broadcast_shape + (steps + 1,). Index 0 is
    the state before any update. Keys:
      step, time (= η·step), A (test gap), reliance (conflict M_C), attention_context (σ(A)),
      aligned_accuracy (p_c on an aligned held-out point),
      attention_context_{C,CS,CF} (σ(g_G)), attention_subject_{S_seen,S_unseen} (σ(g_S)),
      gap_G, alpha_G, loss_G for G in GROUPS, loss_S (mean over all S points),
      u_theta_c = θ_C·u, u_theta_s = θ_S·u,
      neg_grad_theta_c_G, neg_grad_theta_s_G for G in C, CS, CF, S: θ-components of
      −∇_u L_G, L_G = (1/n)Σ_{i∈G} ℓ_i (not multiplied by η; groups sum to
      neg_grad_theta_c / neg_grad_theta_s). Groups with zero count give NaN.
    """
    shape, P, counts, n, lr_flat = _group_params(
        n_subjects, n_answers, delta_c, delta_m, o_c, o_r, n_c, n_cs, n_cf, n_s_seen, n_s_unseen, delta_s, lr
    )
    raw = _scan_batch(jax.tree_util.tree_map(jnp.asarray, P), int(steps))
    raw = {k: np.asarray(v) for k, v in raw.items()}
    steps_arr = np.arange(steps + 1)
    out = _assemble(raw, counts, n, shape, lr_flat[:, None] * steps_arr[None, :])
    out["step"] = np.broadcast_to(steps_arr, out["reliance"].shape).copy()
    return out


def group_flow(
    n_subjects,
    n_answers,
    delta_c,
    delta_m,
    o_c,
    o_r,
    n_c,
    n_cs,
    n_cf=0,
    n_s_seen=0,
    n_s_unseen=0,
    delta_s=0.9,
    times=None,
    log_time: bool = True,
    rtol: float = 1e-11,
    atol: float = 1e-12,
) -> dict:
    """Gradient-flow limit dα_G/dt = h_G(g_G)/n of `group_trajectory` (scalar arguments),
    evaluated at `times` (t = η·steps). Same keys as `group_trajectory` (minus `step`), plus
    dA_dt (exact, from the right-hand side). log_time integrates in τ = ln(1 + t)."""
    if times is None:
        times = np.arange(301, dtype=np.float64)
    shape, P, counts, n, _ = _group_params(
        n_subjects, n_answers, delta_c, delta_m, o_c, o_r, n_c, n_cs, n_cf, n_s_seen, n_s_unseen, delta_s, 1.0
    )
    if shape != ():
        raise ValueError("group_flow takes scalar arguments")
    P1 = {k: v[0] for k, v in P.items()}
    n1 = float(n[0])

    def metrics(alpha):
        return _group_metrics(alpha, P1, np, expit, logsumexp)

    alpha = _integrate(lambda t, a: metrics(a)["drive"] / n1, np.zeros(len(GROUPS)), times, log_time, rtol, atol)
    rows = [metrics(a) for a in alpha]
    raw = {k: np.stack([r[k] for r in rows])[None] for k in rows[0]}
    out = _assemble(raw, counts, n, (), np.asarray(times, dtype=np.float64)[None])
    out["dA_dt"] = raw["drive"][0] @ P1["test_row"] / n1
    return out


def group_rhs(n_subjects, n_answers, delta_c, delta_m, o_c, o_r, n_c, n_cs, n_cf=0, n_s_seen=0, n_s_unseen=0, delta_s=0.9):
    """(f, test_row, n): f(α) = dα/dt of the group flow, for integrators elsewhere."""
    _, P, _, n, _ = _group_params(
        n_subjects, n_answers, delta_c, delta_m, o_c, o_r, n_c, n_cs, n_cf, n_s_seen, n_s_unseen, delta_s, 1.0
    )
    P1 = {k: v[0] for k, v in P.items()}
    n1 = float(n[0])

    def f(alpha):
        return _group_metrics(np.asarray(alpha), P1, np, expit, logsumexp)["drive"] / n1

    return f, P1["test_row"], n1
