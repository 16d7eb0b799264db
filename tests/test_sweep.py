"""`cpi sweep`: grid specs, one vmapped computation per bucket, agreement with `run`,
results on disk and their reuse. (A little over 400 lines: one test per sweep behaviour,
sharing this file's small grids.)"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import cpi.sims.chunks as chunks
import cpi.sims.engine as engine
import cpi.sims.sweep as sweep
from cpi.sims import config as cfg
from cpi.core.errors import ConfigError
from cpi.sims.sweep import expand_grid, load_sweep, parse_spec, run_sweep
from cpi.commands import sweep as sweep_cli
from cpi.cli import execute as main
from cpi.sims.train import run
from tests.conftest import xla_flags_with

SUMMARY = ("initial_reliance", "peak_reliance", "peak_step", "final_reliance", "inversion")


def base(**values):
    return cfg.with_values(cfg.load(), {"train.steps": 50, **values})


STAGE = "jit(stage)"
"""The compilation `jnp.asarray` of an integer or bool NumPy array triggers (in `pack`, as in
`run`): a host-to-device copy, compiled once per shape; everything else is a real computation."""


@contextlib.contextmanager
def compilations():
    """The names of the functions XLA compiles in the block (jitted ones and eager ops)."""
    names = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            names.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@contextlib.contextmanager
def traces():
    """How often the engine's training scan (`engine._advance`, which the stacked chunk
    vmaps) is traced in the block: each trace of a chunk is one XLA compilation."""
    calls = []
    advance = engine._advance

    def counting(*args, **kwargs):
        calls.append(kwargs.get("steps"))
        return advance(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "_advance", counting)
        yield calls


def assert_matches_run(result, indices=None):
    """Every metric and the summary of each point equal `cpi.sims.train.run` at its config."""
    for i in range(len(result)) if indices is None else indices:
        expected = run(result.configs[i])
        got = result.point_metrics(i)
        assert set(got) == set(expected.metrics), i
        for key, values in expected.metrics.items():
            np.testing.assert_allclose(got[key], values, rtol=0, atol=1e-12, err_msg=f"point {i}: {key}")
        row = result.summaries[i]
        for key in SUMMARY:
            if isinstance(expected.summary[key], float):
                assert abs(row[key] - expected.summary[key]) <= 1e-12, (i, key)
            else:
                assert row[key] == expected.summary[key], (i, key)


# --------------------------------------------------------------------------------------------
# Grid specs


def test_ranges_are_inclusive_and_read_like_typed_values():
    assert parse_spec("mixture.context_critical=0:1:5").values == (0.0, 0.25, 0.5, 0.75, 1.0)
    rho = parse_spec("mixture.context_critical=0:1:41").values
    assert len(rho) == 41 and rho[0] == 0.0 and rho[-1] == 1.0
    assert rho[3] == 0.075 and rho[7] == 0.175 and rho[14] == 0.35  # not 0.07500000000000001
    assert parse_spec("train.lr = 0.5:0.5:1").values == (0.5,)
    assert parse_spec("train.lr=2:0.5:4").values == (2.0, 1.5, 1.0, 0.5)


def test_integer_keys_take_integral_ranges_and_lists():
    axis = parse_spec("mixture.n_train=10:20:3")
    assert axis.values == (10, 15, 20) and all(type(v) is int for v in axis.values)
    assert parse_spec("train.steps=10,20.0").values == (10, 20)


def test_lists_take_numbers_and_strings():
    assert parse_spec("train.lr=1,0.5,.25,2e-1").values == (1.0, 0.5, 0.25, 0.2)
    assert all(type(v) is float for v in parse_spec("train.lr=1,2").values)
    assert parse_spec("train.dtype=float64, float32").values == ("float64", "float32")
    assert parse_spec("train.dtype=\"float32\"").values == ("float32",)


def test_specs_form_a_product_with_seeds_innermost():
    grid = expand_grid(base(**{"train.seed": 5}),
                       ["mixture.context_critical=0.25,0.5", "train.lr=1:2:3"], seeds=2)
    assert len(grid) == 12 and grid.keys == ["mixture.context_critical", "train.lr"]
    assert [(p["mixture.context_critical"], p["train.lr"]) for p in grid.points][:6] == [
        (0.25, 1.0), (0.25, 1.0), (0.25, 1.5), (0.25, 1.5), (0.25, 2.0), (0.25, 2.0)]
    assert [c.train.seed for c in grid.configs] == [5, 6] * 6
    assert grid.configs[-1] == cfg.with_values(
        base(), {"mixture.context_critical": 0.5, "train.lr": 2.0, "train.seed": 6})
    assert len(expand_grid(base(), [])) == 1 and len(expand_grid(base(), [], seeds=3)) == 3


@pytest.mark.parametrize(
    "grid, seeds, words",
    [
        (["mixture.contxt_critical=0:1:3"], 1,
         ["mixture.contxt_critical=0:1:3", "did you mean 'mixture.context_critical'"]),
        (["lr=0.5,1"], 1, ["'lr=0.5,1'", "train.lr"]),
        (["mixture.context_critical"], 1, ["'mixture.context_critical'", "section.key="]),
        (["mixture.context_critical=0:1"], 1, ["mixture.context_critical=0:1", "start:stop:num"]),
        (["mixture.context_critical=0:1:3:4"], 1, ["0:1:3:4", "start:stop:num"]),
        (["mixture.context_critical=a:1:3"], 1, ["a:1:3", "start 'a'"]),
        (["mixture.context_critical=0:inf:3"], 1, ["0:inf:3", "stop 'inf'"]),
        (["mixture.context_critical=0:1:0"], 1, ["mixture.context_critical=0:1:0", "num '0'", ">= 1"]),
        (["mixture.context_critical=0:1:2.5"], 1, ["0:1:2.5", "num '2.5'", "integer"]),
        (["mixture.n_train=10:20:4"], 1, ["mixture.n_train=10:20:4", "integers", "13.33"]),
        (["train.steps=10,12.5"], 1, ["train.steps=10,12.5", "integers", "12.5"]),
        (["train.steps=10,many"], 1, ["train.steps=10,many", "'many'", "integer"]),
        (["mixture.context_critical=0:2:3"], 1, ["mixture.context_critical=0:2:3", "= 2.0", "out of range", "[0, 1]"]),
        (["train.lr=0,1"], 1, ["train.lr=0,1", "out of range", "> 0"]),
        (["train.dtype=float64,float16"], 1, ["train.dtype=float64,float16", "float16"]),
        (["train.dtype=0:1:2"], 1, ["train.dtype=0:1:2", "list"]),
        (["train.lr="], 1, ["'train.lr='", "empty"]),
        (["train.lr=1,,2"], 1, ["train.lr=1,,2", "empty"]),
        (["train.lr=1,nan"], 1, ["train.lr=1,nan", "not finite"]),
        (["train.lr=1,2", "mixture.n_test=5", "train.lr=3"], 1, ["train.lr=3", "already swept", "train.lr=1,2"]),
        (["train.seed=1,2"], 2, ["--seeds 2", "train.seed"]),
        ([], 0, ["--seeds", "0", ">= 1"]),
        (["mixture.context_critical=0.5:0.9:3", "mixture.counterfactual=0,0.4"], 1,
         ["mixture.context_critical=0.7", "mixture.counterfactual=0.4", "sum to at most 1",
          "--grid 'mixture.context_critical=0.5:0.9:3'"]),
        (["mixture.n_train=20,40"], 1,
         ["mixture.n_train=40", "world.n_subjects", "60", "--grid 'mixture.n_train=20,40'"]),
        ([], 10, ["--seeds 10", "train.seed", "4294967299", "4294967295"]),
    ],
)
def test_bad_specs_raise_config_error_naming_the_spec(grid, seeds, words):
    base_config = cfg.load(overrides=["train.seed=4294967290"] if seeds == 10 else [])
    with pytest.raises(ConfigError) as info:
        expand_grid(base_config, grid, seeds)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize(
    "args, words",
    [
        (["--grid", "mixture.context_critical=0:1:0"], ["num '0'"]),
        (["--grid", "mixture.context_critcal=0:1:3"], ["mixture.context_critical"]),
        (["--grid", "train.lr=1", "--grid", "train.lr=2"], ["already swept"]),
        (["--set", "train.lr=-1", "--grid", "train.steps=5"], ["train.lr", "> 0"]),
        (["--grid", "mixture.n_train=20,40"], ["world.n_subjects"]),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, words):
    out = tmp_path / "out"
    assert main(["sweep", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cpi sweep: error:")
    for word in words:
        assert word in err, (word, err)
    assert not out.exists()


def test_buckets_follow_the_built_worlds():
    """Everything that changes an array shape splits buckets, even through the world (filtering
    drops training examples); step sizes, knowledge and ρ alone do not."""
    grid = expand_grid(base(), ["mixture.filter=0,0.3", "mixture.context_critical=0.25,0.5",
                                "train.lr=0.5,1", "knowledge.delta_m=0.5,0.6"])
    groups = chunks.bucket_points(grid.configs)
    assert [len(g) for g in groups] == [8, 8]
    assert {grid.points[i]["mixture.filter"] for i in groups[1]} == {0.3}
    more = expand_grid(base(), ["train.steps=20,30", "train.dtype=float64,float32",
                                "mixture.n_aligned=0,10"])
    assert len(chunks.bucket_points(more.configs)) == 8


def _world_arrays(world) -> dict[str, np.ndarray]:
    """Every array and number of a built world, by name (points' fields as train.tokens, ...)."""
    arrays = {}
    for f in dataclasses.fields(world):
        value = getattr(world, f.name)
        if dataclasses.is_dataclass(value):
            arrays.update({f"{f.name}.{g.name}": np.asarray(getattr(value, g.name)) for g in dataclasses.fields(value)})
        elif value is not None:
            arrays[f.name] = np.asarray(value)
    return arrays


@pytest.mark.parametrize("values", [
    {},
    {"world.embeddings": "random", "world.dim": 48, "mixture.counterfactual": 0.1, "mixture.fact_recall": 0.2},
    {"world.n_relations": 2, "world.n_subjects": 60, "world.n_answers": 120, "mixture.filter": 0.3,
     "mixture.fact_recall": 0.25},
])
def test_points_whose_mixtures_round_to_the_same_counts_share_a_world_key_and_world(values):
    """Fractions reach the world only through the point counts they round to: ρ = 0.25 and
    0.26 of 20 training examples are both 5 C examples, so they have one key and the same world,
    array for array; 6 C examples, or another seed or step size, have another key."""
    one = cfg.with_values(base(), {**values, "mixture.context_critical": 0.25})
    same = cfg.with_values(one, {"mixture.context_critical": 0.26})
    assert cfg.group_counts(one.mixture) == cfg.group_counts(same.mixture)
    assert chunks.world_key(one) == chunks.world_key(same)
    a, b = _world_arrays(chunks.build_world(one)), _world_arrays(chunks.build_world(same))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for other in ({"mixture.context_critical": 0.3}, {"train.seed": 1}, {"train.lr": 0.5},
                  {"knowledge.delta_m": 0.61}, {"mixture.n_train": 21}):
        assert chunks.world_key(cfg.with_values(one, other)) != chunks.world_key(one), other


def test_distinct_points_keep_the_first_of_each_world_in_order():
    grid = expand_grid(base(), ["mixture.context_critical=0.25,0.26,0.3,0.24", "train.lr=0.5,1"])
    representatives, copies = chunks.distinct_points(grid.configs, list(range(len(grid))))
    assert representatives == [0, 1, 4, 5]  # seeds innermost: (ρ, lr) points 0..7
    assert copies == {2: 0, 3: 1, 6: 0, 7: 1}


def test_points_of_one_world_are_trained_once_and_equal_run(tmp_path, monkeypatch, capsys):
    """Four ρ of which three round to 5 of 20 points: two worlds trained, in one chunk, and
    every point, the copies included, equals `run` at its own config."""
    trained = []
    full_chunk = chunks.full_chunk

    def counting(configs, *args, **kwargs):
        trained.append([c.mixture.context_critical for c in configs])
        return full_chunk(configs, *args, **kwargs)

    monkeypatch.setattr(chunks, "full_chunk", counting)
    grid = ["mixture.context_critical=0.24,0.25,0.5,0.26"]
    result = run_sweep(base(), grid, out=tmp_path / "a")
    assert trained == [[0.24, 0.5]] and result.trained_points == 2 and result.computed_chunks == 1
    assert_matches_run(result)
    for key, values in result.metrics.items():
        if key != "step":
            np.testing.assert_array_equal(values[1], values[0], err_msg=key)
            np.testing.assert_array_equal(values[3], values[0], err_msg=key)
    again = load_sweep(tmp_path / "a")
    assert again.summaries == result.summaries
    assert main(["sweep", "--grid", grid[0], "--set", "train.steps=50", "--out", str(tmp_path / "b")]) == 0
    assert "4 points (2 distinct once the mixture is rounded to point counts, 2 copied)" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Agreement with `run`


@pytest.fixture(scope="module")
def rho_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("rho")
    with traces() as traced, compilations() as compiled:
        result = run_sweep(base(), ["mixture.context_critical=0:1:5"], out=out)
    return result, len(traced), [name for name in compiled if name != STAGE]


def test_sweep_equals_run_at_every_point(rho_sweep):
    result, traces, compiled = rho_sweep
    # One vmapped computation (none if this shape was compiled before in this process).
    assert traces <= 1 and compiled in ([], ["jit(_advance_stack)"])
    assert result.n_buckets == 1 and result.n_groups == 1 and len(result) == 5  # n_groups: the former name
    np.testing.assert_array_equal(result.coords["mixture.context_critical"], [0, 0.25, 0.5, 0.75, 1])
    assert_matches_run(result)
    assert result.summaries[2]["inversion"] is True and result.summaries[0]["inversion"] is False


def test_absent_groups_stay_nan(rho_sweep):
    result, _, _ = rho_sweep
    m = result.metrics
    assert np.all(np.isnan(m["loss_C"][0])) and np.all(np.isnan(m["neg_grad_theta_c_CS"][-1]))
    assert np.all(np.isnan(m["loss_CF"])) and np.all(np.isnan(m["loss_S"]))
    assert np.all(np.isfinite(m["loss_C"][1:])) and np.all(np.isfinite(m["reliance"]))
    assert all(row["nonfinite_step"] is None for row in result.summaries)


def test_saved_files(rho_sweep):
    result, _, _ = rho_sweep
    out = result.out
    assert {p.name for p in out.iterdir()} == {"config.toml", "groups", "summary.csv", "summary.json", "sweep.json",
                                               "sweep.npz"}
    assert cfg.load(out / "config.toml") == base()
    with np.load(out / "sweep.npz") as archive:
        arrays = {k: archive[k] for k in archive.files}
    assert arrays["mixture.context_critical"].shape == (5,) and arrays["seed"].tolist() == [0] * 5
    assert arrays["reliance"].shape == (5, 51) and arrays["step"].tolist() == list(range(51))
    assert arrays["steps"].tolist() == [50] * 5
    np.testing.assert_array_equal(arrays["u_theta_c"], result.metrics["u_theta_c"])
    lines = (out / "summary.csv").read_text().splitlines()
    assert lines[0] == ("mixture.context_critical,seed,initial_reliance,peak_reliance,peak_step,"
                        "final_reliance,inversion,nonfinite_step,achieved_delta_c,achieved_delta_m")
    assert len(lines) == 6 and lines[3].startswith("0.5,0,") and ",true," in lines[3]
    document = json.loads((out / "summary.json").read_text())
    assert document["grid"] == ["mixture.context_critical=0:1:5"] and document["seeds"] == 1
    assert document["points"][2]["peak_reliance"] == result.summaries[2]["peak_reliance"]
    assert document["points"][2]["achieved_delta_m"] == pytest.approx(0.6, abs=1e-12)  # the Lemma 3 table's δ_M
    again = load_sweep(out)
    assert again.summaries == result.summaries and again.configs == result.configs
    for key, values in result.metrics.items():
        np.testing.assert_array_equal(again.metrics[key], values)


# Compilation dominates the time of these tests, so they share shapes: most groups below are
# two points of the default world at 50 steps (the jit cache then serves them all).
PAIR = ["mixture.context_critical=0.25,0.5"]


def test_mixed_shapes_split_into_groups_and_equal_run(tmp_path):
    result = run_sweep(base(), ["mixture.n_train=16,20", *PAIR], out=tmp_path)
    assert result.n_buckets == 2 and result.computed_chunks == 2
    assert result.coords["mixture.n_train"].tolist() == [16, 16, 20, 20]
    assert result.coords["mixture.context_critical"].tolist() == [0.25, 0.5, 0.25, 0.5]
    assert_matches_run(result)


def test_different_steps_are_padded_with_nan(tmp_path):
    result = run_sweep(base(), ["train.steps=30,50", *PAIR], out=tmp_path)
    assert result.n_buckets == 2 and result.steps.tolist() == [30, 30, 50, 50]
    assert result.metrics["reliance"].shape == (4, 51) and result.metrics["step"].tolist() == list(range(51))
    assert np.all(np.isnan(result.metrics["reliance"][:2, 31:]))
    assert np.all(np.isfinite(result.metrics["reliance"][:2, :31]))
    assert_matches_run(result)
    with np.load(tmp_path / "sweep.npz") as archive:
        assert archive["steps"].tolist() == [30, 30, 50, 50]
        assert archive["train.steps"].tolist() == [30, 30, 50, 50]


def test_step_sizes_share_a_group_frozen_and_trained_values_split_and_equal_run(tmp_path):
    result = run_sweep(base(**{"mixture.fact_recall": 0.2}),
                       ["train.lr=0.5,2", "train.value_lr=0,0.3"], out=tmp_path)
    assert result.n_buckets == 2  # W_V frozen and W_V trained compile differently
    assert_matches_run(result)
    frozen = run_sweep(base(**{"mixture.fact_recall": 0.2}), ["train.lr=0.5,2"], out=tmp_path / "f")
    np.testing.assert_allclose(frozen.metrics["reliance"], result.metrics["reliance"][[0, 2]], atol=1e-12, rtol=0)


def test_dtypes_split_into_groups_and_float32_stays_close_to_run(tmp_path):
    result = run_sweep(base(), ["train.dtype=float64,float32", *PAIR], out=tmp_path)
    assert result.n_buckets == 2 and result.coords["train.dtype"].tolist() == ["float64"] * 2 + ["float32"] * 2
    assert_matches_run(result, [0, 1])
    for i in [2, 3]:
        single = run(result.configs[i])
        np.testing.assert_allclose(result.point_metrics(i)["reliance"], single.metrics["reliance"], atol=1e-6, rtol=0)
        assert result.summaries[i]["peak_step"] == single.summary["peak_step"]


def test_diverging_point_is_flagged_not_fatal(tmp_path):
    result = run_sweep(base(**{"mixture.fact_recall": 0.2}),
                       ["train.lr=0.5,2", "train.value_lr=0.1,1e30"], out=tmp_path)
    assert [row["nonfinite_step"] for row in result.summaries] == [None, 1, None, 1]
    assert "0.5,1e+30,0," in (tmp_path / "summary.csv").read_text()
    json.loads((tmp_path / "summary.json").read_text())  # still strict JSON: NaN written as null
    assert_matches_run(result, [0])


# --------------------------------------------------------------------------------------------
# Reuse of results on disk


def test_rerun_reuses_results_without_compiling_or_running(tmp_path, monkeypatch):
    grid = [*PAIR, "mixture.n_train=16,20"]
    first = run_sweep(base(), grid, out=tmp_path)
    assert first.computed_chunks == 2
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def refuse(*a, **k):
        raise AssertionError("a rerun with nothing new must not run anything")

    monkeypatch.setattr(chunks, "full_chunk", refuse)
    monkeypatch.setattr(chunks, "reduced_chunk", refuse)
    monkeypatch.setattr(chunks, "build_world", refuse)
    with compilations() as compiled:
        second = run_sweep(base(), grid, out=tmp_path)
    assert compiled == [] and second.computed_chunks == 0 and second.reused_chunks == 2
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files  # byte-identical
    assert second.summaries == first.summaries
    for key in first.metrics:
        np.testing.assert_array_equal(second.metrics[key], first.metrics[key])

    # Another grid in the same directory is refused; with force it computes only the groups
    # it does not share (the 50-step points of this one are the n_train = 20 points above)
    # and deletes the chunk it does not use.
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="holds another sweep"):
        run_sweep(base(), [*PAIR, "train.steps=30,50"], out=tmp_path)
    third = run_sweep(base(), [*PAIR, "train.steps=30,50"], out=tmp_path, force=True)
    assert third.computed_chunks == 1 and third.reused_chunks == 1
    assert len(list((tmp_path / "groups").iterdir())) == 2
    np.testing.assert_array_equal(third.metrics["reliance"][[1, 3]], first.metrics["reliance"][[1, 3]])


