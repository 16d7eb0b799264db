"""Pretraining the bridge transformer on the synthetic corpus, and the checkpoint cache.

Adam (optax) on the mean cross-entropy of the answer at the last position, `pretrain.steps`
steps of `pretrain.batch_size` sequences drawn afresh each step (`corpus.sample_pretrain`).
The result is saved as `DIR/<key>/model.eqx` (`eqx.tree_serialise_leaves`) beside
`DIR/<key>/pretrain.json` (the config keys it depends on, its key, the loss curve), with the key
`config.pretrain_digest` (`cpi.core.store.CHECKPOINT` of [transformer], [pretrain], train.seed);
a later run with the same key loads it instead of training again. DIR defaults to the user
cache's `checkpoint` folder, so that a checkpoint lies at `~/.cache/cpi/checkpoint/<key>/`,
the keyed store's layout.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cpi.core import store
from cpi.core.cache_dirs import user_cache_dir
from cpi.sims.results import json_bytes, write_atomic

from . import corpus
from .config import BridgeConfig, pretrain_digest, pretrain_keys
from .model import Transformer, answer_logits, build, cross_entropy

SEGMENT = 250
"""Pretraining steps per compiled call (a segment: the progress bar moves once per segment)."""


def default_cache_dir() -> Path:
    """$CPI_BRIDGE_CACHE, else $XDG_CACHE_HOME/cpi/checkpoint (~/.cache/cpi/checkpoint)."""
    return user_cache_dir(store.CHECKPOINT.name, "CPI_BRIDGE_CACHE")


def root_key(config: BridgeConfig) -> jax.Array:
    return jax.random.key(config.train.seed)


def initial_model(config: BridgeConfig, vocab: corpus.Vocabulary) -> Transformer:
    return build(config.transformer, vocab.size, jax.random.fold_in(root_key(config), 0))


def _loss(model, tokens, target):
    return jnp.mean(cross_entropy(answer_logits(model, tokens), target))


def pretrain(config: BridgeConfig, vocab: corpus.Vocabulary, progress=None) -> tuple[Transformer, np.ndarray]:
    """(pretrained model, mean training loss of each step)."""
    p = config.pretrain
    model = initial_model(config, vocab)
    tables = corpus.pretrain_tables(config, vocab)
    optimizer = optax.adam(p.lr)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    state = optimizer.init(params)
    batch_key = jax.random.fold_in(root_key(config), 1)

    @functools.partial(jax.jit, static_argnums=3)
    def segment(params, state, start, length):
        def step(carry, i):
            params, state = carry
            tokens, target, _ = corpus.sample_pretrain(jax.random.fold_in(batch_key, i), tables, p.batch_size)
            loss, grads = jax.value_and_grad(lambda q: _loss(eqx.combine(q, static), tokens, target))(params)
            updates, state = optimizer.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), loss

        return jax.lax.scan(step, (params, state), start + jnp.arange(length))

    losses = []
    for start in range(0, p.steps, SEGMENT):
        (params, state), loss = segment(params, state, start, min(SEGMENT, p.steps - start))
        losses.append(np.asarray(loss))
        if progress is not None:
            progress(min(start + SEGMENT, p.steps))
    return eqx.combine(params, static), np.concatenate(losses)


def checkpoint_dir(config: BridgeConfig, cache_dir: str | Path | None = None) -> Path:
    """`<cache_dir>/<key>`: where the pretrained model of `config` is kept."""
    return Path(cache_dir or default_cache_dir()) / pretrain_digest(config)


def save(model: Transformer, losses: np.ndarray, config: BridgeConfig, directory: Path) -> None:
    """Write model.eqx, then pretrain.json (last: a directory with it is complete)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pretrain.json").unlink(missing_ok=True)
    tmp = directory / ".model.eqx.tmp"
    eqx.tree_serialise_leaves(tmp, model)
    os.replace(tmp, directory / "model.eqx")
    info = {"digest": pretrain_digest(config), "config": pretrain_keys(config),
            "loss": [float(x) for x in losses], "final_loss": float(np.mean(losses[-50:]))}
    write_atomic(directory / "pretrain.json", json_bytes(info))


def load(config: BridgeConfig, vocab: corpus.Vocabulary, directory: Path) -> Transformer | None:
    """The checkpoint in `directory` if it holds this config's pretrained model, else None."""
    info_path = directory / "pretrain.json"
    if not info_path.exists() or not (directory / "model.eqx").exists():
        return None
    info = json.loads(info_path.read_text())
    if info.get("digest") != pretrain_digest(config) or info.get("config") != json.loads(
            json.dumps(pretrain_keys(config))):
        return None
    # The shapes of the initial model, not its values: building it eagerly costs seconds.
    skeleton = eqx.filter_eval_shape(initial_model, config, vocab)
    return eqx.tree_deserialise_leaves(directory / "model.eqx", skeleton)


def pretrained(config: BridgeConfig, vocab: corpus.Vocabulary, cache_dir=None,
               progress=None) -> tuple[Transformer, bool]:
    """(the pretrained model of `config`, whether it came from the cache): loaded from
    `cache_dir`/<digest> when there, else trained and saved there."""
    directory = checkpoint_dir(config, cache_dir)
    model = load(config, vocab, directory)
    if model is not None:
        return model, True
    model, losses = pretrain(config, vocab, progress)
    save(model, losses, config, directory)
    return model, False
