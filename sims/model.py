"""The paper's one-layer, one-head attention model, read at the last position.

f_W(x) = softmax(φ(x)ᵀ W_KQ φ(x)) φ(x)ᵀ W_Vᵀ W_H; at the query r (the last slot) the
attention over keys y is σ_y = softmax_y(φ(y)ᵀ W_KQ φ(r)) restricted to the unmasked keys,
and the output logits are z = W_Hᵀ W_V Σ_y σ_y φ(y). One example in; `jax.vmap` for batches.
This is the generic model: it stays exact when W_V trains.

Its prediction is the argmax of z, with ties resolved against the target (`chosen`): the
definition both engines compute the paper's accuracies from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from cpi.theory.reduced_system import ARGMAX_TOLERANCE

if TYPE_CHECKING:  # annotations only: importing jaxtyping would add to every run's start-up
    from jaxtyping import Array, Bool, Float, Int


def attention(
    w_kq: Float[Array, "d d"],
    embed: Float[Array, "d K"],
    tokens: Int[Array, "3"],
    key_mask: Bool[Array, "3"],
) -> Float[Array, "3"]:
    """σ over the three slots: softmax of φ(y)ᵀ W_KQ φ(x_last) over unmasked keys, 0 elsewhere."""
    x = embed[:, tokens]
    scores = x.T @ (w_kq @ x[:, -1])
    scores = jnp.where(key_mask, scores, -jnp.inf)
    return jax.nn.softmax(scores)


def logits(
    params: dict,
    embed: Float[Array, "d K"],
    tokens: Int[Array, "3"],
    key_mask: Bool[Array, "3"],
) -> tuple[Float[Array, " K"], Float[Array, "3"]]:
    """(z, σ): z = W_Hᵀ W_V φ(x) σ over the whole vocabulary, with the tied head W_H = Φ."""
    sigma = attention(params["kq"], embed, tokens, key_mask)
    z = embed.T @ (params["v"] @ (embed[:, tokens] @ sigma))
    return z, sigma


def example_loss(params: dict, embed, tokens, key_mask, answer) -> Float[Array, ""]:
    """Cross-entropy ℓ = −log softmax(z)_a of one example."""
    z, _ = logits(params, embed, tokens, key_mask)
    return -jax.nn.log_softmax(z)[answer]


def example_losses(params: dict, embed, examples) -> Float[Array, " n"]:
    """Per-example losses of a set of examples (tokens, key_mask, answer arrays)."""
    tokens, key_mask, answer = examples
    return jax.vmap(example_loss, in_axes=(None, None, 0, 0, 0))(
        params, embed, tokens, key_mask, answer
    )


def loss(params: dict, embed, examples, weights=None) -> Float[Array, ""]:
    """The finetuning loss of the training examples x_i = [c_i, s_i, r_i] with answers a_i:

        σ_i = softmax_y(φ(y)ᵀ W_KQ φ(r_i)) over the visible keys y of x_i   (`attention`)
        z_i = Φᵀ W_V Σ_y σ_iy φ(y)                                         (`logits`)
        ℓ_i = −log softmax(z_i)_{a_i}                                      (`example_loss`)
        L   = (1/n) Σ_i ℓ_i, or Σ_i weights_i ℓ_i (a minibatch's weights)

    The generic engine (`cpi.sims.generic`) takes its gradient ∇_{W_KQ} L, ∇_{W_V} L by autodiff."""
    losses = example_losses(params, embed, examples)
    return jnp.mean(losses) if weights is None else jnp.sum(weights * losses)


def example_outputs(params: dict, embed, tokens, key_mask):
    """(softmax(z), σ) for a set of examples."""
    z, sigma = jax.vmap(logits, in_axes=(None, None, 0, 0))(params, embed, tokens, key_mask)
    return jax.nn.softmax(z, axis=-1), sigma


def tie_tolerance(dtype) -> float:
    """By how much the chosen token's logit must exceed every other's: ARGMAX_TOLERANCE
    (`cpi.theory.reduced_system`) in float64, 1e-4 in float32 (its rounding is about 1e-6)."""
    return ARGMAX_TOLERANCE if np.dtype(dtype) == np.float64 else 1e-4


def chosen(margin, alone=None):
    """The paper's accuracy rule, per example: 1.0 where the target token is the argmax of the
    logits z, else 0.0. `margin`: z_target minus the largest logit of every other token; the
    target is chosen when the margin exceeds `tie_tolerance` (a token tied with another at
    the top counts as not chosen). `alone`: False where another token is known to share the
    target's logit exactly (the fast engine's output classes), so that it is not chosen."""
    top = margin > tie_tolerance(margin.dtype)
    return jnp.where(top if alone is None else alone & top, 1.0, 0.0).astype(margin.dtype)
