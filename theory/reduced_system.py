"""The reduced system of W_KQ with W_V frozen: one representation for every form of it.

From W_KQ(0) = 0 every gradient lies in the span of the key differences (Lemma 1), so the
dynamics is a recursion on coefficients α of U *units* (theory/NOTES.md §0.8 and §2):

    g = Gram·α,   h_u = σ(g_u)σ(−g_u)⟨x₁ᵤ − x₂ᵤ, e_aᵤ − p_u⟩,   p_u = softmax(σ(g_u)x₁ᵤ + σ(−g_u)x₂ᵤ),
    α ← α + (η/n) h    (gradient descent),      dα/dt = h/n    (gradient flow, t = η·steps),

with x₁ᵤ, x₂ᵤ the value columns of a unit's two visible keys over C output classes, each
class carrying a multiplicity (the softmax sums mult_c·e^{z_c}). The three forms differ only
in what a unit is:

- per example (`example_system`): one unit per training example, the K tokens as classes of
  multiplicity 1, any Gram matrix (`reduced.general_trajectory`);
- per group (`relation_system` with one relation): the paper's embeddings make all examples of
  a group interchangeable, one unit per group of GROUPS; the value columns take five values
  per column (subjects ×K_S, relations ×R, answer c, other fact b, other answers ×(K_A − 2)),
  so C = 5 classes with log-multiplicities (`reduced.group_trajectory`);
- per (relation, group) (`relation_system`): R relations with overlap γ, U = 5R units and the
  Gram of `relation_group_gram` (`relations.relation_group_trajectory`).

Held-out examples: a row of inner products gives their gap A = test·α; in the class forms each
relation has a conflict example (context c, subject memorised with b ≠ c) and an aligned one
(memorised with c) sharing that gap, read out by `held_out_readout`.

Argmax (the paper's accuracies): a example's output is its target y when z_y exceeds the
logit of every other output token by more than ARGMAX_TOLERANCE (`chosen`); a token tied
with another at the top counts as not chosen. Each unit says whether its answer is chosen
(`correct`), each held-out gap whether the conflict example's argmax is the context's answer c
(`counterfactual`) or the memorised fact b (`parametric`).

`state_metrics` is the recursion's one definition; `cpi.theory.integrate` runs it (descent and
flow) and `cpi.theory.reduced_outputs` turns its raw states into documented outputs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from .numerics import logsumexp

from .closed_forms import DISTINCT_INNER, SELF_INNER, TEST_INNER
from .groups import GROUPS
from .params import GroupCounts, Knowledge
from .pretrained import logit, z0

N_CLASSES = 5
"""Output-token classes of `class_columns`: subjects (K_S), relations (R), answer c (1), fact b
(1), other answers (K_A − 2)."""
MOVING_CLASSES = 2
"""Classes of the class-form systems (`moving_classes`): answer c and fact b."""
ANSWER_CLASS, FACT_CLASS = 0, 1
"""Indices of the answer c and of the other fact b among the moving classes."""
_STILL = [0, 1, 4]  # subjects, relations, other answers: one value in every column
ARGMAX_TOLERANCE = 1e-9
"""A token is a example's argmax when its logit exceeds every other token's by more than this:
logits equal in exact arithmetic (a tie, counted as not chosen) differ by rounding only,
about 1e-15 in float64, and the engines that compute them differently must agree."""
_S_BLOCK = np.zeros((5, 5), dtype=bool)
_S_BLOCK[3:, 3:] = True


class ReducedSystem(NamedTuple):
    """The arrays of B reduced systems: U units, C classes of multiplicity 1, M held-out
    gaps, and the systems stacked along the LAST axis of every array (so that the compiled
    step runs along contiguous memory). Fields that a form lacks are None.

    `still` is log Σ_k mult_k e^{v_k} over the output tokens whose value is the same in both
    keys of a unit (v_k), so that their logits never move: a constant added to every
    softmax (−inf: none)."""

    gram: np.ndarray  # (U, U, B) g = Gram·α
    x1: np.ndarray  # (U, C, B) value column of each unit's first key
    x2: np.ndarray  # (U, C, B) ... and of its second key
    still: np.ndarray  # (1 or U, B) log of the unmoving part of each unit's softmax
    answer: np.ndarray  # (1 or U, C, B) one-hot target class
    step: np.ndarray  # (B,) η/n
    test: np.ndarray | None = None  # (M, U, B) rows of the held-out gaps A = test·α
    test_x1: np.ndarray | None = None  # (M, 2, C, B) conflict / aligned example's first key
    test_x2: np.ndarray | None = None  # (M, 2, C, B) ... and second key
    test_still: np.ndarray | None = None  # (1, B)
    still_top: np.ndarray | None = None  # (1 or U, B) largest value of the still tokens (−inf: none)
    test_still_top: np.ndarray | None = None  # (1, B)

    @property
    def stack(self) -> int:
        """B, the number of systems stacked along the last axis."""
        return self.step.shape[-1]


# ----------------------------------------------------------------------------- the recursion
# Arrays carry units (or held-out gaps) on axis 0, classes after them, and any stack axes
# last. Inside a compiled loop the terms that depend on the system alone (d, the bound, the
# still mass) are computed once (XLA hoists them out of the loop).


def sigmoid_pair(g):
    """(σ(g), σ(−g)), both to full relative precision, from one exponential."""
    t = jnp.exp(-jnp.abs(g))
    r = 1.0 / (1.0 + t)
    positive = g >= 0
    return jnp.where(positive, r, t * r), jnp.where(positive, t * r, r)


def _softmax(z, x1, x2, still):
    """(e, rest, total, bound): the softmax of logits z (U, C, ...) plus the still mass,
    as e_c = e^{z_c − bound}, rest = e^{still − bound}, total = rest + Σ_c e_c, with a bound
    that depends on the columns only (z is a convex combination of x1 and x2, so
    z_c ≤ bound: nothing overflows)."""
    bound = jnp.maximum(jnp.max(jnp.maximum(x1, x2), axis=1), still)
    e = jnp.exp(z - bound[:, None])
    rest = jnp.exp(still - bound)
    return e, rest, rest + jnp.sum(e, axis=1), bound


def unit_response(gaps, x1, x2, still, answer):
    """(h, ℓ): drive h = −∂ℓ/∂g and cross-entropy loss ℓ of units with gaps g (U, ...);
    x1, x2 (U, C, ...). ⟨d, e_a − p⟩ is evaluated as Σ_c p_c(d_a − d_c) + p_still d_a (the
    still tokens have d = 0), which never forms 1 − p_a."""
    s, sn = sigmoid_pair(gaps)
    z = s[:, None] * x1 + sn[:, None] * x2
    e, rest, total, bound = _softmax(z, x1, x2, still)
    d = x1 - x2
    d_answer = jnp.sum(answer * d, axis=1)
    inner = (jnp.sum(e * (d_answer[:, None] - d), axis=1) + rest * d_answer) / total
    loss = bound + jnp.log(total) - jnp.sum(answer * z, axis=1)
    return s * sn * inner, loss


def chosen(z, target, still_top=None):
    """1.0 where the target class (one-hot `target`, (..., C, ...) with classes on axis 1) is
    the argmax of logits z: z_target exceeds every other class and the still tokens' largest
    value `still_top` by more than ARGMAX_TOLERANCE; else 0.0 (ties count as not chosen).
    Every class here is one token (multiplicity 1)."""
    other = jnp.max(jnp.where(target > 0, -jnp.inf, z), axis=1)
    if still_top is not None:
        other = jnp.maximum(other, still_top)
    margin = jnp.sum(target * z, axis=1) - other
    return jnp.where(margin > ARGMAX_TOLERANCE, 1.0, 0.0).astype(z.dtype)


def unit_correct(gaps, x1, x2, answer, still_top=None):
    """1.0 for the units (U, ...) at gaps g whose answer is the argmax (`chosen`), else 0.0."""
    s, sn = sigmoid_pair(gaps)
    return chosen(s[:, None] * x1 + sn[:, None] * x2, jnp.broadcast_to(answer, x1.shape), still_top)


def held_out_choice(gap, test_x1, test_x2, test_still_top=None):
    """(counterfactual, parametric): 1.0 where the conflict example's argmax at held-out gaps A
    (M, ...) is the context's answer c, resp. the memorised fact b (class forms)."""
    s, sn = sigmoid_pair(gap)
    conflict = s[:, None] * test_x1[:, 0] + sn[:, None] * test_x2[:, 0]  # (M, C, ...)
    classes = jnp.arange(conflict.shape[1]).reshape((1, -1) + (1,) * (conflict.ndim - 2))
    answer = jnp.broadcast_to(classes == ANSWER_CLASS, conflict.shape)
    fact = jnp.broadcast_to(classes == FACT_CLASS, conflict.shape)
    return chosen(conflict, answer, test_still_top), chosen(conflict, fact, test_still_top)


