"""Experiment configuration: frozen dataclasses grouped as world / knowledge / mixture / train.

A config is built from defaults, then a TOML file, then `--set section.key=value` overrides,
and validated once at the end. Every problem raises `ConfigError`, whose message names the
key, the bad value and what is allowed; the CLI turns it into exit status 2.

Longer than 400 lines because it is the one table of every key (`KEYS`: allowed values and
meaning, from which `cpi config` and the README table are generated) next to the checks that
read it; splitting the table from its checks would put one idea in two places.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from theory.params import PAPER_KNOWLEDGE

from .errors import ConfigError



@dataclass(frozen=True)
class World:
    n_subjects: int = PAPER_KNOWLEDGE.n_subjects
    n_answers: int = PAPER_KNOWLEDGE.n_answers
    n_relations: int = 1
    relation_overlap: float = 0.0
    embeddings: str = "paper"
    dim: int = 0


@dataclass(frozen=True)
class Knowledge:
    delta_c: float = PAPER_KNOWLEDGE.delta_c
    delta_m: float = PAPER_KNOWLEDGE.delta_m
    delta_s: float = PAPER_KNOWLEDGE.delta_s
    o_c: float = PAPER_KNOWLEDGE.o_c
    o_r: float = PAPER_KNOWLEDGE.o_r
    pretraining: str = "constructed"


@dataclass(frozen=True)
class Pretrain:
    """Learned pretraining of W_V (`sims.pretraining`; used when knowledge.pretraining is
    "learned")."""

    steps: int = 1000
    lr: float = 5.0
    fact_repeats: int = 1
    context_repeats: int = 1
    memorised: float = 0.75


@dataclass(frozen=True)
class Mixture:
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
class Train:
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
    world: World = field(default_factory=World)
    knowledge: Knowledge = field(default_factory=Knowledge)
    mixture: Mixture = field(default_factory=Mixture)
    train: Train = field(default_factory=Train)
    pretrain: Pretrain = field(default_factory=Pretrain)


# (low, high, low_inclusive, high_inclusive) for numeric keys; choices for strings.
_OPEN_UNIT = (0.0, 1.0, False, False)
_UNIT = (0.0, 1.0, True, True)
_POSITIVE = (0.0, math.inf, False, False)


@dataclass(frozen=True)
class KeySpec:
    """What one config key allows and means: `allowed` is (low, high, low_inclusive,
    high_inclusive) for a number, or the tuple of allowed strings."""

    allowed: tuple
    meaning: str


OPTIMIZERS = ("gd", "sgd", "adam", "adamw")
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
                      "and summary.json reports the achieved_delta_c, achieved_delta_m"),
    "mixture.n_train": KeySpec((1, math.inf, True, False), "n: training points (before filtering)"),
    "mixture.context_critical": KeySpec(_UNIT, "fraction ρ of C points: only the context predicts the answer"),
    "mixture.counterfactual": KeySpec(
        _UNIT, "fraction of CF points: the context contradicts the memorised fact, answer = context"),
    "mixture.fact_recall": KeySpec(_UNIT, "fraction of S points [s, r] with no context"),
    "mixture.fact_recall_seen": KeySpec(_UNIT, "fraction of the S points whose fact was memorised (seen)"),
    "mixture.counterfactual_relation": KeySpec(
        (0, math.inf, True, False),
        "0 spreads CF points over the relations; j puts them all on relation j, in place of its C+S points"),
    "mixture.filter": KeySpec(
        _UNIT, "fraction of context-bearing points dropped, those with the lowest loss on [s, r] alone "
               "under the pretrained model (the paper's filtering); some training points must remain"),
    "mixture.n_test": KeySpec((1, math.inf, True, False), "held-out conflict test points per relation"),
    "mixture.n_aligned": KeySpec(
        (0, math.inf, True, False), "held-out points whose context is the memorised fact"),
    "train.lr": KeySpec(_POSITIVE, "step size η on W_KQ (the learning rate of train.optimizer)"),
    "train.steps": KeySpec((1, math.inf, True, False), "optimizer steps"),
    "train.value_lr": KeySpec((0.0, math.inf, True, False), "step size on W_V (0 keeps W_V frozen, as the theory assumes)"),
    "train.seed": KeySpec((0, 2**32 - 1, True, True),
                          "seed of the token draw, the minibatches and random embeddings; " + SEED_NOTE
                          + " (minibatches and world.embeddings = 'random' aside)"),
    "train.dtype": KeySpec(("float64", "float32"), "floating-point precision of training"),
    "train.optimizer": KeySpec(
        OPTIMIZERS, "gd: gradient descent (the theory's); sgd: with momentum and minibatches; adam, adamw "
                    "(optax); value_lr steps W_V with the same optimizer"),
    "train.batch_size": KeySpec(
        (0, math.inf, True, False), "training points per step, drawn without replacement each epoch from "
                                    "train.seed (0: every point, full batch)"),
    "train.momentum": KeySpec((0.0, 1.0, True, False), "momentum of sgd (0: none)"),
    "train.weight_decay": KeySpec(
        (0.0, math.inf, True, True), "weight decay λ: added to the gradient as λW (gd, sgd, adam), decoupled in adamw"),
    "pretrain.steps": KeySpec(
        (0, math.inf, True, False), "full-batch gradient steps of learned pretraining on W_V alone (W_KQ = 0); "
                                    "0 leaves W_V = 0"),
    "pretrain.lr": KeySpec(_POSITIVE, "step size of learned pretraining on W_V"),
    "pretrain.fact_repeats": KeySpec(
        (0, math.inf, True, False), "copies of each fact point [s, r] -> a in the pretraining corpus: more "
                                    "copies, stronger memorisation (larger achieved delta_m)"),
    "pretrain.context_repeats": KeySpec(
        (0, math.inf, True, False), "copies of the context-copy point [c, s', r] -> c of every answer token c "
                                    "(s' a subject with no fact): more copies, larger achieved delta_c"),
    "pretrain.memorised": KeySpec(
        _UNIT, "fraction of the K_S subjects given a fact in pretraining (a seeded draw from train.seed, "
               "independent of the mixture); finetuning takes its memorised subjects from them, its C and unseen "
               "S subjects from the rest"),
}
"""Every config key: its allowed values and its meaning (`cpi config` and the README table
print these words)."""

_RANGES: dict[str, Any] = {key: spec.allowed for key, spec in KEYS.items()}


def _section_class(name: str):
    return {"world": World, "knowledge": Knowledge, "mixture": Mixture, "train": Train, "pretrain": Pretrain}[name]


def all_keys() -> list[str]:
    """Every valid `section.key` path."""
    return list(_RANGES)


@functools.cache
def field_type(key: str) -> type:
    section, name = key.split(".")
    return type(getattr(_section_class(section)(), name))


def default_value(key: str) -> Any:
    """The default value of `section.key`."""
    section, name = key.split(".")
    return getattr(_section_class(section)(), name)


def allowed_text(key: str) -> str:
    """The allowed values of `key` in words, e.g. 'a number in [0, 1]'."""
    return _describe_range(key)


def keys_table() -> list[tuple[str, str, str, str]]:
    """(key, default as TOML would write it, allowed values, meaning) of every key."""
    rows = []
    for key, spec in KEYS.items():
        default = default_value(key)
        shown = f'"{default}"' if isinstance(default, str) else f"{default:g}" if isinstance(default, float) else str(default)
        rows.append((key, shown, allowed_text(key), spec.meaning))
    return rows


def keys_markdown() -> str:
    """The README's table of config keys (one row per key, from `KEYS`)."""
    lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    lines += [f"| `{key}` | {default} | {allowed} | {meaning} |" for key, default, allowed, meaning in keys_table()]
    return "\n".join(lines)


