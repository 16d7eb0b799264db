"""The data groups, named once for theory, the simulator and the experiments.

A training example belongs to one of four groups (`TRAINING_GROUPS`, the order of
`cpi.sims.world.Examples.group`): C (context-critical: context, no memorised fact), CS
(context + subject: the context agrees with the memorised fact), CF (counterfactual: the
context contradicts it) and S (subject only: no context token). Theory splits S by whether
the subject's fact was memorised, S_seen and S_unseen (`GROUPS`, the order of every count
array and per-group axis in `cpi.theory`). Each name is also the suffix of its metrics
(`loss_CS`, `attention_context_CF`, `neg_grad_theta_c_S`, ...).
"""

from __future__ import annotations

import numpy as np

GROUPS = ("C", "CS", "CF", "S_seen", "S_unseen")
"""Theory's groups, in the order of every count array (…, 5) in `cpi.theory`."""

TRAINING_GROUPS = ("C", "CS", "CF", "S")
"""The simulator's training groups, in the order of `Examples.group`."""

TRAINING_GROUP_OF = {"C": "C", "CS": "CS", "CF": "CF", "S_seen": "S", "S_unseen": "S"}
"""The training group of each of theory's groups."""

CONTEXT_GROUPS = ("C", "CS", "CF")
"""The groups whose examples carry a context token (the others are subject-only)."""

CONTEXT_MASK = np.array([g in CONTEXT_GROUPS for g in GROUPS])
"""(5,) bool: which of theory's groups carry a context, in GROUPS order."""

CONTEXT_INDICES = tuple(GROUPS.index(g) for g in CONTEXT_GROUPS)
"""Indices into GROUPS of the context groups."""

INDEX = {g: i for i, g in enumerate(GROUPS)}
"""The index of each of theory's groups in GROUPS."""

S_SEEN, S_UNSEEN = INDEX["S_seen"], INDEX["S_unseen"]


def has_context(name: str) -> bool:
    """Whether the examples of group `name` (theory's or a training group) carry a context."""
    if name not in GROUPS and name not in TRAINING_GROUPS:
        raise ValueError(f"unknown group {name!r}; groups are {GROUPS + TRAINING_GROUPS[-1:]}")
    return name in CONTEXT_GROUPS


def training_index(name: str) -> int:
    """The index of training group `name` in `Examples.group`."""
    return TRAINING_GROUPS.index(name)


def training_counts(counts) -> np.ndarray:
    """Counts (…, 5) per theory group summed into the training groups, (…, 4)."""
    counts = np.asarray(counts)
    return np.stack([sum(counts[..., i] for i, g in enumerate(GROUPS) if TRAINING_GROUP_OF[g] == t)
                     for t in TRAINING_GROUPS], axis=-1)


def theory_indices(training_group, fact) -> np.ndarray:
    """Theory's group (index into GROUPS) of training examples, from their training group
    (index into TRAINING_GROUPS) and memorised fact (−1: none): S splits into S_seen and
    S_unseen, the context groups keep their names."""
    training_group, fact = np.asarray(training_group), np.asarray(fact)
    same_name = np.array([GROUPS.index(g) if g in GROUPS else S_SEEN for g in TRAINING_GROUPS])
    unseen = (training_group == training_index("S")) & (fact < 0)
    return np.where(unseen, S_UNSEEN, same_name[training_group])
