"""Output directories (`cpi.core.dir_lock`, `cpi.sims.results.check_run_dir`): an --out that
cannot be used is refused before any work; one process writes a directory at a time, a killed
writer leaves it free, two runs started together never both succeed; a directory that holds a
run of another config, another sweep or the other kind is not replaced without --force; a
hand-written config.toml (above all the --config file itself) is never replaced by a run; and
figures go to an untracked folder by default."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import cpi.sims.train
from cpi.cli import execute as main
from cpi.sims import config as cfg
from cpi.core.dir_lock import LOCK_NAME, claim_dir
from cpi.core.errors import ConfigError

FAST = ["--set", "train.steps=10"]
ROOT = Path(__file__).resolve().parents[1]


def refuse_work(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("training started although the directory was taken")

    monkeypatch.setattr(cpi.sims.train, "run", refuse)


# ---------------------------------------------------------------------------- an unusable --out


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
def test_an_unusable_out_is_bad_input_before_any_work(tmp_path, capsys, monkeypatch, no_training, command, case):
    import cpi.figures.make

    monkeypatch.setattr(cpi.figures.make, "make_figures", lambda *a, **k: pytest.fail("figures made"))
    path, words = _bad_outs(tmp_path)[case]
    assert main([*command, *FAST, "--out", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    for word in words:
        assert word in err, (word, err)
    assert (tmp_path / "a_file").read_text() == "not a directory"


# ---------------------------------------------------------------------------- one writer per --out


def hold(out: Path) -> subprocess.Popen:
    """Another process that holds `out` (`claim_dir`) until it is killed; returns once it does."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from cpi.core.dir_lock import claim_dir\n"
                               "with claim_dir(sys.argv[1]):\n print('held', flush=True); time.sleep(60)", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_run_into_a_directory_another_process_writes_is_refused(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    holder = hold(out)
    try:
        refuse_work(monkeypatch)
        assert main(["run", *FAST, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "is being written by another cpi process" in err and f"(pid {holder.pid})" in err
        assert str(out) in err and "Traceback" not in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_writer_leaves_the_directory_free(tmp_path):
    out = tmp_path / "out"
    holder = hold(out)
    with pytest.raises(ConfigError, match="being written by another cpi process"):
        with claim_dir(out):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / LOCK_NAME).exists()  # left behind by the killed process, but not locked
    with claim_dir(out):
        pass
    assert not (out / LOCK_NAME).exists()


def test_a_claimed_directory_that_received_nothing_is_removed(tmp_path):
    out = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with claim_dir(out):
            assert out.is_dir()
            raise RuntimeError("the work failed")
    assert not (tmp_path / "a").exists()
    with claim_dir(out):
        (out / "kept.txt").write_text("x")
    assert sorted(p.name for p in out.iterdir()) == ["kept.txt"]


def test_two_runs_started_together_into_one_out_never_both_succeed(tmp_path):
    """Two `cpi run --out D` of different configs at once: one writes D, the other exits 2
    (D is taken, or holds the other's run by the time it looks); D holds the winner's run."""
    out = tmp_path / "out"
    env = {**os.environ, "CPI_COMPILATION_CACHE": "0"}
    commands = [[sys.executable, "-m", "cpi", "run", *FAST, "--set", f"train.lr={lr}", "--out", str(out)]
                for lr in (0.5, 2.0)]
    procs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    winner = [lr for lr, (code, _, _) in zip((0.5, 2.0), results) if code == 0][0]
    loser_err = [err for code, _, err in results if code == 2][0]
    assert "being written by another cpi process" in loser_err or "holds a run of another config" in loser_err
    assert "Traceback" not in loser_err
    assert cfg.load(out / "config.toml").train.lr == winner
    assert (out / "summary.json").exists() and not (out / LOCK_NAME).exists()


# ---------------------------------------------------------------------------- a hand-written config.toml


HAND_WRITTEN = "# my experiment\n[mixture]\ncontext_critical = 0.4  # a little less than half\n"


@pytest.mark.parametrize("force", [False, True])
def test_the_config_file_itself_is_never_replaced_by_the_run(tmp_path, capsys, monkeypatch, force):
    refuse_work(monkeypatch)
    (tmp_path / "config.toml").write_text(HAND_WRITTEN)
    argv = ["run", *FAST, "--config", str(tmp_path / "config.toml"), "--out", str(tmp_path)]
    assert main(argv + (["--force"] if force else [])) == 2
    err = capsys.readouterr().err
    assert "is the config.toml that the run would write" in err and str(tmp_path / "run") in err
    assert (tmp_path / "config.toml").read_text() == HAND_WRITTEN
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_a_hand_written_config_in_the_out_directory_is_kept_unless_forced(tmp_path, capsys):
    (tmp_path / "config.toml").write_text(HAND_WRITTEN)
    assert main(["run", *FAST, "--out", str(tmp_path)]) == 2
    assert "holds a config.toml that no run wrote" in capsys.readouterr().err
    assert (tmp_path / "config.toml").read_text() == HAND_WRITTEN
    assert main(["run", *FAST, "--out", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "summary.json").exists()


def test_a_run_from_its_own_resolved_config_runs_again_in_place(tmp_path):
    assert main(["run", *FAST, "--out", str(tmp_path)]) == 0
    before = (tmp_path / "config.toml").read_bytes()
    assert main(["run", *FAST, "--config", str(tmp_path / "config.toml"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "config.toml").read_bytes() == before


def test_a_sweep_into_a_directory_another_process_writes_is_refused(tmp_path, capsys, monkeypatch):
    import cpi.sims.chunks

    out = tmp_path / "sweep"
    holder = hold(out)
    try:
        monkeypatch.setattr(cpi.sims.chunks, "full_chunk",
                            lambda *a, **k: pytest.fail("computed into a taken directory"))
        assert main(["sweep", *FAST, "--grid", "train.lr=0.5,1", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "is being written by another cpi process" in err and f"(pid {holder.pid})" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.undo()
    assert main(["sweep", *FAST, "--grid", "train.lr=0.5,1", "--out", str(out)]) == 0
    assert not (out / LOCK_NAME).exists() and (out / "summary.json").exists()


# ---------------------------------------------------------------------------- another config, sweep or kind


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


# ---------------------------------------------------------------------------- figures


def test_figures_go_to_an_untracked_folder_by_default():
    from cpi.cli import build_parser

    assert build_parser().parse_args(["figures"]).out == "results/figures"
    ignored = subprocess.run(["git", "check-ignore", "-q", "results/figures/inversion.png"], cwd=ROOT)
    assert ignored.returncode == 0
