"""The fast engine: the generic model (`cpi.sims.model`) evaluated in token coordinates.

Three layers: the model's step (`cpi.sims.step.step`: forward pass, loss and gradient, pure)
and what is recorded of it (`cpi.sims.step.measure`, `cpi.sims.metrics`); the training scan
over steps, with its updates, summary fold and record buffer (`_advance`); and here, around
them, compilation and vmapping over a stack of worlds (`advance`, `advance_stack`) and the
segments a run is cut into (`simulate`).

Why it is exact. Every gradient of the loss lies in a fixed low-dimensional form (Lemma 1):
∇_{W_KQ} ℓ_i = Σ_y w_iy φ(y) φ(r_{j_i})ᵀ over example i's visible keys y, with
w_iy = ∂ℓ_i/∂(attention score of y); and ∇_{W_V} ℓ_i = Φ (p_i − e_{a_i}) s_iᵀ Φᵀ with s_i ∈ R^K
the attention σ_i scattered onto the example's tokens. Starting from W_KQ(0) = 0 and W_V(0),
gradient descent therefore keeps

    W_KQ(t) = Φ A(t) Φ_Rᵀ,            A ∈ R^{K×R}   (Φ_R: the R relation embeddings)
    W_V(t)  = W_V(0) + Φ B(t) Φᵀ,     B ∈ R^{K×K}

and everything the model computes is a function of small tables:

    scores  φ(y)ᵀ W_KQ φ(r_j) = (G A Γ)[y, j],      G = ΦᵀΦ (token Gram), Γ = Φ_Rᵀ Φ_R
    logits  z_i = T[:, tokens_i] σ_i,              T = Φᵀ W_V Φ = T(0) + G B G

with the updates A ← A − η C, C[y, j] = (1/n) Σ_i w_iy [token y, relation j of example i], and
(W_V training) B ← B − η_V D, T ← T − η_V G D G, D = (1/n) Σ_i (p_i − e_{a_i}) s_iᵀ.
Shared work (G A Γ, and G D G when W_V trains) is done once per step, and per example the
work is a gather of a few scores and a softmax over K tokens; with W_V frozen that softmax
runs over the example's few distinct output rows (`output_classes`), set up once, outside the
scan. The θ_C / θ_S pushes of each group come from the same
w_iy (θᵀ∇ℓ_i φ(r_1) = Σ_y w_iy θᵀφ(y) Γ[j_i, 1]) instead of extra jvps.

When every world of a stack has the same tokens and relations (one world, or a sweep over
mixtures and knowledge strengths), A is kept on the m (token, relation) pairs of the training
slots, the only entries its gradient ever has (`cpi.sims.packing.with_layout`: m ≈ 2n + 1 instead
of K·R), and the scores, C and the θ projections of u are products with fixed matrices
shared by the stack instead of per-example gathers and scatters; `full_parameters` maps A back.

The tests check this engine against the generic d×d model to 1e-12 in float64 (W_V frozen
and trained, several relations, CF and S examples, filtering).

Accuracies (the paper's Figure 2 and 1a): `cpi.sims.model.chosen`, with W_V frozen over
output classes of tokens with equal logits (the target is chosen when its class holds it
alone and its logit exceeds every other present class's by the tie tolerance); they come
from the logits z the loss already has.

Recording. Metrics are computed at every step (step t: before update t+1; the last one after
the last update) and folded into the reliance summary and the first non-finite step
(`cpi.theory.summary`); they are recorded at steps 0, N, 2N, ... and at the last step for a
stride N (`record_every`), or not at all (summaries only).

Runs compute in the arithmetic of their dtype: callers enter `cpi.sims.precision.precision`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cpi.theory.summary import fold_finish, fold_init, fold_update, inversion_tol

from . import optimizers
from .metrics import metric_names
from .optimizers import Hyper
from .packing import PackedExamples, Shared, full_coordinates, pack
from .step import measure, outputs, prepare, step
from .world import World

SEGMENT_STEPS = 20_000
"""Runs longer than this are cut into scans of at most this many steps (progress between)."""


class State(NamedTuple):
    """The scan carry: A (W_KQ coefficients); T and B only when W_V trains; the optimizer's
    state over {"kq": A, "v": B} (`cpi.sims.optimizers`)."""

    kq: jax.Array  # A: (K, R), or (m,) on the active pairs of a shared layout
    table: jax.Array | None  # (K, K) T(t)
    v: jax.Array | None  # (K, K) B
    opt: Any = None  # optax state


def initial_state(shared: Shared, examples: PackedExamples, train_values: bool, tx=None) -> State:
    """W_KQ(0) = 0 (A = 0), T(0) and B = 0 when W_V trains; the optimizer `tx` initialised
    on {"kq": A, "v": B}."""
    k, r = examples.table.shape[0], shared.relation_gram.shape[0]
    kq = jnp.zeros((k, r) if shared.active is None else shared.active.shape[:1], examples.table.dtype)
    if not train_values:
        state = State(kq, None, None)
    else:
        state = State(kq, jnp.asarray(examples.table), jnp.zeros_like(examples.table))
    return state if tx is None else state._replace(opt=tx.init(_params(state)))


def _params(state: State) -> dict:
    """The optimizer's parameters: the token coordinates A (and B)."""
    return {"kq": state.kq} if state.v is None else {"kq": state.kq, "v": state.v}


