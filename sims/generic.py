"""The generic engine: full-batch finetuning of the d×d model (`cpi.sims.model`) under
`jax.lax.scan`, with metrics every step, evaluated literally (autodiff, jvps for the θ pushes).

It is the definition and the test oracle of the fast engine (`cpi.sims.engine`), which `cpi run`
and `cpi sweep` use; `simulate` is a pure function of packed world arrays and the step sizes.
The model's step is `gradient` (autodiff of `cpi.sims.model.loss`), its record `metrics`
(`cpi.sims.metrics`). Step 0 of every metric is before any update; step t is after t
updates. W_KQ starts at 0; W_V starts at its pretrained value and trains only when
value_lr > 0 (with its own step size).

Precision: `pack` and `simulate` compute in the dtype they are given, switching JAX's 64-bit
mode on for their own duration when it is float64 (`cpi.sims.precision.precision`), never for the
whole process; `metrics`, `simulate_segment` and `final_metrics` follow their caller's mode.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cpi.theory.groups import TRAINING_GROUPS

from . import model
from .metrics import ExampleValues, collect
from .model import example_losses, example_outputs, logits
from .optimizers import Hyper, batch_weights, transform
from .precision import precision
from .world import Examples, World

SEGMENT_STEPS = 20_000
"""Runs longer than this are cut into scans of at most this many steps, with progress shown."""


def _points(examples: Examples) -> tuple:
    # device_put rather than jnp.asarray: no small compilation per integer-array shape.
    return tuple(jax.device_put(np.asarray(x)) for x in (examples.tokens, examples.key_mask, examples.answer))


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


def _argmax_is(z, target):
    """`cpi.sims.model.chosen` of token `target` (n,) under logits z (n, K)."""
    rows = jnp.arange(z.shape[0])
    others = z.at[rows, target].set(-jnp.inf)
    return model.chosen(z[rows, target] - jnp.max(others, axis=-1))


def _product_sum(onehot, values):
    """Σ of `values` within each group of `onehot`, as a matrix product."""
    return onehot.T @ values


def metrics(params: dict, data: dict) -> dict:
    """Every per-step quantity (`cpi.sims.metrics`), computed literally: the θ pushes as
    directional derivatives (jvps) of each training example's loss, the rest from the model's
    outputs."""
    embed = data["embed"]
    relation = data["query"]

    def train_losses(w_kq):
        return example_losses({"kq": w_kq, "v": params["v"]}, embed, data["train"])

    # Directional derivatives of every example's loss along θ φ(r)ᵀ: θᵀ ∇_{W_KQ} ℓ_i φ(r).
    losses, d_theta_c = jax.jvp(train_losses, (params["kq"],), (jnp.outer(data["theta_c"], relation),))
    _, d_theta_s = jax.jvp(train_losses, (params["kq"],), (jnp.outer(data["theta_s"], relation),))
    _, sigma_train = example_outputs(params, embed, *data["train"][:2])

    probs, sigma_test = example_outputs(params, embed, *data["test"][:2])
    rows = jnp.arange(probs.shape[0])
    p_c, p_a = probs[rows, data["test"][2]], probs[rows, data["test_fact"]]
    probs_aligned, _ = example_outputs(params, embed, *data["aligned"][:2])
    p_aligned = probs_aligned[jnp.arange(probs_aligned.shape[0]), data["aligned"][2]]

    z_of = jax.vmap(logits, in_axes=(None, None, 0, 0))
    z_test, _ = z_of(params, embed, *data["test"][:2])
    z_train, _ = z_of(params, embed, *data["train"][:2])

    u = params["kq"] @ relation
    example = ExampleValues(
        reliance=p_c / (p_c + p_a),
        attention_test=sigma_test[:, 0],
        aligned=p_aligned,
        losses=losses,
        attention_train=sigma_train[:, 0],
        d_theta_c=d_theta_c,
        d_theta_s=d_theta_s,
        u_theta_c=data["theta_c"] @ u,
        u_theta_s=data["theta_s"] @ u,
        counterfactual=_argmax_is(z_test, data["test"][2]),
        parametric=_argmax_is(z_test, data["test_fact"]),
        train_chosen=_argmax_is(z_train, data["train"][2]),
    )
    return collect(example, data["group_onehot"], data["test_relation_onehot"], group_sum=_product_sum)


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


def gradient(params: dict, data: dict, train_values: bool, weights=None) -> dict:
    """The model's step: ∇L of the loss of the training examples (`cpi.sims.model.loss`: the
    forward pass σ_i, z_i and ℓ_i, with the equations) with respect to W_KQ (and W_V when
    it trains; else W_V is the data's), by autodiff; `weights` as there."""
    return jax.grad(lambda p: model.loss(_full(p, data, train_values), data["embed"], data["train"], weights))(params)


@partial(jax.jit, static_argnames=("steps", "train_values", "name", "batch_size"))
def simulate_segment(data, lr, value_lr, state, hyper: Hyper | None = None, *, steps: int, train_values: bool,
                   name: str = "gd", batch_size: int = 0):
    """`steps` optimizer steps from `state`; returns (new state, metrics before each step).
    The loss of step t is the mean over the training examples, or over its minibatch
    (`cpi.sims.optimizers.batch_weights`) when batch_size > 0."""
    tx = optimizer(lr, value_lr, train_values, hyper, name)
    n = data["group_onehot"].shape[0]

    def step(carry, _):
        params, opt_state, t = carry
        recorded = metrics(_full(params, data, train_values), data)
        weights = None if batch_size == 0 else batch_weights(hyper.seed, t, n, batch_size, data["embed"].dtype)
        grads = gradient(params, data, train_values, weights)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, t + 1), recorded

    return jax.lax.scan(step, state, None, length=steps)


@partial(jax.jit, static_argnames=("train_values",))
def final_metrics(data, state, train_values: bool):
    return metrics(_full(state[0], data, train_values), data)


def simulate(data, lr, value_lr, steps: int, *, train_values: bool, progress=None, hyper: Hyper | None = None,
             name: str = "gd", batch_size: int = 0) -> tuple[dict, dict]:
    """(metrics at steps 0..steps as arrays of length steps + 1, final parameters {kq, v}).

    The optimizer is plain gradient descent, or `name` (`cpi.sims.optimizers`) with `hyper`
    and minibatches of `batch_size`. Long runs are cut into scans of SEGMENT_STEPS steps;
    `progress(done, total)` is called after each segment."""
    with precision(data["embed"].dtype):
        state = initial_state(data, lr, value_lr, train_values, hyper, name)
        pieces = []
        done = 0
        while done < steps:
            length = min(SEGMENT_STEPS, steps - done)
            state, recorded = simulate_segment(data, lr, value_lr, state, hyper, steps=length,
                                             train_values=train_values, name=name, batch_size=batch_size)
            pieces.append(recorded)
            done += length
            if progress is not None:
                progress(done, steps)
        last = final_metrics(data, state, train_values)
        values = {k: jnp.concatenate([p[k] for p in pieces] + [last[k][None]]) for k in last}
        return values, _full(state[0], data, train_values)
