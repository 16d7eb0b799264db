"""`cpi sweep` as a careless user drives it: sweeps of adam and adamw (the generic d×d engine),
a cheap rerun of a finished sweep, Ctrl-C during a sweep, seeds that cannot matter, the size of
what a large sweep records said before it starts (and refused when the disk cannot hold it), a
sweep of one point, and which stream each line goes to. Tiny worlds and few steps keep every
sweep here under a second once compiled."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple

import numpy as np
import pytest

import cpi.sims.chunks as chunks
import cpi.sims.sweep as sweep
import cpi.sims.sweep_checks as sweep_checks
from cpi.cli import execute as main
from cpi.sims import config as cfg
from cpi.core.errors import ConfigError
from cpi.sims.results import write_npz_atomic
from cpi.sims.sweep import load_sweep, run_sweep

from .interrupt import interrupt_after
from cpi.sims.train import run

TINY = {"train.steps": 12, "world.n_subjects": 12, "world.n_answers": 14, "mixture.n_train": 8,
        "mixture.n_test": 2, "mixture.n_aligned": 2}
TINY_SET = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
PAIR = ["--grid", "train.lr=0.5,1"]


def tiny(**values):
    return cfg.with_values(cfg.load(), {**TINY, **values})


def assert_rows_equal_run(result, record_every=1):
    """Every point's summary row, and its metrics unless the sweep is summaries-only, equal
    `cpi.sims.train.run` at the point's config (to 1e-12: gd points are computed vmapped)."""
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


def test_a_directory_left_by_a_crashed_adam_sweep_is_finished_by_a_rerun(tmp_path, capsys):
    """What the crash left: sweep.json, config.toml and chunks holding each point's extra
    summary fields (first_peak_*) beside the metrics, no sweep.npz, no summary.json. Those
    chunks are not of the sweep's format: the rerun computes them again and finishes."""
    out = tmp_path / "s"
    argv = ["sweep", *TINY_SET, "--set", "train.optimizer=adam", *PAIR, "--out", str(out)]
    assert main(argv) == 0
    (chunk,) = (out / "groups").iterdir()
    with np.load(chunk) as archive:
        values = {k: archive[k] for k in archive.files}
    write_npz_atomic(chunk, {**values, "first_peak_reliance": values["peak_reliance"]})
    (out / "sweep.npz").unlink()
    (out / "summary.json").unlink()
    capsys.readouterr()
    assert main(argv) == 0
    assert "(1 computed, 0 reused)" in capsys.readouterr().out
    assert load_sweep(out).summaries[1]["train.lr"] == 1.0


@pytest.mark.parametrize("flags", [[], ["--summaries-only"], ["--record-every", "10"]])
def test_cli_adam_sweep_exits_0_and_writes_the_sweep(tmp_path, capsys, flags):
    out = tmp_path / "s"
    assert main(["sweep", *TINY_SET, "--set", "train.optimizer=adam", "--grid", "train.lr=0.05,0.1",
                 *flags, "--out", str(out)]) == 0
    assert (out / "sweep.npz").exists()
    rows = json.loads((out / "summary.json").read_text())["points"]
    assert [row["train.lr"] for row in rows] == [0.05, 0.1]


# --------------------------------------------------------------------------------------------
# A finished sweep's rerun



