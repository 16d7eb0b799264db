"""The integrators of the reduced system: precision per call (no process-wide switch), the
summary folded inside the descent's scan, strides, slices and the first non-finite step."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import cpi.theory.integrate as integrate
from tests.defaults import KNOWLEDGE, GroupCounts
from cpi.theory.reduced import group_descent, group_trajectory
from cpi.theory.relations import relation_group_trajectory
from cpi.theory.summary import summarize

ROOT = Path(__file__).parent.parent
N_C = np.array([2, 6, 10, 14, 18])  # n = 20: inversions and monotone curves

IMPORT_EVERYTHING = """
import importlib, pkgutil
import jax
import cpi.theory
for module in pkgutil.iter_modules(cpi.theory.__path__):
    importlib.import_module(f"theory.{module.name}")
assert not jax.config.jax_enable_x64, "importing theory switched on 64-bit mode"
from cpi.theory.params import GroupCounts, Knowledge
from cpi.theory.reduced import group_flow, group_trajectory
from cpi.theory.relations import relation_group_trajectory
out = group_trajectory(Knowledge(), GroupCounts(10, 10), steps=5)
flow = group_flow(Knowledge(), GroupCounts(10, 10), times=[0.0, 1.0])
rel = relation_group_trajectory(Knowledge(), [[10, 10, 0, 0, 0]], steps=5)
assert out["reliance"].dtype == flow["reliance"].dtype == rel["reliance"].dtype == "float64"
assert abs(out["reliance"][0] - 0.2898979485566356) < 1e-15
assert not jax.config.jax_enable_x64, "a theory call left 64-bit mode on"
"""


def test_importing_and_calling_theory_leaves_the_precision_switch_alone():
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    done = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**env, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("x64", [False, True])
def test_theory_computes_in_float64_whatever_the_caller_set(x64):
    reference = group_trajectory(KNOWLEDGE, GroupCounts(N_C, 20 - N_C), steps=40)
    with jax.enable_x64(x64):
        out = group_trajectory(KNOWLEDGE, GroupCounts(N_C, 20 - N_C), steps=40)
        rel = relation_group_trajectory(KNOWLEDGE, np.array([[14, 6, 0, 0, 0]]), steps=40)
    assert out["reliance"].dtype == rel["reliance"].dtype == np.float64
    np.testing.assert_array_equal(out["reliance"], reference["reliance"])
    np.testing.assert_array_equal(rel["reliance"][0], reference["reliance"][3])


@pytest.mark.parametrize("record_every", [1, 7, 40, 1000])
def test_descent_summaries_fold_every_step_whatever_is_recorded(record_every):
    """The fold inside the scan equals `summarize` of the whole curve; a stride records
    steps 0, N, 2N, ... < steps and the last step, each equal to the full trajectory."""
    steps = 300
    full = group_trajectory(KNOWLEDGE, GroupCounts(N_C, 20 - N_C), steps=steps)
    expected = [summarize(r) for r in full["reliance"]]
    assert {e["inversion"] for e in expected} == {True, False}
    strided, summary = group_descent(KNOWLEDGE, GroupCounts(N_C, 20 - N_C), steps=steps, record_every=record_every)
    only, summary_only = group_descent(KNOWLEDGE, GroupCounts(N_C, 20 - N_C), steps=steps, record=False)
    assert only is None
    for got in (summary, summary_only):
        assert got["nonfinite_step"].tolist() == [-1] * len(N_C)
        for i, e in enumerate(expected):
            assert got["peak_step"][i] == e["peak_step"] and got["inversion"][i] == e["inversion"]
            for key in ("initial_reliance", "peak_reliance", "final_reliance"):
                assert got[key][i] == e[key], key
    columns = integrate.recorded_steps(steps, record_every)
    assert strided["step"][0].tolist() == columns.tolist() == sorted({*range(0, steps, record_every), steps})
    for key, values in full.items():
        np.testing.assert_array_equal(strided[key], values[:, columns], err_msg=key)


def test_slices_of_a_stack_give_the_stack(monkeypatch):
    n_c = np.arange(1, 20)
    whole = group_descent(KNOWLEDGE, GroupCounts(n_c, 20 - n_c), steps=50)
    monkeypatch.setattr(integrate, "SLICE_POINTS", 4)  # 5 slices, the last padded
    sliced = group_descent(KNOWLEDGE, GroupCounts(n_c, 20 - n_c), steps=50)
    for a, b in zip(whole, sliced):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_the_first_nonfinite_step_is_found_inside_the_scan():
    """η = ∞ makes α non-finite after the first update (step 1); a finite rate never."""
    _, summary = group_descent(KNOWLEDGE, GroupCounts(10, 10), lr=np.array([1.0, np.inf]), steps=20, record=False)
    assert summary["nonfinite_step"].tolist() == [-1, 1]