def seeds_matter(config: "Config") -> bool:
    """Whether train.seed can change any number of `config`: through the minibatches it
    draws, or through random embeddings; under the paper's embeddings nothing else
    (`SEED_NOTE`)."""
    return config.train.batch_size > 0 or config.world.embeddings == "random"


def _describe_range(key: str) -> str:
    spec = _RANGES[key]
    if isinstance(spec[0], str):
        return "one of " + ", ".join(repr(s) for s in spec)
    lo, hi, lo_in, hi_in = spec
    kind = "an integer" if field_type(key) is int else "a number"
    fmt = (lambda x: str(int(x))) if field_type(key) is int else (lambda x: f"{x:g}")
    if hi == math.inf:
        return f"{kind} {'>=' if lo_in else '>'} {fmt(lo)}"
    return f"{kind} in {'[' if lo_in else '('}{fmt(lo)}, {fmt(hi)}{']' if hi_in else ')'}"


def unknown_key(key: str) -> ConfigError:
    """An error for an unknown key that suggests the closest valid one."""
    keys = all_keys()
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    if not close:  # a known key name in the wrong section, or a typo in the name alone
        by_leaf = {k.split(".")[1]: k for k in keys}
        near = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(by_leaf), n=1, cutoff=0.6)
        close = [by_leaf[near[0]]] if near else []
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint} (valid keys: {', '.join(keys)})")


