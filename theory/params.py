"""The parameters of the theory, named: what the pretrained model knows (`Knowledge`) and how
many training examples each group has (`GroupCounts`), with the paper's defaults in one place.

Every field may be a number or a NumPy array; the theory functions broadcast them together
(e.g. `GroupCounts(n_c=np.arange(21), n_cs=20 - np.arange(21))` is 21 mixtures at once).
Vary one field with `.replace(field=value)`. `cpi.sims.theory_inputs` builds both records from a
`Config`; `cpi.sims.config`'s defaults are read from here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .groups import GROUPS

__all__ = ["Knowledge", "GroupCounts", "PAPER_KNOWLEDGE", "PAPER_COUNTS"]


def _replace_fields(self, **changes):
    """A copy of the record with the named fields replaced (`record.replace(delta_m=0.7)`)."""
    return self._replace(**changes)


class Knowledge(NamedTuple):
    """The pretrained model's knowledge (Lemma 3, Assumptions 5-6).

    n_subjects K_S and n_answers K_A (vocabulary sizes), delta_c δ_C (probability a context
    token's value gives to itself), delta_m δ_M (a memorised subject's value to its fact),
    o_c and o_r (value logits of the other answers and of the relation), delta_s δ_S (the
    memorised strength of the subjects of seen fact-recall examples S_seen)."""

    n_subjects: Any = 40
    n_answers: Any = 80
    delta_c: Any = 0.2
    delta_m: Any = 0.6
    o_c: Any = 1.0
    o_r: Any = 0.5
    delta_s: Any = 0.9

    replace = _replace_fields


class GroupCounts(NamedTuple):
    """Training examples per group of `cpi.theory.groups.GROUPS`: C (context only), CS (context and
    an agreeing memorised fact), CF (counterfactual context), S_seen and S_unseen
    (subject-only examples whose subject is, or is not, memorised)."""

    n_c: Any = 0
    n_cs: Any = 0
    n_cf: Any = 0
    n_s_seen: Any = 0
    n_s_unseen: Any = 0

    replace = _replace_fields

    @classmethod
    def default(cls) -> GroupCounts:
        """The paper's default mixture: 20 examples, ρ = 1/2 (10 C, 10 CS), as `cpi run`'s
        default config."""
        return PAPER_COUNTS

    @classmethod
    def from_array(cls, counts) -> GroupCounts:
        """From an array (…, 5) in GROUPS order (each field then has shape …)."""
        counts = np.asarray(counts)
        if counts.shape[-1:] != (len(GROUPS),):
            raise ValueError(f"counts must have shape (..., {len(GROUPS)}) in GROUPS order {GROUPS}")
        return cls(*np.moveaxis(counts, -1, 0))

    def array(self) -> np.ndarray:
        """The counts as a float64 array (…, 5) in GROUPS order, broadcast over the fields."""
        return np.stack(np.broadcast_arrays(*[np.asarray(c, dtype=np.float64) for c in self]), axis=-1)

    @property
    def total(self):
        """n, the number of training examples."""
        return self.array().sum(axis=-1)


PAPER_KNOWLEDGE = Knowledge()
"""The paper's knowledge configuration (the defaults of `Knowledge`)."""
PAPER_COUNTS = GroupCounts(n_c=10, n_cs=10)
"""The paper's default mixture (`GroupCounts.default()`)."""
