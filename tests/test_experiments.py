"""The experiments layer: every registered experiment declares what it computes and takes the
parameters it declares; the value-training loop equals the generic d×d model; and neither it
nor the generic model switches JAX's 64-bit mode on for the whole process."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest

from cpi.experiments import EXPERIMENTS, NAMES, get
from cpi.sims import config as cfg


@pytest.mark.parametrize("name", NAMES)
def test_each_experiment_states_what_it_computes_and_takes_its_parameters(name):
    experiment = get(name)
    module = experiment.module
    assert module.__doc__ and len(module.__doc__.split()) > 15  # what it varies and computes
    parameters = list(inspect.signature(experiment.compute).parameters)
    assert parameters[:2] == ["base", "work"]
    assert parameters[2:] == list(experiment.params)  # every parameter has a default, nothing else does
    assert experiment.resolve({}) == experiment.params
    with pytest.raises(TypeError, match="no parameter"):
        experiment.resolve({"bogus": 1})


def test_the_registry_lists_each_experiment_once_in_figure_order():
    assert len(set(NAMES)) == len(NAMES) == len(EXPERIMENTS)
    assert NAMES[:5] == ("inversion", "tug_of_war", "phase_diagram", "three_steps", "knowledge_strength")
    assert all(e.plot == f"plot_{e.name}" and e.description for e in EXPERIMENTS)


def test_value_training_tables_are_the_generic_models_value_matrix():
    from cpi.sims import generic
    from cpi.sims.value_training import value_block_means, value_training_run
    from cpi.sims.world import build_world

    base = cfg.with_values(cfg.Config(), {"train.steps": 6, "mixture.fact_recall": 0.2})
    out = value_training_run(base, [0.0, 0.7], record_every=3)
    world = build_world(base)
    phi = world.embed
    for i, value_lr in enumerate((0.0, 0.7)):
        metrics, params = generic.simulate(generic.pack(world), base.train.lr, value_lr, 6, train_values=True)
        for key in ("reliance", "attention_context", "neg_grad_theta_c_S"):
            np.testing.assert_allclose(out[key][i], np.asarray(metrics[key]), rtol=0, atol=1e-12)
        expected = value_block_means(world, phi.T @ np.asarray(params["v"]) @ phi, world.value_table)
        for key, value in expected.items():
            got = out[key if key.startswith(("margin", "C_subject")) else f"dv_{key}"][i, -1]
            np.testing.assert_allclose(got, value, rtol=0, atol=1e-10, err_msg=key)
    assert np.all(out["dv_CS_cc"][0] == 0) and out["margin_CS"][1, -1] > out["margin_CS"][1, 0]


def test_value_training_needs_whole_record_intervals():
    from cpi.sims.value_training import value_training_run

    with pytest.raises(ValueError, match="not a multiple of record_every = 4"):
        value_training_run(cfg.with_values(cfg.Config(), {"train.steps": 6}), [0.5], record_every=4)


def test_simulators_leave_the_process_precision_alone():
    """Importing and running the generic model and the value-training loop leaves
    jax_enable_x64 off, and both still compute in float64."""
    code = (
        "import jax, numpy as np\n"
        "import cpi.experiments, cpi.experiments.cache, cpi.sims.generic as g, cpi.sims.value_training as vt\n"
        "from cpi.sims import config as cfg\n"
        "from cpi.sims.world import build_world\n"
        "assert not jax.config.jax_enable_x64\n"
        "base = cfg.with_values(cfg.Config(), {'train.steps': 2})\n"
        "data = g.pack(build_world(base))\n"
        "metrics, params = g.simulate(data, 1.0, 0.0, 2, train_values=False)\n"
        "assert data['embed'].dtype == np.float64 and metrics['reliance'].dtype == np.float64\n"
        "out = vt.value_training_run(base, [0.5], record_every=1)\n"
        "assert out['reliance'].dtype == np.float64\n"
        "assert not jax.config.jax_enable_x64\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
