"""The toy's configuration: frozen dataclasses grouped as world / knowledge / pretrain /
mixture / train, the one table of every key (`KEYS`: allowed values and meaning, from which
`cpi config` and the key table of docs/guide.md are generated), and the checks of the whole config.

Loading, overriding and checking values is `cpi.sims.schema.Schema`'s work, shared with the
bridge's config: a config is built from defaults, then a TOML file, then `--set
section.key=value` overrides, and validated once at the end. Every problem raises
`ConfigError`, whose message names the key, the bad value and what is allowed; the CLI turns
it into exit status 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cpi.theory.params import PAPER_KNOWLEDGE

from cpi.core.errors import ConfigError
from .schema import KeySpec, Schema


@dataclass(frozen=True)
class WorldConfig:
    n_subjects: int = PAPER_KNOWLEDGE.n_subjects
    n_answers: int = PAPER_KNOWLEDGE.n_answers
    n_relations: int = 1
    relation_overlap: float = 0.0
    embeddings: str = "paper"
    dim: int = 0


@dataclass(frozen=True)
class KnowledgeConfig:
    delta_c: float = PAPER_KNOWLEDGE.delta_c
    delta_m: float = PAPER_KNOWLEDGE.delta_m
    delta_s: float = PAPER_KNOWLEDGE.delta_s
    o_c: float = PAPER_KNOWLEDGE.o_c
    o_r: float = PAPER_KNOWLEDGE.o_r
    pretraining: str = "constructed"


@dataclass(frozen=True)
class PretrainConfig:
    """Learned pretraining of W_V (`cpi.sims.pretraining`; used when knowledge.pretraining is
    "learned")."""

    steps: int = 1000
    lr: float = 5.0
    fact_repeats: int = 1
    context_repeats: int = 1
    memorised: float = 0.75


@dataclass(frozen=True)
class MixtureConfig:
    n_train: int = 20
    context_critical: float = 0.5
    counterfactual: float = 0.0
    fact_recall: float = 0.0
    fact_recall_seen: float = 1.0
    counterfactual_relation: int = 0
    filter: float = 0.0
    n_test: int = 10
    n_aligned: int = 10


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1.0
    steps: int = 300
    value_lr: float = 0.0
    seed: int = 0
    dtype: str = "float64"
    optimizer: str = "gd"
    batch_size: int = 0
    momentum: float = 0.0
    weight_decay: float = 0.0


@dataclass(frozen=True)
class Config:
    world: WorldConfig = field(default_factory=WorldConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)


# (low, high, low_inclusive, high_inclusive) for numeric keys; choices for strings.
_OPEN_UNIT = (0.0, 1.0, False, False)
_UNIT = (0.0, 1.0, True, True)
_POSITIVE = (0.0, math.inf, False, False)


OPTIMIZERS = ("gd", "sgd", "adam", "adamw")
SWEEP_ENGINES = ("fast", "reduced")
"""What `cpi sweep --engine` computes with: the fast engine, or the theory's group recursion
where it is exact (`cpi.sims.chunks`)."""
ENGINE_ALIASES = {"full": "fast"}
"""Earlier names of the engines, still accepted (`--engine full` is the fast engine)."""
STORED_ENGINE = {"fast": "full"}
"""How the files of a sweep (sweep.json, summary.json, chunk keys) name an engine: the fast
engine by its earlier name, so that directories written before the rename still resume."""


def engine_name(name: str) -> str:
    """The engine `name` (or an earlier name of it) as SWEEP_ENGINES names it."""
    return ENGINE_ALIASES.get(name, name)

EXACT_OPTIMIZERS = ("gd", "sgd")
"""Optimizers whose update is a linear function of the gradients, so that the fast engine
runs them exactly in token coordinates; adam and adamw run on the generic d×d engine."""

EMBEDDINGS = ("paper", "random")
"""world.embeddings: the paper's orthonormal construction, or Gaussian unit vectors in R^dim."""

PRETRAININGS = ("constructed", "learned")
"""knowledge.pretraining: W_V built from the Lemma 3 table, or learned by gradient descent."""

