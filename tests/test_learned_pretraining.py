"""Learned pretraining (knowledge.pretraining = "learned", `cpi.sims.pretraining`): the learned W_V
against a d×d NumPy gradient descent on the same corpus, the achieved strengths against a
direct NumPy computation, their monotone response to the corpus knobs, reuse of one pretraining
across a sweep over the mixture, byte-identical reruns, cpi theory = cpi run, and bad values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cpi.cli import main
from cpi.sims import pretraining
from cpi.sims.config import load, with_values
from cpi.sims.train import run
from cpi.sims.world import build_world

SMALL = [
    "knowledge.pretraining=learned", "world.n_subjects=10", "world.n_answers=12", "mixture.n_train=4",
    "mixture.n_test=2", "mixture.n_aligned=1", "pretrain.memorised=0.6", "train.steps=20",
]
"""A small learned world: 6 memorised subjects (2 CS, 2 test, 1 aligned used), 4 with no fact
(2 C used); 6 facts and 6 other answer tokens (2 C and 2 test contexts used)."""


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test pretrains into its own cache directory, with nothing kept in memory."""
    monkeypatch.setenv("CPI_PRETRAIN_CACHE_DIR", str(tmp_path / "pretrained"))
    monkeypatch.delenv("CPI_PRETRAIN_CACHE", raising=False)
    pretraining.forget()
    yield
    pretraining.forget()


@pytest.fixture
def pretrainings(monkeypatch) -> list:
    """One entry per learned pretraining computed in the test (not reused from memory or a
    file): calls of `pretraining.descent`."""
    calls = []
    descent = pretraining.descent

    def counting(*args, **kwargs):
        calls.append(args)
        return descent(*args, **kwargs)

    monkeypatch.setattr(pretraining, "descent", counting)
    return calls


def numpy_descent(config, phi: np.ndarray) -> np.ndarray:
    """W_V (d × d) after pretrain.steps steps of full-batch GD from W_V = 0 on the corpus as
    the docstring of sims.pretraining defines it, written out in d×d form: fact examples
    ([s, r_{k mod R}] -> a, fact_repeats times), context-copy examples ([c, s'] -> c for every
    answer c in the knowledge base's order, context_repeats times, s' cycling over the subjects
    with no fact); attention ½ on each key, z = Φᵀ W_V h, h = ½φ(x1) + ½φ(x2)."""
    kb = pretraining.knowledge_base(config)
    p, w = config.pretrain, config.world
    first_relation = w.n_subjects + w.n_answers
    rows = []
    for k in range(p.fact_repeats):
        rows += [(s, first_relation + k % w.n_relations, a) for s, a in zip(kb.memorised, kb.facts)]
    i = 0
    for _ in range(p.context_repeats):
        for c in kb.answers:
            rows.append((c, kb.free_subjects[i % len(kb.free_subjects)], c))
            i += 1
    rows = np.array(rows)
    h = 0.5 * (phi[:, rows[:, 0]] + phi[:, rows[:, 1]])  # (d, N)
    onehot = np.eye(phi.shape[1])[rows[:, 2]].T  # (K, N)
    w_v = np.zeros((phi.shape[0], phi.shape[0]))
    for _ in range(p.steps):
        z = phi.T @ w_v @ h
        prob = np.exp(z - z.max(axis=0))
        prob /= prob.sum(axis=0)
        w_v -= p.lr * (phi @ (prob - onehot) @ h.T) / len(rows)
    return w_v


def numpy_strengths(w_v: np.ndarray, phi: np.ndarray, world) -> tuple[float, float]:
    """(δ_C, δ_M) as theory/NOTES.md §0.4 defines them, from the d×d W_V: mean softmax(Φᵀ W_V φ(c))_c over
    the context tokens of every context-bearing finetuning, test and aligned example, and mean
    softmax(Φᵀ W_V φ(s))_a over those whose subject s has a fact a."""
    def prob(y, target):
        z = phi.T @ w_v @ phi[:, y]
        return np.exp(z[target] - z.max()) / np.exp(z - z.max()).sum()

    points = [(t, f) for ps in (world.train, world.test, world.aligned) for t, m, f in
              zip(ps.tokens, ps.key_mask, ps.fact) if m[0]]
    delta_c = np.mean([prob(t[0], t[0]) for t, _ in points])
    delta_m = np.mean([prob(t[1], f) for t, f in points if f >= 0])
    return float(delta_c), float(delta_m)


