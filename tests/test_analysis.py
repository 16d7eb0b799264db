"""Saved results in the analysis stack (`cpi.sims.analysis`): `SavedSweep.to_xarray` holds every
point and metric of sweep.npz on a grid of the swept keys and seeds, `to_dataframe` one summary
row per point; a run gives a DataFrame and a Dataset over its steps; toy and transformer alike.
pandas and xarray are never imported on `cpi run`'s path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import cpi

pytest.importorskip("xarray", reason="the analysis extra (pip install 'cpi-sim[analysis]') is not installed")
pytest.importorskip("pandas", reason="the analysis extra (pip install 'cpi-sim[analysis]') is not installed")



@pytest.fixture(scope="module")
def results(result_dirs, grid_sweep):
    """{name: path}: the shared result directories of each kind (`tests/conftest.py`) and a
    two-key toy sweep with two seeds ("grid")."""
    return {**result_dirs, "grid": grid_sweep}


def _check_dataset_against_npz(saved, ds):
    """Every point's metrics at its own recorded steps (NaN at the others) and every summary
    value of sweep.npz, read from `ds` at the point's swept values and seed."""
    with np.load(saved.path / "sweep.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    names = saved.metric_names()
    assert names and set(names) <= set(ds.data_vars)
    summaries = [n for n in arrays if n.startswith("summary_")]
    assert summaries
    for i, row in enumerate(saved.rows):
        where = {k: row[k] for k in saved.keys}
        if "seed" in ds.dims:
            where["seed"] = row["seed"]
        point = ds.sel(where)
        own = saved.point_steps(i)
        at = np.isin(ds["step"].values, own)
        for name in names:
            np.testing.assert_array_equal(point[name].values[at], arrays[name][i, : len(own)])
            assert np.isnan(point[name].values[~at]).all()
        for name in summaries:
            np.testing.assert_array_equal(point[name.removeprefix("summary_")].values, arrays[name][i])


def test_a_sweep_as_a_dataset_has_its_keys_and_seeds_as_dimensions(results):
    saved = cpi.load_sweep(results["grid"])
    ds = saved.to_xarray()
    assert dict(ds.sizes) == {"knowledge.delta_m": 2, "mixture.context_critical": 3, "seed": 2, "step": 11}
    assert list(ds["mixture.context_critical"].values) == [0.3, 0.5, 0.7]
    assert ds["reliance"].dims == ("knowledge.delta_m", "mixture.context_critical", "seed", "step")
    assert ds["peak_reliance"].dims == ("knowledge.delta_m", "mixture.context_critical", "seed")
    assert ds.attrs["swept_keys"] == ["knowledge.delta_m", "mixture.context_critical"]
    assert ds.attrs["config_toml"] == (saved.path / "config.toml").read_text()
    _check_dataset_against_npz(saved, ds)


def test_a_sweep_recorded_every_few_steps(results):
    saved = cpi.load_sweep(results["sweep"])
    ds = saved.to_xarray()
    assert list(ds["step"].values) == [0, 3, 6, 9, 10] and ds.attrs["record_every"] == 3
    assert "seed" not in ds.dims and int(ds["seed"]) == 0
    _check_dataset_against_npz(saved, ds)


def test_a_transformer_sweep_whose_points_record_different_steps(results):
    saved = cpi.load_sweep(results["bridge_sweep"])
    ds = saved.to_xarray()
    assert ds.attrs["kind"] == "bridge sweep" and "train.eval_every" in ds.dims
    # eval_every 5 records steps 0, 5, 10; eval_every 10 records 0, 10: one axis, their union
    assert list(ds["step"].values) == [0, 5, 10]
    assert np.isnan(ds["reliance"].sel({"train.eval_every": 10, "step": 5}).item())
    _check_dataset_against_npz(saved, ds)


def test_a_summaries_only_sweep_has_summaries_without_steps(results):
    ds = cpi.load_sweep(results["summaries"]).to_xarray()
    assert "step" not in ds.dims and ds["final_reliance"].dims == ("train.lr",)


@pytest.mark.parametrize("name", ["grid", "summaries", "bridge_sweep"])
def test_a_sweep_as_a_dataframe_has_one_row_per_point(results, name):
    saved = cpi.load_sweep(results[name])
    frame = saved.to_dataframe()
    assert len(frame) == len(saved) and frame.index.name == "point"
    assert list(frame.columns[: len(saved.keys) + 1]) == [*saved.keys, "seed"]
    document = json.loads((saved.path / "summary.json").read_text())
    for i, row in enumerate(document["points"]):
        for field, value in row.items():
            cell = frame.loc[i, field]
            assert (value is None and np.isnan(cell)) or cell == value, (i, field)
    if name == "grid":  # the toy's achieved strengths
        assert {"achieved_delta_c", "achieved_delta_m"} <= set(frame.columns)


@pytest.mark.parametrize("name", ["run", "bridge_run"])
def test_a_run_as_a_dataframe_has_one_row_per_recorded_step(results, name):
    saved = cpi.load_run(results[name])
    frame = saved.to_dataframe()
    np.testing.assert_array_equal(frame.index.values, saved.metrics["step"])
    assert set(frame.columns) == set(saved.metrics) - {"step"}
    for column in frame.columns:
        np.testing.assert_array_equal(frame[column].values, saved.metrics[column])
    ds = saved.to_xarray()
    np.testing.assert_array_equal(ds["reliance"].values, saved.metrics["reliance"])
    assert ds.attrs["peak_step"] == saved.summary["peak_step"]


def test_without_the_extra_the_error_names_it(results, monkeypatch):
    from cpi.sims.analysis import MissingExtra

    monkeypatch.setitem(sys.modules, "xarray", None)  # `import xarray` raises ImportError
    with pytest.raises(MissingExtra, match=r"pip install 'cpi-sim\[analysis\]'"):
        cpi.load_sweep(results["grid"]).to_xarray()


def test_cpi_run_does_not_import_the_analysis_stack(tmp_path):
    code = ("import sys; from cpi.cli import main;"
            "status = main(['run', '--set', 'train.steps=2', '--out', sys.argv[1]]);"
            "heavy = sorted(m for m in ('pandas', 'xarray', 'pyarrow', 'plotly', 'marimo') if m in sys.modules);"
            "print('heavy:', heavy); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout
