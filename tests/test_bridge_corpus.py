"""The bridge's corpus: the requested finetuning groups, held-out examples and pretraining
frequencies; and its config's bad-input messages."""

import jax
import numpy as np
import pytest

from cpi.bridge import config as bcfg
from cpi.bridge import corpus
from cpi.core.errors import ConfigError

from .test_bridge_model import tiny


@pytest.mark.parametrize("mix", [(0.5, 0.0, 0.0), (0.25, 0.25, 0.25), (1.0, 0.0, 0.0), (0.0, 0.0, 0.5)])
def test_finetuning_groups_are_the_toys(mix):
    rho, cf, s = mix
    config = tiny("mixture.n_train=16", f"mixture.context_critical={rho}", f"mixture.counterfactual={cf}",
                  f"mixture.fact_recall={s}", "pretrain.n_subjects=80", "mixture.n_test=6", "mixture.n_aligned=6")
    world = corpus.build_corpus(config)
    vocab, train = world.vocab, world.train
    fact_of = dict(zip(vocab.memorised.tolist(), vocab.fact.tolist()))
    counts = {name: int(np.sum(train.group == g)) for g, name in enumerate(corpus.GROUPS)}
    assert counts == bcfg.group_counts(config.mixture)
    subjects = train.tokens[:, 1]
    for tokens, target, group in zip(train.tokens, train.target, train.group):
        c, subject, r = tokens.tolist()
        assert r == corpus.RELATION
        name = corpus.GROUPS[group]
        if name == "C":
            assert subject not in fact_of and target == c and c in vocab.answers
        elif name == "CS":
            assert target == c == fact_of[subject]
        elif name == "CF":
            assert target == c != fact_of[subject]
        else:
            assert c == corpus.NULL and target == fact_of[subject]
    conflict = world.conflict
    assert len(conflict.target) == 6
    assert all(c != fact_of[s] == a for (c, s, _), a in zip(conflict.tokens.tolist(), conflict.fact.tolist()))
    held = np.concatenate([conflict.tokens[:, 1], world.aligned.tokens[:, 1]])
    everything = np.concatenate([subjects, held])
    assert len(set(everything.tolist())) == len(everything)  # each point its own subject (Assumption 1)
    assert np.sum(world.aligned.group == 1) == 3 and np.sum(world.aligned.group == 0) == 3


def test_pretraining_corpus_has_the_requested_frequencies():
    config = tiny("pretrain.zipf=1.0", "pretrain.context_fraction=0.4", "pretrain.context_reliability=0.7",
                  "pretrain.memorised_in_context=0.5")
    vocab = corpus.build_vocabulary(config)
    assert len(vocab.memorised) == 20 and len(vocab.free) == 20
    tables = corpus.pretrain_tables(config, vocab)
    draw = jax.jit(lambda k: corpus.sample_pretrain(k, tables, 20000))
    tokens, target, is_context = (np.asarray(x) for x in draw(jax.random.key(0)))
    assert abs(is_context.mean() - 0.4) < 0.015
    facts = tokens[~is_context]
    assert np.all(facts[:, 0] == corpus.NULL)
    fact_of = dict(zip(vocab.memorised.tolist(), vocab.fact.tolist()))
    assert all(fact_of[s] == a for s, a in zip(facts[:, 1].tolist(), target[~is_context].tolist()))
    share = np.array([np.mean(facts[:, 1] == s) for s in vocab.memorised])
    np.testing.assert_allclose(share, vocab.weight, atol=0.012)
    np.testing.assert_allclose(vocab.weight[0] / vocab.weight[3], 4.0)  # rank^-1
    ctx = tokens[is_context]
    assert np.all(np.isin(ctx[:, 0], vocab.answers))
    with_memorised = np.isin(ctx[:, 1], vocab.memorised)
    assert abs(with_memorised.mean() - 0.5) < 0.02
    right = target[is_context] == ctx[:, 0]
    assert abs(right[with_memorised].mean() - (0.7 + 0.3 * np.mean(  # c, or the fact when it happens to be c
        [fact_of[s] == c for c, s in zip(ctx[with_memorised, 0], ctx[with_memorised, 1])]))) < 0.03
    wrong = ~right & with_memorised
    assert all(fact_of[s] == a for s, a in zip(ctx[wrong, 1].tolist(), target[is_context][wrong].tolist()))
    assert abs(right[~with_memorised].mean() - (0.7 + 0.3 / 8)) < 0.03


def test_filter_drops_the_lowest_no_context_losses():
    config = tiny("mixture.n_train=8", "mixture.context_critical=0.5")
    train = corpus.build_corpus(config).train
    losses = np.arange(8.0)[::-1]  # the last points have the lowest loss
    kept = corpus.filter_examples(train, losses, 0.25)
    assert len(kept.target) == 6
    np.testing.assert_array_equal(kept.tokens, train.tokens[:6])


@pytest.mark.parametrize("override, words", [
    ("train.lr=-1", ["train.lr", "> 0"]),
    ("transformer.heads=3", ["transformer.heads", "divide", "d_model"]),
    ("pretrain.context_reliability=0", ["pretrain.context_reliability", "(0, 1]"]),
    ("train.trainable='values'", ["train.trainable", "'all', 'attention', 'attention_after_l1'"]),
    ("mixture.n_test=500", ["pretrain.n_subjects", "need"]),
    ("train.lerning_rate=1", ["unknown", "train.lr"]),
])
def test_bad_config_names_the_key_and_range(override, words):
    with pytest.raises(ConfigError) as err:
        bcfg.load(overrides=[override])
    assert all(w in str(err.value) for w in words), str(err.value)


def test_config_round_trips_through_toml():
    config = tiny("transformer.tied_head=false", "train.optimizer='gd'")
    assert bcfg.load_text(bcfg.to_toml(config)) == config
