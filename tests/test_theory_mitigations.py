"""Mitigations in the reduced dynamics: filtering by no-context loss and counterfactual
augmentation."""

import numpy as np
import pytest
from scipy.special import logsumexp

from tests.defaults import KNOWLEDGE, GroupCounts
from cpi.theory.asymptotics import classify_regime
from cpi.theory.mitigations import (
    context_order,
    counterfactual_needed,
    filtered_counts,
    no_context_loss,
)
from cpi.theory.reduced import group_flow, group_trajectory, paper_examples
from cpi.theory.relations import relation_examples
from cpi.theory.summary import reliance_drop


@pytest.mark.parametrize("n_rel", [1, 2])
def test_no_context_loss_matches_full_table(n_rel):
    """ℓ_nc = −log softmax(½v(s) + ½v(r))_a read off the full K×K table, one point per group."""
    if n_rel == 1:
        pts = paper_examples(KNOWLEDGE.replace(delta_s=0.85), GroupCounts(1, 1, 1, 1, 1))
        relation_token = np.full(5, pts["table"].shape[0] - 1)
    else:
        pts = relation_examples(KNOWLEDGE.replace(delta_s=0.85), np.array([[1, 1, 1, 0, 0], [0, 0, 0, 1, 1]]), 0.3)
        relation_token = KNOWLEDGE.n_subjects + KNOWLEDGE.n_answers + pts["relation"]
    table = pts["table"]
    subject = np.where(np.arange(5) < 3, pts["keys"][:, 1], pts["keys"][:, 0])
    z = 0.5 * table[:, subject] + 0.5 * table[:, relation_token]  # (K, 5)
    full = logsumexp(z, axis=0) - z[pts["answers"], np.arange(5)]
    loss = no_context_loss(KNOWLEDGE.replace(delta_s=0.85), n_relations=n_rel)
    np.testing.assert_allclose(loss, full, atol=1e-12)
    # CS first (its subject predicts the answer), then C (= unseen S), then CF
    assert loss[1] < loss[0] < loss[2]
    assert loss[0] == pytest.approx(loss[4], abs=1e-15)
    assert context_order(loss) == context_order() == (1, 0, 2)


def test_filtered_counts():
    assert filtered_counts([10, 10, 0, 0, 0], 0.5).tolist() == [10, 0, 0, 0, 0]
    assert filtered_counts([10, 10, 0, 0, 0], 0.25).tolist() == [10, 5, 0, 0, 0]
    assert filtered_counts([10, 10, 0, 0, 0], 0.75).tolist() == [5, 0, 0, 0, 0]
    # S examples are never dropped and do not count; CF examples go last
    assert filtered_counts([4, 2, 4, 6, 3], 0.9).tolist() == [0, 0, 1, 6, 3]
    # round half to even, as sims' group counts: 0.25 × 10 = 2.5 → 2
    assert filtered_counts([6, 1, 3, 0, 0], 0.25).tolist() == [5, 0, 3, 0, 0]
    assert filtered_counts([6, 1, 3, 0, 0], 0.75).tolist() == [0, 0, 2, 0, 0]  # 7.5 → 8
    # leading axes are independent data sets
    stacked = filtered_counts(np.array([[10, 10, 0, 0, 0], [2, 8, 4, 1, 0]]), 0.5)
    assert stacked.tolist() == [[10, 0, 0, 0, 0], [2, 1, 4, 1, 0]]
    # another loss order is followed
    assert filtered_counts([3, 3, 3, 0, 0], 0.5, [1.0, 3.0, 2.0, 0.0, 0.0]).tolist() == [0, 3, 2, 0, 0]  # 4.5 → 4
    with pytest.raises(ValueError):
        filtered_counts([1, 1, 0, 0, 0], 1.5)


def test_filtering_all_context_and_subject_points_removes_the_drop():
    """ρ = ½: dropping half of the context points by lowest no-context loss drops exactly the
    CS examples; the reduced trajectory then rises monotonically (the unfiltered one inverts)."""
    counts = np.array([10, 10, 0, 0, 0])
    loss = no_context_loss(KNOWLEDGE)
    kept = filtered_counts(counts, 0.5, loss)
    assert kept.tolist() == [10, 0, 0, 0, 0]
    before = group_trajectory(KNOWLEDGE, GroupCounts(*counts), steps=300)["reliance"]
    after = group_trajectory(KNOWLEDGE, GroupCounts(*kept), steps=300)["reliance"]
    assert reliance_drop(before) > 0.3
    assert np.all(np.diff(after) >= 0) and after[-1] > after[0] + 0.5
    assert classify_regime(KNOWLEDGE, GroupCounts(*kept)) == "monotone rise"
    # the paper's 25 % leaves 5 CS examples: still an inversion, with a smaller drop
    quarter = filtered_counts(counts, 0.25, loss)
    r = group_trajectory(KNOWLEDGE, GroupCounts(*quarter), steps=300)["reliance"]
    assert 0 < reliance_drop(r) < reliance_drop(before)


def test_counterfactual_needed_discrete_and_flow():
    """The returned k removes the drop within the horizon and k − 1 does not (checked on
    independent runs); in the flow more CF examples postpone the peak rather than remove it."""
    out = counterfactual_needed(KNOWLEDGE, 0.5, 20, criterion="discrete", lr=1.0, steps=300, max_cf=40)
    k = out["n_cf"]
    assert out["base_has_drop"] and out["counts"] == (10, 10, k) and out["fraction"] == k / (20 + k)
    runs = group_trajectory(KNOWLEDGE, GroupCounts(10, 10, np.array([k - 1, k])), steps=300)["reliance"]
    assert reliance_drop(runs[0]) > 1e-9 and reliance_drop(runs[1]) <= 1e-9
    rep = counterfactual_needed(KNOWLEDGE, 0.5, 20, mode="replace", criterion="discrete")
    assert rep["counts"] == (10, 10 - rep["n_cf"], rep["n_cf"]) and 0 < rep["n_cf"] < k
    # flow up to t = 1e4
    flow = counterfactual_needed(KNOWLEDGE, 0.5, 20, criterion="flow", t_max=1e4, n_grid=500)
    kf = flow["n_cf"]
    assert kf > k
    times = np.concatenate([[0.0], np.geomspace(1e-3, 1e4, 500)])
    for kk, dropped in ((kf - 1, True), (kf, False)):
        r = group_flow(KNOWLEDGE, GroupCounts(10, 10, kk), times=times)["reliance"]
        assert (reliance_drop(r) > 1e-9) == dropped
    # ... but the drop is only postponed: the peak of M_C moves later with every CF example
    times = np.concatenate([[0.0], np.geomspace(1e-3, 1e7, 300)])
    base, late = (group_flow(KNOWLEDGE, GroupCounts(10, 10, kk), times=times)["reliance"] for kk in (0, kf))
    assert times[np.argmax(late)] > 100 * times[np.argmax(base)]
    assert reliance_drop(late) > 1e-3