SEED_NOTE = (
    "under the paper's embeddings every subject and every answer token is interchangeable, so "
    "the seed only relabels tokens and every seed gives the same numbers"
)

KEYS: dict[str, KeySpec] = {
    "world.n_subjects": KeySpec((1, math.inf, True, False), "K_S: subject tokens in the vocabulary"),
    "world.n_answers": KeySpec((2, math.inf, True, False), "K_A: answer/context tokens in the vocabulary"),
    "world.n_relations": KeySpec((1, math.inf, True, False), "R: relations (tasks), one query token each"),
    "world.relation_overlap": KeySpec(
        (0.0, 1.0, True, False), "γ: the relations share one direction with overlap γ (0: orthonormal)"),
    "world.embeddings": KeySpec(
        EMBEDDINGS, "paper: the paper's orthonormal directions (Assumptions 2-4); random: the directions s̃, c̃, "
                    "θ_S, θ_C, φ(r) are independent Gaussian unit vectors in R^dim drawn from train.seed, "
                    "with the same ½/½ mix (dim → ∞ recovers the paper)"),
    "world.dim": KeySpec(
        (0, math.inf, True, False), "d: embedding dimension of random embeddings, >= 2 (0: the paper's "
                                    "K_S + K_A + 3 + ...); below K tokens W_V realises the Lemma 3 table in "
                                    "least squares only (summary.json: value_table_error)"),
    "knowledge.delta_c": KeySpec(_OPEN_UNIT, "δ_C: probability a context token's value gives to itself"),
    "knowledge.delta_m": KeySpec(_OPEN_UNIT, "δ_M: probability a memorised subject's value gives to its fact"),
    "knowledge.delta_s": KeySpec(_OPEN_UNIT, "probability for the subjects of seen fact-recall (S) points"),
    "knowledge.o_c": KeySpec(_POSITIVE, "value logit of the other answers (Lemma 3)"),
    "knowledge.o_r": KeySpec(_POSITIVE, "value logit of the relation (Lemma 3)"),
    "knowledge.pretraining": KeySpec(
        PRETRAININGS, "constructed: W_V built from the Lemma 3 table of delta_c, delta_m, delta_s, o_c, o_r; learned: "
                      "W_V learned by gradient descent on a pretraining corpus (pretrain.*) with W_KQ = 0 (uniform "
                      "attention), so finetuning still starts from W_KQ = 0; the knowledge keys above are then unused "
                      "and summary.json (a sweep: every row) reports the achieved_delta_c, achieved_delta_m"),
    "mixture.n_train": KeySpec((1, math.inf, True, False), "n: training examples (before filtering)"),
    "mixture.context_critical": KeySpec(_UNIT, "fraction ρ of C examples: only the context predicts the answer"),
    "mixture.counterfactual": KeySpec(
        _UNIT, "fraction of CF examples: the context contradicts the memorised fact, answer = context"),
    "mixture.fact_recall": KeySpec(_UNIT, "fraction of S examples [s, r] with no context"),
    "mixture.fact_recall_seen": KeySpec(_UNIT, "fraction of the S examples whose fact was memorised (seen)"),
    "mixture.counterfactual_relation": KeySpec(
        (0, math.inf, True, False),
        "0 spreads CF examples over the relations; j puts them all on relation j, in place of its CS examples"),
    "mixture.filter": KeySpec(
        _UNIT, "fraction of context-bearing examples dropped, those with the lowest loss on [s, r] alone "
               "under the pretrained model (the paper's filtering); some training examples must remain"),
    "mixture.n_test": KeySpec((1, math.inf, True, False), "held-out conflict test examples per relation"),
    "mixture.n_aligned": KeySpec(
        (0, math.inf, True, False), "held-out examples whose context is the memorised fact"),
    "train.lr": KeySpec(_POSITIVE, "step size η on W_KQ (the learning rate of train.optimizer)"),
    "train.steps": KeySpec((1, math.inf, True, False), "optimizer steps"),
    "train.value_lr": KeySpec((0.0, math.inf, True, False),
                              "step size on W_V (0 keeps W_V frozen, as the theory assumes)"),
    "train.seed": KeySpec((0, 2**32 - 1, True, True),
                          "seed of the token draw, the minibatches and random embeddings; " + SEED_NOTE
                          + " (minibatches and world.embeddings = 'random' aside)"),
    "train.dtype": KeySpec(("float64", "float32"), "floating-point precision of training"),
    "train.optimizer": KeySpec(
        OPTIMIZERS, "gd: gradient descent (the theory's); sgd: with momentum and minibatches; adam, adamw "
                    "(optax); value_lr steps W_V with the same optimizer"),
    "train.batch_size": KeySpec(
        (0, math.inf, True, False), "training examples per step, drawn without replacement each epoch from "
                                    "train.seed (0: every point, full batch)"),
    "train.momentum": KeySpec((0.0, 1.0, True, False), "momentum of sgd (0: none)"),
    "train.weight_decay": KeySpec(
        (0.0, math.inf, True, True), "weight decay λ: added to the gradient as λW (gd, sgd, adam), decoupled in adamw"),
    "pretrain.steps": KeySpec(
        (0, math.inf, True, False), "full-batch gradient steps of learned pretraining on W_V alone (W_KQ = 0); "
                                    "0 leaves W_V = 0"),
    "pretrain.lr": KeySpec(_POSITIVE, "step size of learned pretraining on W_V"),
    "pretrain.fact_repeats": KeySpec(
        (0, math.inf, True, False), "copies of each fact example [s, r] -> a in the pretraining corpus: more "
                                    "copies, stronger memorisation (larger achieved delta_m)"),
    "pretrain.context_repeats": KeySpec(
        (0, math.inf, True, False), "copies of the context-copy example [c, s', r] -> c of every answer token c "
                                    "(s' a subject with no fact): more copies, larger achieved delta_c"),
    "pretrain.memorised": KeySpec(
        _UNIT, "fraction of the K_S subjects given a fact in pretraining (a seeded draw from train.seed, "
               "independent of the mixture); finetuning takes its memorised subjects from them, its C and unseen "
               "S subjects from the rest"),
}
"""Every config key: its allowed values and its meaning (`cpi config` and the key table of docs/guide.md
print these words)."""

