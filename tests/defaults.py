"""The paper's parameters for the tests, taken from the one place that defines them
(`cpi.theory.params`): import these instead of spelling the numbers out again."""

from cpi.theory.params import PAPER_COUNTS, PAPER_KNOWLEDGE, GroupCounts, Knowledge

KNOWLEDGE = PAPER_KNOWLEDGE
"""Knowledge(n_subjects=40, n_answers=80, delta_c=0.2, delta_m=0.6, o_c=1.0, o_r=0.5, delta_s=0.9)."""
COUNTS = PAPER_COUNTS
"""GroupCounts(n_c=10, n_cs=10): the default mixture, 20 points at ρ = 1/2."""

__all__ = ["KNOWLEDGE", "COUNTS", "GroupCounts", "Knowledge"]
