"""Random embeddings: `world.embeddings = "random"`, `world.dim`.

Every number is checked against an independent computation: the fast engine against the
exact per-example reduced dynamics and the generic d×d model; the achieved value table against
a projector built from Φ's SVD; dim → ∞ against the paper's embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from cpi.cli import execute as main
from cpi.sims import chunks, generic
from cpi.sims import config as cfg
from cpi.sims.precision import precision
from cpi.sims.theory_inputs import initial_direction, example_trajectory, reduced_trajectory
from cpi.sims.theory_report import theory_report
from cpi.sims.train import run
from cpi.sims.world import build_world
from cpi.theory.closed_forms import paper_quantities
from cpi.theory.embeddings import token_gram
from cpi.sims.theory_inputs import knowledge_of

RANDOM = ['world.embeddings="random"']
RICH = ["world.n_subjects=60", "world.n_answers=100", "world.n_relations=2", "world.relation_overlap=0.3",
        "mixture.counterfactual=0.1", "mixture.fact_recall=0.2", "mixture.fact_recall_seen=0.5"]


def load(*sets):
    return cfg.load(overrides=[*RANDOM, *sets])


@pytest.mark.parametrize("sets", [
    ["world.dim=300"],  # dim ≥ K: the table is exact
    ["world.dim=40"],  # dim < K: least squares
    ["world.dim=200", *RICH],  # CF and S examples, two overlapping relations
    ["world.dim=80", "mixture.filter=0.3", "train.lr=3", "train.steps=150"],
])
def test_runs_equal_the_exact_per_point_reduced_dynamics(sets):
    config = load(*sets)
    result = run(config)
    theory = example_trajectory(config)
    compared = [k for k in ("reliance", "attention_context", "aligned_accuracy", "loss")
                + tuple(f"reliance_r{j}" for j in (1, 2)) if k in result.metrics]
    assert len(compared) >= 4
    for key in compared:
        np.testing.assert_allclose(result.metrics[key], theory[key], rtol=0, atol=1e-10, err_msg=key)


def test_the_engine_equals_the_generic_model_on_random_embeddings():
    """W_V = Φ C Φᵀ in d×d coordinates gives the engine's table, also in least squares."""
    for dim in (40, 200):
        config = load(f"world.dim={dim}", "train.steps=30")
        world = build_world(config)
        with precision("float64"):
            values, _ = generic.simulate(generic.pack(world), 1.0, 0.0, 30, train_values=False)
        ours = run(config).metrics
        for key in ("reliance", "attention_context", "aligned_accuracy", "loss"):
            np.testing.assert_allclose(ours[key], np.asarray(values[key]), rtol=0, atol=1e-10, err_msg=key)


def test_the_value_table_is_exact_when_dim_covers_the_vocabulary():
    config = load("world.dim=400")
    world = build_world(config)
    paper = build_world(cfg.load())  # the same token draw, the paper's Lemma 3 table V
    phi = world.embed
    achieved = phi.T @ world.w_v @ phi
    assert np.max(np.abs(achieved - paper.value_table)) < 1e-9
    assert world.value_table_error < 1e-9
    np.testing.assert_array_equal(world.value_table, paper.value_table)


def test_below_the_vocabulary_the_table_is_the_least_squares_one_and_its_error_reported(tmp_path):
    config = load("world.dim=50")
    world = build_world(config)
    v = build_world(cfg.load()).value_table
    phi = world.embed
    # Φᵀ W Φ ranges over P M P with P the projector on Φ's row space; the closest to V is P V P.
    _, s, vt = np.linalg.svd(phi, full_matrices=False)
    rows = vt[s > 1e-10 * s[0]]
    assert len(rows) == 50
    projector = rows.T @ rows
    best = projector @ v @ projector
    achieved = phi.T @ world.w_v @ phi
    assert np.max(np.abs(achieved - best)) < 1e-8
    np.testing.assert_allclose(world.value_table, achieved, rtol=0, atol=1e-8)
    error = np.max(np.abs(achieved - v))
    assert error > 0.1  # 121 tokens in R^50: far from exact
    assert abs(world.value_table_error - error) < 1e-8
    out = tmp_path / "r"
    assert main(["run", *sum((["--set", s] for s in [*RANDOM, "world.dim=50", "train.steps=5"]), []),
                 "--out", str(out)]) == 0
    import json
    assert abs(json.loads((out / "summary.json").read_text())["value_table_error"] - error) < 1e-8


def test_large_dim_approaches_the_paper():
    """Distinct directions overlap by N(0, 1/dim): the token Gram is within 6/√dim of the
    paper's (the largest of ~7 000 such entries is about 4 standard deviations), and M_C over
    the default run within 0.05 at dim 4000 (measured 0.010, 0.012, 0.028 for seeds 0-2:
    the n = 20 points' overlaps add up to about 2/√dim)."""
    dim = 4000
    paper = reduced_trajectory(cfg.load())["reliance"]
    gram = token_gram(40, 80)
    for seed in range(3):
        config = load(f"world.dim={dim}", f"train.seed={seed}")
        world = build_world(config)
        assert np.max(np.abs(world.embed.T @ world.embed - gram)) < 6 / np.sqrt(dim)
        reliance = run(config).metrics["reliance"]
        assert np.max(np.abs(reliance - paper)) < 0.05


