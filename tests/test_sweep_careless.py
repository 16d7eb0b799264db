"""`cpi sweep` as a careless user drives it: sweeps of adam and adamw (the generic d×d engine),
the size of what a large sweep records said before it starts (and refused when the disk
cannot hold it), a cheap rerun of a finished sweep, a sweep of one point, and which stream
each line goes to. Tiny worlds and few steps keep every sweep here under a second once
compiled."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple

import numpy as np
import pytest

import sims.chunks as chunks
import sims.sweep as sweep
from cpi.cli import execute as main
from sims import config as cfg
from sims.errors import ConfigError
from sims.sweep import load_sweep, run_sweep
from sims.train import run

TINY = {"train.steps": 12, "world.n_subjects": 12, "world.n_answers": 14, "mixture.n_train": 8,
        "mixture.n_test": 2, "mixture.n_aligned": 2}
TINY_SET = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]


def tiny(**values):
    return cfg.with_values(cfg.load(), {**TINY, **values})


def assert_rows_equal_run(result, record_every=1):
    """Every point's summary row, and its metrics unless the sweep is summaries-only, equal
    `sims.train.run` at the point's config (to 1e-12: gd points are computed vmapped)."""
    for i, config in enumerate(result.configs):
        expected = run(config, record_every=record_every)
        row = result.summaries[i]
        for key in sweep.SUMMARY_FIELDS:
            if key == "nonfinite_step":
                assert row[key] is None, i
            elif isinstance(row[key], float):
                assert abs(row[key] - expected.summary[key]) <= 1e-12, (i, key)
            else:
                assert row[key] == expected.summary[key], (i, key)
        if result.metrics:
            got = result.point_metrics(i)
            assert set(got) == set(expected.metrics), i
            for key, values in expected.metrics.items():
                np.testing.assert_allclose(got[key], values, rtol=0, atol=1e-12, err_msg=f"point {i}: {key}")


# --------------------------------------------------------------------------------------------
# adam and adamw: the generic engine's chunks


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_a_generic_engine_chunk_has_the_fields_and_shapes_of_a_full_engine_chunk(optimizer):
    """The chunk of a point trained by adam has the keys, shapes and dtypes of one trained by
    gd: the summary fields as (n,) arrays, every metric as (n, recorded steps)."""
    configs = [tiny(**{"train.optimizer": optimizer, "train.lr": lr}) for lr in (0.05, 0.1)]
    reference = chunks.full_chunk([tiny(), tiny()], 2, 5, True)
    got = chunks.full_chunk(configs, 2, 5, True)
    assert {k: (v.shape, v.dtype) for k, v in got.items()} == {k: (v.shape, v.dtype) for k, v in reference.items()}
    summaries_only = chunks.full_chunk(configs, 2, 5, False)
    assert set(summaries_only) == set(sweep.SUMMARY_FIELDS)
    assert all(v.shape == (2,) for v in summaries_only.values())


def test_the_generic_engine_reports_progress_over_the_whole_chunk():
    done = []
    chunks.full_chunk([tiny(**{"train.optimizer": "adam"})] * 3, 3, 1, False, done.append)
    assert done == [12, 24, 36]


@pytest.mark.parametrize("optimizer, options", [
    ("adam", {}),
    ("adamw", {}),
    ("adam", {"summaries_only": True}),
    ("adam", {"record_every": 5}),
])
def test_adam_sweeps_finish_and_equal_run(tmp_path, optimizer, options):
    result = run_sweep(tiny(**{"train.optimizer": optimizer}), ["train.lr=0.05,0.1"], out=tmp_path, **options)
    assert (tmp_path / "sweep.npz").exists() and (tmp_path / "summary.json").exists()
    assert bool(result.metrics) != bool(options.get("summaries_only"))
    assert_rows_equal_run(result, options.get("record_every", 1))
    again = load_sweep(tmp_path)
    assert again.summaries == result.summaries


def test_a_grid_over_the_optimizers_mixes_both_engines(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", *TINY_SET, "--grid", "train.optimizer=gd,adam", "--grid", "train.lr=0.05,0.1",
                 "--out", str(out)]) == 0
    result = load_sweep(out)
    assert [r["train.optimizer"] for r in result.summaries] == ["gd", "gd", "adam", "adam"]
    assert_rows_equal_run(result)
    assert "inversion at" in capsys.readouterr().out


@pytest.mark.parametrize("flags", [[], ["--summaries-only"], ["--record-every", "10"]])
def test_cli_adam_sweep_exits_0_and_writes_the_sweep(tmp_path, capsys, flags):
    out = tmp_path / "s"
    assert main(["sweep", *TINY_SET, "--set", "train.optimizer=adam", "--grid", "train.lr=0.05,0.1",
                 *flags, "--out", str(out)]) == 0
    assert (out / "sweep.npz").exists()
    rows = json.loads((out / "summary.json").read_text())["points"]
    assert [row["train.lr"] for row in rows] == [0.05, 0.1]
