"""The bridge transformer against a direct NumPy computation of the same weights, and causal
masking."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpi.bridge import config as bcfg
from cpi.bridge.model import SEQUENCE_LENGTH, build, trainable_filter

TINY = ["transformer.layers=2", "transformer.heads=2", "transformer.d_model=8", "transformer.d_mlp=12",
        "pretrain.n_subjects=40", "pretrain.n_answers=8", "pretrain.steps=20", "pretrain.batch_size=32",
        "mixture.n_train=8", "mixture.n_test=4", "mixture.n_aligned=4", "train.steps=10"]


def tiny(*extra):
    return bcfg.load(overrides=[*TINY, *extra])


def _np(x):
    return np.asarray(x, dtype=np.float64)


def _layer_norm(x, norm):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.eps) * _np(norm.weight) + _np(norm.bias)


def _gelu(x):  # jax.nn.gelu's default, the tanh approximation
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def numpy_forward(model, tokens):
    """logits (T, V) and attention (L, H, T, T), written out with NumPy from the weights."""
    emb = _np(model.embed.weight)
    x = emb[tokens] + _np(model.position.weight)[: len(tokens)]
    t = len(tokens)
    attentions = []
    for block in model.blocks:
        a = block.attention
        h = _layer_norm(x, block.norm_attention)
        q, k, v = (h @ _np(lin.weight).T for lin in (a.query, a.key, a.value))
        d_head = q.shape[1] // a.heads
        out = np.zeros_like(q)
        weights = np.zeros((a.heads, t, t))
        for head in range(a.heads):
            cols = slice(head * d_head, (head + 1) * d_head)
            scores = q[:, cols] @ k[:, cols].T / math.sqrt(d_head)
            scores[np.triu_indices(t, 1)] = -np.inf
            w = np.exp(scores - scores.max(1, keepdims=True))
            w /= w.sum(1, keepdims=True)
            weights[head] = w
            out[:, cols] = w @ v[:, cols]
        x = x + out @ _np(a.output.weight).T + _np(a.output.bias)
        h = _layer_norm(x, block.norm_mlp)
        hidden = _gelu(h @ _np(block.mlp_in.weight).T + _np(block.mlp_in.bias))
        x = x + hidden @ _np(block.mlp_out.weight).T + _np(block.mlp_out.bias)
        attentions.append(weights)
    x = _layer_norm(x, model.norm_final)
    head = emb if model.head is None else _np(model.head.weight)
    return x @ head.T, np.stack(attentions)


@pytest.mark.parametrize("tied", [True, False])
def test_forward_pass_matches_numpy(tied):
    config = tiny(f"transformer.tied_head={'true' if tied else 'false'}")
    model = build(config.transformer, 50, jax.random.key(3))
    assert (model.head is None) == tied
    rng = np.random.default_rng(0)
    for _ in range(3):
        tokens = rng.integers(0, 50, size=SEQUENCE_LENGTH)
        logits, attention = model(jnp.asarray(tokens))
        want_logits, want_attention = numpy_forward(model, tokens)
        np.testing.assert_allclose(_np(logits), want_logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(_np(attention), want_attention, rtol=1e-5, atol=1e-6)
    assert attention.shape == (2, 2, SEQUENCE_LENGTH, SEQUENCE_LENGTH)


def test_causal_masking():
    """Changing a later token leaves the logits and attention of every earlier position unchanged."""
    model = build(tiny().transformer, 50, jax.random.key(1))
    tokens = jnp.asarray([7, 12, 1])
    logits, attention = model(tokens)
    for position in (1, 2):
        changed = tokens.at[position].set(30)
        other, other_attention = model(changed)
        np.testing.assert_array_equal(np.asarray(other[:position]), np.asarray(logits[:position]))
        np.testing.assert_array_equal(np.asarray(other_attention[:, :, :position]),
                                      np.asarray(attention[:, :, :position]))
        assert not np.allclose(np.asarray(other[position]), np.asarray(logits[position]))
    assert np.all(np.asarray(attention)[:, :, 0, 1:] == 0)


def test_attention_only_finetuning_selects_query_and_key():
    model = build(tiny().transformer, 50, jax.random.key(1))
    spec = trainable_filter(model, "attention")
    assert sum(jax.tree_util.tree_leaves(spec)) == 4  # 2 layers x (query, key)
    assert spec.blocks[0].attention.query.weight and not spec.blocks[0].attention.value.weight
    assert not spec.embed.weight


def test_attention_after_l1_trains_every_query_and_key_map_but_the_first_layers():
    model = build(tiny("transformer.layers=3").transformer, 50, jax.random.key(1))
    spec = trainable_filter(model, "attention_after_l1")
    assert sum(jax.tree_util.tree_leaves(spec)) == 4  # layers 2 and 3 x (query, key)
    assert not spec.blocks[0].attention.query.weight and not spec.blocks[0].attention.key.weight
    assert spec.blocks[1].attention.query.weight and spec.blocks[2].attention.key.weight
    assert not spec.blocks[1].attention.value.weight and not spec.embed.weight


def test_attention_after_l1_finetuning_leaves_the_first_layers_maps_and_attention_unchanged():
    import equinox as eqx

    from cpi.bridge import corpus, finetune, measure

    config = tiny("train.trainable='attention_after_l1'", "train.optimizer='adam'", "train.lr=0.05")
    train = config.train
    data = corpus.build_corpus(config)
    model = build(config.transformer, data.vocab.size, jax.random.key(2))
    evaluation = measure.EvalData(data, data.train)
    params, static = eqx.partition(model, trainable_filter(model, train.trainable))
    opt = finetune.optimizer(train)
    segment = finetune.steps_then_metrics(static, opt, train, len(data.train.target))
    from types import SimpleNamespace

    arrays = SimpleNamespace(**{f: getattr(evaluation, f) for f in finetune.STACKED_FIELDS},
                             groups_present=evaluation.groups_present)
    params, _, _ = segment(params, opt.init(params), arrays, jnp.int32(0), 5)
    after = eqx.combine(params, static)
    for name in ("query", "key"):
        np.testing.assert_array_equal(getattr(after.blocks[0].attention, name).weight,
                                      getattr(model.blocks[0].attention, name).weight)
        assert not np.array_equal(getattr(after.blocks[1].attention, name).weight,
                                  getattr(model.blocks[1].attention, name).weight)
    np.testing.assert_array_equal(after.blocks[1].attention.value.weight, model.blocks[1].attention.value.weight)
    np.testing.assert_array_equal(after.embed.weight, model.embed.weight)
    rows = finetune.finetune(model, train, evaluation)
    names = measure.metric_names(evaluation, 2)
    first, second = rows[:, names.index("attention_context_l1")], rows[:, names.index("attention_context_l2")]
    np.testing.assert_array_equal(first, first[0])
    assert np.ptp(second) > 0


def test_attention_after_l1_needs_two_layers():
    from cpi.core.errors import ConfigError

    with pytest.raises(ConfigError, match="transformer.layers"):
        tiny("transformer.layers=1", "train.trainable='attention_after_l1'")
