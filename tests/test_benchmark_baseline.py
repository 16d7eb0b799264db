"""The speed benchmark's NumPy side (`benchmarks/engine_speed.py`) does the job it is timed
against: every metric a run records, equal to `cpi.run`'s, so that its ratios compare the same
work. It shares no code with the project, so this is also one more independent check of the
recorded metrics."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import cpi
from cpi.sims.metrics import metric_names

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "engine_speed.py"


@pytest.fixture(scope="module")
def engine_speed():
    spec = importlib.util.spec_from_file_location("engine_speed", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("rho, delta_m", [(0.5, 0.6), (0.0, 0.9), (1.0, 0.5)])
def test_every_metric_of_the_numpy_side_equals_a_run(engine_speed, rho, delta_m):
    steps = 60
    config = cpi.load_config(overrides=[f"mixture.context_critical={rho}", f"knowledge.delta_m={delta_m}",
                                        f"train.steps={steps}"])
    metrics = cpi.run(config).metrics
    mine = engine_speed.train_all(engine_speed.build(rho, delta_m), steps=steps)
    assert sorted(mine) == sorted(metric_names(1))
    for name, curve in mine.items():
        if name not in metrics:  # a run leaves out an empty group's metrics; NumPy's are NaN
            assert np.isnan(curve).all(), name
            continue
        np.testing.assert_array_equal(np.isnan(curve), np.isnan(metrics[name]), err_msg=name)
        np.testing.assert_allclose(curve, metrics[name], rtol=0, atol=1e-12, err_msg=name)
    two = engine_speed.train(engine_speed.build(rho, delta_m), steps=steps)
    for name, curve in two.items():
        np.testing.assert_array_equal(curve, mine[name])
