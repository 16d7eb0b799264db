"""The fast exact engine: the generic model (`cpi.sims.model`) evaluated in token coordinates.

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
Shared work (G A Γ, and G D G when W_V trains) is done once per step, and per point the
work is a gather of a few scores and a softmax over K tokens; with W_V frozen that softmax
runs over the point's few distinct output rows (`output_classes`), set up once, outside the
scan. The θ_C / θ_S pushes of each group come from the same
w_iy (θᵀ∇ℓ_i φ(r_1) = Σ_y w_iy θᵀφ(y) Γ[j_i, 1]) instead of extra jvps.

When every point of a batch has the same tokens and relations (one world, or a sweep over
mixtures and knowledge strengths), A is kept on the m (token, relation) pairs of the training
slots, the only entries its gradient ever has (`cpi.sims.packing.with_layout`: m ≈ 2n + 1 instead
of K·R), and the scores, C and the θ projections of u are products with fixed matrices
shared by the batch instead of per-point gathers and scatters; `full_parameters` maps A back.

The tests check this engine against the generic d×d model to 1e-12 in float64 (W_V frozen
and trained, several relations, CF and S points, filtering).

Accuracies (the paper's Figure 2 and 1a). A point's argmax is its target token y when z_y
exceeds every other token's logit by more than `tie_tolerance` (a token tied with another at
the top counts as not chosen). With W_V frozen the softmax runs over output classes of
tokens with equal logits, so the target is chosen when its class holds it alone and its
logit exceeds every other present class's; the accuracies come from the logits z the loss
already has.

Recording. Metrics are computed at every step (step t: before update t+1; the last one after
the last update) and folded into the reliance summary and the first non-finite step
(`cpi.theory.summary`); they are recorded at steps 0, N, 2N, ... and at the last step for a
stride N (`record_every`), or not at all (summaries only).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cpi.theory.groups import TRAINING_GROUPS, has_context
from cpi.theory.reduced_system import ARGMAX_TOLERANCE
from cpi.theory.summary import fold_finish, fold_init, fold_update, inversion_tol

from . import optimizers
from .optimizers import Hyper
from .packing import Points, Shared, full_coordinates, pack
from .world import World

CHUNK_STEPS = 20_000
"""Runs longer than this are cut into scans of at most this many steps (progress between)."""

TRACES = 0
"""How many times the batched engine has been traced (each trace is one XLA compilation);
tests use it to check that a sweep's shape group compiles once."""


class State(NamedTuple):
    """The scan carry: A (W_KQ coefficients); T and B only when W_V trains; the optimizer's
    state over {"kq": A, "v": B} (`cpi.sims.optimizers`)."""

    kq: jax.Array  # A: (K, R), or (m,) on the active pairs of a shared layout
    table: jax.Array | None  # (K, K) T(t)
    v: jax.Array | None  # (K, K) B
    opt: Any = None  # optax state


def precision(dtype: str):
    """The context in which a run of `dtype` computes: float64 needs JAX's 64-bit mode,
    switched on here for the duration (thread-local) rather than for the whole process; and
    every matrix product runs at the full precision of `dtype` (on a GPU, float32 products
    would otherwise run in TF32, with a 10-bit mantissa: measured on an H100, a float32 sweep
    then strayed 1.3e-3 from the same float32 run; on a CPU this changes nothing)."""
    stack = contextlib.ExitStack()
    stack.enter_context(jax.default_matmul_precision("highest"))
    if np.dtype(dtype) == np.float64:
        stack.enter_context(jax.enable_x64(True))
    return stack


def initial_state(shared: Shared, points: Points, train_values: bool, tx=None) -> State:
    """W_KQ(0) = 0 (A = 0), T(0) and B = 0 when W_V trains; the optimizer `tx` initialised
    on {"kq": A, "v": B}."""
    k, r = points.table.shape[0], shared.relation_gram.shape[0]
    kq = jnp.zeros((k, r) if shared.active is None else shared.active.shape[:1], points.table.dtype)
    if not train_values:
        state = State(kq, None, None)
    else:
        state = State(kq, jnp.asarray(points.table), jnp.zeros_like(points.table))
    return state if tx is None else state._replace(opt=tx.init(_params(state)))