def _coerce(key: str, value: Any) -> Any:
    """Check the type of one value against its field; ints are accepted where floats are."""
    want = field_type(key)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if want is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} = {value!r} is not finite; expected {_describe_range(key)}")
    if not isinstance(value, want) or isinstance(value, bool) != (want is bool):
        raise ConfigError(
            f"{key} = {value!r} has the wrong type ({type(value).__name__}); "
            f"expected {_describe_range(key)}"
        )
    return value


def check_value(key: str, value: Any) -> Any:
    """The value of `key` with its type checked (ints accepted as floats) and in range."""
    value = _coerce(key, value)
    _check_range(key, value)
    return value


def key_range(key: str) -> tuple:
    """(low, high, low_inclusive, high_inclusive) of a numeric key, or its allowed strings."""
    return _RANGES[key]


def _check_range(key: str, value: Any) -> None:
    spec = _RANGES[key]
    if isinstance(spec[0], str):
        ok = value in spec
    else:
        lo, hi, lo_in, hi_in = spec
        ok = (value >= lo if lo_in else value > lo) and (value <= hi if hi_in else value < hi)
    if not ok:
        raise ConfigError(f"{key} = {value!r} is out of range; expected {_describe_range(key)}")


def group_counts(mixture: Mixture) -> dict[str, int]:
    """Training-point counts per group: round(fraction·n_train) for C, CF and S (Python's
    round, half to even), C+S takes what is left; S splits into seen and unseen likewise."""
    n = mixture.n_train
    n_c = round(mixture.context_critical * n)
    n_cf = round(mixture.counterfactual * n)
    n_s = round(mixture.fact_recall * n)
    n_s_seen = round(mixture.fact_recall_seen * n_s)
    return {
        "C": n_c,
        "CS": n - n_c - n_cf - n_s,
        "CF": n_cf,
        "S_seen": n_s_seen,
        "S_unseen": n_s - n_s_seen,
    }


def training_points_after_filter(mixture: Mixture) -> int:
    """Training points left after `mixture.filter` drops round(filter · #context-bearing
    points) of them (`sims.world.filter_points`), from the counts alone."""
    counts = group_counts(mixture)
    n_context = mixture.n_train - counts["S_seen"] - counts["S_unseen"]
    return mixture.n_train - round(mixture.filter * n_context)


