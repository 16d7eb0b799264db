"""One bridge run: pretraining (reused from the checkpoint cache), finetuning, metrics, summary.

`run(config)` returns (metrics, summary) in the toy's format: metrics a dict of arrays over the
recorded steps (`step` and every `measure.metric_names`), summary the toy's summary of the
reliance curve (`cpi.theory.summary.summarize`) with peak_step in finetuning steps, plus
`inversion_005` (the acceptance test: a rise above the start, then a fall of at least 0.05
below the peak), `reliance_drop`, the pretrained model's δ_C, δ_M, margins and ρ*, and the digest
of its checkpoint.
"""

from __future__ import annotations

import numpy as np

from cpi.theory.summary import reliance_drop, summarize

from . import measure
from .corpus import GROUPS, Corpus, Examples, build_corpus, filter_examples, subject_only
from .config import BridgeConfig, pretrain_digest
from .finetune import finetune, record_steps
from .pretrain import pretrained

DROP = 0.05
"""The fall below the peak that counts as an inversion in `inversion_005`."""


def inversion_with_drop(reliance, drop: float = DROP, rise: float = 1e-9) -> bool:
    """Whether M_C rises above its start and then falls at least `drop` below its running peak."""
    r = np.asarray(reliance, dtype=np.float64)
    peak = np.maximum.accumulate(r)
    return bool(np.any((peak > r[0] + rise) & (peak - r >= drop)))


def no_context_losses(model, examples: Examples) -> np.ndarray:
    """Loss of each example's target from [∅, s, r] under `model` (the filter's score)."""
    import jax.numpy as jnp

    from .model import answer_logits_compiled, cross_entropy

    tokens = jnp.asarray(subject_only(examples))
    return np.asarray(cross_entropy(answer_logits_compiled(model, tokens), jnp.asarray(examples.target)))


def prepare(config: BridgeConfig, model, corpus: Corpus | None = None) -> tuple[Corpus, Examples,
                                                                               measure.EvalData]:
    """(corpus, finetuning examples after mixture.filter, evaluation data) of `config` finetuning
    the pretrained `model` (`corpus`: `build_corpus(config)`, built when not given)."""
    corpus = build_corpus(config) if corpus is None else corpus
    train = corpus.train
    if config.mixture.filter > 0:
        train = filter_examples(train, no_context_losses(model, train), config.mixture.filter)
    return corpus, train, measure.EvalData(corpus, train)


def results(config: BridgeConfig, model, corpus: Corpus, train: Examples, data: measure.EvalData,
            rows: np.ndarray) -> tuple[dict, dict]:
    """(metrics, summary) from the finetuning rows (recorded steps × `measure.metric_names`)."""
    names = measure.metric_names(data, config.transformer.layers)
    steps = record_steps(config.train)
    metrics = {"step": steps.astype(np.int64), **{name: rows[:, j].astype(np.float64) for j, name in enumerate(names)}}
    summary = summarize(metrics["reliance"])
    for key in ("peak_step", "first_peak_step", "trough_step"):
        summary[key] = int(steps[summary[key]])
    summary["inversion_005"] = inversion_with_drop(metrics["reliance"])
    summary["reliance_drop"] = float(reliance_drop(metrics["reliance"]))
    summary["counts"] = {name: int(np.sum(train.group == g)) for g, name in enumerate(GROUPS)}
    summary["pretrain_digest"] = pretrain_digest(config)
    summary.update(measure.knowledge(model, corpus))
    return metrics, summary


def run(config: BridgeConfig, cache_dir=None, progress=None) -> tuple[dict, dict]:
    """(metrics, summary) of one run of `config`; `progress(stage, done, total)` is told of
    finished pretraining steps (only when it pretrains: a model from the cache reports none) and
    finetuning steps. The summary does not depend on whether the pretrained model came from
    the cache, so a rerun writes the same bytes."""
    tell = (lambda stage, total: (lambda done: progress(stage, done, total))) if progress else (lambda *_: None)
    corpus = build_corpus(config)
    model, _ = pretrained(config, corpus.vocab, cache_dir, tell("pretrain", config.pretrain.steps))
    corpus, train, data = prepare(config, model, corpus)
    rows = finetune(model, config.train, data, tell("finetune", config.train.steps))
    return results(config, model, corpus, train, data, rows)


def check_run_dir(out_dir, config: BridgeConfig, force: bool = False, source=None) -> None:
    """ConfigError when `out_dir` already holds a run of another bridge config, a sweep or a
    hand-written config.toml, unless `force`, or when it would replace the --config file
    `source` (`cpi.sims.results.check_run_dir` with the bridge's schema)."""
    from cpi.sims.results import check_run_dir as check

    from . import config as bcfg

    check(out_dir, config, force, bcfg.SCHEMA, source=source)


def save(out_dir, config: BridgeConfig, metrics: dict, summary: dict):
    """DIR/config.toml, DIR/metrics.npz, DIR/summary.json (atomically, summary last), in the
    toy's format (`cpi.sims.results.save_run` with the bridge's schema)."""
    from cpi.sims.results import save_run

    from . import config as bcfg

    return save_run(out_dir, config, metrics, summary, bcfg.SCHEMA)
