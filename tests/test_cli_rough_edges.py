"""The rough edges a new user hit (issue 9): a filter that leaves nothing, bad --out paths,
overwrites, memory, Ctrl-C during a sweep, a vocabulary too small in several ways, seeds
that cannot matter. Each test failed on the code before the fix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cpi.sims.budget as budget
import cpi.sims.sweep
import cpi.sims.train
from cpi.cli import execute as main
from cpi.sims import config as cfg

FAST = ["--set", "train.steps=10"]
ROOT = Path(__file__).resolve().parents[1]


def refuse_work(monkeypatch):
    """Make any training fail the test: the checks must come before any work."""
    def refuse(*a, **k):
        raise AssertionError("training started before the input was checked")

    monkeypatch.setattr(cpi.sims.train, "run", refuse)
    monkeypatch.setattr(cpi.sims.sweep, "run_sweep", refuse)


# ---------------------------------------------------------------------------- filtering


@pytest.mark.parametrize("value", ["1", "0.999"])
@pytest.mark.parametrize("command", [["run"], ["theory"], ["sweep", "--grid", "train.lr=1"]])
def test_a_filter_that_leaves_no_training_points_is_bad_input(tmp_path, capsys, monkeypatch, command, value):
    refuse_work(monkeypatch)
    out = tmp_path / "out"
    extra = [] if command == ["theory"] else ["--out", str(out)]
    assert main([*command, "--set", f"mixture.filter={value}", *extra]) == 2
    err = capsys.readouterr().err
    assert "the filter leaves no training points" in err and f"mixture.filter = {value}" in err
    assert "mixture.filter < 0.975" in err
    assert not out.exists()


def test_a_sweep_point_that_filters_everything_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    refuse_work(monkeypatch)
    out = tmp_path / "out"
    assert main(["sweep", *FAST, "--grid", "mixture.filter=0,0.5,1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "grid point mixture.filter=1.0" in err and "the filter leaves no training points" in err
    assert not out.exists()


def test_subject_only_points_survive_a_full_filter():
    config = cfg.load(overrides=["mixture.filter=1", "mixture.fact_recall=0.2"])
    assert cfg.training_points_after_filter(config.mixture) == 4


def test_the_run_header_counts_the_points_left_after_filtering(tmp_path, capsys):
    assert main(["run", *FAST, "--set", "mixture.filter=0.25", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "cpi run: 15 training points after filtering 20 (10 C, 5 CS)" in out


# ---------------------------------------------------------------------------- --out


def _bad_outs(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    return [
        (a_file, ["is a file, not a directory"]),
        (a_file / "under", ["cannot be created", "is a file, not a directory"]),
        (Path("/sys/cpi-test-out"), ["is not writable"]),
    ]


@pytest.mark.parametrize("case", [0, 1, 2])
@pytest.mark.parametrize("command", [["run"], ["sweep", "--grid", "train.lr=1"], ["figures"]])
def test_an_unusable_out_is_bad_input_before_any_work(tmp_path, capsys, monkeypatch, command, case):
    refuse_work(monkeypatch)
    import cpi.figures.make

    monkeypatch.setattr(cpi.figures.make, "make_figures", lambda *a, **k: pytest.fail("figures made"))
    path, words = _bad_outs(tmp_path)[case]
    assert main([*command, *FAST, "--out", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    for word in words:
        assert word in err, (word, err)
    assert (tmp_path / "a_file").read_text() == "not a directory"


# ---------------------------------------------------------------------------- overwrites


def test_a_run_directory_of_another_config_is_not_replaced_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *FAST, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["run", *FAST, "--out", str(out)]) == 0  # the same config: rerun in place
    other = [*FAST, "--set", "mixture.context_critical=0.35"]
    capsys.readouterr()
    assert main(["run", *other, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a run of another config" in err and "--force" in err and str(out) in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["run", *other, "--out", str(out), "--force"]) == 0
    assert cfg.load(out / "config.toml").mixture.context_critical == 0.35


def test_a_sweep_directory_of_another_grid_is_refused_and_force_drops_stale_chunks(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", *FAST, "--grid", "mixture.n_train=16,20", "--out", str(out)]) == 0
    assert len(list((out / "groups").iterdir())) == 2
    summary = (out / "summary.json").read_bytes()
    capsys.readouterr()
    assert main(["sweep", *FAST, "--grid", "mixture.n_train=20", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds another sweep" in err and "--grid" in err and "--force" in err
    assert (out / "summary.json").read_bytes() == summary
    assert main(["sweep", *FAST, "--grid", "mixture.n_train=20", "--out", str(out), "--force"]) == 0
    assert "(0 computed, 1 reused)" in capsys.readouterr().out
    assert len(list((out / "groups").iterdir())) == 1  # the n_train = 16 chunk is gone


def test_a_run_and_a_sweep_do_not_share_a_directory(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["run", *FAST, "--out", str(out)]) == 0
    assert main(["sweep", *FAST, "--grid", "train.lr=1", "--out", str(out)]) == 2
    assert "holds a run, not a sweep" in capsys.readouterr().err


def test_figures_go_to_an_untracked_folder_by_default():
    from cpi.cli import build_parser

    assert build_parser().parse_args(["figures"]).out == "results/figures"
    ignored = subprocess.run(["git", "check-ignore", "-q", "results/figures/inversion.png"], cwd=ROOT)
    assert ignored.returncode == 0


# ---------------------------------------------------------------------------- memory


HUGE = ["--set", "mixture.n_train=1000000", "--set", "world.n_subjects=1000020", "--set", "world.n_answers=1000040"]


@pytest.mark.parametrize("command", [["run"], ["theory"], ["sweep", "--grid", "train.lr=1"]])
def test_a_world_too_big_for_memory_is_refused_with_the_estimate(tmp_path, capsys, monkeypatch, command):
    refuse_work(monkeypatch)
    out = tmp_path / "out"
    extra = [] if command == ["theory"] else ["--out", str(out)]
    assert main([*command, *HUGE, *extra]) == 2
    err = capsys.readouterr().err
    assert "2000061 tokens" in err and "TiB" in err and "available" in err and "world.n_subjects" in err
    assert not out.exists()


def test_a_large_vocabulary_is_refused_where_memory_is_short(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(budget, "available_memory", lambda: 2**30)
    assert main(["run", *FAST, "--set", "world.n_answers=6000", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "6041 tokens" in err and "GiB" in err and "1 GiB available" in err


def test_a_run_that_needs_much_memory_says_how_much(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(budget, "process_bytes", lambda: 3 * 2**30)
    monkeypatch.setattr(budget, "available_memory", lambda: 4 * 2**30)
    assert main(["run", *FAST, "--out", str(tmp_path / "r")]) == 0
    assert "memory: about 3 GiB (of 4 GiB available)" in capsys.readouterr().out


def test_the_memory_estimate_counts_a_gpu_runtime_without_starting_jax(tmp_path, monkeypatch):
    """A GPU plugin adds its runtime to the estimate; finding out starts no JAX backend (a
    sweep across processes must start them only after joining: jax.distributed)."""
    plugin = tmp_path / "jax_plugins" / "xla_cuda12"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    assert budget.accelerator_installed()
    assert budget.process_bytes() == budget.PROCESS_BYTES + budget.ACCELERATOR_RUNTIME_BYTES
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert not budget.accelerator_installed() and budget.process_bytes() == budget.PROCESS_BYTES
    code = ("from cpi.sims import budget; budget.process_bytes()\n"
            "from jax._src import xla_bridge; assert not xla_bridge.backends_are_initialized()\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_memory_estimate_bounds_a_measured_run(tmp_path):
    """The estimate is above the peak memory of a real run, and not far above it."""
    config = cfg.load(overrides=["world.n_answers=3000", "train.steps=5"])
    code = ("import resource, sys; from cpi.cli import main; code = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, "run", "--set", "world.n_answers=3000", "--set",
                           "train.steps=5", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                                         "CPI_COMPILATION_CACHE": "0"})
    assert done.returncode == 0, done.stderr
    peak = int(done.stdout.split()[-1]) * 1024  # ru_maxrss is in KiB on Linux
    estimate = budget.process_bytes() + budget.build_bytes(config)
    assert peak <= estimate <= 3 * peak, (peak, estimate)


# ---------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_during_a_sweep_stops_at_once_and_says_what_was_kept(tmp_path):
    out = tmp_path / "sweep"
    # two shape groups: a 10-step chunk that finishes at once, then one that would take minutes
    argv = ["sweep", "--grid", "train.steps=10,5000000", "--summaries-only", "--out", str(out)]
    # As from a terminal: a suite started in the background by a non-interactive shell runs with
    # SIGINT ignored, which the child would inherit (and Python then never raises KeyboardInterrupt).
    # A handled signal is reset to its default at exec, so handle it here while starting the child.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen([sys.executable, "-m", "cpi", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("groups/*.npz")):
            assert process.poll() is None and time.monotonic() < deadline, "the first chunk never came"
            time.sleep(0.1)
        time.sleep(1.0)  # the long chunk is now compiling or running
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert waited < 5, waited
    assert "Traceback" not in stderr
    assert f"1 of 2 chunk(s) of this sweep are saved under {out}/groups" in stderr
    assert "rerun the same command" in stderr
    assert not (out / "summary.json").exists()


# ---------------------------------------------------------------------------- vocabulary


def test_every_violated_vocabulary_bound_is_reported_at_once(capsys):
    assert main(["run", "--set", "world.n_relations=3"]) == 2
    err = capsys.readouterr().err
    assert "world.n_subjects = 40 is too small" in err and "world.n_answers = 80 is too small" in err
    assert "--set world.n_subjects=60 --set world.n_answers=90" in err


# ---------------------------------------------------------------------------- seeds


def test_sweeping_seeds_warns_once_that_they_cannot_matter(tmp_path, capsys):
    assert main(["sweep", *FAST, "--grid", "train.lr=1", "--seeds", "2", "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert err.count("every seed gives the same numbers") == 1
    assert main(["sweep", *FAST, "--grid", "train.lr=1", "--out", str(tmp_path / "t")]) == 0
    assert "seed" not in capsys.readouterr().err


def test_the_seed_note_is_in_the_help_the_keys_and_the_readme(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    assert "every seed gives the same numbers" in " ".join(capsys.readouterr().out.split())
    assert "every seed gives the same numbers" in cfg.KEYS["train.seed"].meaning
    assert "every seed gives the same numbers" in (ROOT / "README.md").read_text()

