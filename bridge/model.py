"""The bridge's decoder-only transformer (equinox).

tokens (T,) → x⁰ = E[tokens] + P[0..T−1]; for each of L blocks (pre-LayerNorm)
    x ← x + Attn(LN₁(x)),   x ← x + W_out gelu(W_in LN₂(x) + b_in) + b_out,
then logits = LN_f(x) Eᵀ (tied head) or LN_f(x) W_headᵀ. Attn is causal multi-head softmax
attention: per head h, A_h = softmax(mask(Q_h K_hᵀ / √d_head)), out = Σ_h A_h V_h W_O,h + b_O.

One example per call (shapes in the docstrings), vmapped by the caller (`jax.vmap`), as
equinox does; the forward pass also returns every attention matrix, from which the bridge
reads the attention of the last position (r) to the context (position 0).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from .config import TransformerConfig

SEQUENCE_LENGTH = 3
"""Every sequence is [context, subject, r]."""


class Attention(eqx.Module):
    query: eqx.nn.Linear
    key: eqx.nn.Linear
    value: eqx.nn.Linear
    output: eqx.nn.Linear
    heads: int = eqx.field(static=True)

    def __init__(self, d_model: int, heads: int, *, key):
        kq, kk, kv, ko = jax.random.split(key, 4)
        self.query = eqx.nn.Linear(d_model, d_model, use_bias=False, key=kq)
        self.key = eqx.nn.Linear(d_model, d_model, use_bias=False, key=kk)
        self.value = eqx.nn.Linear(d_model, d_model, use_bias=False, key=kv)
        self.output = eqx.nn.Linear(d_model, d_model, key=ko)
        self.heads = heads

    def __call__(self, x):
        """x (T, d) → (out (T, d), attention (H, T, T)), attention[h, i, j] the weight of key j
        for query i (0 for j > i)."""
        t, d = x.shape
        split = lambda y: y.reshape(t, self.heads, d // self.heads).transpose(1, 0, 2)  # (H, T, d_head)
        q, k, v = (split(jax.vmap(f)(x)) for f in (self.query, self.key, self.value))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d // self.heads)
        causal = jnp.tril(jnp.ones((t, t), bool))
        weights = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)
        mixed = (weights @ v).transpose(1, 0, 2).reshape(t, d)
        return jax.vmap(self.output)(mixed), weights


class Block(eqx.Module):
    norm_attention: eqx.nn.LayerNorm
    attention: Attention
    norm_mlp: eqx.nn.LayerNorm
    mlp_in: eqx.nn.Linear
    mlp_out: eqx.nn.Linear

    def __init__(self, d_model: int, heads: int, d_mlp: int, *, key):
        ka, ki, ko = jax.random.split(key, 3)
        self.norm_attention = eqx.nn.LayerNorm(d_model)
        self.attention = Attention(d_model, heads, key=ka)
        self.norm_mlp = eqx.nn.LayerNorm(d_model)
        self.mlp_in = eqx.nn.Linear(d_model, d_mlp, key=ki)
        self.mlp_out = eqx.nn.Linear(d_mlp, d_model, key=ko)

    def __call__(self, x):
        """x (T, d) → (x (T, d), attention (H, T, T))."""
        out, weights = self.attention(jax.vmap(self.norm_attention)(x))
        x = x + out
        hidden = jax.nn.gelu(jax.vmap(self.mlp_in)(jax.vmap(self.norm_mlp)(x)))
        return x + jax.vmap(self.mlp_out)(hidden), weights


class Transformer(eqx.Module):
    embed: eqx.nn.Embedding
    position: eqx.nn.Embedding
    blocks: tuple[Block, ...]
    norm_final: eqx.nn.LayerNorm
    head: eqx.nn.Linear | None

    def __init__(self, config: TransformerConfig, vocab_size: int, *, key):
        ke, kp, kh, *kb = jax.random.split(key, 3 + config.layers)
        d = config.d_model
        self.embed = eqx.nn.Embedding(vocab_size, d, weight=jax.random.normal(ke, (vocab_size, d)) / math.sqrt(d))
        self.position = eqx.nn.Embedding(SEQUENCE_LENGTH, d,
                                         weight=jax.random.normal(kp, (SEQUENCE_LENGTH, d)) / math.sqrt(d))
        self.blocks = tuple(Block(d, config.heads, config.d_mlp, key=k) for k in kb)
        self.norm_final = eqx.nn.LayerNorm(d)
        self.head = None if config.tied_head else eqx.nn.Linear(d, vocab_size, use_bias=False, key=kh)

    def __call__(self, tokens):
        """tokens (T,) int → (logits (T, V), attention (L, H, T, T))."""
        x = self.embed.weight[tokens] + self.position.weight[: tokens.shape[0]]
        weights = []
        for block in self.blocks:
            x, w = block(x)
            weights.append(w)
        x = jax.vmap(self.norm_final)(x)
        logits = x @ self.embed.weight.T if self.head is None else jax.vmap(self.head)(x)
        return logits, jnp.stack(weights)


def build(config: TransformerConfig, vocab_size: int, key) -> Transformer:
    """A freshly initialised transformer; `transformer.init_scale` multiplies every weight
    matrix (embeddings, linear maps) but not the LayerNorms."""
    model = Transformer(config, vocab_size, key=key)
    if config.init_scale == 1.0:
        return model
    scaled = lambda m: [x for x in jax.tree_util.tree_leaves(m) if x.ndim == 2]
    return eqx.tree_at(scaled, model, [config.init_scale * x for x in scaled(model)])


def answer_logits(model: Transformer, tokens):
    """Logits (n, V) at the last position of each sequence in tokens (n, T)."""
    return jax.vmap(lambda t: model(t)[0][-1])(tokens)


answer_logits_compiled = eqx.filter_jit(answer_logits)
"""`answer_logits` as one compiled program per token shape, for measurements made outside a
traced function (called eagerly, the transformer would run op by op, which dominated the
calls of `cpi.bridge.measure.knowledge` even on the tests' tiny model)."""


def trainable_filter(model: Transformer, trainable: str):
    """A pytree of bools like `model`: which leaves finetuning updates. 'all': every array;
    'attention': the query and key maps only (QK-only finetuning); 'attention_after_l1': those
    of every block but the first."""
    is_array = jax.tree_util.tree_map(eqx.is_inexact_array, model)
    if trainable == "all":
        return is_array
    first = 1 if trainable == "attention_after_l1" else 0
    none = jax.tree_util.tree_map(lambda _: False, model)
    qk = lambda m: [leaf for b in m.blocks[first:] for leaf in (b.attention.query.weight, b.attention.key.weight)]
    return eqx.tree_at(qk, none, [True] * (2 * (len(model.blocks) - first)))


def cross_entropy(logits, target):
    """−log softmax(logits)_target, per row: logits (n, V), target (n,) → (n,)."""
    return jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, target[:, None], axis=-1)[:, 0]
