"""Learned pretraining (knowledge.pretraining = "learned"): W_V learned by gradient descent on a
pretraining corpus instead of built from the Lemma 3 table.

The knowledge base. A seeded draw (train.seed; a stream of its own) picks round(pretrain.memorised
· K_S) subjects and gives each a distinct answer token as its fact; the other subjects have no
fact (`free_subjects`), the other answer tokens are nobody's fact (`free_answers`). It depends on
the vocabulary, the seed and pretrain.memorised only, never on the finetuning mixture, which takes
its memorised subjects (CS, CF, conflict test, aligned, seen S examples) from the knowledge base
and its C and unseen S subjects, and its fresh context tokens, from the rest (`cpi.sims.world`).

The corpus (`corpus`), in the finetuning model's own input format:
- fact examples [s, r] → a (keys s and r) for every memorised subject s with fact a, each
  `pretrain.fact_repeats` times (repeat k asks relation r_{k mod R});
- context-copy examples [c, s', r] → c (keys c and s', σ_r = 0 as in finetuning) for every
  answer token c, `pretrain.context_repeats` times, s' cycling over the subjects with no fact:
  a context token learns to predict itself, the analog of δ_C.

What trains. W_V alone, with W_KQ = 0 (uniform attention: ½ on each of the two visible keys),
starting from W_V = 0, by `pretrain.steps` steps of full-batch gradient descent at `pretrain.lr`
on the mean cross-entropy of the corpus. W_KQ stays 0, so finetuning starts from W_KQ(0) = 0 as
the theory assumes, and from the learned W_V (frozen, or trained per train.value_lr).

Why it is computed in token coordinates. The gradient of example i is
∇_{W_V} ℓ_i = Φ (p_i − e_{a_i}) s_iᵀ Φᵀ (s_i ∈ R^K: the attention ½, ½ on the example's keys), so
from W_V(0) = 0 gradient descent keeps W_V(t) = Φ B(t) Φᵀ with B ← B − η D,
D = (1/N) Σ_i (p_i − e_{a_i}) s_iᵀ, and the model reads W_V only through the value-logit table
T = Φᵀ W_V Φ = G B G (G = ΦᵀΦ). This is gradient descent on the d×d W_V exactly, for any
embeddings (the tests check it against a d×d NumPy descent).

Achieved strengths (`achieved_strengths`), as theory/NOTES.md §0.4 defines δ_C and δ_M: the mean over the
context-bearing finetuning, conflict test and aligned examples of softmax(v(c))_c (δ_C), and of
softmax(v(s))_a over those whose subject s is memorised with fact a (δ_M), v(y) = T[:, y]. For a
constructed W_V they are knowledge.delta_c and knowledge.delta_m.

Reuse. The learned (B, T) depend only on the world keys, train.seed and the pretrain keys
(DIGEST_KEYS), keyed as the store's kind `cpi.core.store.PRETRAINED_TABLE` (`pretrain_digest`;
raise that kind's version when the pretraining's numbers change): they are kept in this process
(a sweep over mixture keys pretrains once) and saved as `<key>.npz` in the cache directory
(`cache_dir`: $CPI_PRETRAIN_CACHE_DIR, else $XDG_CACHE_HOME/cpi/pretrained-table,
~/.cache/cpi/pretrained-table, next to the compilation cache; CPI_PRETRAIN_CACHE=0 turns the
files off).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from cpi.core import store
from cpi.core.cache_dirs import user_cache_dir
from .config import Config, ConfigError

DIGEST_KEYS = ("world.n_subjects", "world.n_answers", "world.n_relations", "world.relation_overlap",
               "world.embeddings", "world.dim", "train.seed", "pretrain.steps", "pretrain.lr",
               "pretrain.fact_repeats", "pretrain.context_repeats", "pretrain.memorised")
"""Exactly the keys the learned W_V depends on."""

_MEMORY: dict[str, tuple[np.ndarray, np.ndarray]] = {}


@dataclass(frozen=True)
class KnowledgeBase:
    """What pretraining memorises: subject `memorised[i]` has fact `facts[i]` (answer tokens);
    `free_subjects` have no fact, `free_answers` are nobody's fact; `answers` is every answer
    token in the draw's order (the order of the context-copy examples)."""

    memorised: np.ndarray
    facts: np.ndarray
    free_subjects: np.ndarray
    free_answers: np.ndarray
    answers: np.ndarray