def seeds_matter(config: "Config") -> bool:
    """Whether train.seed can change any number of `config`: through the minibatches it
    draws, or through random embeddings; under the paper's embeddings nothing else
    (`SEED_NOTE`)."""
    return config.train.batch_size > 0 or config.world.embeddings == "random"


def group_counts(mixture) -> dict[str, int]:
    """Training-point counts per group: round(fraction·n_train) for C, CF and S (Python's
    round, half to even), CS takes what is left; S splits into seen and unseen likewise for
    a mixture with `fact_recall_seen` (the toy's), and stays one count "S" for one without
    (the bridge's, `cpi.bridge.config.group_counts`)."""
    n = mixture.n_train
    n_c = round(mixture.context_critical * n)
    n_cf = round(mixture.counterfactual * n)
    n_s = round(mixture.fact_recall * n)
    counts = {"C": n_c, "CS": n - n_c - n_cf - n_s, "CF": n_cf}
    seen = getattr(mixture, "fact_recall_seen", None)
    if seen is None:
        return {**counts, "S": n_s}
    n_s_seen = round(seen * n_s)
    return {**counts, "S_seen": n_s_seen, "S_unseen": n_s - n_s_seen}


def context_examples(mixture) -> int:
    """Training points that carry a context (C, CS and CF), before filtering."""
    counts = group_counts(mixture)
    return counts["C"] + counts["CS"] + counts["CF"]


def training_examples_after_filter(mixture) -> int:
    """Training points left after `mixture.filter` drops round(filter · #context-bearing
    points) of them (`cpi.sims.world.filter_examples`, `cpi.bridge.corpus.filter_examples`), from
    the counts alone; the toy's mixtures and the bridge's alike."""
    return mixture.n_train - round(mixture.filter * context_examples(mixture))