@pytest.mark.parametrize("extra", [[], ["world.embeddings=random", "world.dim=15", "train.seed=3"],
                                   ["world.n_relations=2", "mixture.n_test=1", "pretrain.fact_repeats=3",
                                    "pretrain.context_repeats=2"]])
def test_learned_values_equal_a_d_by_d_numpy_descent(extra):
    config = load(overrides=[*SMALL, "pretrain.steps=60", "pretrain.lr=3", *extra])
    world = build_world(config)
    w_v = numpy_descent(config, world.embed)
    np.testing.assert_allclose(world.w_v, w_v, atol=1e-10)
    np.testing.assert_allclose(world.value_table, world.embed.T @ w_v @ world.embed, atol=1e-10)
    summary = run(config).summary
    delta_c, delta_m = numpy_strengths(w_v, world.embed, world)
    assert summary["achieved_delta_c"] == pytest.approx(delta_c, abs=1e-10)
    assert summary["achieved_delta_m"] == pytest.approx(delta_m, abs=1e-10)


def test_constructed_strengths_are_the_knowledge_keys():
    for sets in ([], ["knowledge.delta_c=0.1", "knowledge.delta_m=0.8", "mixture.counterfactual=0.2"]):
        config = load(overrides=[*sets, "train.steps=3"])
        summary = run(config).summary
        assert summary["achieved_delta_c"] == pytest.approx(config.knowledge.delta_c, abs=1e-12)
        assert summary["achieved_delta_m"] == pytest.approx(config.knowledge.delta_m, abs=1e-12)
        world = build_world(config)
        assert (summary["achieved_delta_c"], summary["achieved_delta_m"]) == pytest.approx(
            numpy_strengths(world.w_v, world.embed, world), abs=1e-12)


def test_more_repeats_or_steps_mean_stronger_knowledge():
    """Tolerance: strictly monotone, and each doubling moves the strength by more than 0.01."""
    base = load(overrides=[*SMALL, "pretrain.steps=200", "pretrain.lr=2"])

    def strengths(**values):
        world = build_world(with_values(base, {f"pretrain.{k}": v for k, v in values.items()}))
        s = pretraining.achieved_strengths(world.value_table, (world.train, world.test, world.aligned))
        return s["achieved_delta_c"], s["achieved_delta_m"]

    facts = [strengths(fact_repeats=r)[1] for r in (1, 2, 4, 8)]
    contexts = [strengths(context_repeats=r)[0] for r in (1, 2, 4)]
    longer = [strengths(steps=s) for s in (50, 100, 200, 400)]
    for series in (facts, contexts, [d for d, _ in longer], [m for _, m in longer]):
        assert np.all(np.diff(series) > 0.01), series
    assert strengths(steps=0) == pytest.approx((1 / 23, 1 / 23), abs=1e-12)  # W_V = 0: uniform over K = 23 tokens


def test_the_knowledge_base_does_not_depend_on_the_mixture(pretrainings):
    base = load(overrides=[*SMALL, "pretrain.steps=30"])
    worlds = [build_world(with_values(base, {"mixture.context_critical": rho})) for rho in (0.25, 0.5, 0.75)]
    assert len(pretrainings) == 1
    for world in worlds[1:]:
        np.testing.assert_array_equal(world.value_table, worlds[0].value_table)
    # the memorised subjects of the points carry the knowledge base's facts
    kb = pretraining.knowledge_base(base)
    facts = dict(zip(kb.memorised.tolist(), kb.facts.tolist()))
    for world in worlds:
        for points in (world.train, world.test, world.aligned):
            for (c, s, _), f, mask in zip(points.tokens, points.fact, points.key_mask):
                assert f == facts.get(int(s), -1)
                if f < 0 and mask[0]:
                    assert c not in facts.values()