def knowledge_base(config: Config) -> KnowledgeBase:
    """The knowledge base of `config` (module docstring): round(pretrain.memorised · K_S)
    memorised subjects, drawn with the answers from the stream [train.seed, 2]."""
    w = config.world
    k_s, k_a = w.n_subjects, w.n_answers
    n_mem = round(config.pretrain.memorised * k_s)
    if n_mem > k_a:
        raise ConfigError(
            f"pretrain.memorised = {config.pretrain.memorised:g} gives {n_mem} memorised subjects, more than the "
            f"{k_a} answer tokens (world.n_answers) that could be their facts; expected pretrain.memorised <= "
            f"{k_a / k_s:.6g} or world.n_answers >= {n_mem}")
    rng = np.random.default_rng([config.train.seed, 2])
    subjects = rng.permutation(k_s)
    answers = k_s + rng.permutation(k_a)
    return KnowledgeBase(memorised=subjects[:n_mem], facts=answers[:n_mem], free_subjects=subjects[n_mem:],
                         free_answers=answers[n_mem:], answers=answers)


def corpus(config: Config, kb: KnowledgeBase) -> tuple[np.ndarray, np.ndarray]:
    """The pretraining corpus as (keys (N, 2), answer (N,)): each example's two visible keys
    (attention ½ each under W_KQ = 0) and its target. Fact examples first (subject, relation),
    then context-copy examples (context, subject with no fact)."""
    p, w = config.pretrain, config.world
    relations = w.n_subjects + w.n_answers + np.arange(w.n_relations)
    keys, answer = [], []
    for k in range(p.fact_repeats):
        keys += [(s, relations[k % w.n_relations]) for s in kb.memorised]
        answer += list(kb.facts)
    if p.context_repeats and len(kb.answers):
        if len(kb.free_subjects) == 0:
            raise ConfigError(
                f"pretrain.context_repeats = {p.context_repeats} needs a subject with no fact for the context-copy "
                f"examples [c, s', r] -> c, and pretrain.memorised = {p.memorised:g} memorises all "
                f"{w.n_subjects} subjects; lower pretrain.memorised or set pretrain.context_repeats = 0")
        n_copy = p.context_repeats * len(kb.answers)
        c = np.tile(kb.answers, p.context_repeats)
        s = kb.free_subjects[np.arange(n_copy) % len(kb.free_subjects)]
        keys += list(zip(c, s))
        answer += list(c)
    return np.array(keys, dtype=np.int32).reshape(-1, 2), np.array(answer, dtype=np.int32)


def descent(gram: np.ndarray, keys: np.ndarray, answer: np.ndarray, steps: int, lr: float) -> np.ndarray:
    """B after `steps` steps of full-batch gradient descent at `lr` on the mean cross-entropy
    of the examples (keys, answer) with W_V = Φ B Φᵀ, B(0) = 0 and attention ½ on each key:
    z_i = ½ T[:, key_i1] + ½ T[:, key_i2], T = G B G, B ← B − lr (1/N) Σ_i (p_i − e_{a_i}) s_iᵀ.
    Computed in float64 under one `lax.fori_loop`."""
    k = gram.shape[0]
    if steps == 0 or len(answer) == 0:
        return np.zeros((k, k))
    with jax.enable_x64(True):
        b = _descent(jnp.asarray(gram, jnp.float64), jnp.asarray(keys), jnp.asarray(answer), jnp.int32(steps),
                     jnp.float64(lr))
        return np.asarray(b)


@jax.jit
def _descent(gram, keys, answer, steps, lr):
    k = gram.shape[0]
    e = jax.nn.one_hot(answer, k, dtype=gram.dtype)
    n = answer.shape[0]

    def step(_, b):
        table = gram @ b @ gram
        p = jax.nn.softmax(0.5 * (table[:, keys[:, 0]] + table[:, keys[:, 1]]).T, axis=-1)  # (N, K)
        r = (0.5 / n) * (p - e).T  # (K, N): column i is ½(p_i − e_{a_i})/N
        d = jnp.zeros_like(b).at[:, keys[:, 0]].add(r).at[:, keys[:, 1]].add(r)  # (1/N) Σ_i (p_i − e_i) s_iᵀ
        return b - lr * d

    return jax.lax.fori_loop(0, steps, step, jnp.zeros((k, k), gram.dtype))


