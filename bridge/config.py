"""The bridge's configuration: frozen dataclasses [transformer], [pretrain], [mixture], [train].

As `cpi.sims.config` for the toy: defaults, then a TOML file, then `--set section.key=value`
overrides, validated once; every problem raises `cpi.core.errors.ConfigError` naming the key, the
bad value and what is allowed (the CLI exits 2). `KEYS` is the one table of every key.

The mixture keys mean what they mean in the toy (fractions of C, CF and S examples, the rest
CS; `filter` drops the context-bearing examples with the lowest loss on [∅, s, r]); the
knowledge keys of the toy (δ_C, δ_M, ...) have no place here: the transformer learns its
knowledge in pretraining, and the bridge measures δ_C, δ_M and the margins instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cpi.core import store
from cpi.core.errors import ConfigError
from cpi.sims import config as sims_config
from cpi.sims.schema import KeySpec, Schema


@dataclass(frozen=True)
class TransformerConfig:
    layers: int = 2
    heads: int = 2
    d_model: int = 64
    d_mlp: int = 128
    tied_head: bool = True
    init_scale: float = 1.0


@dataclass(frozen=True)
class BridgePretrainConfig:
    n_subjects: int = 256
    n_answers: int = 32
    memorised: float = 0.5
    zipf: float = 1.0
    context_fraction: float = 0.5
    context_reliability: float = 0.3
    memorised_in_context: float = 0.5
    steps: int = 1000
    lr: float = 3e-3
    batch_size: int = 256


@dataclass(frozen=True)
class BridgeMixtureConfig:
    n_train: int = 64
    context_critical: float = 0.5
    counterfactual: float = 0.0
    fact_recall: float = 0.0
    filter: float = 0.0
    n_test: int = 32
    n_aligned: int = 32


@dataclass(frozen=True)
class BridgeTrainConfig:
    optimizer: str = "adam"
    lr: float = 3e-3
    steps: int = 300
    batch_size: int = 0
    seed: int = 0
    eval_every: int = 5
    weight_decay: float = 0.0
    momentum: float = 0.0
    trainable: str = "attention"


@dataclass(frozen=True)
class BridgeConfig:
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    pretrain: BridgePretrainConfig = field(default_factory=BridgePretrainConfig)
    mixture: BridgeMixtureConfig = field(default_factory=BridgeMixtureConfig)
    train: BridgeTrainConfig = field(default_factory=BridgeTrainConfig)


_SECTIONS = {"transformer": TransformerConfig, "pretrain": BridgePretrainConfig, "mixture": BridgeMixtureConfig,
             "train": BridgeTrainConfig}
_UNIT = (0.0, 1.0, True, True)
_POSITIVE = (0.0, math.inf, False, False)
_COUNT = (1, math.inf, True, False)

OPTIMIZERS = ("gd", "sgd", "adam", "adamw")
TRAINABLE = ("all", "attention", "attention_after_l1")
"""train.trainable: every parameter, the attention's query and key maps only (the
transformer's analog of the toy's QK-only finetuning), or those of every layer but the first
(the first layer's attention pattern then stays that of the pretrained model)."""

KEYS: dict[str, KeySpec] = {
    "transformer.layers": KeySpec(_COUNT, "L: transformer blocks (pre-LN causal attention + MLP)"),
    "transformer.heads": KeySpec(_COUNT, "attention heads per layer (must divide d_model)"),
    "transformer.d_model": KeySpec(_COUNT, "width of the residual stream and the embeddings"),
    "transformer.d_mlp": KeySpec(_COUNT, "hidden width of each MLP"),
    "transformer.tied_head": KeySpec((True, False), "the output head is the token embedding matrix (true) or its own"),
    "transformer.init_scale": KeySpec(_POSITIVE, "scale of the initial weights (1: equinox's default init)"),
    "pretrain.n_subjects": KeySpec((2, math.inf, True, False), "K_S: subject tokens"),
    "pretrain.n_answers": KeySpec((2, math.inf, True, False), "K_A: answer/context tokens"),
    "pretrain.memorised": KeySpec((0.0, 1.0, False, False),
                                  "fraction of subjects with a fact [∅, s, r] → a in the corpus (the rest have none)"),
    "pretrain.zipf": KeySpec((0.0, math.inf, True, False),
                             "memorised subject of frequency rank k appears ∝ k^-zipf in fact sequences "
                             "(0: all alike); rarer facts are memorised less (lower δ_M)"),
    "pretrain.context_fraction": KeySpec((0.0, 1.0, False, False),
                                         "fraction of pretraining sequences that are context sequences "
                                         "[c, s', r] or [c, ∅, r] (s' without a fact); the rest are facts"),
    "pretrain.context_reliability": KeySpec((0.0, 1.0, False, True),
                                            "probability that a context sequence's answer is its context c "
                                            "(else a uniform answer): sets the learned δ_C"),
    "pretrain.memorised_in_context": KeySpec(
        _UNIT, "fraction of context sequences whose subject is memorised: their answer is the context w.p. "
               "context_reliability, else the subject's fact (0: contexts only ever meet subjects without a fact)"),
    "pretrain.steps": KeySpec(_COUNT, "Adam steps of pretraining"),
    "pretrain.lr": KeySpec(_POSITIVE, "Adam learning rate of pretraining"),
    "pretrain.batch_size": KeySpec(_COUNT, "sequences per pretraining step, drawn afresh each step"),
    "mixture.n_train": KeySpec(_COUNT, "n: finetuning examples (before filtering)"),
    "mixture.context_critical": KeySpec(_UNIT, "fraction ρ of C examples [c, s', r] → c, s' without a fact"),
    "mixture.counterfactual": KeySpec(_UNIT, "fraction of CF examples [c, s, r] → c, s memorised with a fact ≠ c"),
    "mixture.fact_recall": KeySpec(_UNIT, "fraction of S examples [∅, s, r] → fact(s), s memorised"),
    "mixture.filter": KeySpec((0.0, 1.0, True, False),
                              "fraction of context-bearing examples dropped, those with the lowest loss on "
                              "[∅, s, r] under the pretrained model (the paper's filtering)"),
    "mixture.n_test": KeySpec(_COUNT, "held-out conflict examples [c, s, r], s memorised, c ≠ fact(s)"),
    "mixture.n_aligned": KeySpec((2, math.inf, True, False),
                                 "held-out in-distribution examples: half C (fresh s'), half CS (context = fact)"),
    "train.optimizer": KeySpec(OPTIMIZERS, "gd: gradient descent; sgd: with momentum; adam, adamw (optax)"),
    "train.lr": KeySpec(_POSITIVE, "finetuning learning rate"),
    "train.steps": KeySpec(_COUNT, "finetuning steps"),
    "train.batch_size": KeySpec((0, math.inf, True, False),
                                "finetuning examples per step, dealt each epoch in an order drawn from train.seed "
                                "(0: full batch)"),
    "train.seed": KeySpec((0, 2**32 - 1, True, True),
                          "seeds the whole run: vocabulary roles and facts, the corpus, the initial weights, "
                          "pretraining batches, the finetuning examples and minibatches"),
    "train.eval_every": KeySpec(_COUNT, "evaluate (and record) every N finetuning steps, and at the last"),
    "train.weight_decay": KeySpec((0.0, math.inf, True, False),
                                  "weight decay λ (coupled for gd, sgd, adam; decoupled for adamw)"),
    "train.momentum": KeySpec((0.0, 1.0, True, False), "momentum of sgd (0: none)"),
    "train.trainable": KeySpec(TRAINABLE, "all: every parameter; attention: the query and key maps only (QK-only); "
                                          "attention_after_l1: those of every layer but the first (needs 2+ layers)"),
}
"""Every key of the bridge's config: allowed values and meaning."""


def group_counts(m: BridgeMixtureConfig) -> dict[str, int]:
    """Finetuning examples per group before filtering: round(fraction·n) for C, CF and S, the
    rest CS (`cpi.sims.config.group_counts`, one count for S)."""
    return sims_config.group_counts(m)


def subject_budget(config: BridgeConfig) -> dict[str, tuple[int, int]]:
    """(needed, available) subjects of each kind: memorised subjects for the CS, CF, S,
    conflict and aligned examples; subjects without a fact for the C and in-distribution C
    examples (every example has its own subject, Assumption 1)."""
    p, m = config.pretrain, config.mixture
    counts = group_counts(m)
    n_mem = n_memorised(p)
    need_mem = counts["CS"] + counts["CF"] + counts["S"] + m.n_test + m.n_aligned // 2
    need_free = counts["C"] + (m.n_aligned - m.n_aligned // 2)
    return {"memorised": (need_mem, n_mem), "without a fact": (need_free, p.n_subjects - n_mem)}


def n_memorised(p: BridgePretrainConfig) -> int:
    """Subjects with a fact: round(memorised · K_S), at least 1 and at most K_S − 1."""
    return min(max(round(p.memorised * p.n_subjects), 1), p.n_subjects - 1)


def _check_config(config: BridgeConfig) -> None:
    """ConfigError where values that are each in range do not fit together: heads that do not
    divide d_model, mixture fractions above 1, too few subjects for the mixture, optimizer keys
    that need another optimizer, a batch larger than the training set."""
    t, m, tr = config.transformer, config.mixture, config.train
    if t.d_model % t.heads:
        raise ConfigError(f"transformer.heads = {t.heads} does not divide transformer.d_model = {t.d_model}; "
                          "expected a divisor of d_model")
    total = m.context_critical + m.counterfactual + m.fact_recall
    if total > 1.0 + 1e-12 or group_counts(m)["CS"] < 0:
        raise ConfigError(
            f"mixture fractions context_critical + counterfactual + fact_recall = {total:g}; they must sum to "
            "at most 1 (the rest are CS examples)")
    for kind, (need, have) in subject_budget(config).items():
        if need > have:
            raise ConfigError(
                f"pretrain.n_subjects = {config.pretrain.n_subjects} (memorised {config.pretrain.memorised:g}) "
                f"gives {have} subjects {kind}, but the mixture and the held-out examples need {need}; "
                f"raise pretrain.n_subjects or lower mixture.n_train / n_test / n_aligned")
    if m.filter > 0:
        if sims_config.training_examples_after_filter(m) < 1:
            raise ConfigError(f"mixture.filter = {m.filter:g} leaves no finetuning examples; expected a smaller "
                              "filter or some mixture.fact_recall")
    if tr.momentum > 0 and tr.optimizer != "sgd":
        raise ConfigError(f"train.momentum = {tr.momentum:g} needs train.optimizer = 'sgd' (it is "
                          f"{tr.optimizer!r}); set train.momentum = 0 or train.optimizer = 'sgd'")
    if tr.optimizer == "gd" and tr.batch_size > 0:
        raise ConfigError(f"train.batch_size = {tr.batch_size} needs a stochastic optimizer ('sgd', 'adam', "
                          "'adamw'); 'gd' is full-batch gradient descent; set train.batch_size = 0")
    if tr.trainable == "attention_after_l1" and t.layers < 2:
        raise ConfigError(f"train.trainable = 'attention_after_l1' needs transformer.layers >= 2 (it is {t.layers}): "
                          "with one layer nothing would train; set train.trainable = 'attention'")
    if tr.batch_size > m.n_train:
        raise ConfigError(f"train.batch_size = {tr.batch_size} is out of range; expected 0 (full batch) or an "
                          f"integer in [1, {m.n_train}] (mixture.n_train)")


SCHEMA = Schema(BridgeConfig, _SECTIONS, KEYS, _check_config, label="bridge config")
"""The bridge's config schema; the functions below are its methods (`cpi.sims.schema.Schema`)."""

all_keys = SCHEMA.all_keys
default_value = SCHEMA.default_value
field_type = SCHEMA.field_type
allowed_text = SCHEMA.allowed_text
keys_table = SCHEMA.keys_table
unknown_key = SCHEMA.unknown_key
check_value = SCHEMA.check_value
validate = SCHEMA.validate
from_dict = SCHEMA.from_dict
parse_override = SCHEMA.parse_override
load_text = SCHEMA.load_text
load = SCHEMA.load
with_values = SCHEMA.with_values
to_dict = SCHEMA.to_dict
to_toml = SCHEMA.to_toml


PRETRAIN_SECTIONS = ("transformer", "pretrain")


def pretrain_digest(config: BridgeConfig) -> str:
    """The key (`cpi.core.store.CHECKPOINT`) of what the pretrained model depends on:
    [transformer], [pretrain] and train.seed. Finetuning runs that share it share the checkpoint."""
    return store.CHECKPOINT.key(pretrain_keys(config))


def pretrain_keys(config: BridgeConfig) -> dict[str, Any]:
    """The config keys the pretrained model depends on, as a TOML-ready mapping."""
    d = to_dict(config)
    return {**{s: d[s] for s in PRETRAIN_SECTIONS}, "train": {"seed": config.train.seed}}
