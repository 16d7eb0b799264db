"""Full-batch gradient descent on the explicit d×d W_KQ by JAX autodiff, for tests that check
theory's reduced dynamics against the model itself (shares no code with `cpi.sims`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def w_kq_trajectory(phi, w_v, keys, queries, answers, lr: float, steps: int):
    """W_KQ at steps 0..steps of GD on the mean cross-entropy of points with two visible keys
    `keys[i]` (token ids) queried by the vector `queries[:, i]`; W_KQ(0) = 0, W_V frozen.
    Logits z_i = Φᵀ W_V (σ₁φ(x₁) + σ₂φ(x₂)), σ = softmax(φ(x)ᵀ W_KQ q_i). Computed in
    float64 (JAX's 64-bit mode for this call); returns a NumPy array (steps + 1, d, d)."""
    with jax.enable_x64(True):
        return _trajectory(phi, w_v, keys, queries, answers, lr, steps)


def _trajectory(phi, w_v, keys, queries, answers, lr, steps):
    phi, w_v = jnp.asarray(phi), jnp.asarray(w_v)
    keys, queries, answers = jnp.asarray(keys), jnp.asarray(queries), jnp.asarray(answers)

    def loss(w):
        k1, k2 = phi[:, keys[:, 0]], phi[:, keys[:, 1]]
        l1 = jnp.einsum("dn,de,en->n", k1, w, queries)
        l2 = jnp.einsum("dn,de,en->n", k2, w, queries)
        sig = jax.nn.softmax(jnp.stack([l1, l2], -1), -1)
        xbar = k1 * sig[:, 0] + k2 * sig[:, 1]
        z = (phi.T @ (w_v @ xbar)).T
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), answers[:, None], 1))

    @jax.jit
    def run(w):
        def body(w, _):
            return w - lr * jax.grad(loss)(w), w

        return jax.lax.scan(body, w, None, length=steps + 1)[1]

    return np.asarray(run(jnp.zeros((phi.shape[0], phi.shape[0]))))