def printed_table(out: str) -> str:
    """The lines of the printed table (from the inversion count to the last row)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("context reliance M_C"))
    end = next(i for i, line in enumerate(lines) if line.startswith(("wrote ", "results in ")))
    return "\n".join(lines[start:end])


def test_rerunning_a_finished_sweep_reads_neither_chunks_nor_sweep_npz(tmp_path, capsys, monkeypatch):
    out = tmp_path / "s"
    argv = ["sweep", *TINY_SET, *PAIR, "--out", str(out)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    for chunk in (out / "groups").iterdir():
        chunk.write_bytes(b"damaged")  # were the chunks read, they would be recomputed
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def refuse(*args, **kwargs):
        raise AssertionError("a finished sweep's rerun must not load or compute anything")

    monkeypatch.setattr(np, "load", refuse)
    monkeypatch.setattr(sweep, "_load_chunk", refuse)
    monkeypatch.setattr(chunks, "full_chunk", refuse)
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert f"{out} already holds this sweep, complete: nothing computed or written" in second
    assert printed_table(second) == printed_table(first)
    assert "inversion at" in printed_table(second) and "0.5" in printed_table(second)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files


@pytest.mark.parametrize("damage", ["summary.json", "sweep.npz", "truncate sweep.npz"])
def test_a_sweep_missing_its_results_is_not_taken_for_finished(tmp_path, capsys, damage):
    """Without summary.json or a readable sweep.npz the rerun goes through the chunks (reused,
    nothing computed) and writes the results again."""
    out = tmp_path / "s"
    argv = ["sweep", *TINY_SET, *PAIR, "--out", str(out)]
    assert main(argv) == 0
    expected = (out / "sweep.npz").read_bytes()
    if damage.startswith("truncate"):
        (out / "sweep.npz").write_bytes(expected[: len(expected) // 2])
    else:
        (out / damage).unlink()
    capsys.readouterr()
    assert main(argv) == 0
    assert "(0 computed, 1 reused)" in capsys.readouterr().out
    assert (out / "sweep.npz").read_bytes() == expected and (out / "summary.json").exists()


# --------------------------------------------------------------------------------------------
# Ctrl-C


def test_ctrl_c_during_a_sweep_stops_at_once_and_says_what_was_kept(tmp_path):
    out = tmp_path / "sweep"
    # two buckets: a 10-step chunk that finishes at once, then one that would take minutes
    argv = ["sweep", "--grid", "train.steps=10,5000000", "--summaries-only", "--out", str(out)]
    status, _, stderr, waited = interrupt_after(argv, out, "groups/*.npz", settle=1.0)  # the long chunk runs
    assert status == 130, stderr
    assert waited < 5, waited
    assert "Traceback" not in stderr
    assert f"1 of 2 chunk(s) of this sweep are saved under {out}/groups" in stderr
    assert "rerun the same command" in stderr
    assert not (out / "summary.json").exists()


# --------------------------------------------------------------------------------------------
# Seeds that cannot matter

FAST = ["--set", "train.steps=10"]


def test_sweeping_seeds_warns_once_that_they_cannot_matter(tmp_path, capsys):
    assert main(["sweep", *FAST, "--grid", "train.lr=1", "--seeds", "2", "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert err.count("every seed gives the same numbers") == 1
    assert main(["sweep", *FAST, "--grid", "train.lr=1", "--out", str(tmp_path / "t")]) == 0
    assert "seed" not in capsys.readouterr().err


def test_the_seed_note_is_in_the_help_and_the_keys(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    assert "every seed gives the same numbers" in " ".join(capsys.readouterr().out.split())
    assert "every seed gives the same numbers" in cfg.KEYS["train.seed"].meaning


def test_every_seed_gives_the_same_numbers_under_the_paper_embeddings():
    """What the seed note says: under the paper's embeddings the seed only relabels tokens, so
    each point of a sweep over seeds has the same metrics at every seed; with random embeddings
    (where the seed draws the world) it does not."""
    result = run_sweep(tiny(), ["train.lr=0.5,1"], seeds=2)
    assert [c.train.seed for c in result.configs] == [0, 1, 0, 1]
    for first in (0, 2):
        seed_0, seed_1 = result.point_metrics(first), result.point_metrics(first + 1)
        for key, values in seed_0.items():
            np.testing.assert_allclose(seed_1[key], values, rtol=0, atol=1e-12, err_msg=key)
    random = run_sweep(tiny(**{"world.embeddings": "random", "world.dim": 40}), seeds=2)
    assert np.abs(random.point_metrics(0)["reliance"] - random.point_metrics(1)["reliance"]).max() > 1e-3


# --------------------------------------------------------------------------------------------
# The size of what a sweep records


def test_a_large_sweep_says_its_size_and_a_stride_that_fits_before_computing(tmp_path, capsys, monkeypatch):
    expanded = sweep.check_sweep(tiny(), ["train.lr=0.5,1"])
    sizes = sweep.record_sizes(expanded, 1, True)
    limit = sizes.disk // 2  # about half: a stride of 5 of the 12 steps records 4 of 13 steps
    assert sweep.fitting_record_every(expanded, 1, lambda s: s.disk <= limit) == 5
    assert sweep.record_sizes(expanded, 5, True).disk <= limit < sweep.record_sizes(expanded, 2, True).disk
    monkeypatch.setattr(sweep_checks, "SIZE_NOTE_BYTES", limit)
    assert main(["sweep", *TINY_SET, *PAIR, "--out", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    (note,) = [line for line in captured.err.splitlines() if "cpi sweep: note:" in line]
    assert f"about {sweep.human_bytes(sizes.disk)} on disk" in note and "of memory" in note
    assert "--record-every 5" in note and "--summaries-only" in note
    assert "note" not in captured.out
    for quiet in (["--record-every", "5"], ["--summaries-only"]):
        assert main(["sweep", *TINY_SET, *PAIR, *quiet, "--out", str(tmp_path / quiet[0][2:])]) == 0
        assert "note:" not in capsys.readouterr().err


def test_the_size_of_a_real_sweep_is_about_what_it_writes(tmp_path):
    """The disk estimate is the bytes of the arrays in groups/ and sweep.npz (of distinct
    points), short of the archives' headers only."""
    result = run_sweep(tiny(**{"train.steps": 200}), ["train.lr=0.5,1"], out=tmp_path)
    written = sum(p.stat().st_size for p in [tmp_path / "sweep.npz", *(tmp_path / "groups").iterdir()])
    estimate = sweep.record_sizes(result.grid, 1, True).disk
    assert estimate <= written <= 1.2 * estimate


