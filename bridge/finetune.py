"""Finetuning the pretrained transformer on a mixture of the toy's groups.

The loss is the mean cross-entropy of the answer at the last position over the step's examples
(all of them, or a minibatch dealt by `cpi.sims.optimizers.batch_weights` from train.seed). The
optimizer is optax's gd (sgd without momentum), sgd, adam or adamw at train.lr, applied to the
leaves `model.trainable_filter` selects (train.trainable). Every train.eval_every steps (and at
step 0 and the last step) `measure.evaluate` records every metric. The learning rate is a
value in the optimizer's state (`optax.inject_hyperparams`), not a constant of the compiled
program, so finetunings that differ only in train.lr share one compilation.

`finetune_stack` runs several finetunings of one pretrained model at once: a stack of them, one
`jax.vmap`-ped computation over their data and learning rates (mixtures and learning rates that
share the pretrained model, the rest of the train config and the number of examples): what a
sweep over mixture keys or train.lr at a fixed seed needs (`cpi.bridge.sweep`).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cpi.sims.optimizers import batch_weights, epoch_order

from . import measure
from .config import BridgeTrainConfig
from .model import Transformer, answer_logits, cross_entropy, trainable_filter


def optimizer(train: BridgeTrainConfig) -> optax.GradientTransformation:
    """train.optimizer at train.lr; weight decay coupled (gd, sgd, adam) or decoupled (adamw).
    The learning rate is held in the optimizer's state from `init` on (`optax.inject_hyperparams`):
    `update` reads it there, whatever train.lr the transformation was built with."""
    decay = [optax.add_decayed_weights(train.weight_decay)] if train.weight_decay and train.optimizer != "adamw" else []
    if train.optimizer == "adamw":
        return optax.inject_hyperparams(optax.adamw, static_args=("weight_decay",))(
            learning_rate=train.lr, weight_decay=train.weight_decay)
    if train.optimizer == "adam":
        base = optax.inject_hyperparams(optax.adam)(learning_rate=train.lr)
    else:  # gd is sgd without momentum
        momentum = (train.momentum or None) if train.optimizer == "sgd" else None
        base = optax.inject_hyperparams(optax.sgd, static_args=("momentum",))(learning_rate=train.lr, momentum=momentum)
    return optax.chain(*decay, base)


def program_train(train: BridgeTrainConfig) -> BridgeTrainConfig:
    """`train` as the compiled programs take it (a static argument): without its learning rate,
    which the optimizer's state holds, so that learning rates share a program."""
    return dataclasses.replace(train, lr=0.0)


def record_steps(train: BridgeTrainConfig) -> np.ndarray:
    """The steps at which metrics are recorded: 0, e, 2e, ... and the last step."""
    steps = np.arange(0, train.steps + 1, train.eval_every)
    return steps if steps[-1] == train.steps else np.append(steps, train.steps)


def steps_then_metrics(static, opt: optax.GradientTransformation, train: BridgeTrainConfig, n: int,
                       observe: Callable = measure.evaluate, *, gather: bool = False) -> Callable:
    """segment(params, state, data, start, length): `length` optimizer steps of `opt` from step
    `start` on the loss Σ_i w_i ℓ_i over the n training examples of `data` (w: the step's batch
    weights from train.seed), then every metric of the model they reach (`observe(model, data)`,
    by default `measure.evaluate`). Returns (params, state, metrics); `static` is the frozen part
    of the model. With `gather` (minibatches only), each step's loss is the mean over the
    examples of its minibatch, gathered by `batch_indices`: the same steps (equal to float32
    rounding), without computing the examples of weight 0."""

    def segment(params, state, data, start, length: int):
        def loss(params, t):
            m = eqx.combine(params, static)
            if gather:
                index = batch_indices(train.seed, t, n, train.batch_size)
                return jnp.mean(cross_entropy(answer_logits(m, data.train_tokens[index]), data.train_target[index]))
            weights = batch_weights(train.seed, t, n, train.batch_size, jnp.float32)
            return jnp.sum(weights * cross_entropy(answer_logits(m, data.train_tokens), data.train_target))

        def step(carry, t):
            params, state = carry
            updates, state = opt.update(jax.grad(loss)(params, t), state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, state), _ = jax.lax.scan(step, (params, state), start + jnp.arange(length))
        return params, state, observe(eqx.combine(params, static), data)

    return segment


STACKED_FIELDS = ("train_tokens", "train_target", "train_group", "conflict_tokens", "conflict_context",
                  "conflict_fact", "aligned_tokens", "aligned_target", "aligned_is_cs")
"""The `measure.EvalData` arrays that differ between finetunings (arguments of the compiled
programs, so that finetunings of one shape and train config, the learning rate aside, share
one compilation)."""


