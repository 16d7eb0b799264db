"""The `cpi` commands beyond run/theory/sweep: plot, compare, export, config, figures,
--version and --help; the package layout of the CLI; the README's Python API example."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from cpi.cli import build_parser
from cpi.cli import execute as main
from cpi.sims import config as cfg
from cpi.sims.results import load_run

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--set", "train.steps=40"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two saved runs that differ in ρ and the step size."""
    root = tmp_path_factory.mktemp("runs")
    a, b = root / "a", root / "b"
    assert main(["run", *FAST, "--out", str(a)]) == 0
    assert main(["run", *FAST, "--set", "mixture.context_critical=0.35", "--set", "train.lr=0.5",
                 "--out", str(b)]) == 0
    return a, b


# ---------------------------------------------------------------------------- version, help


def test_version_comes_from_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"cpi {version('cpi-sim')}"


def test_help_lists_the_commands_the_keys_and_where_results_go(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for word in ["run", "theory", "sweep", "figures", "plot", "compare", "export", "config",
                 "`cpi config` lists every key", "runs/<config hash>/", "sweeps/<hash>/", "results/figures/"]:
        assert word in text, word


@pytest.mark.parametrize("command, words", [
    ("run", ["cpi config", "runs/<hash of the config>", "--force"]),
    ("theory", ["cpi config", "Writes nothing"]),
    ("sweep", ["cpi config", "sweeps/<hash of config, grid, seeds>", "--force"]),
    ("figures", ["cpi config", "results/figures"]),
    ("plot", ["DIR/plot.png"]),
    ("compare", ["Writes nothing"]),
    ("export", ["standard output"]),
    ("config", ["--set section.key=value"]),
])
def test_each_command_help_says_where_keys_and_results_are(capsys, command, words):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for word in words:
        assert word in text, (command, word)


def test_the_cli_modules_import_no_command_from_each_other():
    """No cycle: commands import the shared arguments, never another command; sims holds no CLI."""
    for path in (ROOT / "cpi" / "commands").glob("*.py"):
        if path.name == "__init__.py":
            continue
        text = path.read_text()
        assert not re.search(r"from \.(?!\.)\w+ import|from cpi\.commands", text), path.name
    assert not (ROOT / "sims" / "cli.py").exists() and not (ROOT / "sims" / "sweep_cli.py").exists()
    for layer in ("theory", "sims", "figures"):  # the layers below never import the CLI
        for path in (ROOT / layer).glob("*.py"):
            text = path.read_text()
            assert not re.search(r"^\s*(from cpi import|(from|import) cpi\.(cli|commands|arguments|report|api)\b)",
                                 text, flags=re.M), path
    assert "argparse" not in (ROOT / "figures" / "make.py").read_text()


# ---------------------------------------------------------------------------- config / keys


def test_config_lists_every_key_with_default_range_and_meaning(capsys):
    assert main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for key, default, allowed, meaning in cfg.keys_table():
        (line,) = [row for row in lines if row.startswith(key + " ")]
        assert default in line and allowed in line and line.endswith(meaning)
    assert main(["keys"]) == 0  # the alias
    assert len(capsys.readouterr().out.splitlines()) == len(cfg.all_keys()) + 1


def test_config_toml_prints_the_resolved_config(capsys):
    assert main(["config", "--toml", "--set", "mixture.context_critical=0.35"]) == 0
    assert cfg.load_text(capsys.readouterr().out) == cfg.load(overrides=["mixture.context_critical=0.35"])
    assert main(["config", "--set", "mixture.n_train=40"]) == 2


def test_config_markdown_prints_the_key_table(capsys):
    """One Markdown row per key, with the default, the range and the meaning `cpi config` lists."""
    assert main(["config", "--markdown"]) == 0
    table = capsys.readouterr().out.strip()
    assert table == cfg.keys_markdown()
    rows = table.splitlines()[2:]
    assert rows == [f"| `{key}` | {default} | {allowed} | {meaning} |"
                    for key, default, allowed, meaning in cfg.keys_table()]
    assert sorted(row.split("`")[1] for row in rows) == sorted(cfg.all_keys())


# ---------------------------------------------------------------------------- compare, export


def test_compare_shows_the_summaries_and_the_keys_that_differ(runs, capsys):
    a, b = runs
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "config keys that differ: mixture.context_critical, train.lr" in out
    header, row_a, row_b = out.splitlines()[:3]
    assert header.split() == ["run", "mixture.context_critical", "train.lr", "initial", "peak", "peak_step",
                              "final", "inversion"]
    for path, row in ((a, row_a), (b, row_b)):
        summary = json.loads((path / "summary.json").read_text())
        assert row.split()[0] == str(path) and f"{summary['peak_reliance']:.4f}" in row
    assert main(["compare", "--json", str(a), str(b)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["differing_keys"] == ["mixture.context_critical", "train.lr"]
    assert document["runs"][1]["mixture.context_critical"] == 0.35


def test_compare_refuses_what_is_not_a_run(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "holds no complete run" in capsys.readouterr().err


def test_export_writes_every_metric_per_step_exactly(runs, tmp_path, capsys):
    a, _ = runs
    _, metrics, _ = load_run(a)
    out = tmp_path / "sub" / "a.csv"
    assert main(["export", str(a), "--out", str(out)]) == 0
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["step", *sorted(k for k in metrics if k != "step")]
    assert len(rows) == len(metrics["step"]) + 1
    table = np.array(rows[1:], dtype=float)
    for j, name in enumerate(rows[0]):
        np.testing.assert_array_equal(table[:, j], metrics[name], err_msg=name)
    assert main(["export", str(a)]) == 0  # to standard output
    assert capsys.readouterr().out == out.read_text()
    assert main(["export", str(tmp_path)]) == 2


# ---------------------------------------------------------------------------- plot


def test_plot_draws_a_run_and_a_sweep(runs, tmp_path, capsys):
    a, _ = runs
    assert main(["plot", str(a), "--out", str(tmp_path / "run.png")]) == 0
    assert (tmp_path / "run.png").read_bytes()[:4] == b"\x89PNG"
    sweep = tmp_path / "sweep"
    assert main(["sweep", *FAST, "--grid", "mixture.context_critical=0.2,0.5", "--grid", "train.lr=0.5,1",
                 "--out", str(sweep)]) == 0
    assert main(["plot", str(sweep)]) == 0
    assert (sweep / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", str(sweep), "--out", str(tmp_path / "sweep.pdf")]) == 0
    assert (tmp_path / "sweep.pdf").read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize("args, words", [
    (["{tmp}"], ["holds no complete run or sweep"]),
    (["{tmp}/missing"], ["is not a directory"]),
    (["{run}", "--out", "{tmp}/x.gif"], ["unknown figure format", ".png"]),
])
def test_plot_bad_input_exits_2(runs, tmp_path, capsys, args, words):
    a, _ = runs
    assert main(["plot", *(s.format(tmp=tmp_path, run=a) for s in args)]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err


def test_plot_refuses_a_sweep_over_three_keys(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    assert main(["sweep", "--set", "train.steps=5", "--grid", "train.lr=1", "--grid", "knowledge.delta_m=0.6",
                 "--grid", "mixture.n_test=10", "--out", str(sweep)]) == 0
    assert main(["plot", str(sweep)]) == 2
    assert "one or two keys" in capsys.readouterr().err and not (sweep / "plot.png").exists()


def test_the_plots_show_the_saved_numbers(runs):
    from cpi.figures.run_plot import plot_run
    from cpi.figures.style import artist
    from cpi.figures.sweep_plot import plot_sweep

    _, metrics, summary = load_run(runs[0])
    fig = plot_run(metrics, summary)
    np.testing.assert_array_equal(artist(fig, "reliance").get_ydata(), metrics["reliance"])
    np.testing.assert_array_equal(artist(fig, "loss_C").get_ydata(), metrics["loss_C"])
    assert artist(fig, "peak").get_xdata()[0] == summary["peak_step"]
    coords = {"train.lr": np.array([1.0, 0.5])}
    rows = {"initial_reliance": np.array([0.3, 0.3]), "peak_reliance": np.array([0.9, 0.8]),
            "final_reliance": np.array([0.6, 0.7]), "inversion": np.array([True, False])}
    fig = plot_sweep(["train.lr"], coords, rows)
    np.testing.assert_array_equal(artist(fig, "peak_reliance").get_xdata(), [0.5, 1.0])  # sorted by the key
    np.testing.assert_array_equal(artist(fig, "peak_reliance").get_ydata(), [0.8, 0.9])
    np.testing.assert_array_equal(artist(fig, "inversion").get_xdata(), [1.0])


# ---------------------------------------------------------------------------- figures


def test_figures_uses_the_shared_config_flags_and_checks(tmp_path, monkeypatch, capsys):
    import cpi.figures.make

    calls = []
    monkeypatch.setattr(cpi.figures.make, "make_figures", lambda *a, **k: calls.append((a, k)))
    assert main(["figures", "--out", str(tmp_path / "f"), "--force", "--set", "train.lr=0.5"]) == 0
    (a, k), = calls
    assert a == (str(tmp_path / "f"),) and k["force"] and k["data_dir"] is None
    assert k["config"] == cfg.with_values(cfg.Config(), {"train.lr": 0.5})
    assert main(["figures", "--out", str(tmp_path / "f"), "--only", "inversion,tasks"]) == 0
    assert calls[-1][1]["names"] == ["inversion", "tasks"]
    calls.clear()
    assert main(["figures", "--out", str(tmp_path / "g"), "--set", "mixture.n_train=40"]) == 2
    assert "world.n_subjects" in capsys.readouterr().err  # the vocabulary check
    assert main(["figures", "--only", "nonesuch"]) == 2
    assert calls == []
    defaults = build_parser().parse_args(["figures"])
    assert isinstance(defaults, argparse.Namespace) and defaults.out == "results/figures" and not defaults.force


# ---------------------------------------------------------------------------- the Python API


def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.summary["peak_reliance"] > result.summary["initial_reliance"]
    assert load_run(tmp_path / "runs" / "example")[2] == result.summary
    assert len(namespace["saved"]) == 2 and namespace["saved"].keys == ["mixture.context_critical"]


def test_cpi_runs_as_a_module_without_the_script():
    done = subprocess.run([sys.executable, "-m", "cpi", "config", "--toml"], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 0 and cfg.load_text(done.stdout) == cfg.Config()


def test_the_entry_point_asks_for_reproducible_full_precision_arithmetic():
    """configure_process: deterministic GPU reductions (XLA_FLAGS) and full-precision matrix
    products (on a GPU, float32 would otherwise run in TF32), before JAX computes anything."""
    code = ("import os, jax\nfrom cpi.cli import configure_process\nconfigure_process()\n"
            "assert '--xla_gpu_deterministic_ops=true' in os.environ['XLA_FLAGS'], os.environ['XLA_FLAGS']\n"
            "assert jax.config.jax_default_matmul_precision == 'highest'\n")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**env, "CPI_COMPILATION_CACHE": "0"})



def test_the_guide_shows_the_generated_key_table(capsys):
    """docs/guide.md's key table is `cpi config --markdown`'s output, as it is generated now
    (regenerate it with that command when a key changes)."""
    assert main(["config", "--markdown"]) == 0
    table = capsys.readouterr().out.strip()
    assert table.count("\n") >= len(cfg.all_keys()) + 1
    assert table in (ROOT / "docs" / "guide.md").read_text()
