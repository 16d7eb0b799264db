"""What a careless user does to output directories and config values (issue 23, items 3, 4
and 8c, 8e, 8f): two processes into one --out, a hand-written config.toml as the --out's own,
whole numbers written as floats, the run's description in one stream, /proc as an --out.
Each test failed on the code before the fix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import sims.train
from cpi.cli import execute as main
from sims import config as cfg
from sims.dir_lock import LOCK_NAME, claim_dir
from sims.errors import ConfigError

FAST = ["--set", "train.steps=10"]
ROOT = Path(__file__).resolve().parents[1]


def refuse_work(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("training started although the directory was taken")

    monkeypatch.setattr(sims.train, "run", refuse)


# ---------------------------------------------------------------------------- one writer per --out


def hold(out: Path) -> subprocess.Popen:
    """Another process that holds `out` (`claim_dir`) until it is killed; returns once it does."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from sims.dir_lock import claim_dir\n"
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


# ---------------------------------------------------------------------------- values and streams


@pytest.mark.parametrize("text, value", [("1e3", 1000), ("100.0", 100), ("2E1", 20)])
def test_whole_numbers_written_as_floats_are_integers(text, value):
    config = cfg.load(overrides=[f"train.steps={text}"])
    assert config.train.steps == value and type(config.train.steps) is int
    assert "steps = %d\n" % value in cfg.to_toml(config)


@pytest.mark.parametrize("text", ["1.5", "inf", "nan", "true"])
def test_integer_keys_still_refuse_what_is_not_a_whole_number(text, capsys):
    assert main(["config", "--toml", "--set", f"train.steps={text}"]) == 2
    err = capsys.readouterr().err
    assert "train.steps" in err and "expected an integer >= 1" in err


def test_the_run_description_and_its_summary_share_standard_output(tmp_path, capsys):
    assert main(["run", *FAST, "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert "cpi run: 20 training points (10 C, 10 CS)" in out and "training points" not in err
    assert "context reliance M_C" in out


def test_an_out_under_proc_says_that_proc_takes_no_new_files(tmp_path, capsys, monkeypatch):
    if not Path("/proc/self").exists():
        pytest.skip("no /proc on this system")
    refuse_work(monkeypatch)
    assert main(["run", *FAST, "--out", "/proc/cpi-test-out"]) == 2
    err = capsys.readouterr().err
    assert "'/proc' (where it would be created) accepts no new files" in err



def test_a_sweep_into_a_directory_another_process_writes_is_refused(tmp_path, capsys, monkeypatch):
    import sims.chunks

    out = tmp_path / "sweep"
    holder = hold(out)
    try:
        monkeypatch.setattr(sims.chunks, "full_chunk", lambda *a, **k: pytest.fail("computed into a taken directory"))
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