def _as_data(arrays: dict, groups: tuple) -> SimpleNamespace:
    return SimpleNamespace(**arrays, groups_present=groups)


def _arrays(data: measure.EvalData) -> dict:
    return {f: jnp.asarray(getattr(data, f)) for f in STACKED_FIELDS}


def _stacked(trees: list):
    """Trees of one structure as one tree whose leaves have a leading axis over `trees`."""
    return jax.tree_util.tree_map(lambda *x: jnp.stack(x), *trees)


@eqx.filter_jit
def _evaluate(model, arrays, groups):
    return measure.evaluate(model, _as_data(arrays, groups))


@eqx.filter_jit
def _evaluate_stack(model, arrays, groups):
    return jax.vmap(lambda a: measure.evaluate(model, _as_data(a, groups)))(arrays)


def _segment(params, static, state, arrays, groups, train: BridgeTrainConfig, start, length: int):
    segment = steps_then_metrics(static, optimizer(train), train, int(arrays["train_target"].shape[0]))
    return segment(params, state, _as_data(arrays, groups), start, length)


_segment_one = eqx.filter_jit(_segment)
"""One segment of steps of a finetuning: compiled once per model structure, train config (`program_train`:
without the learning rate), data shapes and segment length (the data, the start step, the
weights and the optimizer's state, which holds the learning rate, are arguments)."""

_segment_stack = eqx.filter_jit(eqx.filter_vmap(_segment, in_axes=(0, None, 0, 0, None, None, None, None)))
"""`_segment_one` for a stack of finetunings (leading axis of params, state, and so of learning
rates, and data arrays)."""


def _recorded_rows(program, params, static, state, arrays, groups, train: BridgeTrainConfig, first, progress) -> list:
    """[first, then what `program` returns after each segment of `train`'s recorded steps (the
    metrics; for `_segment_losses` the metrics and each example's loss), as NumPy], running the
    compiled `program` (`_segment_one`, `_segment_stack` or `_segment_losses`) segment by segment
    from step 0."""
    rows = [jax.tree_util.tree_map(np.asarray, first)]
    steps = record_steps(train)
    for start, stop in zip(steps[:-1], steps[1:]):
        params, state, metrics = program(params, static, state, arrays, groups, program_train(train),
                                         jnp.int32(start), int(stop - start))
        rows.append(jax.tree_util.tree_map(np.asarray, metrics))
        if progress is not None:
            progress(int(stop))
    return rows


def finetune(model: Transformer, train: BridgeTrainConfig, data: measure.EvalData, progress=None) -> np.ndarray:
    """Metrics (recorded steps, metrics) in `measure.metric_names` order."""
    params, static = eqx.partition(model, trainable_filter(model, train.trainable))
    state = optimizer(train).init(params)
    arrays, groups = _arrays(data), data.groups_present
    first = _evaluate(model, arrays, groups)
    return np.stack(_recorded_rows(_segment_one, params, static, state, arrays, groups, train, first, progress))


@eqx.filter_jit
def _observed(model, arrays, groups, observe: Callable):
    return observe(model, _as_data(arrays, groups))


@eqx.filter_jit
def _segment_observed(params, static, state, arrays, groups, train: BridgeTrainConfig, start, length: int,
                      observe: Callable):
    segment = steps_then_metrics(static, optimizer(train), train, int(arrays["train_target"].shape[0]),
                                 observe=observe)
    return segment(params, state, _as_data(arrays, groups), start, length)


def finetune_observed(model: Transformer, train: BridgeTrainConfig, data: measure.EvalData, observe: Callable,
                      progress=None) -> list:
    """`finetune`'s optimizer steps, with `observe(model, data)` (traceable; `data` holds the
    arrays of `STACKED_FIELDS` and `groups_present`) in place of `measure.evaluate` at step 0
    and at every recorded step: the list of its values, as NumPy."""
    params, static = eqx.partition(model, trainable_filter(model, train.trainable))
    state = optimizer(train).init(params)
    arrays, groups = _arrays(data), data.groups_present
    first = _observed(model, arrays, groups, observe)

    def program(*args):
        return _segment_observed(*args, observe)

    return _recorded_rows(program, params, static, state, arrays, groups, train, first, progress)


