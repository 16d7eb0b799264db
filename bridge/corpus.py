"""The bridge's synthetic world: vocabulary, facts, the pretraining corpus and the finetuning groups.

Tokens (vocabulary size V = 2 + K_S + K_A): 0 is ∅ (no context, or no subject), 1 the relation
r, then K_S subjects, then K_A answer/context tokens. Every sequence has three positions
[context, subject, r] and the answer is predicted at the last one (r), as in the toy; a missing
context or subject is ∅, so [s, r] of the toy is [∅, s, r] here.

Pretraining sequences, drawn afresh every step (`sample_pretrain`):
- facts [∅, s, r] → fact(s) for the memorised subjects (a fraction `pretrain.memorised` of
  them), subject of frequency rank k drawn ∝ k^-zipf: frequent facts are memorised more;
- context sequences [c, s', r] → c and [c, ∅, r] → c, s' a subject without a fact, whose answer
  is c with probability `pretrain.context_reliability` and a uniform answer otherwise: a context
  pathway of strength δ_C, as the toy's pretrained W_V.
No pretraining sequence has a memorised subject and a context, so a conflict example is new to
the pretrained model, as in the paper.

Finetuning groups (the toy's, `cpi.theory.groups` order C, CS, CF, S), each example with its own
subject (Assumption 1): C [c, s', r] → c (s' without a fact); CS [fact(s), s, r] → fact(s);
CF [c, s, r] → c with c ≠ fact(s); S [∅, s, r] → fact(s). Held out: conflict examples [c, s, r]
(s memorised, not in finetuning, c ≠ fact(s)) and in-distribution examples (half C with fresh
s', half CS with fresh memorised s). Everything is drawn from `train.seed`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cpi.theory.groups import TRAINING_GROUPS

from .config import BridgeConfig, group_counts, n_memorised

NULL, RELATION = 0, 1
GROUPS = TRAINING_GROUPS
"""Finetuning groups, in the order of `Examples.group`: the toy's (`cpi.theory.groups`)."""


class Vocabulary(NamedTuple):
    """Token ids of one world: `subjects` (K_S,), `answers` (K_A,), and the facts."""

    n_subjects: int
    n_answers: int
    memorised: np.ndarray  # (M,) subject tokens with a fact, in frequency-rank order (rank 1 first)
    free: np.ndarray  # subject tokens without a fact
    fact: np.ndarray  # (M,) answer token of each memorised subject
    weight: np.ndarray  # (M,) probability of each memorised subject among fact sequences (∝ rank^-zipf)

    @property
    def size(self) -> int:
        return 2 + self.n_subjects + self.n_answers

    @property
    def answers(self) -> np.ndarray:
        return np.arange(2 + self.n_subjects, 2 + self.n_subjects + self.n_answers)


class Examples(NamedTuple):
    """Labelled sequences: tokens (n, 3) [context, subject, r], target (n,), group (n,)
    (index into GROUPS), context (n,) the context token (NULL if none) and fact (n,) the
    memorised fact of the subject (−1 if none)."""

    tokens: np.ndarray
    target: np.ndarray
    group: np.ndarray
    context: np.ndarray
    fact: np.ndarray

    def take(self, index) -> "Examples":
        return Examples(*(np.asarray(x)[index] for x in self))


class Corpus(NamedTuple):
    """Vocabulary, finetuning examples, held-out conflict and in-distribution examples."""

    vocab: Vocabulary
    train: Examples
    conflict: Examples
    aligned: Examples


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def build_vocabulary(config: BridgeConfig) -> Vocabulary:
    """Which subjects are memorised (and their frequency rank) and their facts, from train.seed."""
    p = config.pretrain
    rng = _rng(config.train.seed, 1)
    subjects = 2 + rng.permutation(p.n_subjects)
    m = n_memorised(p)
    memorised, free = subjects[:m], np.sort(subjects[m:])
    fact = 2 + p.n_subjects + rng.integers(0, p.n_answers, size=m)
    weight = np.arange(1, m + 1, dtype=np.float64) ** -p.zipf
    return Vocabulary(p.n_subjects, p.n_answers, memorised, free, fact, weight / weight.sum())


def _points(context, subject, target, group, fact) -> Examples:
    context, subject = np.asarray(context, np.int32), np.asarray(subject, np.int32)
    tokens = np.stack([context, subject, np.full_like(context, RELATION)], axis=1)
    n = len(context)
    return Examples(tokens, np.asarray(target, np.int32), np.broadcast_to(np.asarray(group, np.int32), (n,)).copy(),
                  context, np.asarray(fact, np.int32))


def _other_answer(rng, vocab: Vocabulary, fact: np.ndarray) -> np.ndarray:
    """A uniform answer token ≠ fact, for each entry of `fact`."""
    shift = rng.integers(1, vocab.n_answers, size=len(fact))
    base = 2 + vocab.n_subjects
    return base + (fact - base + shift) % vocab.n_answers


