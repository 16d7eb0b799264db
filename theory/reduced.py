"""Exact reduced dynamics of W_KQ with W_V frozen (theory/NOTES.md §0.8 and §2): the per-example
and group forms, by gradient descent and gradient flow.

With W_KQ(0) = 0 and W_V frozen, every gradient of the mean loss lies in the span of the
key differences k_i = φ(x₁ᵢ) − φ(x₂ᵢ) (Lemma 1: −∇_u ℓ_i = h_i(g_i) k_i), so

    u(t) = Σ_i α_i(t) k_i,   g = Gram·α   (Gram_ij = k_iᵀk_j),
    α_i ← α_i + (η/n) h_i(g_i)                          (gradient descent, rate η)
    dα_i/dt = h_i(g_i)/n                               (gradient flow, t = η·steps)

with h the drive of `closed_forms.drive`. A held-out example with key difference k has gap
kᵀu = Σ_j (kᵀk_j) α_j: its row of inner products is all it needs.

Two forms, one system (`cpi.theory.reduced_system`), one integrator (`cpi.theory.integrate`):
- GENERAL (`general_trajectory`, `general_flow`): one α per example, any Gram matrix, any
  value columns; `paper_examples` builds an explicit instance with the paper's embeddings.
- GROUP (`group_trajectory`, `group_descent`, `group_flow`): the paper's embeddings make
  all examples of a group interchangeable, so one α per group suffices (GROUPS = C, CS, CF,
  S_seen, S_unseen):
      g_G = (self − distinct)·α_G + Σ_H n_H·distinct_GH·α_H,   A = Σ_H n_H·test_H·α_H.
  The value columns only take five distinct values per column (rows: the K_S subjects, the
  relation, the answer c, the other fact b, the K_A − 2 remaining answers), so the softmax
  is evaluated on 5 classes with log-multiplicities: exact, and independent of K in cost.
  It is the relation form of `cpi.theory.relations` with one relation, computed by the same code.
"""

from __future__ import annotations

import numpy as np
from .numerics import logsumexp

from .params import GroupCounts, Knowledge
from .integrate import descend, flow, rate_function, recorded_steps
from .reduced_outputs import class_outputs
from .reduced_system import N_CLASSES, group_system, example_system
from .relations import relation_examples

__all__ = ["general_trajectory", "general_flow", "paper_examples", "example_readout", "initial_margins",
           "group_trajectory", "group_descent", "group_flow", "group_rhs", "N_CLASSES"]

# ----------------------------------------------------------------------------- general form

_POINT_KEYS = ("alpha", "gaps", "drive", "loss")


def _example_outputs(raw: dict, with_tests: bool) -> dict:
    out = {key: raw[key][0] for key in _POINT_KEYS}
    if with_tests:
        out["test_gaps"] = raw["A"][0]
    return out


def general_trajectory(gram, v1, v2, answers, lr: float, steps: int, test_inner=None) -> dict:
    """Discrete GD on the mean loss in α-coordinates, one α per example.

    gram: (n, n) key-difference Gram matrix; v1, v2: (n, K) value columns of each example's
    two visible keys; answers: (n,) target token; test_inner: (m, n) rows k_testᵀk_j.
    Returns arrays with leading axis steps+1 (index 0 = before any update): alpha, gaps,
    drive, loss, and test_gaps (steps+1, m) if test_inner is given."""
    recorded, _ = descend(example_system(gram, v1, v2, answers, lr, test_inner), int(steps))
    return _example_outputs(recorded, test_inner is not None)