def _params(state: State) -> dict:
    """The optimizer's parameters: the token coordinates A (and B)."""
    return {"kq": state.kq} if state.v is None else {"kq": state.kq, "v": state.v}


def _masked_mean(onehot, values):
    """Mean of `values` within each group (NaN for an empty group)."""
    return jnp.sum(onehot * values[:, None], axis=0) / onehot.sum(axis=0)


class Prepared(NamedTuple):
    """Constant per-world arrays, computed once per compiled chunk (outside the scan)."""

    theta_c: jax.Array  # (N, 3) θ_Cᵀφ(y) for each slot's token y
    theta_s: jax.Array  # (N, 3) θ_Sᵀφ(y) for each slot's token y
    to_first: jax.Array  # (N,) φ(r_j)ᵀφ(r_1), Γ[j, 1]
    answer_class: jax.Array | None  # (N, C) one-hot of the target's output class (W_V frozen)
    fact_class: jax.Array | None  # (m, C) one-hot of the memorised fact's output class


def prepare(shared: Shared, points: Points) -> Prepared:
    dtype = points.table.dtype
    frozen = points.class_values is not None
    return Prepared(
        theta_c=shared.theta_c[points.tokens],
        theta_s=shared.theta_s[points.tokens],
        to_first=shared.relation_gram[points.relation, 0],
        answer_class=jax.nn.one_hot(points.answer_class, points.class_values.shape[1], dtype=dtype) if frozen else None,
        fact_class=jax.nn.one_hot(points.fact_class, points.class_values.shape[1], dtype=dtype) if frozen else None,
    )


class Outputs(NamedTuple):
    """What the loss needs of the output layer, over C output classes (the K tokens
    themselves when W_V trains): values[i, c, slot] = T[y, t_slot] for the tokens y of class c."""

    values: jax.Array  # (N, C, 3)
    log_mult: jax.Array | None  # (N, C) log multiplicities; None: every class is one token
    answer: jax.Array  # (N, C) one-hot of the target's class
    fact: jax.Array  # (m, C) one-hot of the memorised fact's class (conflict test points)


def _outputs(points: Points, prepared: Prepared, table) -> Outputs:
    """The output classes: compressed (W_V frozen) or every token of the current table T."""
    if points.class_values is not None:
        return Outputs(points.class_values, points.class_log_mult, prepared.answer_class, prepared.fact_class)
    k = table.shape[0]
    columns = table.T[points.tokens]  # (N, 3, K): T[:, y] of every slot's token y
    return Outputs(jnp.swapaxes(columns, 1, 2), None, jax.nn.one_hot(points.answer, k, dtype=table.dtype),
                   jax.nn.one_hot(points.test_fact, k, dtype=table.dtype))


ACCURACY_METRICS = ("counterfactual_accuracy", "parametric_accuracy", "train_accuracy")
"""The paper's accuracies: the fraction of conflict test points whose argmax is the context's
answer (counterfactual) or the memorised fact (parametric), and of training points whose
argmax is their answer (train)."""


def tie_tolerance(dtype) -> float:
    """By how much the chosen token's logit must exceed every other's: ARGMAX_TOLERANCE
    (`cpi.theory.reduced_system`) in float64, 1e-4 in float32 (its rounding is about 1e-6)."""
    return ARGMAX_TOLERANCE if np.dtype(dtype) == np.float64 else 1e-4


def chosen(z, target, log_mult=None):
    """1.0 where the target (one-hot over classes, (N, C)) is the argmax of the class logits z
    (N, C): its class holds one token (log-multiplicity 0) and z_target exceeds the logit of
    every other class that has tokens by more than `tie_tolerance`; else 0.0 (a tie at the top
    is not chosen). log_mult None: every class is one token."""
    other = jnp.where(target > 0, -jnp.inf, z)
    alone = True
    if log_mult is not None:
        other = jnp.where(jnp.isneginf(log_mult), -jnp.inf, other)
        alone = jnp.sum(jnp.where(target > 0, log_mult, 0.0), axis=-1) == 0
    margin = jnp.sum(z * target, axis=-1) - jnp.max(other, axis=-1)
    return jnp.where(alone & (margin > tie_tolerance(z.dtype)), 1.0, 0.0).astype(z.dtype)