Usage = namedtuple("Usage", "total used free")


def test_a_sweep_larger_than_the_free_disk_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    expanded = sweep.check_sweep(tiny(), ["train.lr=0.5,1"])
    free = sweep.record_sizes(expanded, 1, True).disk // 2
    seen = []

    def disk_usage(path):
        seen.append(path)
        return Usage(10 * free, 9 * free, free)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    out = tmp_path / "new" / "s"
    assert main(["sweep", *TINY_SET, *PAIR, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and f"{sweep.human_bytes(free)} free" in err and "--record-every 5" in err
    assert "Traceback" not in err and not (tmp_path / "new").exists()
    assert seen and seen[-1] == tmp_path  # the nearest directory that exists
    with pytest.raises(ConfigError, match="free on its file system"):
        run_sweep(tiny(), ["train.lr=0.5,1"], out=out)
    assert not (tmp_path / "new").exists()
    assert main(["sweep", *TINY_SET, *PAIR, "--summaries-only", "--out", str(out)]) == 0  # records no metrics


# --------------------------------------------------------------------------------------------
# What `cpi sweep` says, and where


def test_a_sweep_without_a_grid_says_it_has_one_point(tmp_path, capsys):
    assert main(["sweep", *TINY_SET, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "one point, the base config" in err and "`cpi run` trains one config" in err and "--grid" in err
    for argv in ([*PAIR], ["--seeds", "2"]):
        assert main(["sweep", *TINY_SET, *argv, "--out", str(tmp_path / argv[0][2:])]) == 0
        assert "one point" not in capsys.readouterr().err


def test_the_header_goes_with_the_table_to_stdout_and_progress_to_stderr(tmp_path, capsys):
    assert main(["sweep", *TINY_SET, *PAIR, "--out", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("cpi sweep: base config 8 training examples")
    assert lines[1].strip().startswith("2 points, 24 point-steps, engine fast")
    assert "base config" not in captured.err and "point-steps/s" in captured.err
    assert "point-steps/s" not in captured.out


def test_the_fast_engine_answers_to_its_earlier_name_and_resumes_its_directories(tmp_path, capsys, monkeypatch):
    """`--engine fast` is the default; `--engine full`, its earlier name, is the same sweep: it
    records the same manifest and resumes (here: finds complete) what the other wrote."""
    out = tmp_path / "s"
    assert main(["sweep", *TINY_SET, *PAIR, "--engine", "full", "--out", str(out)]) == 0
    assert json.loads((out / "sweep.json").read_text())["engine"] == "full"  # the stored name, unchanged
    assert "engine fast" in capsys.readouterr().out
    monkeypatch.setattr(chunks, "full_chunk", lambda *a, **k: pytest.fail("recomputed"))
    assert main(["sweep", *TINY_SET, *PAIR, "--engine", "fast", "--out", str(out)]) == 0
    assert "already holds this sweep, complete" in capsys.readouterr().out
    assert load_sweep(out).engine == "fast"
    with pytest.raises(SystemExit) as refused:  # argparse's usage error
        main(["sweep", *TINY_SET, *PAIR, "--engine", "fastest", "--out", str(tmp_path / "t")])
    assert refused.value.code == 2 and not (tmp_path / "t").exists()
