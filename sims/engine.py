"""The fast exact engine: the generic model (`sims.model`) evaluated in token coordinates.

Why it is exact. Every gradient of the loss lies in a fixed low-dimensional form (Lemma 1):
∇_{W_KQ} ℓ_i = Σ_y w_iy φ(y) φ(r_{j_i})ᵀ over point i's visible keys y, with
w_iy = ∂ℓ_i/∂(attention score of y); and ∇_{W_V} ℓ_i = Φ (p_i − e_{a_i}) s_iᵀ Φᵀ with s_i ∈ R^K
the attention σ_i scattered onto the point's tokens. Starting from W_KQ(0) = 0 and W_V(0),
gradient descent therefore keeps

    W_KQ(t) = Φ A(t) Φ_Rᵀ,            A ∈ R^{K×R}   (Φ_R: the R relation embeddings)
    W_V(t)  = W_V(0) + Φ B(t) Φᵀ,     B ∈ R^{K×K}

and everything the model computes is a function of small tables:

    scores  φ(y)ᵀ W_KQ φ(r_j) = (G A Γ)[y, j],      G = ΦᵀΦ (token Gram), Γ = Φ_Rᵀ Φ_R
    logits  z_i = T[:, tokens_i] σ_i,              T = Φᵀ W_V Φ = T(0) + G B G

with the updates A ← A − η C, C[y, j] = (1/n) Σ_i w_iy [token y, relation j of point i], and
(W_V training) B ← B − η_V D, T ← T − η_V G D G, D = (1/n) Σ_i (p_i − e_{a_i}) s_iᵀ.
Per point and step that is one softmax over K tokens and O(K) work; shared work (G A Γ, and
G D G when W_V trains) is done once per step; with W_V frozen the value columns T[:, tokens]
are gathered once, outside the scan. The θ_C / θ_S pushes of each group come from the same
w_iy (θᵀ∇ℓ_i φ(r_1) = Σ_y w_iy θᵀφ(y) Γ[j_i, 1]) instead of extra jvps.

The tests check this engine against the generic d×d model to 1e-12 in float64 (W_V frozen
and trained, several relations, CF and S points, filtering).

Recording. Metrics are computed at every step (step t: before update t+1; the last one after
the last update) and folded into the reliance summary and the first non-finite step
(`theory.summary`); they are recorded at steps 0, N, 2N, ... and at the last step for a
stride N (`record_every`), or not at all (summaries only).
"""

from __future__ import annotations

import contextlib
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from theory.summary import fold_finish, fold_init, fold_update

from .world import GROUPS, World

CHUNK_STEPS = 20_000
"""Runs longer than this are cut into scans of at most this many steps (progress between)."""


class Shared(NamedTuple):
    """Arrays that depend on the embeddings only: the same for every point of a sweep that
    shares the vocabulary. K tokens, R relations."""

    gram: jax.Array  # (K, K) G = ΦᵀΦ
    relation_gram: jax.Array  # (R, R) Γ = Φ_Rᵀ Φ_R
    theta_c: jax.Array  # (K,) Φᵀθ_C
    theta_s: jax.Array  # (K,) Φᵀθ_S


class Points(NamedTuple):
    """One world's points and pretrained table, training points first, then the conflict
    test points, then the aligned held-out points (N = n + m + n_aligned in all)."""

    table: jax.Array  # (K, K) T(0) = Φᵀ W_V(0) Φ: the value-logit table V of the world
    tokens: jax.Array  # (N, 3) int32 [c, s, r_j]
    key_mask: jax.Array  # (N, 3) bool
    answer: jax.Array  # (N,) int32
    relation: jax.Array  # (N,) int32 j: the query is r_{j+1}
    test_fact: jax.Array  # (m,) int32 the memorised fact a of each conflict test point
    group_onehot: jax.Array  # (n, len(GROUPS)) float
    test_relation_onehot: jax.Array  # (m, R) float


class State(NamedTuple):
    """The scan carry: A (W_KQ coefficients); T and B only when W_V trains."""

    kq: jax.Array  # (K, R) A
    table: jax.Array | None  # (K, K) T(t)
    v: jax.Array | None  # (K, K) B


def precision(dtype: str):
    """The context in which a run of `dtype` computes: float64 needs JAX's 64-bit mode,
    switched on here for the duration (thread-local) rather than for the whole process."""
    return jax.enable_x64(True) if np.dtype(dtype) == np.float64 else contextlib.nullcontext()


