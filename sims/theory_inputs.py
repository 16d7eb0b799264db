"""The bridge from a `Config` to theory's inputs: the `theory.params` records of its knowledge
and of its training points' group counts (after filtering), and the reduced dynamics of the
config. The report that `cpi theory` prints is built on it in `sims.theory_report`."""

from __future__ import annotations

import numpy as np

from theory.groups import GROUPS, theory_indices
from theory.params import GroupCounts, Knowledge
from theory.reduced import group_trajectory
from theory.relations import relation_group_trajectory

from .config import Config
from .world import build_world


def knowledge_of(config: Config) -> Knowledge:
    """The knowledge record of `config` (world sizes and the knowledge section)."""
    w, k = config.world, config.knowledge
    return Knowledge(n_subjects=w.n_subjects, n_answers=w.n_answers, delta_c=k.delta_c, delta_m=k.delta_m,
                     o_c=k.o_c, o_r=k.o_r, delta_s=k.delta_s)


def relation_counts(config: Config) -> np.ndarray:
    """(R, 5) counts of the training points of `config` per relation and theory group,
    read off the built world (so the relation assignment and `mixture.filter` apply)."""
    world = build_world(config)
    train = world.train
    relation = train.tokens[:, 2] - world.relation
    kind = theory_indices(train.group, train.fact)
    counts = np.zeros((world.n_relations, len(GROUPS)), dtype=int)
    np.add.at(counts, (relation, kind), 1)
    return counts


def counts_of(config: Config) -> GroupCounts:
    """The group counts of `config`'s training points over all relations (ints), after filtering."""
    return GroupCounts(*(int(x) for x in relation_counts(config).sum(axis=0)))


def reduced_trajectory(config: Config, steps: int | None = None) -> dict:
    """The exact reduced dynamics of `config` with W_V frozen: metrics at steps 0..steps.

    One relation: the group form (every per-group metric). Several: the relation group
    form, reduced to what the simulator reports for them: `reliance` (mean over the
    relations' equally many test points), `reliance_r<j>`, `attention_context` and
    `aligned_accuracy`."""
    steps = config.train.steps if steps is None else steps
    if config.world.n_relations == 1:
        return group_trajectory(knowledge_of(config), counts_of(config), lr=config.train.lr, steps=steps)
    per_relation = relation_group_trajectory(
        knowledge_of(config), relation_counts(config), n_relations=config.world.n_relations,
        relation_overlap=config.world.relation_overlap, lr=config.train.lr, steps=steps,
    )
    n_aligned = config.mixture.n_aligned
    aligned_weights = np.bincount(np.arange(n_aligned) % config.world.n_relations,
                                  minlength=config.world.n_relations) / max(n_aligned, 1)
    out = {
        "reliance": np.mean(per_relation["reliance"], axis=0),
        "attention_context": np.mean(per_relation["attention_context"], axis=0),
        # aligned points are dealt round-robin over the relations
        "aligned_accuracy": aligned_weights @ np.asarray(per_relation["aligned_accuracy"]),
    }
    for j, reliance in enumerate(per_relation["reliance"]):
        out[f"reliance_r{j + 1}"] = reliance
    return out