def _check_filter(m: MixtureConfig) -> None:
    if m.filter == 0 or training_examples_after_filter(m) > 0:
        return
    n_context = context_examples(m)
    limit = (n_context - 0.5) / n_context  # round(f·n_context) < n_context below it
    raise ConfigError(
        f"mixture.filter = {m.filter:g}: the filter leaves no training examples (it drops "
        f"round({m.filter:g} x {n_context}) = {n_context} of the {n_context} context-bearing examples, "
        f"and the mixture has no subject-only examples); expected mixture.filter < {limit:.6g}, "
        "or some mixture.fact_recall"
    )


def _check_optimizer(config: Config) -> None:
    t = config.train
    if t.momentum > 0 and t.optimizer != "sgd":
        raise ConfigError(
            f"train.momentum = {t.momentum:g} needs train.optimizer = 'sgd' (it is {t.optimizer!r}); "
            "set train.momentum = 0 or train.optimizer = 'sgd'")
    if t.optimizer == "gd" and t.batch_size > 0:
        raise ConfigError(
            f"train.batch_size = {t.batch_size} needs a stochastic optimizer: 'gd' is full-batch gradient "
            "descent; set train.optimizer = 'sgd' (or 'adam', 'adamw'), or train.batch_size = 0")
    n = training_examples_after_filter(config.mixture)
    if t.batch_size > n:
        raise ConfigError(
            f"train.batch_size = {t.batch_size} is out of range; expected 0 (full batch) or an integer in "
            f"[1, {n}] (the training examples after filtering)")


def _check_embeddings(w: WorldConfig) -> None:
    if w.embeddings == "paper" and w.dim != 0:
        raise ConfigError(
            f"world.dim = {w.dim} needs world.embeddings = 'random' (the paper's embeddings have their own "
            "dimension); set world.dim = 0 or world.embeddings = 'random'")
    if w.embeddings == "random" and w.dim == 1:
        raise ConfigError(
            "world.dim = 1 is too small for random embeddings; expected 0 (the paper's dimension) or an "
            "integer >= 2")


def _check_config(config: Config) -> None:
    """ConfigError where values that are each in range do not fit together: mixture fractions
    summing to more than 1, a filter that leaves no training examples, optimizer keys that need
    another optimizer, relations and embeddings."""
    m = config.mixture
    total = m.context_critical + m.counterfactual + m.fact_recall
    counts = group_counts(m)
    if total > 1.0 + 1e-12 or counts["CS"] < 0:
        raise ConfigError(
            "mixture fractions context_critical + counterfactual + fact_recall = "
            f"{m.context_critical:g} + {m.counterfactual:g} + {m.fact_recall:g} = {total:g} "
            f"(rounded counts {counts['C']} + {counts['CF']} + "
            f"{counts['S_seen'] + counts['S_unseen']} of n_train = {m.n_train}); "
            "they must sum to at most 1 (the rest are CS examples)"
        )
    _check_filter(m)
    _check_optimizer(config)
    w = config.world
    if w.n_relations == 1 and w.relation_overlap != 0:
        raise ConfigError(
            f"world.relation_overlap = {w.relation_overlap:g} needs world.n_relations >= 2 "
            "(one relation has nothing to overlap with); set it to 0"
        )
    _check_embeddings(w)
    if m.counterfactual_relation > w.n_relations:
        raise ConfigError(
            f"mixture.counterfactual_relation = {m.counterfactual_relation} is out of range; "
            f"expected 0 (spread over all relations) or a relation in [1, {w.n_relations}] "
            "(world.n_relations)"
        )


SCHEMA = Schema(Config, {"world": WorldConfig, "knowledge": KnowledgeConfig, "mixture": MixtureConfig,
                         "train": TrainConfig, "pretrain": PretrainConfig}, KEYS, _check_config)
"""The toy's config schema; the functions below are its methods (`cpi.sims.schema.Schema`)."""

all_keys = SCHEMA.all_keys
default_value = SCHEMA.default_value
field_type = SCHEMA.field_type
key_range = SCHEMA.key_range
allowed_text = SCHEMA.allowed_text
keys_table = SCHEMA.keys_table
keys_markdown = SCHEMA.keys_markdown
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