def pack_shared(world: World, dtype: str = "float64") -> Shared:
    """The embedding-only arrays of `world` (computed in float64, then cast)."""
    phi = world.embed
    relations = np.arange(phi.shape[1] - world.n_relations, phi.shape[1])
    gram = phi.T @ phi
    f = np.dtype(dtype)
    return Shared(
        gram=np.asarray(gram, f),
        relation_gram=np.asarray(gram[np.ix_(relations, relations)], f),
        theta_c=np.asarray(phi.T @ world.theta_c, f),
        theta_s=np.asarray(phi.T @ world.theta_s, f),
    )


def pack_points(world: World, dtype: str = "float64") -> Points:
    """The per-world arrays of `world` as host (NumPy) arrays, ready to stack over a sweep."""
    f = np.dtype(dtype)
    sets = (world.train, world.test, world.aligned)
    tokens = np.concatenate([p.tokens for p in sets]).astype(np.int32)
    test_relation = world.test.tokens[:, 2] - world.relation
    return Points(
        table=np.asarray(world.value_table, f),
        tokens=tokens,
        key_mask=np.concatenate([p.key_mask for p in sets]).astype(bool),
        answer=np.concatenate([p.answer for p in sets]).astype(np.int32),
        relation=(tokens[:, 2] - world.relation).astype(np.int32),
        test_fact=world.test.fact.astype(np.int32),
        group_onehot=(world.train.group[:, None] == np.arange(len(GROUPS))[None, :]).astype(f),
        test_relation_onehot=(test_relation[:, None] == np.arange(world.n_relations)[None, :]).astype(f),
    )


def initial_state(shared: Shared, points: Points, train_values: bool) -> State:
    k, r = points.table.shape[0], shared.relation_gram.shape[0]
    kq = jnp.zeros((k, r), points.table.dtype)
    if not train_values:
        return State(kq, None, None)
    return State(kq, jnp.asarray(points.table), jnp.zeros_like(points.table))


def _masked_mean(onehot, values):
    """Mean of `values` within each group (NaN for an empty group)."""
    return (onehot.T @ values) / onehot.sum(axis=0)


def _forward(shared: Shared, points: Points, kq, columns):
    """σ (N, 3), log p (N, K) and the value columns' gradient pieces of every point.

    columns: (N, 3, K) the value columns T[:, tokens_i] of each point's three slots."""
    scores_table = shared.gram @ kq @ shared.relation_gram  # (K, R): φ(y)ᵀ W_KQ φ(r_j)
    scores = scores_table[points.tokens, points.relation[:, None]]
    sigma = jax.nn.softmax(jnp.where(points.key_mask, scores, -jnp.inf), axis=-1)
    z = jnp.einsum("nsk,ns->nk", columns, sigma)
    return sigma, jax.nn.log_softmax(z, axis=-1)


def step_metrics_and_grads(shared: Shared, points: Points, state: State, columns, train_values: bool):
    """(metrics, C, D): every recorded quantity at `state` (the keys of `sims.generic.metrics`)
    and the mean-loss gradient coefficients C (of A) and D (of B; None if W_V is frozen)."""
    n, m = points.group_onehot.shape[0], points.test_fact.shape[0]
    sigma, log_p = _forward(shared, points, state.kq, columns)
    p = jnp.exp(log_p)
    rows = jnp.arange(points.answer.shape[0])
    losses = -log_p[rows, points.answer]

    # Training points: w_iy = ∂ℓ_i/∂score_y = σ_y(e_y − σᵀe), e = T[:, tokens]ᵀ(p − e_a).
    tr = slice(0, n)
    residual = p[tr].at[jnp.arange(n), points.answer[tr]].add(-1.0)  # p − e_a
    e = jnp.einsum("nsk,nk->ns", columns[tr], residual)
    w = sigma[tr] * (e - jnp.sum(sigma[tr] * e, axis=-1, keepdims=True))
    relation_tr = points.relation[tr]
    grad_kq = jnp.zeros_like(state.kq).at[points.tokens[tr], relation_tr[:, None]].add(w / n)
    grad_v = None
    if train_values:
        spread = jnp.zeros_like(residual).at[jnp.arange(n)[:, None], points.tokens[tr]].add(sigma[tr])
        grad_v = residual.T @ spread / n

    # θᵀ ∇ℓ_i φ(r_1) for each training point, from the same w.
    to_first = shared.relation_gram[relation_tr, 0]
    d_theta_c = jnp.sum(w * shared.theta_c[points.tokens[tr]], axis=-1) * to_first
    d_theta_s = jnp.sum(w * shared.theta_s[points.tokens[tr]], axis=-1) * to_first

    te = slice(n, n + m)
    test_rows = jnp.arange(m)
    p_c, p_a = p[te][test_rows, points.answer[te]], p[te][test_rows, points.test_fact]
    reliance = p_c / (p_c + p_a)
    al = slice(n + m, None)
    u_first = state.kq @ shared.relation_gram[:, 0]  # A Γ e_1: u = W_KQ φ(r_1) = Φ A Γ e_1
    out = {
        "reliance": jnp.mean(reliance),
        "attention_context": jnp.mean(sigma[te, 0]),
        "aligned_accuracy": jnp.mean(p[al][jnp.arange(p[al].shape[0]), points.answer[al]]),
        "loss": jnp.mean(losses[tr]),
        "u_theta_c": shared.theta_c @ u_first,
        "u_theta_s": shared.theta_s @ u_first,
    }
    by_relation = points.test_relation_onehot
    if by_relation.shape[1] > 1:
        per_relation = _masked_mean(by_relation, reliance)
        for j in range(by_relation.shape[1]):
            out[f"reliance_r{j + 1}"] = per_relation[j]
    onehot = points.group_onehot
    loss_g = _masked_mean(onehot, losses[tr])
    attention_g = _masked_mean(onehot, sigma[tr, 0])
    push_c, push_s = -(onehot.T @ d_theta_c) / n, -(onehot.T @ d_theta_s) / n
    present = onehot.sum(axis=0) > 0
    for i, g in enumerate(GROUPS):
        out[f"loss_{g}"] = loss_g[i]
        if g != "S":  # subject-only points have no context to attend to
            out[f"attention_context_{g}"] = attention_g[i]
        out[f"neg_grad_theta_c_{g}"] = jnp.where(present[i], push_c[i], jnp.nan)
        out[f"neg_grad_theta_s_{g}"] = jnp.where(present[i], push_s[i], jnp.nan)
    return out, grad_kq, grad_v