def step_metrics_and_grads(shared: Shared, points: Points, prepared: Prepared, state: State, outputs: Outputs,
                           train_values: bool, weights=None):
    """(metrics, C, D): every recorded quantity at `state` (the keys of `cpi.sims.generic.metrics`)
    and the gradient coefficients C (of A) and D (of B; None if W_V is frozen) of the loss
    Σ_i weights_i ℓ_i (the mean over the training points when `weights` is None)."""
    n, m = points.group_onehot.shape[0], points.test_fact.shape[0]
    layout = shared.score_map is not None
    if layout:  # one layout for the batch: A on its active pairs, matrix products for all points
        scores = (state.kq @ shared.score_map).reshape(points.tokens.shape)
        u_theta = shared.theta_map @ state.kq  # θ_C, θ_S ᵀ u, u = W_KQ φ(r_1) = Φ A Γ e_1
    else:
        # Small products as multiply-and-sum (XLA's CPU backend runs tiny batched dots slowly).
        u_table = jnp.sum(state.kq[:, :, None] * shared.relation_gram[None], axis=1)  # (K, R): A Γ
        # Batched over worlds that share G, `gram @ u_table` is one product for all of them.
        scores = (shared.gram @ u_table)[points.tokens, points.relation[:, None]]  # φ(y)ᵀ W_KQ φ(r_j)
        u_theta = jnp.stack([jnp.sum(shared.theta_c * u_table[:, 0]), jnp.sum(shared.theta_s * u_table[:, 0])])
    sigma = jax.nn.softmax(jnp.where(points.key_mask, scores, -jnp.inf), axis=-1)
    # One exponential per class: the softmax over K tokens as a weighted softmax over classes.
    z = jnp.sum(outputs.values * sigma[:, None, :], axis=-1)  # (N, C) the logit of each class's tokens
    weighted = z if outputs.log_mult is None else z + outputs.log_mult
    top = jax.lax.stop_gradient(jnp.max(weighted, axis=-1, keepdims=True))
    scaled = jnp.exp(weighted - top)
    total = jnp.sum(scaled, axis=-1, keepdims=True)
    class_p = scaled / total  # (N, C) probability of the whole class
    lse = (top + jnp.log(total))[:, 0]
    z_answer = jnp.sum(z * outputs.answer, axis=-1)
    losses = lse - z_answer

    # Training points: w_iy = ∂ℓ_i/∂score_y = σ_y(e_y − σᵀe), e = T[:, tokens]ᵀ(p − e_a).
    tr = slice(0, n)
    residual = class_p[tr] - outputs.answer[tr]
    e = jnp.sum(outputs.values[tr] * residual[..., None], axis=1)
    w = sigma[tr] * (e - jnp.sum(sigma[tr] * e, axis=-1, keepdims=True))
    weighted_w = w / n if weights is None else w * weights[:, None]
    if layout:
        grad_kq = weighted_w.reshape(-1) @ shared.grad_map
    else:
        grad_kq = jnp.zeros_like(state.kq).at[points.tokens[tr], points.relation[tr][:, None]].add(weighted_w)
    grad_v = None
    if train_values:
        # σ_i on its tokens
        spread = jnp.zeros_like(residual).at[jnp.arange(n)[:, None], points.tokens[tr]].add(sigma[tr])
        grad_v = residual.T @ spread / n if weights is None else (residual * weights[:, None]).T @ spread

    # θᵀ ∇ℓ_i φ(r_1) for each training point, from the same w.
    d_theta_c = jnp.sum(w * prepared.theta_c[tr], axis=-1) * prepared.to_first[tr]
    d_theta_s = jnp.sum(w * prepared.theta_s[tr], axis=-1) * prepared.to_first[tr]

    te, al = slice(n, n + m), slice(n + m, None)
    p_answer = jnp.exp(z_answer - lse)  # of the target token itself
    p_c = p_answer[te]
    p_a = jnp.exp(jnp.sum(z[te] * outputs.fact, axis=-1) - lse[te])
    reliance = p_c / (p_c + p_a)
    log_mult = outputs.log_mult
    test_log_mult = None if log_mult is None else log_mult[te]
    out = {
        "reliance": jnp.mean(reliance),
        "attention_context": jnp.mean(sigma[te, 0]),
        "aligned_accuracy": jnp.mean(p_answer[al]),
        "loss": jnp.mean(losses[tr]),
        "u_theta_c": u_theta[0],
        "u_theta_s": u_theta[1],
        "counterfactual_accuracy": jnp.mean(chosen(z[te], outputs.answer[te], test_log_mult)),
        "parametric_accuracy": jnp.mean(chosen(z[te], outputs.fact, test_log_mult)),
        "train_accuracy": jnp.mean(chosen(z[tr], outputs.answer[tr], None if log_mult is None else log_mult[tr])),
    }
    by_relation = points.test_relation_onehot
    if by_relation.shape[1] > 1:
        per_relation = _masked_mean(by_relation, reliance)
        for j in range(by_relation.shape[1]):
            out[f"reliance_r{j + 1}"] = per_relation[j]
    onehot = points.group_onehot
    loss_g = _masked_mean(onehot, losses[tr])
    attention_g = _masked_mean(onehot, sigma[tr, 0])
    push_c = -jnp.sum(onehot * d_theta_c[:, None], axis=0) / n
    push_s = -jnp.sum(onehot * d_theta_s[:, None], axis=0) / n
    present = onehot.sum(axis=0) > 0
    for i, g in enumerate(TRAINING_GROUPS):
        out[f"loss_{g}"] = loss_g[i]
        if has_context(g):  # subject-only points have no context to attend to
            out[f"attention_context_{g}"] = attention_g[i]
        out[f"neg_grad_theta_c_{g}"] = jnp.where(present[i], push_c[i], jnp.nan)
        out[f"neg_grad_theta_s_{g}"] = jnp.where(present[i], push_s[i], jnp.nan)
    return out, grad_kq, grad_v


