"""The onset of the rise, from exact t = 0 derivatives of the transformer (no training).

With θ the trainable parameters (`train.trainable`: the query and key maps, as the bridge
finetunes) and M_C(θ) the reliance on the held-out conflict examples (mean p_c/(p_c + p_a), as
`measure.evaluate`), gradient flow on a loss L moves the reliance at the rate
    dM_C/dt = ⟨∇_θ M_C, dθ/dt⟩ = −⟨∇_θ M_C, ∇_θ L⟩.
The bridge's finetuning loss is the *mean* cross-entropy over the finetuning examples
(`finetune.steps_then_metrics` with `cpi.sims.optimizers.batch_weights`: 1/n each, full batch),
so a mixture of n_C C examples and n_CS CS examples has L = ρ L_C + (1 − ρ) L_CS with ρ = n_C/n and
L_G the mean loss of group G, and
    dM_C/dt|₀ = ρ d_C + (1 − ρ) d_CS,   d_G = −⟨∇_θ M_C, ∇_θ L_G⟩ at the pretrained θ₀.
With d_C > 0 > d_CS the reliance rises at t = 0 iff ρ > ρ̂* = d_CS/(d_CS − d_C) = |d_CS|/(d_C + |d_CS|),
the transformer's own version of Lemma 4's ρ* (which reads the same sign change off the
toy's margins). One gradient-descent step of size η changes M_C by η·dM_C/dt + O(η²).

`weighted_descent` measures the onset on the same examples: full-batch GD on ρ L_C + (1 − ρ) L_CS,
vmapped over ρ, with M_C recorded at every step.

Everything follows the precision of the model passed in (float64 under `jax.enable_x64`
with a model cast to float64, as the tests do).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import corpus
from .model import answer_logits, cross_entropy, trainable_filter


class OnsetData(NamedTuple):
    """The arrays the derivatives read: the finetuning examples of each group present (`groups`
    their names in `corpus.GROUPS` order; tokens[k] (n_G, 3) and target[k] (n_G,) of group
    groups[k]) and the conflict examples (tokens (m, 3), context (m,), fact (m,))."""

    groups: tuple[str, ...]
    tokens: tuple[jax.Array, ...]
    target: tuple[jax.Array, ...]
    conflict_tokens: jax.Array
    conflict_context: jax.Array
    conflict_fact: jax.Array

    def group(self, name: str) -> tuple[jax.Array, jax.Array]:
        """(tokens, target) of group `name` (ValueError when the mixture has none)."""
        if name not in self.groups:
            raise ValueError(f"the mixture has no {name} examples (it has {', '.join(self.groups)})")
        k = self.groups.index(name)
        return self.tokens[k], self.target[k]


def onset_data(world: corpus.Corpus) -> OnsetData:
    """The finetuning examples of every group `world` has, and its conflict examples."""
    train = world.train
    present = [g for g, _ in enumerate(corpus.GROUPS) if np.any(train.group == g)]
    j = jnp.asarray
    return OnsetData(tuple(corpus.GROUPS[g] for g in present),
                     tuple(j(train.tokens[train.group == g]) for g in present),
                     tuple(j(train.target[train.group == g]) for g in present),
                     j(world.conflict.tokens), j(world.conflict.context), j(world.conflict.fact))


def reliance(model, tokens, context, fact):
    """M_C = mean over the examples of p_c/(p_c + p_a), p = softmax of the last position's logits."""
    p = jax.nn.softmax(answer_logits(model, tokens), axis=-1)
    rows = jnp.arange(tokens.shape[0])
    p_c, p_a = p[rows, context], p[rows, fact]
    return jnp.mean(p_c / (p_c + p_a))


def group_loss(model, tokens, target):
    """L_G: the mean cross-entropy of the answer over the group's examples."""
    return jnp.mean(cross_entropy(answer_logits(model, tokens), target))


def _inner(a, b):
    """⟨a, b⟩ summed over the leaves of two pytrees of one structure."""
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def split(model, trainable: str = "attention"):
    """(trainable parameters, the rest) of `model` (`model.trainable_filter`)."""
    return eqx.partition(model, trainable_filter(model, trainable))


