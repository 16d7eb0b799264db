"""The fast engine's model step (`cpi.sims.engine`): the paper's model (`cpi.sims.model`) on
every example of a world at one state, in token coordinates, and what it records there.

`step` is the model: forward pass, loss and gradient, pure and with the equations in its
docstring. `measure` reads the recorded quantities off the same forward pass
(`cpi.sims.metrics`). The state is W_KQ = Φ A Φ_Rᵀ (A: `kq`, (K, R) or on the m active pairs
of a shared layout, `cpi.sims.packing.with_layout`) and the value-logit table T = Φᵀ W_V Φ
(inside `Outputs`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import metrics, model
from .packing import PackedExamples, Shared


class Prepared(NamedTuple):
    """Constant per-world arrays, computed once per compiled chunk (outside the scan)."""

    theta_c: jax.Array  # (N, 3) θ_Cᵀφ(y) for each slot's token y
    theta_s: jax.Array  # (N, 3) θ_Sᵀφ(y) for each slot's token y
    to_first: jax.Array  # (N,) φ(r_j)ᵀφ(r_1), Γ[j, 1]
    answer_class: jax.Array | None  # (N, C) one-hot of the target's output class (W_V frozen)
    fact_class: jax.Array | None  # (m, C) one-hot of the memorised fact's output class


def prepare(shared: Shared, examples: PackedExamples) -> Prepared:
    dtype = examples.table.dtype
    frozen = examples.class_values is not None
    return Prepared(
        theta_c=shared.theta_c[examples.tokens],
        theta_s=shared.theta_s[examples.tokens],
        to_first=shared.relation_gram[examples.relation, 0],
        answer_class=(jax.nn.one_hot(examples.answer_class, examples.class_values.shape[1], dtype=dtype)
                      if frozen else None),
        fact_class=jax.nn.one_hot(examples.fact_class, examples.class_values.shape[1], dtype=dtype) if frozen else None,
    )


class Outputs(NamedTuple):
    """What the loss needs of the output layer, over C output classes (the K tokens
    themselves when W_V trains): values[i, c, slot] = T[y, t_slot] for the tokens y of class c."""

    values: jax.Array  # (N, C, 3)
    log_mult: jax.Array | None  # (N, C) log multiplicities; None: every class is one token
    answer: jax.Array  # (N, C) one-hot of the target's class
    fact: jax.Array  # (m, C) one-hot of the memorised fact's class (conflict test examples)


def outputs(examples: PackedExamples, prepared: Prepared, table) -> Outputs:
    """The output classes: compressed (W_V frozen) or every token of the current table T."""
    if examples.class_values is not None:
        return Outputs(examples.class_values, examples.class_log_mult, prepared.answer_class, prepared.fact_class)
    k = table.shape[0]
    columns = table.T[examples.tokens]  # (N, 3, K): T[:, y] of every slot's token y
    return Outputs(jnp.swapaxes(columns, 1, 2), None, jax.nn.one_hot(examples.answer, k, dtype=table.dtype),
                   jax.nn.one_hot(examples.test_fact, k, dtype=table.dtype))


class Forward(NamedTuple):
    """The forward pass on every example (N = training, conflict test, aligned examples)."""

    outputs: Outputs  # the output classes the logits are over
    sigma: jax.Array  # (N, 3) attention
    z: jax.Array  # (N, C) the logit of each class's tokens
    lse: jax.Array  # (N,) log Σ_y exp z_y over the K tokens
    z_answer: jax.Array  # (N,) the target's logit
    losses: jax.Array  # (N,) ℓ_i = lse_i − z_answer_i
    w: jax.Array  # (n, 3) ∂ℓ_i/∂score of each training slot


def step(shared: Shared, examples: PackedExamples, kq, out: Outputs, *, train_values: bool, weights=None):
    """The model's forward pass, loss and gradient at W_KQ = Φ A Φ_Rᵀ (A = `kq`) and the
    value-logit table T = Φᵀ W_V Φ (`out`), for example i with tokens x_i = [c, s, r_j]:

        score_iy = φ(y)ᵀ W_KQ φ(r_j) = (G A Γ)[y, j]     G = ΦᵀΦ, Γ = Φ_Rᵀ Φ_R  (`scores`)
        σ_i      = softmax_y(score_iy) over the visible keys y of x_i
        z_i      = T[:, x_i] σ_i = Φᵀ W_V Φ_{x_i} σ_i      (value logits, K tokens)
        ℓ_i      = log Σ_y exp z_iy − z_{i a_i},  L = (1/n) Σ_{i ≤ n} ℓ_i  (or Σ_i weights_i ℓ_i)

    over the n training examples (the first n). With W_V frozen, tokens with equal value rows
    have equal logits for every σ, and the softmax runs over those classes with their
    multiplicities (`cpi.sims.packing.output_classes`). Gradient (Lemma 1):

        p_i = softmax(z_i),  e_i = T[:, x_i]ᵀ (p_i − e_{a_i})
        w_iy = ∂ℓ_i/∂score_iy = σ_iy (e_iy − σ_iᵀ e_i)
        ∇_{W_KQ} L = Φ C Φ_Rᵀ,  C[y, j] = (1/n) Σ_i w_iy [token y, relation j of example i]   (`kq_gradient`)
        ∇_{W_V} L  = Φ D Φᵀ,    D = (1/n) Σ_i (p_i − e_{a_i}) s_iᵀ,  s_i: σ_i on the tokens of x_i

    (1/n becomes weights_i). Returns (Forward, C, D), D None unless `train_values`."""
    n = examples.group_onehot.shape[0]
    sigma = jax.nn.softmax(jnp.where(examples.key_mask, scores(shared, examples, kq), -jnp.inf), axis=-1)
    # One exponential per class: the softmax over K tokens as a weighted softmax over classes.
    z = jnp.sum(out.values * sigma[:, None, :], axis=-1)
    weighted = z if out.log_mult is None else z + out.log_mult
    top = jax.lax.stop_gradient(jnp.max(weighted, axis=-1, keepdims=True))
    scaled = jnp.exp(weighted - top)
    total = jnp.sum(scaled, axis=-1, keepdims=True)
    class_p = scaled / total  # (N, C) probability of the whole class
    lse = (top + jnp.log(total))[:, 0]
    z_answer = jnp.sum(z * out.answer, axis=-1)
    losses = lse - z_answer

    tr = slice(0, n)
    residual = class_p[tr] - out.answer[tr]
    e = jnp.sum(out.values[tr] * residual[..., None], axis=1)
    w = sigma[tr] * (e - jnp.sum(sigma[tr] * e, axis=-1, keepdims=True))
    grad_kq = kq_gradient(shared, examples, kq, w / n if weights is None else w * weights[:, None])
    grad_v = None
    if train_values:
        spread = jnp.zeros_like(residual).at[jnp.arange(n)[:, None], examples.tokens[tr]].add(sigma[tr])  # s_i
        grad_v = residual.T @ spread / n if weights is None else (residual * weights[:, None]).T @ spread
    return Forward(out, sigma, z, lse, z_answer, losses, w), grad_kq, grad_v


def scores(shared: Shared, examples: PackedExamples, kq):
    """φ(y)ᵀ W_KQ φ(r_j) of every slot, (N, 3): a product with the layout's score map when A
    lives on its active pairs, else gathered from G A Γ."""
    if shared.score_map is not None:
        return (kq @ shared.score_map).reshape(examples.tokens.shape)
    # Batched over worlds that share G, `gram @ (A Γ)` is one product for all of them.
    return (shared.gram @ _kq_gamma(shared, kq))[examples.tokens, examples.relation[:, None]]


def kq_gradient(shared: Shared, examples: PackedExamples, kq, w):
    """C: the slot weights w (n, 3) of the training examples added onto the (token, relation)
    pair of each slot, in the coordinates of A."""
    if shared.grad_map is not None:
        return w.reshape(-1) @ shared.grad_map
    n = w.shape[0]
    return jnp.zeros_like(kq).at[examples.tokens[:n], examples.relation[:n][:, None]].add(w)


def u_theta(shared: Shared, kq):
    """(θ_Cᵀu, θ_Sᵀu), u = W_KQ φ(r_1) = Φ A Γ e_1."""
    if shared.theta_map is not None:
        return shared.theta_map @ kq
    u = _kq_gamma(shared, kq)[:, 0]
    return jnp.stack([jnp.sum(shared.theta_c * u), jnp.sum(shared.theta_s * u)])


def _kq_gamma(shared: Shared, kq):
    """A Γ, (K, R), as a multiply-and-sum (XLA's CPU backend runs tiny vmapped dots slowly)."""
    return jnp.sum(kq[:, :, None] * shared.relation_gram[None], axis=1)


def _chosen(z, target, log_mult):
    """`cpi.sims.model.chosen` over output classes: the target (one-hot over classes, (N, C))
    is the argmax of the class logits z (N, C) when its class holds one token
    (log-multiplicity 0) and z_target exceeds the logit of every other class that has
    tokens; log_mult None: every class is one token."""
    other = jnp.where(target > 0, -jnp.inf, z)
    alone = None
    if log_mult is not None:
        other = jnp.where(jnp.isneginf(log_mult), -jnp.inf, other)
        alone = jnp.sum(jnp.where(target > 0, log_mult, 0.0), axis=-1) == 0
    return model.chosen(jnp.sum(z * target, axis=-1) - jnp.max(other, axis=-1), alone)


def measure(shared: Shared, examples: PackedExamples, prepared: Prepared, kq, forward: Forward) -> dict:
    """The metrics (`cpi.sims.metrics`) at the state of `forward`: the θ pushes of each
    training example from the same w (θᵀ∇ℓ_i φ(r_1) = Σ_y w_iy θᵀφ(y) Γ[j_i, 1]), the answer's
    and the memorised fact's probabilities, and the accuracies from the logits."""
    n, m = examples.group_onehot.shape[0], examples.test_fact.shape[0]
    tr, te, al = slice(0, n), slice(n, n + m), slice(n + m, None)
    out, sigma, z, lse = forward.outputs, forward.sigma, forward.z, forward.lse
    u = u_theta(shared, kq)
    p_answer = jnp.exp(forward.z_answer - lse)  # of the target token itself
    p_c = p_answer[te]
    p_a = jnp.exp(jnp.sum(z[te] * out.fact, axis=-1) - lse[te])
    log_mult = (None, None) if out.log_mult is None else (out.log_mult[tr], out.log_mult[te])
    example = metrics.ExampleValues(
        reliance=p_c / (p_c + p_a),
        attention_test=sigma[te, 0],
        aligned=p_answer[al],
        losses=forward.losses[tr],
        attention_train=sigma[tr, 0],
        d_theta_c=jnp.sum(forward.w * prepared.theta_c[tr], axis=-1) * prepared.to_first[tr],
        d_theta_s=jnp.sum(forward.w * prepared.theta_s[tr], axis=-1) * prepared.to_first[tr],
        u_theta_c=u[0],
        u_theta_s=u[1],
        counterfactual=_chosen(z[te], out.answer[te], log_mult[1]),
        parametric=_chosen(z[te], out.fact, log_mult[1]),
        train_chosen=_chosen(z[tr], out.answer[tr], log_mult[0]),
    )
    return metrics.collect(example, examples.group_onehot, examples.test_relation_onehot)