def test_a_sweep_over_the_mixture_pretrains_once(tmp_path, pretrainings):
    from cpi.sims.sweep import run_sweep

    base = load(overrides=["knowledge.pretraining=learned", "world.n_subjects=60", "pretrain.memorised=0.6",
                           "pretrain.steps=100", "train.steps=10"])
    result = run_sweep(base, ["mixture.context_critical=0.25,0.5,0.75"], out=tmp_path / "sweep")
    assert len(pretrainings) == 1
    files = list((tmp_path / "pretrained").glob("*.npz"))
    assert [f.name for f in files] == [f"{pretraining.pretrain_digest(base)}.npz"]
    mtime = files[0].stat().st_mtime_ns
    pretraining.forget()  # a new process: the file is reused, not recomputed
    single = run(result.configs[1])
    assert len(pretrainings) == 1 and files[0].stat().st_mtime_ns == mtime
    assert single.summary["final_reliance"] == pytest.approx(result.summaries[1]["final_reliance"], abs=1e-12)
    for i in range(3):  # every row carries the strengths its learned W_V achieves, as a single run reports them
        alone = run(result.configs[i]).summary
        for key in ("achieved_delta_c", "achieved_delta_m"):
            assert result.summaries[i][key] == pytest.approx(alone[key], abs=1e-12)
    assert "achieved_delta_m" in (tmp_path / "sweep" / "summary.csv").read_text().splitlines()[0]


def test_reruns_are_byte_identical_fresh_or_from_the_cache(tmp_path, pretrainings):
    sets = [a for s in [*SMALL, "pretrain.steps=80"] for a in ("--set", s)]
    for name in ("a", "b"):
        assert main(["run", *sets, "--out", str(tmp_path / name)]) == 0
        pretraining.forget()
    assert len(pretrainings) == 1  # b reuses a's file
    (tmp_path / "pretrained").rename(tmp_path / "old")  # c pretrains again from scratch
    assert main(["run", *sets, "--out", str(tmp_path / "c")]) == 0
    assert len(pretrainings) == 2
    for file in ("metrics.npz", "summary.json", "config.toml"):
        first = (tmp_path / "a" / file).read_bytes()
        assert (tmp_path / "b" / file).read_bytes() == first and (tmp_path / "c" / file).read_bytes() == first