def test_a_damaged_group_file_is_recomputed(tmp_path):
    first = run_sweep(base(), PAIR, out=tmp_path)
    (group,) = (tmp_path / "groups").iterdir()
    group.write_bytes(b"not an npz")
    second = run_sweep(base(), PAIR, out=tmp_path)
    assert second.computed_chunks == 1
    np.testing.assert_array_equal(second.metrics["reliance"], first.metrics["reliance"])


# --------------------------------------------------------------------------------------------
# The command


def test_cli_sweep_prints_a_table_and_writes_under_sweeps(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--set", "train.steps=50", "--grid", "mixture.context_critical=0.5", "--seeds", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    (out,) = (tmp_path / "sweeps").iterdir()
    assert len(out.name) == 16 and str(out.relative_to(tmp_path)) in printed
    assert out.name == sweep.sweep_digest(cfg.load(overrides=["train.steps=50"]),
                                          ["mixture.context_critical=0.5"], 2)
    assert "2 points in 1 bucket(s), 1 chunk(s) (1 computed, 0 reused)" in printed
    rows = json.loads((out / "summary.json").read_text())["points"]
    assert [row["seed"] for row in rows] == [0, 1]
    assert f"{rows[1]['peak_reliance']:.4f}" in printed and "seed" in printed
    assert main(argv) == 0
    assert "already holds this sweep, complete: nothing computed" in capsys.readouterr().out


def test_cli_big_sweeps_print_a_compact_table(rho_sweep, capsys, monkeypatch):
    result, _, _ = rho_sweep
    monkeypatch.setattr(sweep_cli, "FULL_TABLE_ROWS", 2)
    monkeypatch.setattr(sweep_cli, "TAIL_ROWS", 1)
    assert main(["sweep", "--set", "train.steps=50", "--grid", "mixture.context_critical=0:1:5",
                 "--out", str(result.out)]) == 0
    printed = capsys.readouterr().out
    assert "5 points" in printed and "3 more points (see summary.csv)" in printed
    assert "inversion at 1 of 5 points" in printed


@pytest.mark.slow
def test_relations_and_filtering_split_into_groups_and_equal_run(tmp_path):
    big = base(**{"train.steps": 20, "world.n_subjects": 60, "world.n_answers": 100})
    result = run_sweep(big, ["world.n_relations=1,2", "mixture.filter=0,0.3"], out=tmp_path)
    assert result.n_buckets == 4
    assert np.all(np.isnan(result.metrics["reliance_r2"][:2]))
    assert np.all(np.isfinite(result.metrics["reliance_r2"][2:]))
    assert_matches_run(result)


def test_sharded_over_several_devices_equals_run(tmp_path):
    """Three points on two (forced host) devices, as `cpi` shards a sweep over the cores of a
    CPU: padded to four, sharded, trimmed back; the full engine and the reduced one (whose
    descent splits its slices of systems over the devices) both equal single runs."""
    code = f"""
import jax, numpy as np
assert len(jax.devices()) == 2
from cpi.sims import config as cfg
from cpi.sims.sweep import run_sweep
from cpi.sims.train import run
base = cfg.with_values(cfg.load(), {{"train.steps": 20}})
full = run_sweep(base, ["mixture.context_critical=0.25,0.5,0.75"], out={str(tmp_path / "full")!r})
reduced = run_sweep(base, ["mixture.context_critical=0.25,0.5,0.75"], out={str(tmp_path / "reduced")!r},
                    engine="reduced")
for i, config in enumerate(full.configs):
    single = run(config).metrics["reliance"]
    np.testing.assert_allclose(full.metrics["reliance"][i], single, atol=1e-12, rtol=0)
    np.testing.assert_allclose(reduced.metrics["reliance"][i], single, atol=1e-10, rtol=0)
print("ok", len(full), len(reduced))
"""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": xla_flags_with("--xla_force_host_platform_device_count=2")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ok 3 3" in done.stdout


# --------------------------------------------------------------------------------------------
# Experiment scale


@pytest.mark.slow
def test_41_point_rho_sweep_is_one_compiled_call_and_equals_run(tmp_path):
    jax.clear_caches()
    start = time.perf_counter()
    with traces() as traced, compilations() as compiled:
        result = run_sweep(cfg.load(), ["mixture.context_critical=0:1:41"], out=tmp_path)
    cold = time.perf_counter() - start
    assert len(traced) == 1
    assert [name for name in compiled if name != STAGE] == ["jit(_advance_stack)"], compiled
    assert len(result) == 41 and result.n_buckets == 1 and result.metrics["reliance"].shape == (41, 301)
    assert_matches_run(result, [0, 7, 20, 33, 40])
    assert result.summaries[20]["peak_step"] == 32 and result.summaries[20]["inversion"] is True
    print(f"41-point sweep, 300 steps: {cold:.2f} s cold")