def metric_names(n_relations: int) -> list[str]:
    """The keys of the metrics dict, in the order the engine computes them."""
    names = ["reliance", "attention_context", "aligned_accuracy", "loss", "u_theta_c", "u_theta_s", *ACCURACY_METRICS]
    if n_relations > 1:
        names += [f"reliance_r{j + 1}" for j in range(n_relations)]
    for g in TRAINING_GROUPS:
        names += group_metric_names(g)
    return names


def group_metric_names(group: str) -> list[str]:
    """The metrics of training group `group` (NaN throughout when it has no points)."""
    attention = [f"attention_context_{group}"] if has_context(group) else []
    return [f"loss_{group}", *attention, f"neg_grad_theta_c_{group}", f"neg_grad_theta_s_{group}"]


def record_slots(steps: int, stride: int) -> int:
    """Rows of the record buffer of a chunk of `steps` updates: ceil(steps / stride) + 1 (the
    last row holds the final state's metrics, or nothing when another chunk follows)."""
    return -(-steps // stride) + 1


def _advance(shared, points, lr, value_lr, carry, steps: int, stride: int, train_values: bool, record: bool,
             last: bool, hyper: Hyper | None = None, optimizer: str = "gd", batch_size: int = 0):
    """Run `steps` updates from carry = (state, fold, step), folding the metrics of every step
    into the summary; with `last`, also fold the metrics of the final state. With `record`,
    return the metrics of every stride-th step (and of the final state, with `last`). carry
    None starts from the initial state. Returns (carry, recorded dict or None).

    One scan of steps (+1 with `last`) iterations computes everything, so the step is traced
    and compiled once: iteration i measures the state and then updates it (not at i = steps,
    the final measurement), and writes its metrics to row ceil(i / stride) of a buffer. Rows
    are written in order, so row j ends with the metrics of step j·stride, and the last row
    with those of the final state; chunk lengths are multiples of the stride except the last
    chunk's (`chunk_plan`), so no other row is left holding an unrecorded step."""
    dtype = points.table.dtype
    plain = hyper is None  # the theory's full-batch gradient descent (`optimizers.is_plain`)
    tx = None if plain else optimizers.transform(optimizer, lr, value_lr, hyper, train_values)
    names = metric_names(shared.relation_gram.shape[-1])
    if carry is None:
        carry = initial_carry(shared, points, train_values, len(names), tx)
    prepared = prepare(shared, points)
    n = points.group_onehot.shape[0]
    frozen_outputs = None if train_values else _outputs(points, prepared, points.table)

    def updated(state, grad_kq, grad_v):
        if not plain:  # an optax optimizer on the token coordinates (exact: `cpi.sims.optimizers`)
            grads = {"kq": grad_kq} if grad_v is None else {"kq": grad_kq, "v": grad_v}
            updates, opt = tx.update(grads, state.opt, _params(state))
            kq = state.kq + updates["kq"]
            if train_values:
                return State(kq, state.table + shared.gram @ updates["v"] @ shared.gram, state.v + updates["v"], opt)
            return State(kq, None, None, opt)
        if train_values:
            return State(
                state.kq - lr * grad_kq,
                state.table - value_lr * (shared.gram @ grad_v @ shared.gram),
                state.v - value_lr * grad_v,
            )
        return State(state.kq - lr * grad_kq, None, None)

    def body(c, i):
        (state, fold, t), buffer = c
        outputs = _outputs(points, prepared, state.table) if train_values else frozen_outputs
        weights = None if batch_size == 0 else optimizers.batch_weights(hyper.seed, t, n, batch_size, dtype)
        m, grad_kq, grad_v = step_metrics_and_grads(shared, points, prepared, state, outputs, train_values, weights)
        row = jnp.stack([m[k] for k in names])
        fold = fold_update(fold, m["reliance"], row, t, tol=inversion_tol(dtype))
        new = updated(state, grad_kq, grad_v)
        if last:  # the final iteration measures without updating
            new = jax.tree_util.tree_map(lambda a, b: jnp.where(i < steps, a, b), new, state)
        if record:
            buffer = jax.lax.dynamic_update_index_in_dim(buffer, row, (i + stride - 1) // stride, axis=0)
        return ((new, fold, t + 1), buffer), None

    slots = record_slots(steps, stride)
    buffer = jnp.zeros((slots, len(names)), dtype) if record else None
    iterations = steps + 1 if last else steps
    ((state, fold, t), buffer), _ = jax.lax.scan(body, (carry, buffer), jnp.arange(iterations))
    if last:
        t = t - 1  # the final measurement is not a step
    carry = (state, fold, t)
    if not record:
        return carry, None
    rows = buffer if last else buffer[:-1]
    return carry, {k: rows[:, j] for j, k in enumerate(names)}


_STATIC = ("steps", "stride", "train_values", "record", "last", "optimizer", "batch_size")
advance = jax.jit(_advance, static_argnames=_STATIC)
"""One compiled chunk of steps for one world."""


def _advance_batch(shared, points, lr, value_lr, carry, shared_axis, hyper=None, **static):
    global TRACES
    TRACES += 1
    return jax.vmap(  # a carry (or hyper) of None has no leaves: vmap passes it through
        lambda s, p, eta, eta_v, c, h: _advance(s, p, eta, eta_v, c, hyper=h, **static),
        in_axes=(shared_axis, 0, 0, 0, 0, 0),
    )(shared, points, lr, value_lr, carry, hyper)


advance_batch = jax.jit(_advance_batch, static_argnames=("shared_axis", *_STATIC))
"""One compiled chunk of steps for a batch of worlds (leading axis), the shared arrays
either once (shared_axis None) or per world (shared_axis 0)."""


def initial_carry(shared, points, train_values: bool, n_metrics: int, tx=None):
    state = initial_state(shared, points, train_values, tx)
    return state, fold_init(n_metrics, points.table.dtype), jnp.zeros((), jnp.int32)


def chunk_plan(steps: int, record_every: int, chunk_steps: int | None = None) -> list[dict]:
    """The chunks a run of `steps` steps is cut into: each a dict of the static arguments of
    `advance` (steps, stride, last). Chunk lengths are multiples of the stride except the
    last, so the recorded steps are 0, N, 2N, ... < steps, and steps."""
    stride = record_every
    chunk_steps = CHUNK_STEPS if chunk_steps is None else chunk_steps
    length = max(stride, chunk_steps // stride * stride)
    plan, done = [], 0
    while done < steps:
        this = min(length, steps - done)
        plan.append(dict(steps=this, stride=stride, last=done + this == steps))
        done += this
    return plan


def n_recorded(steps: int, record_every: int) -> int:
    """len(recorded_steps(steps, record_every)), without building the array."""
    return -(-steps // record_every) + 1


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
    hyper: Hyper | None = None,
    optimizer: str = "gd",
    batch_size: int = 0,
    first_chunk=None,
) -> tuple[dict | None, dict, State]:
    """Train one world (or, `batched`, a leading axis of worlds) for `steps` steps.

    Returns (recorded, summary, state): recorded metrics (arrays over `recorded_steps`, with
    a leading point axis when batched; None when not `record`), the summary fold of every
    step (`cpi.theory.summary.fold_finish`: initial/peak/peak_step/final reliance and the first
    non-finite step), and the final State. `progress(steps_done)` is called after each chunk
    has finished computing (not when it is dispatched). `optimizer` (gd or sgd), `batch_size`
    and `hyper` (momentum, weight decay, seed) as in `cpi.sims.optimizers`; `hyper` None is plain
    full-batch gradient descent. `first_chunk`: the first chunk of a batched run compiled
    already (`lower_first_chunk(...).compile()` on arrays of these shapes and shardings)."""
    names = metric_names(shared.relation_gram.shape[-1])
    carry = None
    pieces, done = [], 0
    for i, chunk in enumerate(chunk_plan(steps, record_every)):
        length = chunk["steps"]
        chunk.update(train_values=train_values, record=record, hyper=hyper, optimizer=optimizer,
                     batch_size=batch_size)
        if batched and i == 0 and first_chunk is not None:
            carry, rec = first_chunk(shared, points, lr, value_lr, None, hyper=hyper)
        elif batched:
            carry, rec = advance_batch(shared, points, lr, value_lr, carry, shared_axis=shared_axis, **chunk)
        else:
            carry, rec = advance(shared, points, lr, value_lr, carry, **chunk)
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
        recorded = {k: pieces[0][k] if len(pieces) == 1 else np.concatenate([p[k] for p in pieces], axis=axis)
                    for k in names}
    return recorded, summary, state


def lower_first_chunk(shared, points, lr, value_lr, steps: int, train_values: bool, record_every: int = 1,
                      record: bool = True, shared_axis: int | None = None, hyper: Hyper | None = None,
                      optimizer: str = "gd", batch_size: int = 0):
    """The first chunk of `simulate(..., batched=True)` with these arguments, lowered (the
    arrays may be `jax.ShapeDtypeStruct`s): its `.compile()` is what `simulate` takes as
    `first_chunk`, so that a caller can compile while it prepares the arrays."""
    chunk = chunk_plan(steps, record_every)[0]
    return advance_batch.lower(shared, points, lr, value_lr, None, shared_axis=shared_axis, hyper=hyper,
                               train_values=train_values, record=record, optimizer=optimizer,
                               batch_size=batch_size, **chunk)


def full_parameters(world: World, state: State, value_lr: float) -> dict[str, np.ndarray]:
    """The d×d parameters of a final state of `world` (trained as `cpi.sims.train.run` packs it):
    W_KQ = Φ A Φ_Rᵀ and W_V = W_V(0) + Φ B Φᵀ."""
    phi = world.embed
    phi_r = phi[:, phi.shape[1] - world.n_relations:]
    a = np.asarray(state.kq, np.float64)
    if a.ndim == 1:  # A on the active pairs of the world's layout (`cpi.sims.packing.with_layout`)
        a = full_coordinates(pack(world, frozen_values=False)[0], a)  # the layout needs no output classes
    kq = phi @ a @ phi_r.T
    v = world.w_v if state.v is None else world.w_v + phi @ np.asarray(state.v, np.float64) @ phi.T
    return {"kq": kq, "v": v}
