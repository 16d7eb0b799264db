"""The parameter records of `cpi.theory.params`: one set of defaults, named fields that broadcast,
and the one bridge from a `Config` (`cpi.sims.theory_inputs`)."""

import dataclasses

import numpy as np
import pytest

from cpi.sims.config import Config, with_values
from cpi.sims.theory_inputs import counts_of, knowledge_of
from tests.defaults import COUNTS, KNOWLEDGE
from cpi.theory.closed_forms import lemma4_margins, paper_quantities
from cpi.theory.params import GroupCounts, Knowledge
from cpi.theory.reduced import group_trajectory


def test_config_defaults_are_the_paper_records():
    config = Config()
    assert knowledge_of(config) == Knowledge() == KNOWLEDGE
    assert counts_of(config) == GroupCounts.default() == COUNTS == GroupCounts(10, 10, 0, 0, 0)
    # sims reads its defaults from theory.params: the dataclass defaults are the records' fields
    # (except knowledge.pretraining, how W_V is made: the theory's records describe the constructed one)
    fields = {f.name: f.default for f in dataclasses.fields(type(config.knowledge)) if f.name != "pretraining"}
    assert fields == {name: getattr(KNOWLEDGE, name) for name in fields}


def test_bridge_reads_every_field_of_a_config():
    config = with_values(Config(), {"world.n_subjects": 45, "world.n_answers": 60, "knowledge.delta_c": 0.15,
                                    "knowledge.delta_m": 0.7, "knowledge.o_c": 2.0, "knowledge.o_r": 0.25,
                                    "knowledge.delta_s": 0.8, "mixture.context_critical": 0.3,
                                    "mixture.counterfactual": 0.2, "mixture.fact_recall": 0.1})
    assert knowledge_of(config) == Knowledge(45, 60, 0.15, 0.7, 2.0, 0.25, 0.8)
    assert counts_of(config) == GroupCounts(n_c=6, n_cs=8, n_cf=4, n_s_seen=2, n_s_unseen=0)


def test_replace_varies_one_field():
    k = KNOWLEDGE.replace(delta_s=0.85)
    assert k.delta_s == 0.85 and k[:6] == KNOWLEDGE[:6]
    assert COUNTS.replace(n_cf=3) == GroupCounts(10, 10, 3)
    with pytest.raises(ValueError):
        KNOWLEDGE.replace(delta_q=0.1)


def test_delta_s_is_part_of_the_knowledge():
    """The seen-S margin moves with the record's δ_S (no separate delta_s=0.9 argument)."""
    assert lemma4_margins(KNOWLEDGE.replace(delta_s=0.8))["m_S"] < lemma4_margins(KNOWLEDGE)["m_S"]
    assert paper_quantities()["m_C"] == paper_quantities(KNOWLEDGE)["m_C"]


def test_counts_array_and_total_broadcast():
    counts = GroupCounts(n_c=np.arange(3), n_cs=10)
    np.testing.assert_array_equal(counts.array(), [[0, 10, 0, 0, 0], [1, 10, 0, 0, 0], [2, 10, 0, 0, 0]])
    np.testing.assert_array_equal(counts.total, [10, 11, 12])
    assert GroupCounts.from_array(counts.array()).array().tolist() == counts.array().tolist()
    with pytest.raises(ValueError, match="GROUPS order"):
        GroupCounts.from_array(np.zeros((2, 4)))


def test_record_fields_broadcast_through_the_dynamics():
    """A Knowledge field and a count field given as arrays broadcast together: one call over a
    grid equals the calls at each point."""
    delta_m = np.array([[0.5], [0.7]])
    n_c = np.array([8, 12])
    stacked = group_trajectory(KNOWLEDGE.replace(delta_m=delta_m), GroupCounts(n_c, 20 - n_c), steps=5)["reliance"]
    assert stacked.shape == (2, 2, 6)
    for i, dm in enumerate(delta_m[:, 0]):
        for j, c in enumerate(n_c):
            single = group_trajectory(KNOWLEDGE.replace(delta_m=dm), GroupCounts(c, 20 - c), steps=5)["reliance"]
            np.testing.assert_allclose(stacked[i, j], single, rtol=0, atol=1e-15)


def test_positional_numbers_are_refused():
    """The old call shape (six knowledge numbers, then counts) no longer runs silently."""
    with pytest.raises((TypeError, AttributeError, ValueError)):
        group_trajectory(40, 80, 0.2, 0.6, 1.0, 0.5, 10, 10)