def build_corpus(config: BridgeConfig) -> Corpus:
    """The vocabulary and every finetuning and held-out example of `config` (before filtering)."""
    vocab = build_vocabulary(config)
    m = config.mixture
    counts = group_counts(m)
    rng = _rng(config.train.seed, 2)
    order = rng.permutation(len(vocab.memorised))
    mem, mem_fact = vocab.memorised[order], vocab.fact[order]
    free = rng.permutation(vocab.free)
    answers = vocab.answers

    def memorised(n):
        nonlocal mem, mem_fact
        out = mem[:n], mem_fact[:n]
        mem, mem_fact = mem[n:], mem_fact[n:]
        return out

    def unmemorised(n):
        nonlocal free
        out, free = free[:n], free[n:]
        return out

    parts = []
    s = unmemorised(counts["C"])
    c = rng.choice(answers, size=len(s))
    parts.append(_points(c, s, c, 0, np.full(len(s), -1)))
    s, f = memorised(counts["CS"])
    parts.append(_points(f, s, f, 1, f))
    s, f = memorised(counts["CF"])
    c = _other_answer(rng, vocab, f)
    parts.append(_points(c, s, c, 2, f))
    s, f = memorised(counts["S"])
    parts.append(_points(np.full(len(s), NULL), s, f, 3, f))
    train = Examples(*(np.concatenate(x) for x in zip(*parts)))

    s, f = memorised(m.n_test)
    c = _other_answer(rng, vocab, f)
    conflict = _points(c, s, c, 2, f)

    n_cs = m.n_aligned // 2
    s_cs, f_cs = memorised(n_cs)
    s_c = unmemorised(m.n_aligned - n_cs)
    c = rng.choice(answers, size=len(s_c))
    aligned = Examples(*(np.concatenate(x) for x in zip(
        _points(c, s_c, c, 0, np.full(len(s_c), -1)), _points(f_cs, s_cs, f_cs, 1, f_cs))))
    return Corpus(vocab, train, conflict, aligned)


def filter_examples(examples: Examples, no_context_loss: np.ndarray, fraction: float) -> Examples:
    """Drop round(fraction · #context-bearing examples) of the context-bearing examples, those with
    the lowest `no_context_loss` (the loss of their target from [∅, s, r] under the pretrained
    model: the examples the model answers without the context); ties broken by position."""
    has_context = examples.context != NULL
    n_drop = round(fraction * int(has_context.sum()))
    if n_drop == 0:
        return examples
    candidates = np.flatnonzero(has_context)
    ranked = candidates[np.argsort(np.asarray(no_context_loss)[candidates], kind="stable")]
    keep = np.setdiff1d(np.arange(len(examples.target)), ranked[:n_drop])
    return examples.take(keep)


def subject_only(examples: Examples) -> np.ndarray:
    """tokens (n, 3) [∅, s, r] of each example's subject."""
    tokens = np.array(examples.tokens)
    tokens[:, 0] = NULL
    return tokens


def context_only(examples: Examples) -> np.ndarray:
    """tokens (n, 3) [c, ∅, r] of each example's context."""
    tokens = np.array(examples.tokens)
    tokens[:, 1] = NULL
    return tokens


class PretrainTables(NamedTuple):
    """The arrays `sample_pretrain` draws from (JAX arrays, so that it can be jitted)."""

    memorised: jax.Array
    fact: jax.Array
    log_weight: jax.Array
    free: jax.Array
    first_answer: int
    n_answers: int
    context_fraction: float
    context_reliability: float
    memorised_in_context: float


def pretrain_tables(config: BridgeConfig, vocab: Vocabulary) -> PretrainTables:
    p = config.pretrain
    return PretrainTables(jnp.asarray(vocab.memorised, jnp.int32), jnp.asarray(vocab.fact, jnp.int32),
                          jnp.log(jnp.asarray(vocab.weight, jnp.float32)), jnp.asarray(vocab.free, jnp.int32),
                          2 + vocab.n_subjects, vocab.n_answers, p.context_fraction, p.context_reliability,
                          p.memorised_in_context)


def sample_pretrain(key: jax.Array, tables: PretrainTables, batch_size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One pretraining batch: tokens (b, 3), target (b,) and is_context (b,) bool.

    A sequence is a context sequence with probability context_fraction, else a fact
    [∅, s, r] → fact(s) with s drawn ∝ its weight. A context sequence [c, x, r] (c uniform) has
    a memorised subject x (drawn ∝ weight) with probability memorised_in_context, else x is ∅
    or a subject without a fact (half the time each); its answer is c with probability
    context_reliability, else what the subject says: fact(x) if x is memorised, a uniform
    answer otherwise."""
    k_kind, k_subject, k_context, k_free, k_null, k_keep, k_noise, k_mem = jax.random.split(key, 8)
    t = tables
    is_context = jax.random.bernoulli(k_kind, t.context_fraction, (batch_size,))
    pick = jax.random.categorical(k_subject, t.log_weight, shape=(batch_size,))
    context = t.first_answer + jax.random.randint(k_context, (batch_size,), 0, t.n_answers)
    free = t.free[jax.random.randint(k_free, (batch_size,), 0, t.free.shape[0])]
    no_subject = jax.random.bernoulli(k_null, 0.5, (batch_size,))
    with_memorised = jax.random.bernoulli(k_mem, t.memorised_in_context, (batch_size,))
    keep = jax.random.bernoulli(k_keep, t.context_reliability, (batch_size,))
    noise = t.first_answer + jax.random.randint(k_noise, (batch_size,), 0, t.n_answers)
    memorised = ~is_context | with_memorised
    first = jnp.where(is_context, context, NULL)
    subject = jnp.where(memorised, t.memorised[pick], jnp.where(no_subject, NULL, free))
    fallback = jnp.where(memorised, t.fact[pick], noise)
    target = jnp.where(is_context & keep, context, fallback)
    tokens = jnp.stack([first, subject, jnp.full_like(first, RELATION)], axis=1)
    return tokens, target, is_context