def _check_filter(m: Mixture) -> None:
    if m.filter == 0 or training_points_after_filter(m) > 0:
        return
    counts = group_counts(m)
    n_context = m.n_train - counts["S_seen"] - counts["S_unseen"]
    limit = (n_context - 0.5) / n_context  # round(f·n_context) < n_context below it
    raise ConfigError(
        f"mixture.filter = {m.filter:g}: the filter leaves no training points (it drops "
        f"round({m.filter:g} x {n_context}) = {n_context} of the {n_context} context-bearing points, "
        f"and the mixture has no subject-only points); expected mixture.filter < {limit:.6g}, "
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
    n = training_points_after_filter(config.mixture)
    if t.batch_size > n:
        raise ConfigError(
            f"train.batch_size = {t.batch_size} is out of range; expected 0 (full batch) or an integer in "
            f"[1, {n}] (the training points after filtering)")


def _check_embeddings(w: World) -> None:
    if w.embeddings == "paper" and w.dim != 0:
        raise ConfigError(
            f"world.dim = {w.dim} needs world.embeddings = 'random' (the paper's embeddings have their own "
            "dimension); set world.dim = 0 or world.embeddings = 'random'")
    if w.embeddings == "random" and w.dim == 1:
        raise ConfigError(
            "world.dim = 1 is too small for random embeddings; expected 0 (the paper's dimension) or an "
            "integer >= 2")


def validate(config: Config, keys=None) -> Config:
    """Check the type and range of every value (or of the values of `keys` only, when the
    rest are known to be valid) and the consistency of the whole config; return it."""
    for key in all_keys() if keys is None else keys:
        section, name = key.split(".")
        check_value(key, getattr(getattr(config, section), name))
    m = config.mixture
    total = m.context_critical + m.counterfactual + m.fact_recall
    counts = group_counts(m)
    if total > 1.0 + 1e-12 or counts["CS"] < 0:
        raise ConfigError(
            "mixture fractions context_critical + counterfactual + fact_recall = "
            f"{m.context_critical:g} + {m.counterfactual:g} + {m.fact_recall:g} = {total:g} "
            f"(rounded counts {counts['C']} + {counts['CF']} + "
            f"{counts['S_seen'] + counts['S_unseen']} of n_train = {m.n_train}); "
            "they must sum to at most 1 (the rest are C+S points)"
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
    return config


def _apply(config: Config, key: str, value: Any) -> Config:
    if key.count(".") != 1 or key not in _RANGES:
        raise unknown_key(key)
    section, name = key.split(".")
    value = _coerce(key, value)
    return _replaced(config, section, _replaced(getattr(config, section), name, value))


def _replaced(record, name: str, value):
    """A copy of the frozen dataclass `record` with field `name` set to `value`: what
    `dataclasses.replace` returns (no field here has an initialiser to rerun), ten times
    faster, which counts when a grid expands to 10^4 configs."""
    copy = object.__new__(type(record))
    copy.__dict__.update(record.__dict__)
    object.__setattr__(copy, name, value)
    return copy


def from_dict(data: dict[str, Any], base: Config | None = None) -> Config:
    """Apply a nested {section: {key: value}} mapping (a parsed TOML file) to `base`."""
    config = base or Config()
    for section, entries in data.items():
        if not isinstance(entries, dict):
            raise unknown_key(section)
        for name, value in entries.items():
            config = _apply(config, f"{section}.{name}", value)
    return config


def parse_override(text: str) -> tuple[str, Any]:
    """Parse 'section.key=value'; the value is read as a TOML value, else as a bare string."""
    if "=" not in text:
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    key, raw = (part.strip() for part in text.split("=", 1))
    if key not in _RANGES:
        raise unknown_key(key)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def load_text(text: str, overrides: list[str] | tuple[str, ...] = (), source: str = "config") -> Config:
    """Defaults, then the TOML `text`, then `overrides`; validated."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source} is not valid TOML: {err}") from None
    config = from_dict(data)
    for override in overrides:
        config = _apply(config, *parse_override(override))
    return validate(config)


def load(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the TOML file at `path` (if any), then `overrides`; validated."""
    if path is None:
        return load_text("", overrides)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {err}") from None
    return load_text(text, overrides, source=f"config file {str(path)!r}")


def with_values(config: Config, values: dict[str, Any]) -> Config:
    """A validated copy of the validated `config` with some `section.key` values replaced
    (only the replaced values and the whole-config constraints are checked again)."""
    for key, value in values.items():
        config = _apply(config, key, value)
    return validate(config, keys=values)


def to_dict(config: Config) -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(config)


def to_toml(config: Config) -> str:
    """The fully resolved config as TOML; `load` of this text reproduces `config` exactly."""
    return tomli_w.dumps(to_dict(config))
