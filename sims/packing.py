"""A world as the fast engine's arrays (`cpi.sims.engine`): what depends on the embeddings only
(`Shared`: passed once for every example of a sweep that shares them) and what is each example's
own (`PackedExamples`: stacked along a leading axis in a sweep), built on the host in NumPy.

With W_V frozen, `pack_examples` also groups each example's K output tokens into classes of equal
value rows (`output_classes`), so that the engine's softmax runs over about five classes with
multiplicities instead of K tokens, exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from cpi.theory.groups import TRAINING_GROUPS

from .world import World


class Shared(NamedTuple):
    """Arrays that depend on the embeddings only: the same for every example of a sweep that
    shares the vocabulary. K tokens, R relations."""

    gram: jax.Array  # (K, K) G = ΦᵀΦ
    relation_gram: jax.Array  # (R, R) Γ = Φ_Rᵀ Φ_R
    theta_c: jax.Array  # (K,) Φᵀθ_C
    theta_s: jax.Array  # (K,) Φᵀθ_S
    # When every world of a stack has the same tokens and relations (`with_layout`): W_KQ in
    # the coordinates of its m active (token, relation) pairs, and the attention scores, the
    # gradient and the θ projections as products with fixed matrices (None: (K, R) and gathers).
    active: jax.Array | None = None  # (m, 2) int32 (y_p, j_p): the tokens and relations of training slots
    score_map: jax.Array | None = None  # (m, 3N): G[t_ia, y_p] Γ[j_p, j_i]
    grad_map: jax.Array | None = None  # (3n, m): one-hot of the pair of each training slot
    theta_map: jax.Array | None = None  # (2, m): θ_Cᵀφ(y_p) Γ[j_p, 1] and θ_Sᵀφ(y_p) Γ[j_p, 1]


class PackedExamples(NamedTuple):
    """One world's examples and pretrained table, training examples first, then the conflict
    test examples, then the aligned held-out examples (N = n + m + n_aligned in all)."""

    table: jax.Array  # (K, K) T(0) = Φᵀ W_V(0) Φ: the value-logit table V of the world
    tokens: jax.Array  # (N, 3) int32 [c, s, r_j]
    key_mask: jax.Array  # (N, 3) bool
    answer: jax.Array  # (N,) int32
    relation: jax.Array  # (N,) int32 j: the query is r_{j+1}
    test_fact: jax.Array  # (m,) int32 the memorised fact a of each conflict test example
    group_onehot: jax.Array  # (n, len(TRAINING_GROUPS)) float
    test_relation_onehot: jax.Array  # (m, R) float
    # With W_V frozen, each example's output classes (`output_classes`); None when W_V trains.
    class_values: jax.Array | None = None  # (N, C, 3) T[y, slot token] of each class
    class_log_mult: jax.Array | None = None  # (N, C) log of the number of tokens in it (−inf: padding)
    answer_class: jax.Array | None = None  # (N,) int32 the class of the target token
    fact_class: jax.Array | None = None  # (m,) int32 the class of the memorised fact


def pack_shared(world: World, dtype: str = "float64") -> Shared:
    """The embedding-only arrays of `world` (computed in float64, then cast)."""
    phi = world.embed
    relations = np.arange(phi.shape[1] - world.n_relations, phi.shape[1])
    gram = phi.T @ phi
    f = np.dtype(dtype)
    return Shared(
        gram=np.asarray(gram, f),
        relation_gram=np.asarray(gram[np.ix_(relations, relations)], f),
        theta_c=np.asarray(phi.T @ world.theta_c, f),
        theta_s=np.asarray(phi.T @ world.theta_s, f),
    )


LAYOUT_ENTRIES = 2**22
"""`with_layout` adds its maps only when they hold at most this many entries together."""


def with_layout(shared: Shared, examples: PackedExamples) -> Shared:
    """`shared` with the maps of the layout of `examples` (one world's arrays), for a batch whose
    examples all have its tokens and relations.

    A (W_KQ = Φ A Φ_Rᵀ) starts at 0 and its gradient C has entries only at the (token,
    relation) pairs (y_p, j_p) of the training slots, so A lives on those m pairs (about 2n + 1
    of the K·R): A = Σ_p a_p e_{y_p} e_{j_p}ᵀ. In these coordinates the scores of every slot
    are a·score_map, C = w·grad_map (w: ∂ℓ/∂score of each training slot) and the θ_C, θ_S
    projections of u = W_KQ φ(r_1) are theta_map·a: matrix products shared by the stack in
    place of per-example gathers and scatters, with m instead of K rows. Unchanged (gathers, A
    over all K·R pairs) when the maps would hold more than LAYOUT_ENTRIES entries."""
    gram, gamma = np.asarray(shared.gram), np.asarray(shared.relation_gram)
    tokens, relation = np.asarray(examples.tokens), np.asarray(examples.relation)
    n = examples.group_onehot.shape[0]
    slot_pairs = np.stack([tokens[:n].ravel(), np.repeat(relation[:n], tokens.shape[1])], axis=1)
    active, slot_pair = np.unique(slot_pairs, axis=0, return_inverse=True)
    m = len(active)
    if (tokens.size + slot_pairs.shape[0] + 2) * m > LAYOUT_ENTRIES:
        return shared
    y, j = active[:, 0], active[:, 1]
    score_map = (gram[tokens][:, :, y] * gamma[j][:, relation].T[:, None, :]).reshape(tokens.size, m).T
    grad_map = np.zeros((slot_pairs.shape[0], m), dtype=gram.dtype)
    grad_map[np.arange(slot_pairs.shape[0]), slot_pair.ravel()] = 1.0
    theta_map = np.stack([np.asarray(shared.theta_c)[y], np.asarray(shared.theta_s)[y]]) * gamma[j, 0]
    return shared._replace(active=active.astype(np.int32), score_map=np.ascontiguousarray(score_map),
                           grad_map=grad_map, theta_map=theta_map)


def full_coordinates(shared: Shared, kq: np.ndarray) -> np.ndarray:
    """A as a (K, R) array, from the engine's W_KQ coordinates (active pairs, or (K, R) already)."""
    kq = np.asarray(kq, np.float64)
    if shared.active is None:
        return kq
    out = np.zeros((shared.gram.shape[0], shared.relation_gram.shape[0]))
    out[shared.active[:, 0], shared.active[:, 1]] = kq
    return out


def pack(world: World, dtype: str = "float64", frozen_values: bool = True) -> tuple[Shared, PackedExamples]:
    """(shared, examples) of one world, as `cpi.sims.train.run` trains it: `pack_shared` with the
    world's layout (`with_layout`) and `pack_examples`."""
    examples = pack_examples(world, dtype, frozen_values)
    return with_layout(pack_shared(world, dtype), examples), examples


def same_layout(examples: list[PackedExamples]) -> bool:
    """Whether every packed world has the tokens and relations of the first."""
    first = examples[0]
    return all(np.array_equal(p.tokens, first.tokens) and np.array_equal(p.relation, first.relation)
               for p in examples[1:])


def output_classes(table: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group each example's K output tokens into classes of equal value rows.

    Token y's logit on example i is z_y = Σ_slot σ_slot T[y, t_slot]: tokens whose three values
    T[y, t_1..3] are equal have equal logits for every attention σ, so with W_V frozen the
    softmax over K tokens is exactly a softmax over the distinct rows weighted by their
    multiplicities (the paper's table has about five per example instead of K).

    Returns (values (N, C, 3), multiplicity (N, C), class_of (N, K)), C the most classes of
    any example; the unused classes of a example have multiplicity 0."""
    n, k = tokens.shape[0], table.shape[0]
    rows = np.transpose(table[:, tokens], (1, 0, 2)).reshape(n * k, 3)  # example-major, then token
    example = np.repeat(np.arange(n), k)
    order = np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0], example))
    rows, example = rows[order], example[order]
    new = np.ones(n * k, dtype=bool)
    new[1:] = (example[1:] != example[:-1]) | np.any(rows[1:] != rows[:-1], axis=1)
    global_id = np.cumsum(new) - 1
    first = global_id[np.searchsorted(example, np.arange(n))]
    local = global_id - first[example]
    c = int(local.max()) + 1
    values = np.zeros((n, c, 3), dtype=table.dtype)
    values[example[new], local[new]] = rows[new]
    multiplicity = np.bincount(example * c + local, minlength=n * c).reshape(n, c).astype(np.float64)
    class_of = np.empty((n, k), dtype=np.int32)
    class_of[example, order % k] = local
    return values, multiplicity, class_of


def pad_classes(examples: PackedExamples, size: int) -> PackedExamples:
    """`examples` with its output classes padded to `size` (multiplicity 0), so that the
    examples of several worlds stack."""
    extra = size - examples.class_values.shape[1]
    if extra <= 0:
        return examples
    values = np.concatenate([examples.class_values, np.zeros((examples.class_values.shape[0], extra, 3),
                                                           examples.class_values.dtype)], axis=1)
    log_mult = np.concatenate([examples.class_log_mult, np.full((examples.class_log_mult.shape[0], extra), -np.inf,
                                                              examples.class_log_mult.dtype)], axis=1)
    return examples._replace(class_values=values, class_log_mult=log_mult)


def pack_examples(world: World, dtype: str = "float64", frozen_values: bool = True) -> PackedExamples:
    """The per-world arrays of `world` as host (NumPy) arrays, ready to stack over a sweep;
    with `frozen_values`, also each example's output classes (`output_classes`)."""
    f = np.dtype(dtype)
    sets = (world.train, world.test, world.aligned)
    tokens = np.concatenate([p.tokens for p in sets]).astype(np.int32)
    answer = np.concatenate([p.answer for p in sets]).astype(np.int32)
    test_relation = world.test.tokens[:, 2] - world.relation
    classes = {}
    if frozen_values:
        table = np.asarray(world.value_table, f)
        values, multiplicity, class_of = output_classes(table, tokens)
        n = len(world.train)
        with np.errstate(divide="ignore"):
            log_mult = np.log(multiplicity).astype(f)
        classes = dict(
            class_values=values, class_log_mult=log_mult,
            answer_class=class_of[np.arange(len(tokens)), answer].astype(np.int32),
            fact_class=class_of[n + np.arange(len(world.test)), world.test.fact].astype(np.int32),
        )
    return PackedExamples(
        table=np.asarray(world.value_table, f),
        tokens=tokens,
        key_mask=np.concatenate([p.key_mask for p in sets]).astype(bool),
        answer=answer,
        relation=(tokens[:, 2] - world.relation).astype(np.int32),
        test_fact=world.test.fact.astype(np.int32),
        group_onehot=(world.train.group[:, None] == np.arange(len(TRAINING_GROUPS))[None, :]).astype(f),
        test_relation_onehot=(test_relation[:, None] == np.arange(world.n_relations)[None, :]).astype(f),
        **classes,
    )