def pretrain_digest(config: Config) -> str:
    """The key (`cpi.core.store.PRETRAINED_TABLE`) of the values of DIGEST_KEYS: the name of
    the pretrained state of `config`, in this process and on disk."""
    return store.PRETRAINED_TABLE.key(_digest_values(config))


def _digest_values(config: Config) -> dict:
    """{key: value} for each of DIGEST_KEYS."""
    return {key: getattr(getattr(config, key.split(".")[0]), key.split(".")[1]) for key in DIGEST_KEYS}


def cache_dir() -> Path | None:
    """Where pretrained states are saved between processes (None: not saved)."""
    return user_cache_dir(store.PRETRAINED_TABLE.name, "CPI_PRETRAIN_CACHE_DIR", "CPI_PRETRAIN_CACHE")


def _load(path: Path, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            b, table = archive["core"], archive["table"]
    except (OSError, ValueError, KeyError, EOFError):
        return None
    return (b, table) if b.shape == (k, k) and table.shape == (k, k) else None


def learned_values(config: Config, embed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) of `config`'s learned pretraining on the embeddings Φ = `embed` (d × K): W_V = Φ B Φᵀ
    and its value-logit table T = G B G. Reused from this process or the cache directory when
    the digest matches; otherwise computed (`descent` on `corpus`) and saved."""
    digest = pretrain_digest(config)
    if digest in _MEMORY:
        return _MEMORY[digest]
    k = embed.shape[1]
    folder = cache_dir()
    path = None if folder is None else folder / f"{digest}.npz"
    found = None if path is None else _load(path, k)
    if found is None:
        keys, answer = corpus(config, knowledge_base(config))
        gram = embed.T @ embed
        b = descent(gram, keys, answer, config.pretrain.steps, config.pretrain.lr)
        found = (b, gram @ b @ gram)
        if path is not None:
            _save(path, found, config)
    for array in found:
        array.setflags(write=False)
    _MEMORY[digest] = found
    return found


def _save(path: Path, state: tuple[np.ndarray, np.ndarray], config: Config) -> None:
    from .results import npz_bytes, write_atomic

    keys = json.dumps(_digest_values(config), sort_keys=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, npz_bytes({"core": state[0], "table": state[1], "keys": np.array(keys)}))
    except OSError:  # an unwritable cache only costs a later recomputation
        pass


def forget() -> None:
    """Drop the pretrained states kept in this process (files stay)."""
    _MEMORY.clear()


def _softmax_at(table: np.ndarray, columns: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """softmax(T[:, columns[i]])[rows[i]] for every i."""
    z = table[:, columns]
    z = z - z.max(axis=0)
    return np.exp(z[rows, np.arange(len(columns))]) / np.exp(z).sum(axis=0)


def achieved_strengths(table: np.ndarray, example_sets) -> dict[str, float]:
    """achieved_delta_c: mean softmax(v(c))_c over the context-bearing examples of `example_sets`
    (`cpi.sims.world.Examples`: finetuning, conflict test, aligned); achieved_delta_m: mean
    softmax(v(s))_a over those whose subject s is memorised with fact a (NaN when none);
    v(y) = T[:, y], the value logits of token y."""
    tokens = np.concatenate([p.tokens for p in example_sets])
    context = np.concatenate([p.key_mask[:, 0] for p in example_sets])
    fact = np.concatenate([p.fact for p in example_sets])
    c = tokens[context, 0]
    delta_c = float(_softmax_at(table, c, c).mean()) if len(c) else float("nan")
    memorised = context & (fact >= 0)
    s, a = tokens[memorised, 1], fact[memorised]
    delta_m = float(_softmax_at(table, s, a).mean()) if len(s) else float("nan")
    return {"achieved_delta_c": delta_c, "achieved_delta_m": delta_m}


def world_strengths(world) -> dict[str, float]:
    """`achieved_strengths` of a built world's pretrained table over all its examples
    (finetuning, conflict test, aligned), as `cpi run` and `cpi sweep` report them."""
    return achieved_strengths(world.value_table, (world.train, world.test, world.aligned))