def example_readout(gaps, v1, v2, answers, facts=None) -> dict:
    """What a model with frozen W_V predicts on examples of attention gap g (…, m) between
    their two visible keys, value columns v1, v2 (m, K) and target tokens `answers` (m,):

        z = σ(g) v1 + σ(−g) v2,   p = softmax(z).

    Returns attention σ(g) (on the first key), p_answer = p_a, loss −log p_a, and with
    `facts` (m,) reliance = p_a / (p_a + p_b) = σ(z_a − z_b) (M_C of a conflict example whose
    subject was memorised with b), each of shape (…, m)."""
    gaps = np.asarray(gaps, dtype=np.float64)
    v1, v2 = np.asarray(v1, dtype=np.float64), np.asarray(v2, dtype=np.float64)
    s = 0.5 * (1.0 + np.tanh(0.5 * gaps))  # σ(g)
    sn = 0.5 * (1.0 - np.tanh(0.5 * gaps))
    z = s[..., None] * v1 + sn[..., None] * v2  # (…, m, K)
    idx = np.arange(v1.shape[0])
    answers = np.asarray(answers, dtype=int)
    log_p = z - logsumexp(z, axis=-1, keepdims=True)
    out = dict(attention=s, p_answer=np.exp(log_p[..., idx, answers]), loss=-log_p[..., idx, answers])
    if facts is not None:
        diff = z[..., idx, answers] - z[..., idx, np.asarray(facts, dtype=int)]
        out["reliance"] = 0.5 * (1.0 + np.tanh(0.5 * diff))
    return out


def initial_margins(v1, v2, answers) -> np.ndarray:
    """The Lemma 4 margins m_i = ⟨v1_i − v2_i, e_{a_i} − p_i(0)⟩, p_i(0) = softmax(½v1_i + ½v2_i),
    of examples with value columns v1, v2 (n, K): the initial drive is h_i(0) = m_i / 4."""
    v1, v2 = np.asarray(v1, dtype=np.float64), np.asarray(v2, dtype=np.float64)
    z = 0.5 * (v1 + v2)
    p = np.exp(z - logsumexp(z, axis=-1, keepdims=True))
    d = v1 - v2
    idx = np.arange(len(d))
    return d[idx, np.asarray(answers, dtype=int)] - np.sum(d * p, axis=-1)


def general_flow(
    gram, v1, v2, answers, times, test_inner=None, log_time: bool = True, rtol: float = 1e-11, atol: float = 1e-12
) -> dict:
    """Gradient flow dα/dt = h(Gram·α)/n, evaluated at `times` (the η → 0 limit of
    `general_trajectory` with t = η·steps). Same keys as `general_trajectory`."""
    raw = flow(example_system(gram, v1, v2, answers, 1.0, test_inner), times, log_time, rtol, atol)
    return _example_outputs(raw, test_inner is not None)


def paper_examples(knowledge: Knowledge, counts: GroupCounts) -> dict:
    """An explicit example set for the general form: fresh tokens per example, the full K×K value
    table of Lemma 3, and the Gram matrix computed from the paper's embedding vectors (not
    from the group formulas). Examples are ordered by group (GROUPS order); two held-out
    examples follow: index 0 the conflict example (s memorised with a ≠ c), 1 the aligned example.

    Returns gram, v1, v2, answers, group (index into GROUPS), keys (n, 2) token ids,
    table, test_inner (2, n), test_keys (2, 2), test_v1, test_v2 (2, K), test_context,
    test_fact (2,). This is `relations.relation_examples` with one relation."""
    pts = relation_examples(knowledge, np.array([list(counts)]), 0.0)
    keep = ("gram", "v1", "v2", "answers", "group", "keys", "table", "test_inner", "test_v1",
            "test_v2", "test_keys", "test_context", "test_fact")
    return {key: pts[key] for key in keep}


# ------------------------------------------------------------------------------- group form


def _group_face(out: dict, shape: tuple) -> dict:
    """Relation-form outputs (B, 1, T) as group-form outputs shape + (T,)."""
    return {key: value[:, 0].reshape(shape + value.shape[-1:]) for key, value in out.items()}


