"""`cpi run`: outputs, bad input, reproducibility, reloading."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cpi.sims import config as cfg
from cpi.cli import execute as main
from cpi.sims.results import load_run

FAST = ["--set", "train.steps=40"]
QUICK = ["--set", "train.steps=10"]


def test_run_writes_reloadable_results(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *FAST, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "metrics.npz", "summary.json"]
    config, metrics, summary = load_run(out)
    assert config.train.steps == 40
    np.testing.assert_array_equal(metrics["step"], np.arange(41))
    for key in ["reliance", "attention_context", "aligned_accuracy", "loss_C", "loss_CS",
                "attention_context_C", "neg_grad_theta_c_C", "neg_grad_theta_s_CS", "u_theta_c"]:
        assert metrics[key].shape == (41,), key
    assert summary["peak_reliance"] == pytest.approx(metrics["reliance"].max())
    assert set(summary) >= {"initial_reliance", "peak_reliance", "peak_step", "final_reliance", "inversion"}
    printed = capsys.readouterr().out
    assert f"{summary['peak_reliance']:.4f}" in printed and str(out) in printed


def test_reruns_are_byte_identical_and_saved_config_reproduces_the_run(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    args = [*FAST, "--set", "mixture.context_critical=0.35", "--set", "mixture.fact_recall=0.1"]
    assert main(["run", *args, "--out", str(a)]) == 0
    assert main(["run", *args, "--out", str(b)]) == 0
    assert main(["run", "--config", str(a / "config.toml"), "--out", str(c)]) == 0
    for name in ["metrics.npz", "summary.json", "config.toml"]:
        assert (a / name).read_bytes() == (b / name).read_bytes() == (c / name).read_bytes(), name


def test_config_toml_round_trip():
    config = cfg.load(overrides=["knowledge.delta_m=0.65", "train.dtype=float32", "train.lr=0.1"])
    assert cfg.load_text(cfg.to_toml(config)) == config


@pytest.mark.parametrize(
    "args, words",
    [
        (["--set", "mixture.contxt_critical=0.3"],
         ["mixture.contxt_critical", "did you mean 'mixture.context_critical'"]),
        (["--set", "lr=0.3"], ["'lr'", "train.lr"]),
        (["--set", "mixture.context_critical=1.5"], ["mixture.context_critical", "1.5", "[0, 1]"]),
        (["--set", "train.steps=2.5"], ["train.steps", "2.5", "integer"]),
        (["--set", "train.lr=-1"], ["train.lr", "-1", "> 0"]),
        (["--set", "knowledge.delta_c=abc"], ["knowledge.delta_c", "abc", "(0, 1)"]),
        (["--set", "train.dtype=float16"], ["train.dtype", "float16", "float32"]),
        (["--set", "train.lr"], ["section.key=value"]),
        (["--set", "mixture.context_critical=0.7", "--set", "mixture.counterfactual=0.4"],
         ["sum to at most 1"]),
        (["--set", "mixture.n_train=40"], ["world.n_subjects", "60"]),
        (["--set", "mixture.counterfactual=0.5", "--set", "world.n_answers=45"], ["world.n_answers", "60"]),
        (["--config", "does-not-exist.toml"], ["does-not-exist.toml", "does not exist"]),
    ],
)
def test_bad_input_exits_2_names_the_problem_and_writes_nothing(tmp_path, capsys, args, words):
    out = tmp_path / "out"
    assert main(["run", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists()


@pytest.mark.parametrize(
    "text, words",
    [
        ("[mixture]\ncontext_critical = 0.4\n[train\n", ["not valid TOML"]),
        ("[mixture]\ncontext_critcal = 0.4\n", ["mixture.context_critcal", "mixture.context_critical"]),
        ("[trainer]\nlr = 0.4\n", ["trainer"]),
        ("[train]\nsteps = \"many\"\n", ["train.steps", "many", "integer"]),
    ],
)
def test_bad_config_file_exits_2(tmp_path, capsys, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["run", "--config", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists()


def test_non_finite_run_names_the_step_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--set", "train.value_lr=1e30", "--set", "train.steps=5", "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "non-finite at step 1" in err and "smaller step size" in err
    assert not out.exists()


def test_toml_file_and_overrides_compose(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[mixture]\ncontext_critical = 0.35\n[train]\nsteps = 10\n")
    config = cfg.load(path, ["train.steps=12"])
    assert config.mixture.context_critical == 0.35 and config.train.steps == 12
    assert cfg.group_counts(config.mixture) == {"C": 7, "CS": 13, "CF": 0, "S_seen": 0, "S_unseen": 0}


def test_run_without_aligned_points(tmp_path):
    assert main(["run", *FAST, "--set", "mixture.n_aligned=0", "--out", str(tmp_path)]) == 0
    _, metrics, _ = load_run(tmp_path)
    assert "aligned_accuracy" not in metrics and np.all(np.isfinite(metrics["reliance"]))


def test_seed_range_message_is_an_integer_range(capsys):
    assert main(["run", "--set", "train.seed=-1"]) == 2
    assert "[0, 4294967295]" in capsys.readouterr().err


def test_every_violated_vocabulary_bound_is_reported_at_once(capsys):
    assert main(["run", "--set", "world.n_relations=3"]) == 2
    err = capsys.readouterr().err
    assert "world.n_subjects = 40 is too small" in err and "world.n_answers = 80 is too small" in err
    assert "--set world.n_subjects=60 --set world.n_answers=90" in err


def test_the_console_entry_keeps_the_status_the_output_and_the_files(tmp_path):
    """`cpi.cli.entry` ends the process with os._exit after the command: the status is the
    command's, everything printed reaches a pipe, and the run's files are whole."""
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "run"

    def cpi(*args):
        return subprocess.run([sys.executable, "-m", "cpi", *args], cwd=root, capture_output=True, text=True,
                              env={**os.environ, "CPI_COMPILATION_CACHE": "0"})

    done = cpi("run", *FAST, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}/config.toml, metrics.npz, summary.json" in done.stdout
    config, metrics, summary = load_run(out)
    assert metrics["reliance"].shape == (41,) and summary["peak_reliance"] == pytest.approx(metrics["reliance"].max())
    bad = cpi("run", "--set", "train.steps=0", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "train.steps = 0 is out of range" in bad.stderr
    assert not (tmp_path / "bad").exists()


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
    assert main(["run", *QUICK, "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert "cpi run: 20 training examples (10 C, 10 CS)" in out and "training examples" not in err
    assert "context reliance M_C" in out


def test_an_out_under_proc_says_that_proc_takes_no_new_files(tmp_path, capsys, monkeypatch):
    if not Path("/proc/self").exists():
        pytest.skip("no /proc on this system")
    import cpi.sims.train

    monkeypatch.setattr(cpi.sims.train, "run", lambda *a, **k: pytest.fail("trained before checking --out"))
    assert main(["run", *QUICK, "--out", "/proc/cpi-test-out"]) == 2
    err = capsys.readouterr().err
    assert "'/proc' (where it would be created) accepts no new files" in err
