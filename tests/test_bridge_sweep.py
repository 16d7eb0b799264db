"""Bridge sweeps: a tiny grid equals the single runs (bit for bit one by one, to float32
rounding vmapped), each pretrained model is trained once per digest, the sweep directory's
files, and bad grids exit 2."""

import json

import numpy as np
import pytest

from cpi.bridge import pretrain, sweep
from cpi.bridge.run import run
from cpi.cli import execute

from .test_bridge_model import TINY, tiny

GRID = ["mixture.context_critical=0.25,0.5"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The tiny grid over 2 mixtures at seed 1, one by one and vmapped, with pretraining counted."""
    cache = tmp_path_factory.mktemp("cache")
    calls = []
    original = pretrain.pretrain

    def counted(config, vocab, progress=None):
        calls.append(config.train.seed)
        return original(config, vocab, progress)

    pretrain.pretrain = counted
    try:
        plain = sweep.run_sweep(tiny("train.seed=1"), GRID, out=tmp_path_factory.mktemp("plain"), cache_dir=cache,
                                vmap=False)
        vmapped = sweep.run_sweep(tiny("train.seed=1"), GRID, out=tmp_path_factory.mktemp("vmapped"), cache_dir=cache)
    finally:
        pretrain.pretrain = original
    return plain, vmapped, calls, cache


def test_pretraining_happens_once_per_digest(swept):
    plain, vmapped, calls, _ = swept
    assert calls == [1]  # one digest: trained once, then reused by the second point and the vmapped sweep
    assert [c.train.seed for c in plain.configs] == [1, 1]


def test_a_grid_point_equals_the_single_run(swept):
    plain, vmapped, _, cache = swept
    metrics, summary = run(tiny("mixture.context_critical=0.5", "train.seed=1"), cache_dir=cache)
    i = 1
    assert plain.points[i] == {"mixture.context_critical": 0.5} and plain.configs[i].train.seed == 1
    np.testing.assert_array_equal(plain.metrics["step"], metrics["step"])
    for name, values in {k: v for k, v in metrics.items() if k != "step"}.items():
        np.testing.assert_array_equal(plain.metrics[name][i, : len(values)], values, err_msg=name)
        np.testing.assert_allclose(vmapped.metrics[name][i, : len(values)], values, atol=2e-5, err_msg=name)
    assert json.dumps(plain.summaries[i], sort_keys=True) == json.dumps(summary, sort_keys=True)


def test_the_sweep_directory_holds_the_toys_files(swept):
    plain, _, _, _ = swept
    out = plain.out
    assert {p.name for p in out.iterdir()} >= {"sweep.json", "config.toml", "sweep.npz", "summary.csv",
                                               "summary.json", "runs"}
    with np.load(out / "sweep.npz") as archive:
        assert archive["reliance"].shape == (2, len(archive["step"]))
        np.testing.assert_array_equal(archive["summary_final_reliance"], [s["final_reliance"] for s in plain.summaries])
        np.testing.assert_array_equal(archive["mixture.context_critical"], [0.25, 0.5])
    rows = (out / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("mixture.context_critical,seed,initial_reliance") and len(rows) == 3
    assert len(list((out / "runs").iterdir())) == 2


def test_cli_sweep_reuses_saved_points_and_refuses_bad_grids(swept, tmp_path, capsys):
    plain, _, _, cache = swept
    sets = [arg for item in TINY for arg in ("--set", item)]
    assert execute(["bridge", *sets, "--set", "train.seed=1", "--grid", GRID[0], "--out", str(plain.out),
                    "--cache", str(cache), "--no-vmap"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert execute(["bridge", *sets, "--grid", "mixture.context_critical=0:2:3", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "mixture.context_critical" in err and "[0, 1]" in err
    assert execute(["bridge", *sets, "--grid", "transformer.layrs=1,2", "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_learning_rates_at_one_seed_finetune_as_one_chunk():
    """Points that differ only in train.lr share a chunk key (one vmapped finetuning); any
    other train key still separates them."""
    key = sweep._chunk_key(tiny("train.lr=0.01"))
    assert sweep._chunk_key(tiny("train.lr=0.02")) == key
    assert sweep._chunk_key(tiny("train.lr=0.01", "train.steps=11")) != key
    assert sweep._chunk_key(tiny("train.lr=0.01", "train.seed=1")) != key