def group_descent(
    knowledge: Knowledge,
    counts: GroupCounts,
    lr=1.0,
    steps: int = 300,
    record_every: int = 1,
    record: bool = True,
) -> tuple[dict | None, dict]:
    """`group_trajectory` recording only steps 0, N, 2N, ... < steps and the last step
    (N = record_every), or nothing (record False), with the summary of the reliance curve
    over EVERY step folded inside the compiled scan.

    Returns (outputs, summary): outputs has `group_trajectory`'s keys over the recorded
    steps (None when not recording); summary maps initial_reliance, peak_reliance,
    peak_step, final_reliance, inversion (as `cpi.theory.summary.summarize`) and nonfinite_step
    (first step where a finite metric turned non-finite, −1: none) to arrays of the
    arguments' broadcast shape."""
    return _group_descent(knowledge, counts, lr, steps, record_every, record, summarize=True)


def _group_descent(knowledge, counts, lr, steps: int, record_every: int, record: bool, summarize: bool):
    system, layout = group_system(knowledge, counts, lr)
    recorded, summary = descend(system, int(steps), record_every, record, summarize)
    if summary is not None:
        summary = {key: np.asarray(value).reshape(layout.shape) for key, value in summary.items()}
    if recorded is None:
        return None, summary
    steps_arr = recorded_steps(int(steps), record_every)
    out = _group_face(class_outputs(recorded, layout, layout.lr[:, None] * steps_arr), layout.shape)
    out["step"] = np.broadcast_to(steps_arr, out["reliance"].shape).copy()
    return out, summary


def group_trajectory(knowledge: Knowledge, counts: GroupCounts, lr=1.0, steps: int = 300) -> dict:
    """Discrete GD (rate η = lr, mean loss) for the paper embeddings, one α per group.

    Every field of the records and lr may be an array; they broadcast together (e.g. n_c and
    n_cs over 41 mixtures) and every output then has shape broadcast_shape + (steps + 1,). Index 0 is
    the state before any update. Keys:
      step, time (= η·step), A (test gap), reliance (conflict M_C), attention_context (σ(A)),
      aligned_accuracy (p_c on an aligned held-out example),
      attention_context_{C,CS,CF} (σ(g_G)), attention_subject_{S_seen,S_unseen} (σ(g_S)),
      gap_G, alpha_G, loss_G for G in GROUPS, loss_S (mean over all S examples),
      u_theta_c = θ_C·u, u_theta_s = θ_S·u,
      neg_grad_theta_c_G, neg_grad_theta_s_G for G in C, CS, CF, S: θ-components of
      −∇_u L_G, L_G = (1/n)Σ_{i∈G} ℓ_i (not multiplied by η; groups sum to
      neg_grad_theta_c / neg_grad_theta_s). Groups with zero count give NaN.
    """
    return _group_descent(knowledge, counts, lr, steps, 1, True, summarize=False)[0]


def group_flow(
    knowledge: Knowledge,
    counts: GroupCounts,
    times=None,
    log_time: bool = True,
    rtol: float = 1e-11,
    atol: float = 1e-12,
) -> dict:
    """Gradient-flow limit dα_G/dt = h_G(g_G)/n of `group_trajectory` (scalar arguments),
    evaluated at `times` (t = η·steps). Same keys as `group_trajectory` (minus `step`), plus
    dA_dt (exact, from the right-hand side). log_time integrates in τ = ln(1 + t)."""
    times = np.arange(301, dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    system, layout = group_system(knowledge, counts, 1.0)
    if layout.shape != ():
        raise ValueError("group_flow takes scalar arguments")
    raw = flow(system, times, log_time, rtol, atol)
    out = _group_face(class_outputs(raw, layout, times[None]), ())
    out["dA_dt"] = system.step[0] * raw["drive"][0] @ system.test[0, :, 0]
    return out


def group_rhs(knowledge: Knowledge, counts: GroupCounts):
    """(f, test_row, n): f(α) = dα/dt of the group flow, for integrators elsewhere."""
    system, layout = group_system(knowledge, counts, 1.0)
    return rate_function(system), system.test[0, :, 0], float(layout.n[0])
