"""The finetuning optimizers (`train.optimizer`), composed from optax pieces, and the minibatches.

Parameters are a pytree {"kq": ..., "v": ...} ("v" only when W_V trains): the d×d matrices in
the generic engine, their token coordinates A and B in the fast engine (W_KQ = Φ A Φ_Rᵀ,
W_V = W_V(0) + Φ B Φᵀ). gd and sgd (with momentum and weight decay) are linear in the
gradients and in the parameters, so if every gradient is ∇_W L = Φ C Φ_Rᵀ, every update is
Φ (the same update of C) Φ_Rᵀ: the fast engine runs them exactly on A and B. adam and adamw
normalise each d×d entry separately, which no token-coordinate update reproduces; they run
on the generic engine.

Weight decay λ acts on W_KQ only (coupled, λW added to the gradient, for gd, sgd and adam;
decoupled for adamw): W_KQ starts at 0, so decay pulls it back to the pretrained model, while
decaying W_V would pull it towards 0 rather than towards its pretrained value.

Minibatches (`train.batch_size` b > 0): each epoch of ⌊n/b⌋ steps deals the n training examples
in a random order drawn from `train.seed` and takes them b at a time (the last n mod b of an
epoch sit out); step t's gradient is the mean over its batch. Both engines draw the same
batches (`batch_weights`), so they agree step for step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
    import optax


class Hyper(NamedTuple):
    """Per-run optimizer numbers (arrays with a leading example axis in a sweep)."""

    momentum: jax.Array  # train.momentum (sgd)
    weight_decay: jax.Array  # train.weight_decay λ
    seed: jax.Array  # train.seed, uint32: the minibatches


def is_plain(train) -> bool:
    """Whether a `cpi.sims.config.TrainConfig` section asks for the theory's optimizer: full-batch
    gradient descent without weight decay (the engines then skip optax altogether)."""
    return train.optimizer == "gd" and train.batch_size == 0 and train.weight_decay == 0


def hyper(train, dtype="float64") -> Hyper:
    """The `Hyper` of one `cpi.sims.config.TrainConfig` section."""
    return Hyper(jnp.asarray(train.momentum, dtype), jnp.asarray(train.weight_decay, dtype),
                 jnp.asarray(train.seed, jnp.uint32))


def _one(name: str, lr, momentum, weight_decay, decay: bool) -> "optax.GradientTransformation":
    """One parameter's optimizer; `decay` says whether weight decay applies to it."""
    import optax  # imported here: plain gradient descent, the common case, never needs its import time

    decayed = [optax.add_decayed_weights(weight_decay)] if decay and name != "adamw" else []
    if name == "gd":
        return optax.chain(*decayed, optax.sgd(lr))
    if name == "sgd":
        return optax.chain(*decayed, optax.sgd(lr, momentum=momentum))
    if name == "adam":
        return optax.chain(*decayed, optax.adam(lr))
    if name == "adamw":
        return optax.adamw(lr, weight_decay=weight_decay if decay else 0.0)
    raise ValueError(f"unknown optimizer {name!r}")


def transform(name: str, lr, value_lr, hyper: Hyper, train_values: bool) -> "optax.GradientTransformation":
    """The optimizer of {"kq", "v"}: `name` with step size lr on W_KQ (weight decay on it) and
    value_lr on W_V (if it trains)."""
    import optax

    kq = _one(name, lr, hyper.momentum, hyper.weight_decay, decay=True)
    if not train_values:
        return optax.multi_transform({"kq": kq}, {"kq": "kq"})
    v = _one(name, value_lr, hyper.momentum, hyper.weight_decay, decay=False)
    return optax.multi_transform({"kq": kq, "v": v}, {"kq": "kq", "v": "v"})


def epoch_order(seed, step, n: int, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """(order, within): the permutation of the n examples that step `step`'s epoch deals (drawn
    from `seed` and the epoch), and the index of the step's minibatch in it: the minibatch is
    order[within·b : (within + 1)·b] (batch_size b > 0)."""
    per_epoch = n // batch_size
    epoch, within = step // per_epoch, step % per_epoch
    return jax.random.permutation(jax.random.fold_in(jax.random.key(seed), epoch), n), within


def batch_weights(seed, step, n: int, batch_size: int, dtype) -> jax.Array:
    """(n,) the weight of each training example in step `step`'s mean loss: 1/b on the b
    examples of its minibatch, 0 elsewhere (1/n everywhere when batch_size is 0)."""
    if batch_size == 0:
        return jnp.full((n,), 1.0 / n, dtype)
    order, within = epoch_order(seed, step, n, batch_size)
    position = jnp.zeros((n,), jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
    chosen = (position >= within * batch_size) & (position < (within + 1) * batch_size)
    return chosen.astype(dtype) / batch_size
