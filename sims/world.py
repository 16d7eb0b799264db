"""The world of one experiment: tokens, embeddings, the pretrained W_V, and the data points.

Pieces kept separate so each can be replaced: the embeddings (`theory.embeddings`, the
paper's Assumptions 2-4),
`allocate_points` (which tokens form which data group, and what the pretrained model
memorised), `pretrained_values` (W_V from the value-logit table of Lemma 3).

Token layout (shared with `theory.pretrained`): subjects 0..K_S-1, answers K_S..K_S+K_A-1,
the relation K-1. Every data point is a triple of slots [context, subject, relation] with a
key mask: context-bearing points see keys (c, s) and mask the relation key (σ_r = 0, as the
paper assumes); subject-only points [s, r] leave the context slot masked and see (s, r).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.embeddings import paper_embeddings, theta_directions
from theory.pretrained import value_logit_table

from .config import Config, ConfigError, group_counts

GROUPS = ("C", "CS", "CF", "S")
"""Training groups: context-critical, context+subject (aligned), counterfactual, subject-only."""

CONTEXT_KEYS = (True, True, False)
SUBJECT_ONLY_KEYS = (False, True, True)


@dataclass(frozen=True)
class Points:
    """A set of n data points. `tokens[i] = [c, s, r]` (c is unused where key_mask[i, 0] is
    False); `answer[i]` the target token; `fact[i]` the token the subject was memorised
    with (−1: not memorised); `group[i]` an index into GROUPS (−1 for held-out points)."""

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
    w_v: np.ndarray  # (d, d) pretrained value matrix
    train: Points
    test: Points  # conflict points: s memorised with fact a, context c ≠ a
    aligned: Points  # held-out points whose context is the memorised fact

    @property
    def relation(self) -> int:
        return self.embed.shape[1] - 1


def pretrained_values(embed: np.ndarray, table: np.ndarray) -> np.ndarray:
    """W_V = Φ G⁻¹ V G⁻¹ Φᵀ with G = ΦᵀΦ, so that Φᵀ W_V Φ = V exactly (Φ full column rank)."""
    gram = embed.T @ embed
    core = np.linalg.solve(gram, np.linalg.solve(gram, table.T).T)  # G⁻¹ V G⁻¹ (G symmetric)
    return embed @ core @ embed.T


def vocabulary_needs(config: Config) -> tuple[int, int]:
    """(subjects, answer tokens) the mixture uses: each subject/answer appears once
    (Assumption 1); CF and conflict test points use two answer tokens each."""
    counts = group_counts(config.mixture)
    m = config.mixture
    subjects = m.n_train + m.n_test + m.n_aligned
    answers = (
        counts["C"] + counts["CS"] + 2 * counts["CF"] + counts["S_seen"] + counts["S_unseen"]
        + 2 * m.n_test + m.n_aligned
    )
    return subjects, answers


def check_vocabulary(config: Config) -> None:
    """Raise ConfigError when world.n_subjects or world.n_answers is too small for the mixture."""
    need_s, need_a = vocabulary_needs(config)
    w, m = config.world, config.mixture
    if need_s > w.n_subjects:
        raise ConfigError(
            f"world.n_subjects = {w.n_subjects} is too small: the mixture needs {need_s} "
            f"distinct subjects (mixture.n_train {m.n_train} + n_test {m.n_test} + "
            f"n_aligned {m.n_aligned}); set world.n_subjects >= {need_s}"
        )
    if need_a > w.n_answers:
        raise ConfigError(
            f"world.n_answers = {w.n_answers} is too small: the mixture needs {need_a} distinct "
            "answer tokens (one per C, C+S and S point, two per counterfactual and conflict "
            f"test point, one per aligned point); set world.n_answers >= {need_a}"
        )


def allocate_points(config: Config) -> tuple[Points, Points, Points, np.ndarray, np.ndarray]:
    """Draw fresh tokens for every point (a seeded permutation; results do not depend on it
    under the paper's symmetric embeddings) and record what the pretrained model memorised.

    Returns (train, test, aligned, fact, strength) with fact/strength per subject token
    as `theory.pretrained.value_logit_table` takes them. Training points come in group
    order C, C+S, CF, S (seen first), so the C points are the first round(ρ·n) ones."""
    check_vocabulary(config)
    k_s, k_a = config.world.n_subjects, config.world.n_answers
    delta_m, delta_s = config.knowledge.delta_m, config.knowledge.delta_s
    relation = k_s + k_a
    rng = np.random.default_rng(config.train.seed)
    subjects = iter(rng.permutation(k_s).tolist())
    answers = iter((k_s + rng.permutation(k_a)).tolist())
    fact = np.full(k_s, -1)
    strength = np.full(k_s, 0.5)

    def make(kind: str, group: int) -> tuple[list[int], tuple[bool, ...], int, int, int]:
        s = next(subjects)
        if kind == "S_unseen":
            a = next(answers)
            return [relation, s, relation], SUBJECT_ONLY_KEYS, a, -1, group
        if kind == "S_seen":
            a = next(answers)
            fact[s], strength[s] = a - k_s, delta_s
            return [relation, s, relation], SUBJECT_ONLY_KEYS, a, a, group
        c = next(answers)
        if kind == "C":
            return [c, s, relation], CONTEXT_KEYS, c, -1, group
        memorised = c if kind in ("CS", "aligned") else next(answers)  # CF and test: a ≠ c
        fact[s], strength[s] = memorised - k_s, delta_m
        return [c, s, relation], CONTEXT_KEYS, c, memorised, group

    def points(kinds: list[tuple[str, int]]) -> Points:
        rows = [make(kind, group) for kind, group in kinds]
        cols = list(zip(*rows)) if rows else [[], [], [], [], []]
        return Points(
            tokens=np.array(cols[0], dtype=np.int32).reshape(-1, 3),
            key_mask=np.array(cols[1], dtype=bool).reshape(-1, 3),
            answer=np.array(cols[2], dtype=np.int32),
            fact=np.array(cols[3], dtype=np.int32),
            group=np.array(cols[4], dtype=np.int32),
        )

    counts = group_counts(config.mixture)
    order = [("C", 0), ("CS", 1), ("CF", 2), ("S_seen", 3), ("S_unseen", 3)]
    train = points([(kind, g) for kind, g in order for _ in range(counts[kind])])
    test = points([("test", -1)] * config.mixture.n_test)
    aligned = points([("aligned", -1)] * config.mixture.n_aligned)
    return train, test, aligned, fact, strength


def build_world(config: Config) -> World:
    """The world of `config`: paper embeddings, allocated points, pretrained W_V."""
    k = config.knowledge
    train, test, aligned, fact, strength = allocate_points(config)
    embed = paper_embeddings(config.world.n_subjects, config.world.n_answers)
    theta_c, theta_s = theta_directions(config.world.n_subjects, config.world.n_answers)
    table = value_logit_table(
        config.world.n_subjects, config.world.n_answers, k.o_c, k.o_r, k.delta_c, fact, strength
    )
    return World(
        embed=embed,
        theta_c=theta_c,
        theta_s=theta_s,
        value_table=table,
        w_v=pretrained_values(embed, table),
        train=train,
        test=test,
        aligned=aligned,
    )
