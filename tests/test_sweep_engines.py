"""Sweeps beyond one vmapped call: the reduced engine against the full one, recording
strides and summaries only, chunks saved as they finish, memory estimates, and one sweep
over two processes (jax.distributed on 127.0.0.1, gloo collectives) against one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cpi.sims.chunks as chunks
import cpi.sims.sweep as sweep
from cpi.sims import budget
from cpi.sims import config as cfg
from cpi.cli import execute as main
from cpi.sims.sweep import load_sweep, run_sweep
from cpi.sims.train import run
from tests.conftest import xla_flags_with

ROOT = Path(__file__).parent.parent


def base(**values):
    return cfg.with_values(cfg.load(), {"train.steps": 60, **values})


REDUCED_GRIDS = {
    "rho x delta_m": (base(), ["mixture.context_critical=0:1:6", "knowledge.delta_m=0.5,0.8"]),
    "CF, S and filtering": (base(**{"mixture.fact_recall": 0.2, "mixture.fact_recall_seen": 0.5}),
                            ["mixture.counterfactual=0,0.1", "mixture.filter=0,0.3"]),
    "lr, delta_c and vocabulary": (base(**{"world.n_subjects": 36, "world.n_answers": 60, "mixture.n_test": 4}),
                                   ["train.lr=0.5,3", "knowledge.delta_c=0.1,0.3", "knowledge.o_r=0.2,0.9"]),
}


@pytest.mark.parametrize("name", list(REDUCED_GRIDS))
def test_reduced_engine_equals_the_full_engine(tmp_path, name):
    config, grid = REDUCED_GRIDS[name]
    full = run_sweep(config, grid, out=tmp_path / "full")
    reduced = run_sweep(config, grid, out=tmp_path / "reduced", engine="reduced")
    assert sorted(full.metrics) == sorted(reduced.metrics)
    for key, values in full.metrics.items():
        np.testing.assert_allclose(reduced.metrics[key], values, rtol=0, atol=1e-10, err_msg=key)
    for mine, theirs in zip(reduced.summaries, full.summaries):
        assert mine["peak_step"] == theirs["peak_step"] and mine["inversion"] == theirs["inversion"]
        assert mine["nonfinite_step"] is None and theirs["nonfinite_step"] is None
        for key in ("initial_reliance", "peak_reliance", "final_reliance", "achieved_delta_c", "achieved_delta_m"):
            assert abs(mine[key] - theirs[key]) < 1e-10


def test_reduced_engine_strides_and_summaries_only_keep_every_steps_summary(tmp_path):
    """The reduced engine folds the summary inside the theory's scan: recording a stride or
    nothing changes no summary, and the strided metrics are the every-step ones."""
    config, grid = REDUCED_GRIDS["rho x delta_m"]
    every = run_sweep(config, grid, out=tmp_path / "every", engine="reduced")
    strided = run_sweep(config, grid, out=tmp_path / "strided", engine="reduced", record_every=7)
    only = run_sweep(config, grid, out=tmp_path / "only", engine="reduced", summaries_only=True)
    full = run_sweep(config, grid, out=tmp_path / "full", summaries_only=True)
    assert strided.summaries == every.summaries == only.summaries and only.metrics == {}
    assert {row["inversion"] for row in only.summaries} == {True, False}
    for mine, theirs in zip(only.summaries, full.summaries):
        assert mine["peak_step"] == theirs["peak_step"] and mine["inversion"] == theirs["inversion"]
        assert abs(mine["final_reliance"] - theirs["final_reliance"]) < 1e-10
    columns = [*range(0, 60, 7), 60]
    assert strided.metrics["step"].tolist() == columns
    for key, values in every.metrics.items():
        if key != "step":  # (points, steps + 1)
            np.testing.assert_array_equal(strided.metrics[key], values[:, columns], err_msg=key)


@pytest.mark.parametrize("setting, words", [
    ("train.value_lr=0.5", ["train.value_lr = 0.5", "W_V frozen"]),
    ("world.n_relations=2", ["world.n_relations = 2", "one relation"]),
    ("train.dtype=float32", ["float32", "float64"]),
])
def test_reduced_engine_refuses_what_it_cannot_do_exactly(tmp_path, capsys, setting, words):
    out = tmp_path / "out"
    args = ["sweep", "--engine", "reduced", "--set", "train.steps=10", "--set", "world.n_subjects=60",
            "--set", "world.n_answers=120", "--grid", f"{setting.split('=')[0]}={setting.split('=')[1]}",
            "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--engine reduced cannot compute" in err and "--engine fast" in err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists()


def test_summaries_only_and_strides_keep_the_summaries_of_every_step(tmp_path):
    grid = ["mixture.context_critical=0.25,0.5,0.75"]
    every = run_sweep(base(), grid, out=tmp_path / "every")
    strided = run_sweep(base(), grid, out=tmp_path / "strided", record_every=7)
    only = run_sweep(base(), grid, out=tmp_path / "only", summaries_only=True)
    assert strided.summaries == every.summaries == only.summaries
    assert strided.metrics["step"].tolist() == [*range(0, 60, 7), 60]
    for i, config in enumerate(strided.configs):
        single = run(config, record_every=7)
        for key, values in single.metrics.items():
            np.testing.assert_allclose(strided.point_metrics(i)[key], values, rtol=0, atol=1e-12, err_msg=key)
    with np.load(tmp_path / "only" / "sweep.npz") as archive:
        assert "reliance" not in archive.files and "summary_peak_reliance" in archive.files
    again = load_sweep(tmp_path / "only")
    assert again.summaries == only.summaries and again.metrics == {}


def test_an_interrupted_sweep_keeps_its_finished_chunks(tmp_path, monkeypatch):
    grid = ["mixture.context_critical=0.1:0.9:5"]
    reference = run_sweep(base(), grid, out=tmp_path / "reference")
    monkeypatch.setattr(chunks, "MAX_CHUNK_POINTS", 2)  # 3 chunks: 2 + 2 + 1 points
    real, calls = chunks.full_chunk, []

    def interrupted(configs, *args, **kwargs):
        calls.append(len(configs))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(configs, *args, **kwargs)

    monkeypatch.setattr(chunks, "full_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(base(), grid, out=tmp_path / "sweep")
    assert len(list((tmp_path / "sweep" / "groups").iterdir())) == 1
    assert not (tmp_path / "sweep" / "summary.json").exists()
    calls.clear()
    monkeypatch.setattr(chunks, "full_chunk",
                        lambda configs, *a, **k: calls.append(len(configs)) or real(configs, *a, **k))
    resumed = run_sweep(base(), grid, out=tmp_path / "sweep")
    assert calls == [2, 1] and resumed.computed_chunks == 2 and resumed.reused_chunks == 1
    for mine, theirs in zip(resumed.summaries, reference.summaries):  # chunks of 2 vs one of 5
        assert mine["peak_step"] == theirs["peak_step"]
        assert abs(mine["final_reliance"] - theirs["final_reliance"]) < 1e-12
    np.testing.assert_allclose(resumed.metrics["reliance"], reference.metrics["reliance"], rtol=0, atol=1e-12)


def test_a_chunk_that_cannot_be_written_fails_the_sweep_and_keeps_the_others(tmp_path, monkeypatch):
    """Chunks are written in a background thread (`cpi.sims.sweep.ChunkWriter`): a failed write
    still fails the sweep, with its own error, at the next chunk, and leaves no sweep.npz or
    summary.json; the chunk written before it is on disk and a rerun computes the others."""
    grid = ["mixture.context_critical=0.1:0.9:5"]
    monkeypatch.setattr(chunks, "MAX_CHUNK_POINTS", 2)  # 3 chunks: 2 + 2 + 1 points
    real, writes = sweep.write_npz_atomic, []

    def second_chunk_fails(path, arrays):
        if path.parent.name == "groups":
            writes.append(path)
            if len(writes) == 2:
                raise OSError(28, "No space left on device")
        return real(path, arrays)

    monkeypatch.setattr(sweep, "write_npz_atomic", second_chunk_fails)
    with pytest.raises(OSError, match="No space left"):
        run_sweep(base(), grid, out=tmp_path)
    assert len(writes) == 2  # the third chunk is not saved after the second failed
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / "sweep.npz").exists()
    assert [p.name for p in (tmp_path / "groups").iterdir()] == [writes[0].name]
    monkeypatch.setattr(sweep, "write_npz_atomic", real)
    resumed = run_sweep(base(), grid, out=tmp_path)
    assert resumed.computed_chunks == 2 and resumed.reused_chunks == 1


def test_runs_and_sweeps_that_would_not_fit_in_memory_are_refused(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["run", "--set", "train.steps=1000000000", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "train.steps = 1000000000" in err and "--record-every" in err and "GiB" in err
    assert not out.exists()
    monkeypatch.setattr(budget, "available_memory", lambda: 10 * 2**20)
    import cpi.sims.sweep_checks as sweep_module

    monkeypatch.setattr(sweep_module, "available_memory", lambda: 10 * 2**20)
    out = tmp_path / "sweep"
    assert main(["sweep", "--grid", "mixture.context_critical=0:1:101", "--set", "train.steps=2000",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "101 points" in err and "--summaries-only" in err and "MiB" in err
    assert not out.exists()


@pytest.mark.parametrize("args, words", [
    (["--record-every", "0"], ["--record-every 0", ">= 1"]),
    (["--num-processes", "2", "--process-id", "2", "--coordinator", "127.0.0.1:5000"], ["--process-id 2", "[0, 1]"]),
    (["--num-processes", "2"], ["go together"]),
    (["--coordinator", "nohost", "--num-processes", "2", "--process-id", "0"], ["HOST:PORT"]),
])
def test_bad_sweep_flags_exit_2_and_write_nothing(tmp_path, capsys, args, words):
    out = tmp_path / "out"
    assert main(["sweep", "--set", "train.steps=10", "--grid", "mixture.context_critical=0.5", *args,
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PROCESS = """
import sys
import cpi.sims.chunks as chunks
chunks.MAX_CHUNK_POINTS = 2
from cpi.cli import execute as main
sys.exit(main(sys.argv[1:]))
"""


def _env():
    """One host device per process (the test configuration's XLA flags kept)."""
    return {**os.environ, "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": xla_flags_with("--xla_force_host_platform_device_count=1")}


def test_an_unreachable_coordinator_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    args = ["sweep", "--set", "train.steps=10", "--grid", "mixture.context_critical=0.5", "--out", str(out),
            "--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2", "--process-id", "1",
            "--join-timeout", "3"]
    done = subprocess.run([sys.executable, "-c", PROCESS, *args], env=_env(), capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "cannot join" in done.stderr and "127.0.0.1" in done.stderr
    assert not out.exists()


def test_two_processes_give_the_one_process_sweep(tmp_path):
    """Eight points of two buckets, three distinct worlds in each (ρ = 0.3 and 0.31 round
    to the same counts), chunks of two points: the chunks are dealt over two processes on
    127.0.0.1, gathered with gloo, and process 0 alone writes, copies included."""
    grid = ["mixture.n_train=16,20", "mixture.context_critical=0.1,0.3,0.31,0.5"]
    args = ["sweep", "--set", "train.steps=30", *(a for spec in grid for a in ("--grid", spec)),
            "--out", str(tmp_path / "two")]
    port = _free_port()
    procs = [
        subprocess.Popen([sys.executable, "-c", PROCESS, *args, "--coordinator", f"127.0.0.1:{port}",
                          "--num-processes", "2", "--process-id", str(i)],
                         env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr
    assert "process 1 of 2 done" in outputs[1][1] and "wrote" in outputs[0][0]
    two = load_sweep(tmp_path / "two")
    one = run_sweep(cfg.with_values(cfg.load(), {"train.steps": 30}), grid, out=tmp_path / "one")
    for mine, theirs in zip(two.summaries, one.summaries):
        assert mine["peak_step"] == theirs["peak_step"] and mine["inversion"] == theirs["inversion"]
        for key in ("initial_reliance", "peak_reliance", "final_reliance"):
            assert abs(mine[key] - theirs[key]) < 1e-12
    for key, values in one.metrics.items():
        np.testing.assert_allclose(two.metrics[key], values, rtol=0, atol=1e-12, err_msg=key)
    assert len(list((tmp_path / "two" / "groups").iterdir())) == 4  # per bucket: 2 + 1 points
    assert one.trained_points == 6
    np.testing.assert_array_equal(two.metrics["reliance"][[2, 6]], two.metrics["reliance"][[1, 5]])
