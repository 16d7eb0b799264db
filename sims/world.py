"""The world of one experiment: tokens, embeddings, the pretrained W_V, and the data examples.

Pieces kept separate so each can be replaced: the embeddings (`cpi.theory.embeddings`, the
paper's Assumptions 2-4), `allocate_examples` (which tokens form which data group, and what
the pretrained model memorised), `pretrained_values` (W_V from the value-logit table of
Lemma 3), and `filter_examples` (the paper's filtering by no-context loss).

Token layout (shared with `cpi.theory.pretrained`): subjects 0..K_S-1, answers K_S..K_S+K_A-1,
the R relations K_S+K_A..K-1. Every data example is a triple of slots [context, subject, relation] with a
key mask: context-bearing examples see keys (c, s) and mask the relation key (σ_r = 0, as the
paper assumes); subject-only examples [s, r] leave the context slot masked and see (s, r).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from cpi.theory.embeddings import paper_embeddings, random_embeddings, theta_directions
from cpi.theory.groups import GROUPS as THEORY_GROUPS
from cpi.theory.groups import TRAINING_GROUP_OF, TRAINING_GROUPS, training_index
from cpi.theory.pretrained import value_logit_table

from .config import Config, ConfigError, group_counts

GROUPS = TRAINING_GROUPS
"""The training groups (`cpi.theory.groups`), under the name `cpi` imports."""

CONTEXT_KEYS = (True, True, False)
SUBJECT_ONLY_KEYS = (False, True, True)


@dataclass(frozen=True)
class Examples:
    """A set of n data examples. `tokens[i] = [c, s, r]` (c is unused where key_mask[i, 0] is
    False); `answer[i]` the target token; `fact[i]` the token the subject was memorised
    with (−1: not memorised); `group[i]` an index into TRAINING_GROUPS (−1 for held-out examples)."""

    tokens: np.ndarray  # (n, 3) int
    key_mask: np.ndarray  # (n, 3) bool
    answer: np.ndarray  # (n,) int
    fact: np.ndarray  # (n,) int
    group: np.ndarray  # (n,) int

    def __len__(self) -> int:
        return len(self.answer)


@dataclass(frozen=True)
class World:
    """Everything a training run needs besides the optimizer settings."""

    embed: np.ndarray  # Φ, (d, K): column y is φ(y); also the tied, frozen head W_H
    theta_c: np.ndarray  # (d,) shared context direction θ_C
    theta_s: np.ndarray  # (d,) shared subject direction θ_S
    value_table: np.ndarray  # (K, K) V[a, y] = φ(a)ᵀ W_V φ(y) before finetuning
    train: Examples
    test: Examples  # conflict examples: s memorised with fact a, context c ≠ a
    aligned: Examples  # held-out examples whose context is the memorised fact
    n_relations: int = 1
    value_table_error: float | None = None  # random embeddings: max |Φᵀ W_V Φ − V| (None: paper's)
    values_core: np.ndarray | None = field(default=None, repr=False)  # random or learned: C with W_V = Φ C Φᵀ

    @cached_property
    def w_v(self) -> np.ndarray:
        """(d, d) the pretrained value matrix, built from the table (`pretrained_values`), or
        Φ C Φᵀ for random embeddings (`random_values`) and learned pretraining
        (`cpi.sims.pretraining.learned_values`); computed on first use (a sweep's fast engine needs
        only `value_table`)."""
        if self.values_core is not None:
            return self.embed @ self.values_core @ self.embed.T
        return pretrained_values(self.embed, self.value_table)

    @property
    def relation(self) -> int:
        """The token of the first relation r_1 (the paper's single relation when R = 1)."""
        return self.embed.shape[1] - self.n_relations


def pretrained_values(embed: np.ndarray, table: np.ndarray) -> np.ndarray:
    """W_V = Φ G⁻¹ V G⁻¹ Φᵀ with G = ΦᵀΦ, so that Φᵀ W_V Φ = V exactly (Φ full column rank)."""
    gram = embed.T @ embed
    core = np.linalg.solve(gram, np.linalg.solve(gram, table.T).T)  # G⁻¹ V G⁻¹ (G symmetric)
    return embed @ core @ embed.T


def random_values(embed: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The pretrained W_V = Φ C Φᵀ of arbitrary embeddings Φ (d × K) that realises the Lemma 3
    table V (K × K) on the tokens as well as it can: C = G⁺ V G⁺ with G = ΦᵀΦ, the
    minimum-norm least-squares solution of Φᵀ W_V Φ = V (C = G⁻¹ V G⁻¹ when Φ has full
    column rank, d ≥ K, and then Φᵀ W_V Φ = V up to rounding).

    Returns (C, T, error): the achieved table T = Φᵀ W_V Φ = G C G, and its worst deviation
    max |T − V|. When Φ has full column rank T is V itself (the deviation is rounding),
    so the engine's output classes stay those of V."""
    gram = embed.T @ embed
    k = gram.shape[0]
    full_rank = embed.shape[0] >= k and np.linalg.matrix_rank(embed) == k
    if full_rank:
        core = np.linalg.solve(gram, np.linalg.solve(gram, table.T).T)
    else:
        g_plus = np.linalg.pinv(gram, rcond=1e-10, hermitian=True)
        core = g_plus @ table @ g_plus
    achieved = gram @ core @ gram
    error = float(np.max(np.abs(achieved - table)))
    return core, (table if full_rank else achieved), error


def embedding_key(config: Config) -> tuple:
    """What the embeddings of `config` depend on: equal keys, equal Φ (for a given vocabulary)."""
    w = config.world
    if w.embeddings == "paper":
        return ("paper", w.relation_overlap)
    return ("random", w.relation_overlap, w.dim, config.train.seed)


def vocabulary_needs(config: Config) -> tuple[int, int]:
    """(subjects, answer tokens) the mixture uses: each subject/answer appears once
    (Assumption 1); CF and conflict test examples use two answer tokens each; there are
    n_test conflict test examples per relation."""
    counts = group_counts(config.mixture)
    m = config.mixture
    n_test = m.n_test * config.world.n_relations
    subjects = m.n_train + n_test + m.n_aligned
    answers = (
        counts["C"] + counts["CS"] + 2 * counts["CF"] + counts["S_seen"] + counts["S_unseen"]
        + 2 * n_test + m.n_aligned
    )
    return subjects, answers


def learned_needs(config: Config) -> dict[str, int]:
    """What the mixture takes from the knowledge base of learned pretraining
    (`cpi.sims.pretraining.knowledge_base`): memorised subjects (CS, CF, seen S, conflict test and
    aligned examples), subjects with no fact (C and unseen S examples) and answer tokens that are
    nobody's fact (the contexts of C, CF and conflict test examples, the answers of unseen S)."""
    counts = group_counts(config.mixture)
    m = config.mixture
    n_test = m.n_test * config.world.n_relations
    return {
        "memorised": counts["CS"] + counts["CF"] + counts["S_seen"] + n_test + m.n_aligned,
        "free_subjects": counts["C"] + counts["S_unseen"],
        "free_answers": counts["C"] + counts["CF"] + n_test + counts["S_unseen"],
    }


def check_learned_vocabulary(config: Config) -> None:
    """Raise ConfigError when the knowledge base of learned pretraining (round(pretrain.memorised
    · K_S) memorised subjects, each with its own fact) cannot serve the mixture."""
    need = learned_needs(config)
    w, p = config.world, config.pretrain
    n_mem = round(p.memorised * w.n_subjects)
    have = {"memorised": n_mem, "free_subjects": w.n_subjects - n_mem, "free_answers": w.n_answers - n_mem}
    words = {"memorised": "memorised subjects (CS, CF, seen S, conflict test and aligned examples)",
             "free_subjects": "subjects with no fact (C and unseen S examples)",
             "free_answers": "answer tokens that are no subject's fact (contexts of C, CF and test examples, "
                             "unseen S answers)"}
    problems = [f"{need[k]} {words[k]} but the knowledge base has {have[k]}" for k in need if need[k] > have[k]]
    if problems:
        lo = need["memorised"] / w.n_subjects
        hi = 1 - need["free_subjects"] / w.n_subjects
        fixes = []
        if need["memorised"] > have["memorised"] or need["free_subjects"] > have["free_subjects"]:
            fixes.append(f"pretrain.memorised in [{lo:.4g}, {hi:.4g}]" if lo <= hi else
                         f"world.n_subjects >= {need['memorised'] + need['free_subjects']}")
        if need["free_answers"] > have["free_answers"]:
            fixes.append(f"world.n_answers >= {n_mem + need['free_answers']}")
        raise ConfigError(
            f"learned pretraining with world.n_subjects = {w.n_subjects}, world.n_answers = {w.n_answers} and "
            f"pretrain.memorised = {p.memorised:g} ({n_mem} memorised subjects) does not fit the mixture: it needs "
            + "; ".join(problems) + "; set " + " and ".join(fixes))


def check_vocabulary(config: Config) -> None:
    """Raise ConfigError when world.n_subjects or world.n_answers (or both: every violated
    bound is named at once) is too small for the mixture, with the values that would fit;
    under learned pretraining, when its knowledge base cannot serve the mixture."""
    if config.knowledge.pretraining == "learned":
        check_learned_vocabulary(config)
        return
    need_s, need_a = vocabulary_needs(config)
    w, m = config.world, config.mixture
    problems, fixes = [], []
    if need_s > w.n_subjects:
        problems.append(
            f"world.n_subjects = {w.n_subjects} is too small: the mixture needs {need_s} "
            f"distinct subjects (mixture.n_train {m.n_train} + n_test {m.n_test} x "
            f"{w.n_relations} relation(s) + n_aligned {m.n_aligned})"
        )
        fixes.append(f"world.n_subjects >= {need_s}")
    if need_a > w.n_answers:
        problems.append(
            f"world.n_answers = {w.n_answers} is too small: the mixture needs {need_a} distinct "
            "answer tokens (one per C, CS and S example, two per counterfactual and conflict "
            "test example, one per aligned example)"
        )
        fixes.append(f"world.n_answers >= {need_a}")
    if problems:
        raise ConfigError("; ".join(problems) + "; set " + " and ".join(fixes)
                          + " (e.g. " + " ".join(f"--set {f.replace(' >= ', '=')}" for f in fixes) + ")")


def allocate_examples(config: Config) -> tuple[Examples, Examples, Examples, np.ndarray, np.ndarray]:
    """Draw fresh tokens for every example (a seeded permutation; results do not depend on it
    under the paper's symmetric embeddings) and record what the pretrained model memorised.

    Returns (train, test, aligned, fact, strength) with fact/strength per subject token
    as `cpi.theory.pretrained.value_logit_table` takes them. Training examples come in group
    order C, CS, CF, S (seen first), so the C examples are the first round(ρ·n) ones. The
    i-th example of a group is queried with relation i mod R, except that CF examples all use
    relation `mixture.counterfactual_relation` when it is not 0; conflict test examples
    number n_test per relation."""
    check_vocabulary(config)
    if config.knowledge.pretraining == "learned":
        return _allocate_learned(config)
    k_s, k_a = config.world.n_subjects, config.world.n_answers
    delta_m, delta_s = config.knowledge.delta_m, config.knowledge.delta_s
    rng = np.random.default_rng(config.train.seed)
    subjects = iter(rng.permutation(k_s).tolist())
    answers = iter((k_s + rng.permutation(k_a)).tolist())
    fact = np.full(k_s, -1)
    strength = np.full(k_s, 0.5)

    def make(kind: str, group: int, relation: int) -> tuple[list[int], tuple[bool, ...], int, int, int]:
        r = k_s + k_a + relation
        s = next(subjects)
        if kind == "S_unseen":
            a = next(answers)
            return [r, s, r], SUBJECT_ONLY_KEYS, a, -1, group
        if kind == "S_seen":
            a = next(answers)
            fact[s], strength[s] = a - k_s, delta_s
            return [r, s, r], SUBJECT_ONLY_KEYS, a, a, group
        c = next(answers)
        if kind == "C":
            return [c, s, r], CONTEXT_KEYS, c, -1, group
        memorised = c if kind in ("CS", "aligned") else next(answers)  # CF and test: a ≠ c
        fact[s], strength[s] = memorised - k_s, delta_m
        return [c, s, r], CONTEXT_KEYS, c, memorised, group

    return _examples_of(config, make) + (fact, strength)


def _allocate_learned(config: Config) -> tuple[Examples, Examples, Examples, np.ndarray, np.ndarray]:
    """`allocate_examples` under learned pretraining: the examples take their subjects and facts
    from the knowledge base (`cpi.sims.pretraining.knowledge_base`), in its order: memorised
    subjects for CS, CF, seen S, conflict test and aligned examples (CS and aligned: context =
    the fact), subjects with no fact for C and unseen S examples, and fresh context tokens (and
    unseen S answers) from the answers that are nobody's fact. fact/strength are those of the
    knowledge base (strength: knowledge.delta_m, unused by the learned W_V)."""
    from .pretraining import knowledge_base

    kb = knowledge_base(config)
    k_s, k_a = config.world.n_subjects, config.world.n_answers
    fact_of = dict(zip(kb.memorised.tolist(), kb.facts.tolist()))
    memorised, free = iter(kb.memorised.tolist()), iter(kb.free_subjects.tolist())
    fresh = iter(kb.free_answers.tolist())
    fact = np.full(k_s, -1)
    fact[kb.memorised] = kb.facts - k_s
    strength = np.where(fact >= 0, config.knowledge.delta_m, 0.5)

    def make(kind: str, group: int, relation: int) -> tuple[list[int], tuple[bool, ...], int, int, int]:
        r = k_s + k_a + relation
        if kind in ("C", "S_unseen"):
            s = next(free)
            c = next(fresh)
            if kind == "C":
                return [c, s, r], CONTEXT_KEYS, c, -1, group
            return [r, s, r], SUBJECT_ONLY_KEYS, c, -1, group
        s = next(memorised)
        a = fact_of[s]
        if kind == "S_seen":
            return [r, s, r], SUBJECT_ONLY_KEYS, a, a, group
        c = a if kind in ("CS", "aligned") else next(fresh)  # CF and test: a ≠ c
        return [c, s, r], CONTEXT_KEYS, c, a, group

    return _examples_of(config, make) + (fact, strength)


def _examples_of(config: Config, make) -> tuple[Examples, Examples, Examples]:
    """(train, test, aligned) of `config`, each example made by `make(kind, group, relation)`."""
    n_relations = config.world.n_relations

    def examples(kinds: list[tuple[str, int, int]]) -> Examples:
        rows = [make(*kind) for kind in kinds]
        cols = list(zip(*rows)) if rows else [[], [], [], [], []]
        return Examples(
            tokens=np.array(cols[0], dtype=np.int32).reshape(-1, 3),
            key_mask=np.array(cols[1], dtype=bool).reshape(-1, 3),
            answer=np.array(cols[2], dtype=np.int32),
            fact=np.array(cols[3], dtype=np.int32),
            group=np.array(cols[4], dtype=np.int32),
        )

    counts = group_counts(config.mixture)
    train = examples(_training_kinds(counts, n_relations, config.mixture.counterfactual_relation))
    test = examples([("test", -1, j) for j in range(n_relations) for _ in range(config.mixture.n_test)])
    aligned = examples([("aligned", -1, i % n_relations) for i in range(config.mixture.n_aligned)])
    return train, test, aligned


def _training_kinds(counts: dict, n_relations: int, cf_relation: int) -> list[tuple[str, int, int]]:
    """(kind, group index, relation) of every training example, in group order.

    The i-th example of a group is queried with relation i mod R. With cf_relation = j > 0
    (counterfactual augmentation of one task), relations are dealt over the CS and CF
    examples together, and the CF examples take relation j's slots: the other relations get
    exactly the examples they would have with no CF examples at all, and n is unchanged."""
    slots = {kind: [i % n_relations for i in range(counts[kind])] for kind in counts}
    if cf_relation:
        aligned = [i % n_relations for i in range(counts["CS"] + counts["CF"])]
        on_j = [i for i, r in enumerate(aligned) if r == cf_relation - 1]
        if len(on_j) < counts["CF"]:
            raise ConfigError(
                f"mixture.counterfactual = {counts['CF']} examples on relation {cf_relation} "
                f"(mixture.counterfactual_relation) is too many: that relation has only "
                f"{len(on_j)} context-aligned examples for them to replace"
            )
        cf = set(on_j[: counts["CF"]])
        slots["CF"] = [r for i, r in enumerate(aligned) if i in cf]
        slots["CS"] = [r for i, r in enumerate(aligned) if i not in cf]
    return [(kind, training_index(TRAINING_GROUP_OF[kind]), r) for kind in THEORY_GROUPS for r in slots[kind]]


def no_context_losses(table: np.ndarray, examples: Examples) -> np.ndarray:
    """Loss of each example's answer on [s, r] alone under the pretrained model (W_KQ = 0, keys
    s and r visible, σ = ½ each): −log softmax(½v(s) + ½v(r))_a."""
    z = 0.5 * (table[:, examples.tokens[:, 1]] + table[:, examples.tokens[:, 2]])
    z = z - z.max(axis=0)
    log_p = z - np.log(np.exp(z).sum(axis=0))
    return -log_p[examples.answer, np.arange(len(examples))]


def filter_examples(examples: Examples, table: np.ndarray, fraction: float) -> Examples:
    """Drop round(fraction · #context-bearing examples) context-bearing examples with the lowest
    no-context loss (the paper's filtering: their subject already predicts the answer);
    ties go in example order. Subject-only examples are kept."""
    context = np.flatnonzero(examples.key_mask[:, 0])
    n_drop = round(fraction * len(context))
    losses = no_context_losses(table, examples)[context]
    dropped = context[np.argsort(losses, kind="stable")[:n_drop]]
    keep = np.setdiff1d(np.arange(len(examples)), dropped)
    return Examples(*(getattr(examples, f)[keep] for f in ("tokens", "key_mask", "answer", "fact", "group")))


def build_world(config: Config) -> World:
    """The world of `config`: its embeddings (the paper's, or random ones drawn from
    train.seed), allocated examples, pretrained W_V (built from the Lemma 3 table, or learned:
    `cpi.sims.pretraining`), and the training set after filtering (`mixture.filter`, by the
    achieved table)."""
    k, w = config.knowledge, config.world
    train, test, aligned, fact, strength = allocate_examples(config)
    if w.embeddings == "random":
        # a stream of its own, so the token draw of allocate_examples is the paper's
        rng = np.random.default_rng([config.train.seed, 1])
        embed, theta_c, theta_s = random_embeddings(
            w.n_subjects, w.n_answers, w.n_relations, w.relation_overlap, w.dim, rng)
    else:
        embed = paper_embeddings(w.n_subjects, w.n_answers, w.n_relations, w.relation_overlap)
        theta_c, theta_s = theta_directions(w.n_subjects, w.n_answers, w.n_relations)
    extra = {}
    if k.pretraining == "learned":
        from .pretraining import learned_values

        core, table = learned_values(config, embed)
        extra = dict(values_core=core)
    else:
        table = value_logit_table(
            w.n_subjects, w.n_answers, k.o_c, k.o_r, k.delta_c, fact, strength, n_relations=w.n_relations
        )
        if w.embeddings == "random":
            core, table, error = random_values(embed, table)
            extra = dict(value_table_error=error, values_core=core)
    if config.mixture.filter > 0:
        train = filter_examples(train, table, config.mixture.filter)
    return World(
        embed=embed,
        theta_c=theta_c,
        theta_s=theta_s,
        value_table=table,
        train=train,
        test=test,
        aligned=aligned,
        n_relations=w.n_relations,
        **extra,
    )