def held_out_readout(gap, test_x1, test_x2, test_still):
    """(M_C, p_c): the conflict reliance σ(z_c − z_b) of the conflict example and the answer
    probability p_c of the aligned example, both at held-out gaps A (M, ...) (class forms);
    test_x1, test_x2 (M, 2, C, ...)."""
    s, sn = sigmoid_pair(gap)
    z = s[:, None, None] * test_x1 + sn[:, None, None] * test_x2
    conflict = z[:, 0]
    reliance = sigmoid_pair(conflict[:, ANSWER_CLASS] - conflict[:, FACT_CLASS])[0]
    e, _, total, _ = _softmax(z[:, 1], test_x1[:, 1], test_x2[:, 1], test_still)
    return reliance, e[:, ANSWER_CLASS] / total


def state_metrics(system: ReducedSystem, alpha) -> dict:
    """Everything the integrators record at state α (U, ...): alpha, gaps g, drive h, loss ℓ
    and correct (1.0 where the unit's answer is its argmax, `chosen`) per unit; with
    held-out rows A; in the class forms reliance (M_C), aligned_accuracy (p_c),
    counterfactual and parametric (1.0 where the conflict example's argmax is c, resp. b) per
    held-out gap."""
    gaps = jnp.sum(system.gram * alpha[None], axis=1)
    drive, loss = unit_response(gaps, system.x1, system.x2, system.still, system.answer)
    correct = unit_correct(gaps, system.x1, system.x2, system.answer, system.still_top)
    out = dict(alpha=alpha, gaps=gaps, drive=drive, loss=loss, correct=correct)
    if system.test is not None:
        out["A"] = jnp.sum(system.test * alpha[None], axis=1)
        if system.test_x1 is not None:
            out["reliance"], out["aligned_accuracy"] = held_out_readout(
                out["A"], system.test_x1, system.test_x2, system.test_still)
            out["counterfactual"], out["parametric"] = held_out_choice(
                out["A"], system.test_x1, system.test_x2, system.test_still_top)
    return out