def test_cpi_theory_predicts_cpi_run_with_the_learned_table(tmp_path, capsys):
    sets = [a for s in ["knowledge.pretraining=learned", "pretrain.steps=300", "train.steps=60"]
            for a in ("--set", s)]
    assert main(["theory", "--json", *sets]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert main(["run", *sets, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "achieved delta_c" in out
    simulated = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert predicted["exact"] and predicted["pretraining"] == "learned"
    assert predicted["peak_step"] == simulated["peak_step"]
    for key in ["initial_reliance", "peak_reliance", "final_reliance", "achieved_delta_c", "achieved_delta_m"]:
        assert predicted[key] == pytest.approx(simulated[key], abs=1e-10)
    assert main(["theory", *sets]) == 0
    assert "learned value table" in capsys.readouterr().out


@pytest.mark.parametrize("setting, key", [
    ("knowledge.pretraining=trained", "knowledge.pretraining"),
    ("pretrain.steps=-1", "pretrain.steps"),
    ("pretrain.lr=0", "pretrain.lr"),
    ("pretrain.fact_repeats=1.5", "pretrain.fact_repeats"),
    ("pretrain.context_repeats=-2", "pretrain.context_repeats"),
    ("pretrain.memorised=1.5", "pretrain.memorised"),
    ("pretrain.memorised=0.2", "pretrain.memorised"),  # too few memorised subjects for the mixture
    ("pretrain.memorised=1", "pretrain.memorised"),  # no subject left for the C examples
])
def test_bad_values_exit_2_naming_the_key(setting, key, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--set", "knowledge.pretraining=learned", "--set", setting, "--out", str(out)]) == 2
    assert key in capsys.readouterr().err
    assert not out.exists()


def test_the_reduced_engine_says_the_group_form_needs_the_lemma_3_table(tmp_path, capsys):
    code = main(["sweep", "--set", "knowledge.pretraining=learned", "--grid", "train.lr=1,2", "--engine", "reduced",
                 "--out", str(tmp_path / "s")])
    assert code == 2
    assert "knowledge.pretraining" in capsys.readouterr().err


# ---------------------------------------------------------------------------- experiment and figure


def tiny_learned_pretraining() -> dict:
    """A data dict of the learned_pretraining experiment's shape (for the figure tests)."""
    step = np.arange(6)
    grid = np.array([0, 20, 60, 100])
    return dict(
        step=step, lr=1.0, pretrain_lr=5.0, fact_repeats=1, context_repeats=1, rho=0.5,
        constructed_reliance=np.array([0.3, 0.6, 0.8, 0.7, 0.6, 0.55]), constructed_delta_c=0.2,
        constructed_delta_m=0.6, shown=np.array([20, 60]), grid=grid,
        sim_reliance=np.array([[0.4, 0.5, 0.6, 0.55, 0.5, 0.45], [0.3, 0.7, 0.9, 0.85, 0.8, 0.7]]),
        theory_reliance=np.array([[0.4, 0.5, 0.6, 0.55, 0.5, 0.45], [0.3, 0.7, 0.9, 0.85, 0.8, 0.7]]) + 1e-3,
        delta_c=np.array([0.05, 0.4]), delta_m=np.array([0.1, 0.7]),
        grid_delta_c=np.array([0.01, 0.05, 0.4, 0.7]), grid_delta_m=np.array([0.01, 0.1, 0.7, 0.95]),
        grid_initial=np.array([0.5, 0.4, 0.3, 0.3]), grid_peak=np.array([0.5, 0.6, 0.9, 0.95]),
        grid_final=np.array([0.5, 0.45, 0.7, 0.94]), grid_peak_step=np.array([0, 2, 2, 4]),
    )


def test_the_figure_plots_its_arrays():
    import cpi.figures
    from cpi.figures.style import artist

    d = tiny_learned_pretraining()
    fig = cpi.figures.plot_learned_pretraining(d)
    for i in range(2):
        for key in ("sim_reliance", "theory_reliance"):
            line = artist(fig, f"{key}_{i}")
            np.testing.assert_array_equal(line.get_xdata(), d["step"])
            np.testing.assert_array_equal(line.get_ydata(), d[key][i])
    np.testing.assert_array_equal(artist(fig, "constructed_reliance").get_ydata(), d["constructed_reliance"])
    for key in ("grid_delta_c", "grid_delta_m", "grid_initial", "grid_peak", "grid_final"):
        np.testing.assert_array_equal(artist(fig, key).get_xdata(), d["grid"])
        np.testing.assert_array_equal(artist(fig, key).get_ydata(), d[key])
    legend = " ".join(t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts())
    assert "0.400" in legend and "0.700" in legend  # the achieved strengths of each length


def test_the_experiment_at_test_scale(tmp_path):
    from cpi.experiments.cache import experiment_data

    base = load(overrides=[s for s in SMALL if s != "knowledge.pretraining=learned"])
    data = experiment_data("learned_pretraining", base, tmp_path / "data", shown=(20, 60), grid=(0, 20, 60), steps=6)
    np.testing.assert_allclose(data["sim_reliance"], data["theory_reliance"], atol=1e-10)
    assert data["constructed_delta_c"] == pytest.approx(0.2, abs=1e-12)
    for i, length in enumerate((20, 60)):
        config = with_values(base, {"knowledge.pretraining": "learned", "pretrain.steps": length})
        world = build_world(config)
        w_v = numpy_descent(config, world.embed)
        assert (data["delta_c"][i], data["delta_m"][i]) == pytest.approx(numpy_strengths(w_v, world.embed, world),
                                                                         abs=1e-10)
    np.testing.assert_allclose(data["grid_delta_c"][1:], data["delta_c"], atol=1e-12)
    assert data["grid_delta_m"][0] == pytest.approx(1 / 23, abs=1e-12)  # no pretraining: W_V = 0