def record_slots(steps: int, stride: int) -> int:
    """Rows of the record buffer of a segment of `steps` updates: ceil(steps / stride) + 1 (the
    last row holds the final state's metrics, or nothing when another segment follows)."""
    return -(-steps // stride) + 1


def _advance(shared, examples, lr, value_lr, carry, hyper: Hyper | None = None, *, steps: int, stride: int,
             last: bool, record: bool, train_values: bool, optimizer: str = "gd", batch_size: int = 0):
    """The training scan: run `steps` updates from carry = (state, fold, step), folding the
    metrics of every step into the summary; with `last`, also fold the metrics of the final
    state. With `record`, return the metrics of every stride-th step (and of the final state,
    with `last`) as a record buffer, rows over the recorded steps and columns over
    `metric_names` (`recorded_metrics` reads it). carry None starts from the initial state.
    Returns (carry, record buffer or None). `optimizer`, `batch_size` and `hyper` as in
    `simulate`.

    One scan of steps (+1 with `last`) iterations computes everything, so the step is traced
    and compiled once: iteration i measures the state and then updates it (not at i = steps,
    the final measurement), and writes its metrics to row ceil(i / stride) of a buffer. Rows
    are written in order, so row j ends with the metrics of step j·stride, and the last row
    with those of the final state; segment lengths are multiples of the stride except the last
    segment's (`segment_plan`), so no other row is left holding an unrecorded step."""
    dtype = examples.table.dtype
    plain = hyper is None  # the theory's full-batch gradient descent (`optimizers.is_plain`)
    tx = None if plain else optimizers.transform(optimizer, lr, value_lr, hyper, train_values)
    names = metric_names(shared.relation_gram.shape[-1])
    if carry is None:
        carry = initial_carry(shared, examples, train_values, len(names), tx)
    prepared = prepare(shared, examples)
    n = examples.group_onehot.shape[0]
    frozen_outputs = None if train_values else outputs(examples, prepared, examples.table)

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
        out = outputs(examples, prepared, state.table) if train_values else frozen_outputs
        weights = None if batch_size == 0 else optimizers.batch_weights(hyper.seed, t, n, batch_size, dtype)
        forward, grad_kq, grad_v = step(shared, examples, state.kq, out, train_values=train_values, weights=weights)
        m = measure(shared, examples, prepared, state.kq, forward)
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
    return (state, fold, t), buffer


_STATIC = ("steps", "stride", "train_values", "record", "last", "optimizer", "batch_size")
advance = jax.jit(_advance, static_argnames=_STATIC)
"""One compiled segment of steps for one world."""


def _advance_stack(shared, examples, lr, value_lr, carry, hyper=None, *, shared_axis, **static):
    return jax.vmap(  # a carry (or hyper) of None has no leaves: vmap passes it through
        lambda s, p, eta, eta_v, c, h: _advance(s, p, eta, eta_v, c, h, **static),
        in_axes=(shared_axis, 0, 0, 0, 0, 0),
    )(shared, examples, lr, value_lr, carry, hyper)


advance_stack = jax.jit(_advance_stack, static_argnames=("shared_axis", *_STATIC))
"""One compiled segment of steps for a stack of worlds (leading axis), the shared arrays
either once (shared_axis None) or per world (shared_axis 0)."""


def recorded_metrics(buffer, names: list[str], *, last: bool) -> dict[str, np.ndarray]:
    """The metrics in a record buffer of `advance` (or `advance_stack`: a leading axis of
    worlds), on the host: name -> (recorded steps,) array (or (worlds, recorded steps)), its
    unfilled last row dropped unless `last`. The arrays are views of one host copy laid out
    metric by metric, each metric's steps contiguous, taken from each device's part of the
    buffer in place of a gather followed by a slice per metric."""
    if buffer.is_fully_addressable:
        rows = np.empty((*buffer.shape[:-2], buffer.shape[-1], buffer.shape[-2]), buffer.dtype)
        for shard in buffer.addressable_shards:
            if shard.replica_id == 0:
                lead = shard.index[:-2]
                rows[lead] = np.swapaxes(np.asarray(shard.data), -1, -2)
    else:
        rows = np.swapaxes(np.asarray(buffer), -1, -2)
    if not last:
        rows = rows[..., :-1]
    return {k: rows[..., j, :] for j, k in enumerate(names)}


def initial_carry(shared, examples, train_values: bool, n_metrics: int, tx=None):
    state = initial_state(shared, examples, train_values, tx)
    return state, fold_init(n_metrics, examples.table.dtype), jnp.zeros((), jnp.int32)


def segment_plan(steps: int, record_every: int, segment_steps: int | None = None) -> list[dict]:
    """The segments a run of `steps` steps is cut into: each a dict of the static arguments of
    `advance` (steps, stride, last). Segment lengths are multiples of the stride except the
    last, so the recorded steps are 0, N, 2N, ... < steps, and steps."""
    stride = record_every
    segment_steps = SEGMENT_STEPS if segment_steps is None else segment_steps
    length = max(stride, segment_steps // stride * stride)
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


def simulate(shared: Shared, examples: PackedExamples, lr, value_lr, steps: int, *, train_values: bool,
             record_every: int = 1, record: bool = True, hyper: Hyper | None = None, optimizer: str = "gd",
             batch_size: int = 0, progress: Callable[[int], None] | None = None, stacked: bool = False,
             shared_axis: int | None = None) -> tuple[dict | None, dict, State]:
    """Train one world (or, `stacked`, a leading axis of worlds) for `steps` steps at step
    sizes lr (W_KQ) and value_lr (W_V, trained when `train_values`).

    Returns (recorded, summary, state): recorded metrics (arrays over `recorded_steps`, with
    a leading axis of worlds when stacked; None when not `record`), the summary fold of every
    step (`cpi.theory.summary.fold_finish`: initial/peak/peak_step/final reliance and the first
    non-finite step), and the final State. `optimizer` (gd or sgd), `batch_size` and `hyper`
    (momentum, weight decay, seed) as in `cpi.sims.optimizers`; `hyper` None is plain
    full-batch gradient descent. `progress(steps_done)` is called after each segment has
    finished computing (not when it is dispatched). Batched, the shared arrays are one for
    every world (shared_axis None) or per world (0)."""
    names = metric_names(shared.relation_gram.shape[-1])
    training = dict(train_values=train_values, record=record, optimizer=optimizer, batch_size=batch_size)
    carry = None
    pieces, done = [], 0
    for i, segment in enumerate(segment_plan(steps, record_every)):
        if stacked:
            carry, rec = advance_stack(shared, examples, lr, value_lr, carry, hyper=hyper, shared_axis=shared_axis,
                                       **segment, **training)
        else:
            carry, rec = advance(shared, examples, lr, value_lr, carry, hyper=hyper, **segment, **training)
        jax.block_until_ready(carry)
        if rec is not None:
            pieces.append(recorded_metrics(rec, names, last=segment["last"]))
        done += segment["steps"]
        if progress is not None:
            progress(done)
    state, fold, _ = carry
    summary = fold_finish(jax.tree_util.tree_map(np.asarray, fold))
    recorded = None
    if record:
        axis = 1 if stacked else 0
        recorded = {k: pieces[0][k] if len(pieces) == 1 else np.concatenate([p[k] for p in pieces], axis=axis)
                    for k in names}
    return recorded, summary, state


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