def metric_names(n_relations: int) -> list[str]:
    """The keys of the metrics dict, in the order the engine computes them."""
    names = ["reliance", "attention_context", "aligned_accuracy", "loss", "u_theta_c", "u_theta_s"]
    if n_relations > 1:
        names += [f"reliance_r{j + 1}" for j in range(n_relations)]
    for g in GROUPS:
        names.append(f"loss_{g}")
        if g != "S":
            names.append(f"attention_context_{g}")
        names += [f"neg_grad_theta_c_{g}", f"neg_grad_theta_s_{g}"]
    return names


def _columns(points: Points, table) -> jax.Array:
    """(N, 3, K): T[:, tokens_i] for every point (rows of Tᵀ)."""
    return table.T[points.tokens]


def _advance(shared, points, lr, value_lr, carry, n_records: int, stride: int, tail: int,
             train_values: bool, record: bool, last: bool):
    """Run n_records·stride + tail steps from carry = (state, fold, step); record the metrics
    of every stride-th step (and the tail's first); with `last`, also fold (and record) the
    metrics of the final state; carry None starts from the initial state. Returns
    (carry, recorded dict or None)."""
    if carry is None:
        carry = initial_carry(shared, points, train_values, len(metric_names(shared.relation_gram.shape[-1])))
    frozen_columns = None if train_values else _columns(points, points.table)

    def one(c):
        state, fold, t = c
        columns = _columns(points, state.table) if train_values else frozen_columns
        m, grad_kq, grad_v = step_metrics_and_grads(shared, points, state, columns, train_values)
        fold = fold_update(fold, m["reliance"], jnp.stack(list(m.values())), t)
        if train_values:
            state = State(
                state.kq - lr * grad_kq,
                state.table - value_lr * (shared.gram @ grad_v @ shared.gram),
                state.v - value_lr * grad_v,
            )
        else:
            state = State(state.kq - lr * grad_kq, None, None)
        return (state, fold, t + 1), m

    def silent(c, _):
        return one(c)[0], None

    def block(length):
        def body(c, _):
            c, m = one(c)
            if length > 1:
                c, _ = jax.lax.scan(silent, c, None, length=length - 1)
            return c, (m if record else None)
        return body

    pieces = []
    if n_records:
        carry, rec = jax.lax.scan(block(stride), carry, None, length=n_records)
        pieces.append(rec)
    if tail:
        carry, rec = jax.lax.scan(block(tail), carry, None, length=1)
        pieces.append(rec)
    if last:
        state, fold, t = carry
        columns = _columns(points, state.table) if train_values else frozen_columns
        m, _, _ = step_metrics_and_grads(shared, points, state, columns, train_values)
        carry = (state, fold_update(fold, m["reliance"], jnp.stack(list(m.values())), t), t)
        pieces.append(jax.tree_util.tree_map(lambda x: x[None], m))
    if not record or not pieces:
        return carry, None
    return carry, jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *pieces)