# ----------------------------------------------------------------------------- per example


def example_system(gram, v1, v2, answers, lr, test_inner=None) -> ReducedSystem:
    """One unit per example: gram (n, n) key-difference Gram, v1, v2 (n, K) value columns of
    each example's two visible keys, answers (n,) target tokens, test_inner (m, n) rows
    k_testᵀk_j of held-out examples (or None). Every token is its own class. A stack of one."""
    gram = np.asarray(gram, dtype=np.float64)
    v1, v2 = np.asarray(v1, dtype=np.float64), np.asarray(v2, dtype=np.float64)
    n, k = v1.shape
    answer = np.zeros((n, k))
    answer[np.arange(n), np.asarray(answers, dtype=int)] = 1.0
    test = None if test_inner is None else np.asarray(test_inner, dtype=np.float64)[..., None]
    none = np.full((1, 1), -np.inf)
    return ReducedSystem(gram=gram[..., None], x1=v1[..., None], x2=v2[..., None], still=none,
                         answer=answer[..., None], step=np.array([lr / n], dtype=np.float64), test=test,
                         still_top=none)


# ----------------------------------------------------------------------------- class forms


def class_columns(knowledge: Knowledge, n_relations: int = 1) -> dict:
    """Value columns compressed to the 5 output classes (subjects ×K_S, relations ×R, answer
    c, other fact b, remaining answers ×(K_A − 2)), broadcast over the fields of `knowledge`
    (last axis = class). Keys: flat (an unmemorised subject, also every relation column),
    context (v(c)), mem_c / mem_b (a subject memorised at δ_M with fact c / b), seen (fact c
    at δ_S), logmult (log-multiplicity of each class)."""
    ks, ka, dc, dm, oc, orr, ds = np.broadcast_arrays(
        *[np.asarray(a, dtype=np.float64) for a in knowledge]
    )
    if np.any(ka < 2) or np.any(ks < 1):
        raise ValueError("need at least one subject and two answers")
    log_z0 = np.log(z0(ks, ka, oc, orr, n_relations))
    zero = np.zeros_like(oc)

    def col(c_val, b_val):
        return np.stack([zero, orr, c_val, b_val, oc], axis=-1)

    with np.errstate(divide="ignore"):
        logmult = np.stack([np.log(ks), zero + np.log(n_relations), zero, zero, np.log(ka - 2)], axis=-1)
    return dict(
        flat=col(oc, oc),
        context=col(logit(dc) + log_z0, oc),
        mem_c=col(logit(dm) + log_z0, oc),
        mem_b=col(oc, logit(dm) + log_z0),
        seen=col(logit(ds) + log_z0, oc),
        logmult=logmult,
    )


