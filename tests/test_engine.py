"""The fast engine against the generic d×d model, and the summary fold against
`summarize`: one table of configs that both engines must agree on to 1e-12 (float64)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cpi.sims import engine, generic, packing, step
from cpi.sims.config import load, with_values
from cpi.sims.precision import precision
from cpi.sims.train import absent_metrics, run
from cpi.sims.world import build_world
from cpi.theory.summary import fold_finish, fold_init, fold_update, summarize

ENGINE_CONFIGS = {
    "default": {"train.steps": 60},
    "W_V trained": {"train.value_lr": 0.5, "train.steps": 40, "mixture.fact_recall": 0.2},
    "CF and S examples": {"mixture.context_critical": 0.4, "mixture.counterfactual": 0.2, "mixture.fact_recall": 0.2,
                        "mixture.fact_recall_seen": 0.5, "knowledge.delta_m": 0.7, "train.steps": 40},
    "filtering": {"mixture.filter": 0.3, "mixture.fact_recall": 0.1, "train.steps": 40},
    "relations, W_V trained": {"world.n_relations": 3, "world.relation_overlap": 0.4, "world.n_subjects": 80,
                               "world.n_answers": 160, "mixture.counterfactual": 0.1,
                               "mixture.counterfactual_relation": 2, "mixture.fact_recall": 0.1,
                               "train.value_lr": 0.3, "train.lr": 2.0, "train.steps": 30},
}


@pytest.mark.parametrize("name", list(ENGINE_CONFIGS))
def test_fast_engine_equals_the_generic_model(name):
    config = with_values(load(), ENGINE_CONFIGS[name])
    world = build_world(config)
    train_values = config.train.value_lr > 0
    expected, expected_params = generic.simulate(generic.pack(world), config.train.lr, config.train.value_lr,
                                                 config.train.steps, train_values=train_values)
    result = run(config)
    assert set(result.metrics) - {"step"} == set(expected) - absent_metrics(world)
    for key, values in result.metrics.items():
        if key != "step":
            np.testing.assert_allclose(values, np.asarray(expected[key]), rtol=0, atol=1e-12, err_msg=key)
    for key in ("kq", "v"):
        np.testing.assert_allclose(result.params[key], np.asarray(expected_params[key]), rtol=0, atol=1e-12)
    want = summarize(np.asarray(expected["reliance"]))
    assert result.summary["peak_step"] == want["peak_step"] and result.summary["inversion"] == want["inversion"]
    for key in ("initial_reliance", "peak_reliance", "final_reliance"):
        assert abs(result.summary[key] - want[key]) < 1e-12, key


def assert_same_computation(actual, desired, err_msg=""):
    """Recording and cutting a run into segments must not change the arithmetic. On the CPU backend the numbers
    are bit for bit the same; an accelerator compiles the scan bodies that record differently
    and may round differently, so there they must agree to a few ulps (measured on an H100:
    at most 2.2e-16 on M_C)."""
    if jax.default_backend() == "cpu":
        np.testing.assert_array_equal(actual, desired, err_msg=err_msg)
    else:
        np.testing.assert_allclose(actual, desired, rtol=1e-14, atol=1e-15, err_msg=err_msg)


def assert_same_summary(actual: dict, desired: dict):
    assert actual.keys() == desired.keys()
    for key in desired:
        if isinstance(desired[key], float):
            assert_same_computation(actual[key], desired[key], err_msg=key)
        else:
            assert actual[key] == desired[key], key


@pytest.mark.parametrize("record_every", [1, 7, 60, 1000])
def test_recording_every_n_steps_keeps_the_summary_of_every_step(record_every):
    config = with_values(load(), {"train.steps": 60})
    every = run(config)
    strided = run(config, record_every=record_every)
    expected_steps = sorted({*range(0, 60, record_every), 60})
    assert strided.metrics["step"].tolist() == expected_steps
    for key, values in every.metrics.items():
        assert_same_computation(strided.metrics[key], values[expected_steps], err_msg=key)
    assert_same_summary(strided.summary, every.summary)


def test_segments_of_a_long_run_equal_one_scan(monkeypatch):
    config = with_values(load(), {"train.steps": 70})
    whole = run(config)
    monkeypatch.setattr(engine, "SEGMENT_STEPS", 20)
    calls = []
    world = build_world(config)
    with precision("float64"):  # as cpi.sims.train.run calls it
        recorded, summary, _ = engine.simulate(*packing.pack(world), 1.0, 0.0, 70,
                                               train_values=False, record_every=3, progress=calls.append)
    assert calls == [18, 36, 54, 70]  # segment lengths are multiples of the stride
    assert_same_computation(recorded["reliance"], whole.metrics["reliance"][engine.recorded_steps(70, 3)])
    summary.pop("nonfinite_step")
    # run adds δ's
    assert_same_summary(summary, {k: v for k, v in whole.summary.items() if not k.startswith("achieved_")})


def test_the_plan_records_multiples_of_the_stride_and_the_last_step():
    for steps, every, segment in [(300, 1, 20_000), (50_000, 7, 20_000), (10, 4, 3), (5, 10, 20_000)]:
        plan = engine.segment_plan(steps, every, segment)
        assert sum(p["steps"] for p in plan) == steps and plan[-1]["last"]
        assert all(p["steps"] % every == 0 for p in plan[:-1])
        records = sum(-(-p["steps"] // every) for p in plan) + 1
        assert records == len(engine.recorded_steps(steps, every))


def _fold(reliance, metrics):
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):  # the fold in float64, as the engine runs it
        fold = fold_init(metrics.shape[1], jnp.float64)
        for t, (r, m) in enumerate(zip(reliance, metrics)):
            fold = fold_update(fold, jnp.asarray(r), jnp.asarray(m), t)
        return fold_finish(fold)


@settings(max_examples=40, deadline=None)
# no subnormals: compiled code on the CPU flushes them to zero (the fold would see 0 where
# NumPy's summarize sees 2e-311); a reliance is never within 1e-300 of zero anyway
@given(st.lists(st.one_of(st.floats(0, 1, allow_subnormal=False), st.sampled_from([0.5, 0.25])),
                min_size=1, max_size=12))
@example([0.3, 0.6, 0.5, 0.4, 0.55, 0.7, 0.8])  # rise, fall, recovery past the first peak
def test_the_summary_fold_equals_summarize(values):
    reliance = np.array(values)
    folded = _fold(reliance, reliance[:, None])
    assert folded.pop("nonfinite_step") is None
    assert folded == summarize(reliance)


def test_the_fold_finds_the_first_step_where_a_finite_metric_is_not():
    reliance = np.array([0.2, 0.5, 0.4, np.nan, 0.3])
    metrics = np.array([[0.2, np.nan], [0.5, np.nan], [0.4, np.nan], [np.nan, np.nan], [np.inf, np.nan]])
    folded = _fold(reliance, metrics)
    assert folded["nonfinite_step"] == 3  # the always-NaN column (an absent group) never counts
    assert folded["peak_step"] == int(np.argmax(reliance))  # NaN is the peak, as np.argmax has it


def test_float32_is_close_to_float64():
    """The documented float32 agreement: M_C within 5e-5 of float64 over 2000 steps (measured
    1.4e-5 on the default config; rounding accumulates over the steps)."""
    double = run(with_values(load(), {"train.steps": 2000}))
    single = run(with_values(load(), {"train.steps": 2000, "train.dtype": "float32"}))
    assert single.metrics["reliance"].dtype == np.float32
    assert np.abs(single.metrics["reliance"] - double.metrics["reliance"]).max() < 5e-5
    assert single.summary["peak_step"] == double.summary["peak_step"]


@pytest.mark.parametrize("train_values", [False, True], ids=["W_V frozen", "W_V trained"])
@pytest.mark.parametrize("layout", [True, False], ids=["shared layout", "gathers"])
def test_the_step_gradient_is_the_gradient_of_its_loss(layout, train_values):
    """`step.step`'s hand-derived C (∇_{W_KQ} L = Φ C Φ_Rᵀ) and D (∇_{W_V} L = Φ D Φᵀ) against
    autodiff of its own loss L = (1/n) Σ ℓ_i at a state away from W_KQ = 0: ∂L/∂A = G C Γ (on
    the active pairs of a shared layout) and ∂L/∂T = D, T = Φᵀ W_V Φ."""
    import jax.numpy as jnp

    world = build_world(with_values(load(), ENGINE_CONFIGS["CF and S examples"]))
    n = len(world.train)
    with precision("float64"):
        points = packing.pack_examples(world, frozen_values=not train_values)
        shared = packing.pack_shared(world)
        if layout:
            shared = packing.with_layout(shared, points)
        prepared = step.prepare(shared, points)
        kq_shape = shared.active.shape[:1] if layout else (shared.gram.shape[0], shared.relation_gram.shape[0])
        kq = jnp.asarray(np.random.default_rng(0).normal(0, 0.5, kq_shape))
        table = jnp.asarray(points.table)

        def loss(kq, table):
            forward, _, _ = step.step(shared, points, kq, step.outputs(points, prepared, table),
                                      train_values=train_values)
            return jnp.mean(forward.losses[:n])

        _, grad_kq, grad_table = step.step(shared, points, kq, step.outputs(points, prepared, table),
                                           train_values=train_values)
        want_kq, want_table = jax.grad(loss, argnums=(0, 1))(kq, table)
    assert layout == (shared.score_map is not None)
    natural = shared.gram @ packing.full_coordinates(shared, grad_kq) @ shared.relation_gram
    if layout:
        natural = natural[shared.active[:, 0], shared.active[:, 1]]
    assert np.max(np.abs(np.asarray(want_kq))) > 1e-3
    np.testing.assert_allclose(natural, want_kq, rtol=0, atol=1e-12)
    if train_values:
        np.testing.assert_allclose(grad_table, want_table, rtol=0, atol=1e-12)
    else:
        assert grad_table is None


def test_the_oracle_does_not_import_the_engine_it_checks():
    """The generic model defines what the fast engine computes (argmax tie tolerance, precision,
    metrics): it imports neither `cpi.sims.engine` nor the engine's step."""
    import ast
    from pathlib import Path

    source = Path(generic.__file__).read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert not {m for m in imported if m and m.split(".")[-1] in ("engine", "step")}, imported
