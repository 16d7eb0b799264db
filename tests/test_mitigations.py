"""Mitigations and tasks in the full simulator, each against theory or a control run; and a
filter (`mixture.filter`) that leaves no training examples, refused before any work."""

from __future__ import annotations

import numpy as np
import pytest

from cpi.cli import execute as main
from cpi.sims.config import load, training_examples_after_filter, with_values
from cpi.sims.theory_inputs import reduced_trajectory, relation_counts
from cpi.sims.train import run
from cpi.sims.world import build_world
from cpi.theory.groups import GROUPS, training_index
from cpi.theory.mitigations import filtered_counts

TWO_TASKS = {"world.n_relations": 2, "world.n_subjects": 60, "world.n_answers": 120,
             "mixture.context_critical": 0.3}


def test_filtering_all_context_aligned_points_removes_the_drop():
    config = with_values(load(), {"mixture.filter": 0.5})  # 10 of 20 context points: the CS ones
    counts = dict(zip(GROUPS, relation_counts(config).sum(axis=0)))
    assert counts["CS"] == 0 and counts["C"] == 10
    reliance = run(config).metrics["reliance"]
    assert np.all(np.diff(reliance) >= -1e-12) and reliance[-1] > 0.9
    baseline = run(load()).metrics["reliance"]
    assert baseline[-1] < baseline.max() - 0.3  # the unfiltered run has the drop


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.8])
def test_simulator_filter_drops_what_theory_predicts(fraction):
    config = with_values(load(), {"mixture.filter": fraction, "mixture.counterfactual": 0.2,
                                  "mixture.context_critical": 0.4})
    unfiltered = relation_counts(with_values(config, {"mixture.filter": 0.0}))
    np.testing.assert_array_equal(relation_counts(config).sum(axis=0),
                                  filtered_counts(unfiltered.sum(axis=0), fraction))


def test_counterfactual_augmentation_transfers_only_through_relation_overlap():
    finals = {}
    for overlap in [0.0, 0.3]:
        base = with_values(load(), {**TWO_TASKS, "world.relation_overlap": overlap})
        augmented = with_values(base, {"mixture.counterfactual": 0.3, "mixture.counterfactual_relation": 1})
        a, b = run(augmented).metrics, run(base).metrics
        assert a["reliance_r1"][-1] > b["reliance_r1"][-1] + 0.5  # the augmented task gains
        finals[overlap] = np.abs(a["reliance_r2"] - b["reliance_r2"]).max()
    assert finals[0.0] < 1e-10  # orthogonal relations: task 2 is untouched
    assert finals[0.3] > 1e-2  # shared direction: augmentation transfers


@pytest.mark.parametrize("overrides", [
    {**TWO_TASKS, "world.relation_overlap": 0.3, "mixture.counterfactual": 0.2,
     "mixture.fact_recall": 0.2, "mixture.fact_recall_seen": 0.5, "train.steps": 150},
    {**TWO_TASKS, "world.n_relations": 3, "world.relation_overlap": 0.5, "mixture.counterfactual": 0.2,
     "mixture.counterfactual_relation": 2, "train.steps": 150},
    {"mixture.filter": 0.25, "mixture.counterfactual": 0.1, "train.steps": 300},
])
def test_reduced_dynamics_equal_the_full_model_with_relations_and_filtering(overrides):
    config = with_values(load(), overrides)
    simulated, reduced = run(config).metrics, reduced_trajectory(config)
    keys = [k for k in simulated if k.startswith("reliance") or k in ("attention_context", "aligned_accuracy")]
    assert len(keys) >= 3
    for key in keys:
        np.testing.assert_allclose(reduced[key], simulated[key], atol=1e-10, rtol=0, err_msg=key)


def test_proposition_3_one_value_step_makes_subjects_of_c_points_predictive():
    config = with_values(load(), {"train.value_lr": 1.0, "train.steps": 1})
    world = build_world(config)
    result = run(config)
    phi = world.embed

    def prob(w_v, subject, answer):
        z = phi.T @ w_v @ phi[:, subject]
        p = np.exp(z - z.max())
        return (p / p.sum())[answer]

    c_examples = world.train.group == training_index("C")
    assert c_examples.sum() == 10
    for (c, s, _), answer in zip(world.train.tokens[c_examples], world.train.answer[c_examples]):
        assert prob(result.params["v"], s, answer) > prob(world.w_v, s, answer) + 1e-6


def test_mitigation_knobs_sweep_like_run(tmp_path):
    from cpi.sims.sweep import run_sweep

    base = with_values(load(), {**TWO_TASKS, "world.relation_overlap": 0.2, "mixture.counterfactual": 0.2,
                                "mixture.counterfactual_relation": 1, "train.steps": 60})
    result = run_sweep(base, ["mixture.filter=0,0.25", "world.relation_overlap=0,0.2"], out=tmp_path)
    assert result.n_buckets == 2  # filtering changes the number of training examples
    for i, config in enumerate(result.configs):
        expected = run(config).metrics
        for key in ["reliance", "reliance_r1", "reliance_r2"]:
            np.testing.assert_allclose(result.metrics[key][i], expected[key], atol=1e-12, err_msg=key)


# ---------------------------------------------------------------------------- a filter that leaves nothing

FAST = ["--set", "train.steps=10"]


@pytest.mark.parametrize("value", ["1", "0.999"])
@pytest.mark.parametrize("command", [["run"], ["theory"], ["sweep", "--grid", "train.lr=1"]])
def test_a_filter_that_leaves_no_training_points_is_bad_input(tmp_path, capsys, no_training, command, value):
    out = tmp_path / "out"
    extra = [] if command == ["theory"] else ["--out", str(out)]
    assert main([*command, "--set", f"mixture.filter={value}", *extra]) == 2
    err = capsys.readouterr().err
    assert "the filter leaves no training examples" in err and f"mixture.filter = {value}" in err
    assert "mixture.filter < 0.975" in err
    assert not out.exists()


def test_a_sweep_point_that_filters_everything_is_refused_before_any_work(tmp_path, capsys, no_training):
    out = tmp_path / "out"
    assert main(["sweep", *FAST, "--grid", "mixture.filter=0,0.5,1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "grid point mixture.filter=1.0" in err and "the filter leaves no training examples" in err
    assert not out.exists()


def test_subject_only_points_survive_a_full_filter():
    config = load(overrides=["mixture.filter=1", "mixture.fact_recall=0.2"])
    assert training_examples_after_filter(config.mixture) == 4


def test_the_run_header_counts_the_points_left_after_filtering(tmp_path, capsys):
    assert main(["run", *FAST, "--set", "mixture.filter=0.25", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "cpi run: 15 training examples after filtering 20 (10 C, 5 CS)" in out