def moving_classes(cols: dict) -> dict:
    """`class_columns` on the classes the attention can move, answer c and fact b (last
    axis), and `still` = log Σ_k mult_k e^{v_k} over the others: every column has the same
    value v_k on the subject, relation and other-answer classes, so they add a constant to
    every softmax. Keys: those of `class_columns` but logmult, still, and still_top, the
    largest value v_k of a still class that has tokens (for the argmax)."""
    out = {key: value[..., [2, 3]] for key, value in cols.items() if key != "logmult"}
    out["still"] = logsumexp(cols["logmult"][..., _STILL] + cols["flat"][..., _STILL], axis=-1)
    out["still_top"] = np.max(np.where(np.isneginf(cols["logmult"][..., _STILL]), -np.inf, cols["flat"][..., _STILL]),
                              axis=-1)
    return out


def group_key_columns(cols: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x1, x2) of the 5 groups (…, 5, C) and (t1, t2) of the conflict and aligned held-out
    examples (…, 2, C), from `class_columns` or `moving_classes`."""
    x1 = np.stack([cols["context"]] * 3 + [cols["seen"], cols["flat"]], axis=-2)
    x2 = np.stack([cols["flat"], cols["mem_c"], cols["mem_b"], cols["flat"], cols["flat"]], axis=-2)
    t1 = np.stack([cols["context"], cols["context"]], axis=-2)
    t2 = np.stack([cols["mem_b"], cols["mem_c"]], axis=-2)
    return x1, x2, t1, t2


def relation_group_gram(counts, relation_overlap=0.0):
    """(M, T): M (…, 5R, 5R) with g = Mα for α flattened relation-major ((j, G) ↦ 5j + G), and
    T (…, R, 5R) with A = Tα (conflict test example on each relation). counts (…, R, 5) and
    relation_overlap broadcast over the leading axes.

        M_{jG,lH} = n_lH D^{jl}_GH Γ_jl + δ_jl δ_GH (self_G − distinct_GG),
        T_{j,lH}  = n_lH test_H Γ_jl,

    D^{jl} = DISTINCT_INNER with the S·S block ½ + Γ_jl, Γ = (1 − γ)I + γ11ᵀ."""
    counts = np.asarray(counts, dtype=np.float64)
    n_rel = counts.shape[-2]
    overlap = np.asarray(relation_overlap, dtype=np.float64)
    eye = np.eye(n_rel)
    gam = (1.0 - overlap[..., None, None]) * eye + overlap[..., None, None]  # (…, R, R)
    gam_jl = gam[..., :, :, None, None]  # (…, j, l, 1, 1)
    d = np.where(_S_BLOCK, 0.5 + gam_jl, DISTINCT_INNER)  # (…, j, l, G, H)
    blocks = d * gam_jl * counts[..., None, :, None, :]
    lead = blocks.shape[:-4]
    m = np.swapaxes(blocks, -3, -2).reshape(lead + (5 * n_rel, 5 * n_rel))
    m = m + np.kron(eye, np.diag(SELF_INNER - np.diag(DISTINCT_INNER)))
    t = (gam[..., :, :, None] * (TEST_INNER * counts)[..., None, :, :]).reshape(lead + (n_rel, 5 * n_rel))
    return m, t


class Layout(NamedTuple):
    """How a stack of class-form systems maps back to the caller's arguments."""

    shape: tuple  # the broadcast shape of the arguments (the stack, before flattening)
    counts: np.ndarray  # (B, R, 5)
    n: np.ndarray  # (B,) training examples
    lr: np.ndarray  # (B,) η
    overlap: np.ndarray  # (B,) γ


