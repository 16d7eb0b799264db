"""The public API (`cpi.load_config`, `run`, `sweep`, `load_run`, `load_sweep`, `predict`):
lazy, and each function the same computation as its command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cpi
from cpi.cli import execute
from cpi.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FAST = ["train.steps=12"]


def test_import_cpi_imports_no_layer_and_every_name_resolves():
    """`import cpi` imports no layer (so the command's start-up stays at the JAX floor), and
    each name of `cpi.__all__` resolves on first use."""
    code = ("import sys, cpi\n"
            "assert not [m for m in sys.modules if m.startswith(('cpi.sims', 'cpi.theory', 'jax', 'numpy'))]\n"
            "assert all(callable(getattr(cpi, name)) for name in cpi.__all__)\n"
            "assert sorted(cpi.__all__) == ['load_config', 'load_run', 'load_sweep', 'predict', 'run', 'sweep']\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_run_and_load_run_equal_the_command(tmp_path):
    config = cpi.load_config(overrides=FAST)
    result = cpi.run(config, out=tmp_path / "api")
    assert execute(["run", "--set", FAST[0], "--out", str(tmp_path / "cli")]) == 0
    api, cli = cpi.load_run(tmp_path / "api"), cpi.load_run(tmp_path / "cli")
    assert api.config == cli.config == config and api.summary == cli.summary == result.summary
    assert (tmp_path / "api" / "metrics.npz").read_bytes() == (tmp_path / "cli" / "metrics.npz").read_bytes()
    with pytest.raises(ConfigError, match="holds a run of another config"):
        cpi.run(cpi.load_config(overrides=["train.steps=13"]), out=tmp_path / "api")


def test_predict_is_cpi_theory_json(capsys):
    import json

    config = cpi.load_config(overrides=FAST)
    assert execute(["theory", "--json", "--set", FAST[0]]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(cpi.predict(config)))


def test_load_sweep_and_load_run_refuse_the_other_kind(tmp_path):
    config = cpi.load_config(overrides=FAST)
    cpi.sweep(config, ["train.lr=0.5,1"], out=tmp_path / "sweep")
    cpi.run(config, out=tmp_path / "run")
    assert len(cpi.load_sweep(tmp_path / "sweep")) == 2
    with pytest.raises(ConfigError, match="holds a sweep, not a run"):
        cpi.load_run(tmp_path / "sweep")
    with pytest.raises(ConfigError, match="holds a run, not a sweep"):
        cpi.load_sweep(tmp_path / "run")


def test_load_config_checks_the_vocabulary():
    with pytest.raises(ConfigError, match="world.n_subjects"):
        cpi.load_config(overrides=["mixture.n_train=100"])