def finetune_stack(model: Transformer, train: BridgeTrainConfig, datas: list[measure.EvalData], progress=None,
                   lrs=None) -> list[np.ndarray]:
    """`finetune(model, train at lrs[i], datas[i])` for every data set of `datas` (same shapes;
    `lrs` None: train.lr for all), stacked and computed as one `jax.vmap`-ped computation; each
    entry's columns are those of `measure.metric_names` of its own data. `progress(done)` is told
    of finished steps. Rows equal the one-by-one rows to float32 rounding (the stacked matrix
    products round differently: up to 5e-7 on the tiny test model)."""
    groups = tuple(sorted({g for d in datas for g in d.groups_present}))
    arrays = _stacked([_arrays(d) for d in datas])
    params, static = eqx.partition(model, trainable_filter(model, train.trainable))
    lrs = [train.lr] * len(datas) if lrs is None else list(lrs)
    if len(lrs) != len(datas):
        raise ValueError(f"{len(lrs)} learning rates for {len(datas)} data sets")
    state = _stacked([optimizer(dataclasses.replace(train, lr=lr)).init(params) for lr in lrs])
    broadcast = lambda tree: jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (len(datas), *x.shape)), tree)
    first = _evaluate_stack(model, arrays, groups)
    rows = _recorded_rows(_segment_stack, broadcast(params), static, state, arrays, groups, train, first, progress)
    rows = np.stack(rows, axis=1)  # (stack, recorded steps, metrics of the union of groups)
    return [_own_columns(rows[i], d, groups, model) for i, d in enumerate(datas)]


def _own_columns(rows: np.ndarray, data: measure.EvalData, groups: tuple, model: Transformer) -> np.ndarray:
    """The columns of `rows` (metrics of the union `groups`) that `data`'s own metric names have."""
    layers = len(model.blocks)
    union = measure.metric_names(SimpleNamespace(groups_present=groups), layers)
    own = measure.metric_names(data, layers)
    return rows[:, [union.index(name) for name in own]]


def point_losses(model, data) -> jax.Array:
    """(n,) the loss of each finetuning example of `data` under `model` (traceable)."""
    return cross_entropy(answer_logits(model, data.train_tokens), data.train_target)


def _metrics_and_losses(model, data):
    return measure.evaluate(model, data), point_losses(model, data)


def batch_indices(seed, step, n: int, batch_size: int) -> jax.Array:
    """(batch_size,) the examples of step `step`'s minibatch: those `batch_weights` weights (the
    epoch's permutation from `seed`, dealt in order: `cpi.sims.optimizers.epoch_order`)."""
    order, within = epoch_order(seed, step, n, batch_size)
    return jax.lax.dynamic_slice(order, (within * batch_size,), (batch_size,))


@eqx.filter_jit
def _segment_losses(params, static, state, arrays, groups, train: BridgeTrainConfig, start, length: int):
    n = int(arrays["train_target"].shape[0])
    segment = steps_then_metrics(static, optimizer(train), train, n, observe=_metrics_and_losses,
                                 gather=bool(train.batch_size))
    return segment(params, state, _as_data(arrays, groups), start, length)


def finetune_with_losses(model: Transformer, train: BridgeTrainConfig, data: measure.EvalData,
                         progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(`finetune`'s metrics, the loss of every finetuning example at each recorded step
    (recorded steps × n)): the same optimizer steps, with each example's loss kept; with
    minibatches each step's loss is computed on its minibatch's examples alone (`batch_indices`),
    so the metrics equal `finetune`'s to float32 rounding, not bit for bit."""
    params, static = eqx.partition(model, trainable_filter(model, train.trainable))
    state = optimizer(train).init(params)
    arrays, groups = _arrays(data), data.groups_present
    first = _metrics_and_losses(model, _as_data(arrays, groups))
    rows = _recorded_rows(_segment_losses, params, static, state, arrays, groups, train, first, progress)
    return np.stack([metrics for metrics, _ in rows]), np.stack([losses for _, losses in rows])


def visits(train: BridgeTrainConfig, steps, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(visits, in_epoch), each (len(steps), n) over the recorded `steps`: how many minibatches of
    steps 0 … t − 1 held each of the n examples, and whether one of the current epoch's did (the
    epoch of step t − 1; none at t = 0), read off the batch weights the steps use
    (`cpi.sims.optimizers.batch_weights`, full batch: every example every step)."""
    steps = np.asarray(steps, dtype=np.int64)
    last = int(steps.max(initial=0))
    chosen = np.stack([np.asarray(batch_weights(train.seed, t, n, train.batch_size, jnp.float32)) > 0
                       for t in range(last)]) if last else np.zeros((0, n), bool)
    count = np.concatenate([np.zeros((1, n), np.int64), np.cumsum(chosen, axis=0)])
    per_epoch = n // train.batch_size if train.batch_size else 1
    in_epoch = np.zeros((len(steps), n), bool)
    for k, t in enumerate(steps):
        if t > 0:
            begin = (t - 1) // per_epoch * per_epoch
            in_epoch[k] = count[t] > count[begin]
    return count[steps], in_epoch