def relation_system(knowledge: Knowledge, counts, n_relations=None, relation_overlap=0.0,
                    lr=1.0) -> tuple[ReducedSystem, Layout]:
    """The class-form system of R relations with overlap γ, one unit per (relation, group).

    counts (…, R, 5): group counts per relation (GROUPS order); n_relations, if given, must
    equal R. The fields of `knowledge` and the other numeric arguments broadcast with
    the leading axes of counts; the stack is their flattened broadcast shape."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim < 2 or counts.shape[-1] != len(GROUPS):
        raise ValueError("counts must have shape (..., n_relations, 5)")
    n_rel = counts.shape[-2]
    if n_relations is not None and int(n_relations) != n_rel:
        raise ValueError(f"n_relations = {n_relations} but counts has {n_rel} rows")
    if np.any(counts < 0):
        raise ValueError("counts must be non-negative")
    scalars = [np.asarray(a, dtype=np.float64) for a in (*knowledge, relation_overlap, lr)]
    shape = np.broadcast_shapes(counts.shape[:-2], *[a.shape for a in scalars])
    ks, ka, dc, dm, oc, orr, ds, gam, eta = (np.broadcast_to(a, shape).reshape(-1) for a in scalars)
    counts = np.broadcast_to(counts, shape + counts.shape[-2:]).reshape((-1, n_rel, 5))
    if np.any(gam < 0) or np.any(gam >= 1):
        raise ValueError("relation_overlap must lie in [0, 1)")
    n = counts.sum(axis=(-2, -1))
    if np.any(n <= 0):
        raise ValueError("need at least one training example")
    cols = moving_classes(class_columns(Knowledge(ks, ka, dc, dm, oc, orr, ds), n_rel))
    x1, x2, t1, t2 = group_key_columns(cols)  # (B, 5, C), (B, 2, C)
    gram, test = relation_group_gram(counts, gam)
    stack, classes = len(n), MOVING_CLASSES
    answer = np.zeros((1, classes, stack))
    answer[:, ANSWER_CLASS] = 1.0
    still = cols["still"][None]  # (1, B)

    def stack_last(x):
        return np.ascontiguousarray(np.moveaxis(x, 0, -1))

    system = ReducedSystem(
        gram=stack_last(gram),
        x1=stack_last(np.tile(x1, (1, n_rel, 1))),
        x2=stack_last(np.tile(x2, (1, n_rel, 1))),
        still=still,
        answer=answer,
        step=eta / n,
        test=stack_last(test),
        test_x1=stack_last(np.broadcast_to(t1[:, None], (stack, n_rel, 2, classes))),
        test_x2=stack_last(np.broadcast_to(t2[:, None], (stack, n_rel, 2, classes))),
        test_still=still,
        still_top=cols["still_top"][None],
        test_still_top=cols["still_top"][None],
    )
    return system, Layout(tuple(shape), counts, n, eta, gam)


def group_system(knowledge: Knowledge, counts: GroupCounts, lr=1.0) -> tuple[ReducedSystem, Layout]:
    """The class-form system of the paper's single relation: `relation_system` with R = 1
    (every field of the records and lr may be an array; they all broadcast)."""
    return relation_system(knowledge, counts.array()[..., None, :], None, 0.0, lr)