_STATIC = ("n_records", "stride", "tail", "train_values", "record", "last")
advance = jax.jit(_advance, static_argnames=_STATIC)
"""One compiled chunk of steps for one world."""


def _advance_batch(shared, points, lr, value_lr, carry, shared_axis, **static):
    if carry is None:
        return jax.vmap(
            lambda s, p, eta, eta_v: _advance(s, p, eta, eta_v, None, **static),
            in_axes=(shared_axis, 0, 0, 0),
        )(shared, points, lr, value_lr)
    return jax.vmap(
        lambda s, p, eta, eta_v, c: _advance(s, p, eta, eta_v, c, **static),
        in_axes=(shared_axis, 0, 0, 0, 0),
    )(shared, points, lr, value_lr, carry)


advance_batch = jax.jit(_advance_batch, static_argnames=("shared_axis", *_STATIC))
"""One compiled chunk of steps for a batch of worlds (leading axis), the shared arrays
either once (shared_axis None) or per world (shared_axis 0)."""


def initial_carry(shared, points, train_values: bool, n_metrics: int):
    state = initial_state(shared, points, train_values)
    return state, fold_init(n_metrics, points.table.dtype), jnp.zeros((), jnp.int32)


def chunk_plan(steps: int, record_every: int, chunk_steps: int | None = None) -> list[dict]:
    """The chunks a run of `steps` steps is cut into: each a dict of the static arguments of
    `advance` (n_records, stride, tail, last). Chunk lengths are multiples of the stride
    except the last, so the recorded steps are 0, N, 2N, ... < steps, and steps."""
    stride = record_every
    chunk_steps = CHUNK_STEPS if chunk_steps is None else chunk_steps
    length = max(stride, chunk_steps // stride * stride)
    plan, done = [], 0
    while done < steps:
        this = min(length, steps - done)
        plan.append(dict(n_records=this // stride, stride=stride, tail=this % stride,
                         last=done + this == steps, steps=this))
        done += this
    return plan


def recorded_steps(steps: int, record_every: int) -> np.ndarray:
    """The steps whose metrics are recorded with stride `record_every`: 0, N, 2N, ... < steps,
    and the last step."""
    return np.append(np.arange(0, steps, record_every), steps)


def simulate(
    shared: Shared,
    points: Points,
    lr,
    value_lr,
    steps: int,
    train_values: bool,
    record_every: int = 1,
    record: bool = True,
    progress: Callable[[int], None] | None = None,
    batched: bool = False,
    shared_axis: int | None = None,
    advance_fn=None,
) -> tuple[dict | None, dict, State]:
    """Train one world (or, `batched`, a leading axis of worlds) for `steps` steps.

    Returns (recorded, summary, state): recorded metrics (arrays over `recorded_steps`, with
    a leading point axis when batched; None when not `record`), the summary fold of every
    step (`theory.summary.fold_finish`: initial/peak/peak_step/final reliance and the first
    non-finite step), and the final State. `progress(steps_done)` is called after each chunk
    has finished computing (not when it is dispatched). `advance_fn` replaces the compiled
    batched chunk (`advance_batch`)."""
    names = metric_names(shared.relation_gram.shape[-1])
    carry = None
    pieces, done = [], 0
    for chunk in chunk_plan(steps, record_every):
        length = chunk.pop("steps")
        if batched:
            carry, rec = (advance_fn or advance_batch)(shared, points, lr, value_lr, carry, shared_axis=shared_axis,
                                       train_values=train_values, record=record, **chunk)
        else:
            carry, rec = advance(shared, points, lr, value_lr, carry, train_values=train_values,
                                 record=record, **chunk)
        jax.block_until_ready(carry)
        if rec is not None:
            pieces.append({k: np.asarray(v) for k, v in rec.items()})
        done += length
        if progress is not None:
            progress(done)
    state, fold, _ = carry
    summary = fold_finish(jax.tree_util.tree_map(np.asarray, fold))
    recorded = None
    if record:
        axis = 1 if batched else 0
        recorded = {k: np.concatenate([p[k] for p in pieces], axis=axis) for k in names}
    return recorded, summary, state


def full_parameters(world: World, state: State, value_lr: float) -> dict[str, np.ndarray]:
    """The d×d parameters of a final state: W_KQ = Φ A Φ_Rᵀ and W_V = W_V(0) + Φ B Φᵀ."""
    phi = world.embed
    phi_r = phi[:, phi.shape[1] - world.n_relations:]
    kq = phi @ np.asarray(state.kq, np.float64) @ phi_r.T
    v = world.w_v if state.v is None else world.w_v + phi @ np.asarray(state.v, np.float64) @ phi.T
    return {"kq": kq, "v": v}