@eqx.filter_jit
def _derivatives(params, static, data: OnsetData):
    combine = lambda p: eqx.combine(p, static)
    m_c = lambda p: reliance(combine(p), data.conflict_tokens, data.conflict_context, data.conflict_fact)
    value, grad_m = jax.value_and_grad(m_c)(params)
    out = {"reliance": value, "grad_norm_M": jnp.sqrt(_inner(grad_m, grad_m))}
    for name, tokens, target in zip(data.groups, data.tokens, data.target):
        loss, grad_l = jax.value_and_grad(lambda p: group_loss(combine(p), tokens, target))(params)
        out[f"d_{name}"] = -_inner(grad_m, grad_l)
        out[f"loss_{name}"] = loss
        out[f"grad_norm_{name}"] = jnp.sqrt(_inner(grad_l, grad_l))
        # each example's own share: d_G = mean_i d_i, d_i = −⟨∇M_C, ∇ℓ_i⟩
        one = lambda t, y: -_inner(grad_m, jax.grad(lambda p: group_loss(combine(p), t[None], y[None]))(params))
        out[f"d_{name}_points"] = jax.vmap(one)(tokens, target)
        p = jax.nn.softmax(answer_logits(combine(params), tokens), axis=-1)
        out[f"p_{name}_points"] = p[jnp.arange(tokens.shape[0]), target]
    return out


def derivatives(model, data: OnsetData, trainable: str = "attention") -> dict[str, np.ndarray]:
    """The t = 0 derivatives of the pretrained `model`, for every group G of `data` (C, CS, CF,
    S): `d_<G>` = −⟨∇_θ M_C, ∇_θ L_G⟩ over the `trainable` parameters, `loss_<G>`, the gradient
    norms, and per example `d_<G>_points` (d_G is their mean) and `p_<G>_points` (the model's
    probability of the target); and `reliance` (M_C)."""
    params, static = split(model, trainable)
    return {k: np.asarray(v) for k, v in _derivatives(params, static, data).items()}


def mixture_derivative(d_c, d_cs, rho):
    """dM_C/dt at t = 0 for the mixture ρ L_C + (1 − ρ) L_CS: ρ d_C + (1 − ρ) d_CS."""
    return np.asarray(rho) * d_c + (1.0 - np.asarray(rho)) * d_cs


def rho_hat(d_c: float, d_cs: float) -> float:
    """ρ̂* where ρ d_C + (1 − ρ) d_CS changes sign: |d_CS|/(d_C + |d_CS|) when d_C > 0 > d_CS;
    0 when both are positive (M_C rises at every ρ), 1 when both are negative (at none below
    ρ = 1), NaN when d_C ≤ 0 < d_CS (the signs are the other way round)."""
    if d_c > 0 > d_cs:
        return float(-d_cs / (d_c - d_cs))
    if d_c > 0 and d_cs >= 0:
        return 0.0
    if d_c <= 0 and d_cs <= 0:
        return 1.0
    return float("nan")


@eqx.filter_jit
def _descent(params, static, data: OnsetData, rhos, lr, steps: int):
    combine = lambda p: eqx.combine(p, static)

    (c_tokens, c_target), (cs_tokens, cs_target) = data.group("C"), data.group("CS")

    def one(rho):
        def loss(p):
            m = combine(p)
            return rho * group_loss(m, c_tokens, c_target) + (1 - rho) * group_loss(m, cs_tokens, cs_target)

        def measure(p):
            return reliance(combine(p), data.conflict_tokens, data.conflict_context, data.conflict_fact)

        def step(p, _):
            grads = jax.grad(loss)(p)
            p = jax.tree_util.tree_map(lambda x, g: x - lr * g, p, grads)
            return p, measure(p)

        _, curve = jax.lax.scan(step, params, None, length=steps)
        return jnp.concatenate([measure(params)[None], curve])

    return jax.vmap(one)(rhos)


def weighted_descent(model, data: OnsetData, rhos, lr: float, steps: int, trainable: str = "attention") -> np.ndarray:
    """M_C (len(rhos), steps + 1) at steps 0..steps of full-batch gradient descent (step size
    `lr`) on ρ L_C + (1 − ρ) L_CS over the `trainable` parameters, for each ρ of `rhos`: the
    bridge's GD finetuning of a mixture with the same C and CS examples at group weights ρ and
    1 − ρ (so that ρ is continuous and the conflict examples are the same at every ρ); ValueError
    when `data` has no C or no CS example."""
    params, static = split(model, trainable)
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    return np.asarray(_descent(params, static, data, jnp.asarray(rhos, dtype), jnp.asarray(lr, dtype), int(steps)))
