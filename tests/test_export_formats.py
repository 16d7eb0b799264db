"""`cpi export --format parquet|netcdf`: files that reload to the saved numbers (the arrays of
metrics.npz and sweep.npz, the summaries of summary.json), toy and transformer alike; a binary
format without --out, or without its package, exits 2 and writes nothing."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from cpi.cli import execute
from cpi.sims.saved import SavedRun, read

pd = pytest.importorskip("pandas", reason="the analysis extra (pip install 'cpi-sim[analysis]') is not installed")
xr = pytest.importorskip("xarray", reason="the analysis extra (pip install 'cpi-sim[analysis]') is not installed")
pytest.importorskip("pyarrow", reason="the analysis extra (pip install 'cpi-sim[analysis]') is not installed")


@pytest.mark.parametrize("name", ["run", "sweep", "summaries", "bridge_run", "bridge_sweep"])
def test_parquet_reloads_to_the_saved_numbers(result_dirs, tmp_path, name):
    saved = read(result_dirs[name])
    out = tmp_path / "t.parquet"
    assert execute(["export", str(saved.path), "--format", "parquet", "--out", str(out)]) == 0
    frame = pd.read_parquet(out)
    if isinstance(saved, SavedRun):
        assert list(frame.columns) == ["step", *sorted(k for k in saved.metrics if k != "step")]
        for column in frame.columns:
            np.testing.assert_array_equal(frame[column].to_numpy(), saved.metrics[column], err_msg=column)
        return
    if not saved.recorded:  # one summary row per point, as summary.json has it
        for i, row in enumerate(saved.rows):
            for field, value in row.items():
                cell = frame.loc[i, field]
                assert (value is None and np.isnan(cell)) or cell == value, (i, field)
        return
    assert list(frame.columns) == [*saved.keys, "seed", "step", *saved.metric_names()]
    with np.load(saved.path / "sweep.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    start = 0
    for i, row in enumerate(saved.rows):
        steps = saved.point_steps(i)
        mine = frame.iloc[start: start + len(steps)]
        start += len(steps)
        assert (mine[saved.keys[0]] == row[saved.keys[0]]).all() and (mine["seed"] == row["seed"]).all()
        np.testing.assert_array_equal(mine["step"].to_numpy(), steps)
        for metric in saved.metric_names():
            np.testing.assert_array_equal(mine[metric].to_numpy(), arrays[metric][i, : len(steps)], err_msg=metric)
    assert start == len(frame)


@pytest.mark.parametrize("name", ["run", "sweep", "summaries", "bridge_run", "bridge_sweep"])
def test_netcdf_reloads_to_the_saved_numbers(result_dirs, tmp_path, name):
    saved = read(result_dirs[name])
    out = tmp_path / "t.nc"
    assert execute(["export", str(saved.path), "--format", "netcdf", "--out", str(out)]) == 0
    with xr.open_dataset(out, engine="scipy") as reloaded:
        reloaded.load()
    expected = saved.to_xarray()
    assert set(reloaded.data_vars) == set(expected.data_vars) and dict(reloaded.sizes) == dict(expected.sizes)
    for variable in [*expected.data_vars, *expected.coords]:
        np.testing.assert_array_equal(reloaded[variable].values, expected[variable].values, err_msg=variable)
    assert reloaded.attrs["config_toml"] == (saved.path / "config.toml").read_text()
    if isinstance(saved, SavedRun):
        for metric, value in saved.metrics.items():
            np.testing.assert_array_equal(reloaded[metric].values, value, err_msg=metric)
        return
    assert json.loads(reloaded.attrs["swept_keys"]) == saved.keys
    with np.load(saved.path / "sweep.npz") as npz:  # every summary of sweep.npz, point by point
        for member in (m for m in npz.files if m.startswith("summary_")):
            values = reloaded[member.removeprefix("summary_")].values.reshape(-1)
            np.testing.assert_array_equal(values, npz[member], err_msg=member)


def test_a_binary_format_needs_out(result_dirs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert execute(["export", str(result_dirs["run"]), "--format", "parquet"]) == 2
    assert "give --out FILE.parquet" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_package_exits_2_naming_the_extra(result_dirs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    out = tmp_path / "t.parquet"
    assert execute(["export", str(result_dirs["sweep"]), "--format", "parquet", "--out", str(out)]) == 2
    assert "pip install 'cpi-sim[analysis]'" in capsys.readouterr().err and not out.exists()