def test_bad_values_exit_2_and_write_nothing(tmp_path, capsys):
    for sets, words in [
        (['world.embeddings="orthogonal"'], ["world.embeddings", "'paper', 'random'"]),
        ([*RANDOM, "world.dim=1"], ["world.dim = 1", ">= 2"]),
        (["world.dim=50"], ["world.dim = 50", "world.embeddings = 'random'"]),
        ([*RANDOM, "world.dim=-3"], ["world.dim", ">= 0"]),
        ([*RANDOM, "world.n_subjects=5"], ["world.n_subjects = 5 is too small"]),
    ]:
        out = tmp_path / "x"
        assert main(["run", *sum((["--set", s] for s in sets), []), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        for word in words:
            assert word in err, (sets, err)
        assert not out.exists()


def test_reruns_are_byte_identical_and_the_seed_matters(tmp_path):
    def once(name, seed):
        out = tmp_path / name
        assert main(["run", "--set", RANDOM[0], "--set", "world.dim=60", "--set", f"train.seed={seed}",
                     "--set", "train.steps=20", "--out", str(out)]) == 0
        return (out / "metrics.npz").read_bytes(), (out / "summary.json").read_bytes()

    first, again, other = once("a", 3), once("b", 3), once("c", 4)
    assert first == again
    assert first[0] != other[0]
    assert cfg.seeds_matter(load()) and not cfg.seeds_matter(cfg.load())


def test_a_sweep_over_seeds_uses_each_seeds_embeddings():
    configs = [load("world.dim=60", f"train.seed={s}", "train.steps=20") for s in (0, 1)]
    out = chunks.full_chunk(configs, 2, 1, True)
    for i, config in enumerate(configs):
        np.testing.assert_allclose(out["reliance"][i], run(config).metrics["reliance"], rtol=0, atol=1e-12)


def test_the_reduced_engine_refuses_random_embeddings():
    problem = chunks.reduced_engine_problem(load())
    assert problem and "world.embeddings = 'random'" in problem and "symmetric" in problem


def test_the_per_point_form_of_the_paper_world_is_the_group_form():
    """The bridge (keys, relation factor, readout) against the independent group recursion,
    and the world's own margins and ρ* against the paper's closed forms."""
    config = cfg.load()
    ours, group = example_trajectory(config), reduced_trajectory(config)
    for key in ("reliance", "attention_context", "aligned_accuracy"):
        np.testing.assert_allclose(ours[key], group[key], rtol=0, atol=1e-12)
    start, q = initial_direction(config), paper_quantities(knowledge_of(config))
    assert abs(start["m_C"] - q["m_C"]) < 1e-12 and abs(start["m_CS"] - q["m_CS"]) < 1e-12
    assert abs(start["rho_star"] - q["rho_star"]) < 1e-12
    assert start["initial_direction"] == "rise"


def test_the_initial_direction_is_the_sign_of_the_first_step():
    """ρ* from the world's own pushes: just above it the test gap rises on the first step,
    just below it falls (small lr, so the first step is the initial drift)."""
    world = ["world.dim=300", "mixture.n_train=40", "world.n_subjects=60", "world.n_answers=90",
             "train.lr=0.01", "train.steps=1"]
    base = load(*world)
    rho = initial_direction(base)["rho_star"]
    assert 0.1 < rho < 0.5
    for shift, direction in ((0.1, "rise"), (-0.1, "fall")):
        config = load(*world, f"mixture.context_critical={round(rho + shift, 2)}")
        start = initial_direction(config)
        assert start["initial_direction"] == direction
        gap = example_trajectory(config)["attention_context"]
        assert (gap[1] > gap[0]) == (direction == "rise")


def test_cpi_theory_is_exact_for_random_embeddings_and_says_when_nothing_is(capsys):
    config = load("world.dim=90")
    report = theory_report(config)
    result = run(config)
    assert report["exact"] and report["embeddings"] == "random" and report["dim"] == 90
    assert abs(report["final_reliance"] - result.summary["final_reliance"]) < 1e-10
    assert abs(report["peak_reliance"] - result.summary["peak_reliance"]) < 1e-10
    assert report["peak_step"] == result.summary["peak_step"]
    assert abs(report["value_table_error"] - result.summary["value_table_error"]) < 1e-15
    assert main(["theory", "--set", RANDOM[0], "--set", "train.optimizer='adam'", "--set", "train.lr=0.05"]) == 0
    text = capsys.readouterr().out
    assert "no exact prediction for this config: train.optimizer = 'adam'" in text
    assert "nearest exact prediction (full-batch gd" in text
    assert main(["theory", "--set", "train.value_lr=0.1"]) == 0
    assert "train.value_lr = 0.1: W_V trains" in capsys.readouterr().out
