"""The generic engine: full-batch finetuning of the d×d model (`cpi.sims.model`) under
`jax.lax.scan`, with metrics every step, evaluated literally (autodiff, jvps for the θ pushes).

It is the definition and the test oracle of the fast engine (`cpi.sims.engine`), which `cpi run`
and `cpi sweep` use; `simulate` is a pure function of packed world arrays and the step sizes.
Step 0 of every metric is before any update; step t is after t
updates. W_KQ starts at 0; W_V starts at its pretrained value and trains only when
value_lr > 0 (with its own step size).

Precision: `pack` and `simulate` compute in the dtype they are given, switching JAX's 64-bit
mode on for their own duration when it is float64 (`cpi.sims.engine.precision`), never for the
whole process; `metrics`, `simulate_chunk` and `final_metrics` follow their caller's mode.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cpi.theory.groups import TRAINING_GROUPS, has_context

from .engine import precision, tie_tolerance
from .model import batch_losses, batch_outputs, logits
from .optimizers import Hyper, batch_weights, transform
from .world import Points, World

CHUNK_STEPS = 20_000
"""Runs longer than this are cut into scans of at most this many steps, with progress shown."""


def _points(points: Points) -> tuple:
    # device_put rather than jnp.asarray: no small compilation per integer-array shape.
    return tuple(jax.device_put(np.asarray(x)) for x in (points.tokens, points.key_mask, points.answer))


def pack(world: World, dtype: str = "float64") -> dict:
    """The arrays `simulate` needs, as one pytree (stackable along a new axis for vmap)."""
    with precision(dtype):
        return _pack(world, dtype)


def _pack(world: World, dtype: str) -> dict:
    f = jnp.dtype(dtype)
    onehot = (world.train.group[:, None] == np.arange(len(TRAINING_GROUPS))[None, :]).astype(dtype)
    test_relation = world.test.tokens[:, 2] - world.relation
    return {
        "embed": jnp.asarray(world.embed, f),
        "theta_c": jnp.asarray(world.theta_c, f),
        "theta_s": jnp.asarray(world.theta_s, f),
        "w_v": jnp.asarray(world.w_v, f),
        "train": _points(world.train),
        "group_onehot": jnp.asarray(onehot),
        "test": _points(world.test),
        "test_fact": jax.device_put(np.asarray(world.test.fact)),
        "test_relation_onehot": jnp.asarray(
            (test_relation[:, None] == np.arange(world.n_relations)[None, :]).astype(dtype)
        ),
        "query": jnp.asarray(world.embed[:, world.relation], f),
        "aligned": _points(world.aligned),
    }


def _masked_mean(onehot, values):
    """Mean of `values` within each group (NaN for an empty group)."""
    return (onehot.T @ values) / onehot.sum(axis=0)


def _argmax_is(z, target):
    """1.0 where token `target` (n,) is the argmax of logits z (n, K): z_target exceeds every
    other token's logit by more than `cpi.sims.engine.tie_tolerance` (a tie at the top is not
    chosen); else 0.0."""
    rows = jnp.arange(z.shape[0])
    others = z.at[rows, target].set(-jnp.inf)
    margin = z[rows, target] - jnp.max(others, axis=-1)
    return jnp.where(margin > tie_tolerance(z.dtype), 1.0, 0.0).astype(z.dtype)


def metrics(params: dict, data: dict) -> dict:
    """Every per-step quantity, in the paper's notation.

    reliance: mean M_C = p_c/(p_c + p_a) over conflict test points; attention_context: mean
    σ_c on them; aligned_accuracy: mean p_c on held-out points whose context is their
    memorised fact; loss_G / attention_context_G: per training group; u_theta_c/s: θ_Cᵀu and
    θ_Sᵀu for u = W_KQ φ(r); neg_grad_theta_c_G / neg_grad_theta_s_G: the θ_C / θ_S
    components of −∇_{W_KQ} L_G φ(r), L_G = (1/n)Σ_{i∈G} ℓ_i (the groups sum to −∇L).
    With several relations, r is the first relation r_1 and reliance_r<j> is the mean M_C
    over the conflict test points queried with relation j.
    counterfactual_accuracy / parametric_accuracy: the fraction of conflict test points
    whose argmax output token is the context's answer c / the memorised fact a;
    train_accuracy: the fraction of training points whose argmax is their answer. The argmax
    is y when z_y exceeds every other token's logit by more than `cpi.sims.engine.tie_tolerance`
    (a token tied with another at the top counts as not chosen)."""
    embed, onehot = data["embed"], data["group_onehot"]
    relation = data["query"]
    n = onehot.shape[0]

    def train_losses(w_kq):
        return batch_losses({"kq": w_kq, "v": params["v"]}, embed, data["train"])

    # Directional derivatives of every point's loss along θ φ(r)ᵀ: θᵀ ∇_{W_KQ} ℓ_i φ(r).
    losses, d_theta_c = jax.jvp(train_losses, (params["kq"],), (jnp.outer(data["theta_c"], relation),))
    _, d_theta_s = jax.jvp(train_losses, (params["kq"],), (jnp.outer(data["theta_s"], relation),))
    _, sigma_train = batch_outputs(params, embed, *data["train"][:2])

    probs, sigma_test = batch_outputs(params, embed, *data["test"][:2])
    rows = jnp.arange(probs.shape[0])
    p_c, p_a = probs[rows, data["test"][2]], probs[rows, data["test_fact"]]
    probs_aligned, _ = batch_outputs(params, embed, *data["aligned"][:2])
    p_aligned = probs_aligned[jnp.arange(probs_aligned.shape[0]), data["aligned"][2]]

    z_of = jax.vmap(logits, in_axes=(None, None, 0, 0))
    z_test, _ = z_of(params, embed, *data["test"][:2])
    z_train, _ = z_of(params, embed, *data["train"][:2])

    u = params["kq"] @ relation
    reliance = p_c / (p_c + p_a)
    out = {
        "reliance": jnp.mean(reliance),
        "attention_context": jnp.mean(sigma_test[:, 0]),
        "aligned_accuracy": jnp.mean(p_aligned),
        "loss": jnp.mean(losses),
        "u_theta_c": data["theta_c"] @ u,
        "u_theta_s": data["theta_s"] @ u,
        "counterfactual_accuracy": jnp.mean(_argmax_is(z_test, data["test"][2])),
        "parametric_accuracy": jnp.mean(_argmax_is(z_test, data["test_fact"])),
        "train_accuracy": jnp.mean(_argmax_is(z_train, data["train"][2])),
    }
    by_relation = data["test_relation_onehot"]
    if by_relation.shape[1] > 1:
        per_relation = _masked_mean(by_relation, reliance)
        for j in range(by_relation.shape[1]):
            out[f"reliance_r{j + 1}"] = per_relation[j]
    loss_g = _masked_mean(onehot, losses)
    attention_g = _masked_mean(onehot, sigma_train[:, 0])
    push_c, push_s = -(onehot.T @ d_theta_c) / n, -(onehot.T @ d_theta_s) / n
    for i, g in enumerate(TRAINING_GROUPS):
        out[f"loss_{g}"] = loss_g[i]
        if has_context(g):  # subject-only points have no context to attend to
            out[f"attention_context_{g}"] = attention_g[i]
        out[f"neg_grad_theta_c_{g}"] = jnp.where(onehot[:, i].sum() > 0, push_c[i], jnp.nan)
        out[f"neg_grad_theta_s_{g}"] = jnp.where(onehot[:, i].sum() > 0, push_s[i], jnp.nan)
    return out


def optimizer(lr, value_lr, train_values: bool, hyper: Hyper | None = None,
              name: str = "gd") -> optax.GradientTransformation:
    """`cpi.sims.optimizers.transform`: step lr on W_KQ, value_lr on W_V (if it trains); plain
    gradient descent unless `name` and `hyper` say otherwise."""
    if hyper is None:
        return optax.multi_transform(
            {"kq": optax.sgd(lr), "v": optax.sgd(value_lr)} if train_values else {"kq": optax.sgd(lr)},
            {"kq": "kq", "v": "v"} if train_values else {"kq": "kq"})
    return transform(name, lr, value_lr, hyper, train_values)


def _full(params: dict, data: dict, train_values: bool) -> dict:
    """All model parameters; a frozen W_V comes from the data, not from the scan carry."""
    return {"kq": params["kq"], "v": params["v"] if train_values else data["w_v"]}


def initial_state(data: dict, lr, value_lr, train_values: bool, hyper: Hyper | None = None, name: str = "gd"):
    """(params, optimizer state, step 0)."""
    d = data["embed"].shape[0]
    params = {"kq": jnp.zeros((d, d), data["embed"].dtype)}
    if train_values:
        params["v"] = data["w_v"]
    return params, optimizer(lr, value_lr, train_values, hyper, name).init(params), jnp.zeros((), jnp.int32)


@partial(jax.jit, static_argnames=("steps", "train_values", "name", "batch_size"))
def simulate_chunk(data, lr, value_lr, state, steps: int, train_values: bool, hyper: Hyper | None = None,
                   name: str = "gd", batch_size: int = 0):
    """`steps` optimizer steps from `state`; returns (new state, metrics before each step).
    The loss of step t is the mean over the training points, or over its minibatch
    (`cpi.sims.optimizers.batch_weights`) when batch_size > 0."""
    tx = optimizer(lr, value_lr, train_values, hyper, name)
    n = data["group_onehot"].shape[0]

    def step(carry, _):
        params, opt_state, t = carry
        recorded = metrics(_full(params, data, train_values), data)

        def loss(p):
            losses = batch_losses(_full(p, data, train_values), data["embed"], data["train"])
            if batch_size == 0:
                return jnp.mean(losses)
            return jnp.sum(batch_weights(hyper.seed, t, n, batch_size, losses.dtype) * losses)

        grads = jax.grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, t + 1), recorded

    return jax.lax.scan(step, state, None, length=steps)


@partial(jax.jit, static_argnames=("train_values",))
def final_metrics(data, state, train_values: bool):
    return metrics(_full(state[0], data, train_values), data)


def simulate(data, lr, value_lr, steps: int, train_values: bool, progress=None, hyper: Hyper | None = None,
             name: str = "gd", batch_size: int = 0) -> tuple[dict, dict]:
    """(metrics at steps 0..steps as arrays of length steps + 1, final parameters {kq, v}).

    The optimizer is plain gradient descent, or `name` (`cpi.sims.optimizers`) with `hyper`
    and minibatches of `batch_size`. Long runs are cut into scans of CHUNK_STEPS steps;
    `progress(done, total)` is called after each chunk."""
    with precision(data["embed"].dtype):
        return _simulate(data, lr, value_lr, steps, train_values, progress, hyper, name, batch_size)


def _simulate(data, lr, value_lr, steps: int, train_values: bool, progress, hyper, name, batch_size):
    state = initial_state(data, lr, value_lr, train_values, hyper, name)
    pieces = []
    done = 0
    while done < steps:
        length = min(CHUNK_STEPS, steps - done)
        state, recorded = simulate_chunk(data, lr, value_lr, state, length, train_values, hyper, name, batch_size)
        pieces.append(recorded)
        done += length
        if progress is not None:
            progress(done, steps)
    last = final_metrics(data, state, train_values)
    values = {k: jnp.concatenate([p[k] for p in pieces] + [last[k][None]]) for k in last}
    return values, _full(state[0], data, train_values)
