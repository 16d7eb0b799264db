"""The one reader of result directories (`cpi.sims.saved.read`) and the commands that use it:
`cpi plot`, `cpi export` and `cpi compare` read toy runs, toy sweeps, transformer runs and
transformer sweeps; several runs overlay in one figure; a damaged, incomplete or foreign
directory exits 2 with its path and what is wrong, writes nothing, shows no traceback and
never suggests allow_pickle."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from cpi.cli import execute
from cpi.sims import saved as saved_module
from cpi.core.errors import ConfigError
from cpi.sims.results import load_run
from cpi.sims.saved import BRIDGE_RUN, BRIDGE_SWEEP, RUN, SWEEP, SavedRun, SavedSweep, read
from cpi.sims.sweep import load_sweep

from .test_bridge_model import TINY

ROOT = Path(__file__).resolve().parents[1]
TOY = ["--set", "train.steps=10", "--set", "world.n_subjects=60", "--set", "world.n_answers=60"]
BRIDGE = [arg for item in TINY for arg in ("--set", item)]


@pytest.fixture(scope="module")
def results(result_dirs):
    """One directory of each kind (a toy sweep also without metrics), the bridge run and sweep
    sharing one pretraining: {name: path} (`tests/conftest.py`'s `result_dirs`)."""
    return result_dirs


def _figures(monkeypatch) -> list:
    """The figures `cpi plot` saves, recorded as they are saved."""
    saved, original = [], Figure.savefig

    def record(fig, *args, **kwargs):
        saved.append(fig)
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return saved


# ---------------------------------------------------------------------------- the reader


def test_the_reader_knows_each_kind(results):
    kinds = {name: read(path) for name, path in results.items()}
    assert {n: r.kind for n, r in kinds.items()} == {"run": RUN, "sweep": SWEEP, "summaries": SWEEP,
                                                     "bridge_run": BRIDGE_RUN, "bridge_sweep": BRIDGE_SWEEP}
    run, bridge_run = kinds["run"], kinds["bridge_run"]
    assert isinstance(run, SavedRun) and not run.bridge and bridge_run.bridge
    assert bridge_run.config.transformer.layers == 2 and run.config.train.steps == 10
    assert "attention_context_l2" in bridge_run.metrics and "attention_context_C" in run.metrics
    sweep = kinds["sweep"]
    assert isinstance(sweep, SavedSweep) and sweep.keys == ["knowledge.delta_m"] and len(sweep) == 2
    assert sweep.recorded and not kinds["summaries"].recorded and kinds["summaries"].metrics() == {}
    assert sweep.point_config(1).knowledge.delta_m == 0.7
    assert kinds["bridge_sweep"].point_config(1).train.eval_every == 10
    # the existing loaders are served by the reader
    config, metrics, summary = load_run(results["run"])
    assert config == run.config and summary == run.summary and metrics.keys() == run.metrics.keys()
    assert len(load_sweep(results["sweep"])) == 2
    with pytest.raises(ConfigError, match="holds a bridge run, not a run of the toy model"):
        load_run(results["bridge_run"])
    with pytest.raises(FileNotFoundError):  # what callers that compute what is missing catch
        load_run(results["run"] / "nothing-here")


def test_a_sweeps_points_record_their_own_steps(results):
    toy = read(results["sweep"])
    loaded = load_sweep(results["sweep"])
    for i in range(len(toy)):
        np.testing.assert_array_equal(toy.point_steps(i), loaded.point_metrics(i)["step"])
    np.testing.assert_array_equal(toy.point_steps(0), [0, 3, 6, 9, 10])
    bridge = read(results["bridge_sweep"])
    for i in range(len(bridge)):
        (point,) = [p for p in (results["bridge_sweep"] / "runs").iterdir()
                    if read(p).config == bridge.point_config(i)]
        np.testing.assert_array_equal(bridge.point_steps(i), read(point).metrics["step"])


def test_the_reader_imports_no_jax():
    code = "import sys, cpi.sims.saved; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---------------------------------------------------------------------------- plot


@pytest.mark.parametrize("name", ["run", "sweep", "summaries", "bridge_run", "bridge_sweep"])
def test_plot_draws_every_kind(results, tmp_path, capsys, name):
    out = tmp_path / "f.png"
    assert execute(["plot", str(results[name]), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_plot_overlays_toy_and_transformer_runs(results, tmp_path, monkeypatch, capsys):
    from cpi.figures.style import artist

    figures = _figures(monkeypatch)
    out = tmp_path / "both.png"
    assert execute(["plot", str(results["run"]), str(results["bridge_run"]), "--out", str(out)]) == 0
    assert out.exists() and len(figures) == 1
    fig = figures[0]
    for name in ("run", "bridge_run"):
        saved = read(results[name])
        for metric in ("reliance", "attention_context", "loss"):
            line = artist(fig, f"{metric}:{name}")
            np.testing.assert_array_equal(line.get_xdata(), saved.metrics["step"])
            np.testing.assert_array_equal(line.get_ydata(), saved.metrics[metric])
        assert artist(fig, f"peak:{name}").get_xdata()[0] == saved.summary["peak_step"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["run", "bridge_run"]


@pytest.mark.parametrize("names, words", [
    (["run", "bridge_run"], ["--out"]),  # several directories need --out
    (["sweep", "run"], ["'{sweep}' is a sweep", "one sweep alone"]),
    (["sweep", "bridge_sweep"], ["is a sweep", "2 sweep(s)"]),
])
def test_plot_refuses_what_it_cannot_draw_together(results, tmp_path, capsys, names, words):
    out = ["--out", str(tmp_path / "f.png")] if words != ["--out"] else []
    assert execute(["plot", *(str(results[n]) for n in names), *out]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word.format(sweep=results["sweep"]) in err, err
    assert not (tmp_path / "f.png").exists() and not (results[names[0]] / "plot.png").exists()


def test_plot_help_says_where_the_figure_of_several_runs_goes(capsys):
    with pytest.raises(SystemExit):
        execute(["plot", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "DIR/plot.png for one directory" in text and "for several, --out is required" in text


# ---------------------------------------------------------------------------- export


def _csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("name", ["run", "bridge_run"])
def test_export_writes_a_run_of_either_model(results, capsys, name):
    saved = read(results[name])
    assert execute(["export", str(results[name])]) == 0
    rows = _csv(capsys.readouterr().out)
    assert rows[0] == ["step", *sorted(k for k in saved.metrics if k != "step")]
    table = np.array(rows[1:], dtype=float)
    for j, metric in enumerate(rows[0]):
        np.testing.assert_array_equal(table[:, j], saved.metrics[metric], err_msg=metric)


@pytest.mark.parametrize("name", ["sweep", "bridge_sweep"])
def test_export_writes_a_sweeps_metrics_per_point_and_step(results, tmp_path, capsys, name):
    saved = read(results[name])
    out = tmp_path / "s.csv"
    assert execute(["export", str(results[name]), "--out", str(out)]) == 0
    assert "one row per point and recorded step" in capsys.readouterr().err
    rows = _csv(out.read_text())
    key = saved.keys[0]
    assert rows[0][:3] == [key, "seed", "step"] and rows[0][3:] == saved.metric_names()
    metrics = saved.metrics()
    body = rows[1:]
    assert len(body) == sum(len(saved.point_steps(i)) for i in range(len(saved)))
    for i, point in enumerate(saved.rows):
        mine = [r for r in body if float(r[0]) == point[key] and int(r[1]) == point["seed"]]
        assert [int(r[2]) for r in mine] == saved.point_steps(i).tolist()
        for j, metric in enumerate(saved.metric_names()):
            np.testing.assert_array_equal(np.array([r[3 + j] for r in mine], dtype=float),
                                          metrics[metric][i, : len(mine)], err_msg=metric)


def test_export_writes_the_summary_rows_of_a_sweep_without_metrics(results, capsys):
    assert execute(["export", str(results["summaries"])]) == 0
    captured = capsys.readouterr()
    assert "no metrics were recorded" in captured.err and "one summary row per point" in captured.err
    rows = _csv(captured.out)
    saved = read(results["summaries"])
    assert rows[0][:2] == ["train.lr", "seed"] and "peak_reliance" in rows[0] and len(rows) == 1 + len(saved)
    j = rows[0].index("peak_reliance")
    assert [float(r[j]) for r in rows[1:]] == [p["peak_reliance"] for p in saved.rows]


def test_export_help_says_what_a_sweeps_table_holds(capsys):
    with pytest.raises(SystemExit):
        execute(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "one row per point and recorded step" in text and "summary rows, one per point" in text


# ---------------------------------------------------------------------------- compare


def test_compare_runs_star_over_a_toy_and_a_transformer_run(results, tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    for name in ("run", "bridge_run"):
        shutil.copytree(results[name], runs / name)
    assert execute(["compare", *sorted(str(p) for p in runs.iterdir())]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["run", "kind"]
    assert lines[1].split()[:2] == [str(runs / "bridge_run"), "transformer"]
    assert lines[2].split()[:2] == [str(runs / "run"), "toy"]
    assert f"{read(runs / 'bridge_run').summary['peak_reliance']:.4f}" in lines[1]


def test_compare_shows_sweep_points_and_a_dash_for_a_key_the_other_model_lacks(results, capsys):
    assert execute(["compare", "--json", str(results["run"]), str(results["sweep"]),
                    str(results["bridge_sweep"])]) == 0
    document = json.loads(capsys.readouterr().out)
    labels = [row["run"] for row in document["runs"]]
    assert labels == [str(results["run"]), f"{results['sweep']}#0", f"{results['sweep']}#1",
                      f"{results['bridge_sweep']}#0", f"{results['bridge_sweep']}#1"]
    assert {"knowledge.delta_m", "train.eval_every"} <= set(document["differing_keys"])
    rows = document["runs"]
    assert [r["knowledge.delta_m"] for r in rows] == [0.6, 0.6, 0.7, None, None]
    assert [r["train.eval_every"] for r in rows] == [None, None, None, 5, 10]
    assert [r["peak_reliance"] for r in rows[1:3]] == [p["peak_reliance"] for p in read(results["sweep"]).rows]
    assert execute(["compare", str(results["run"]), str(results["bridge_sweep"])]) == 0
    table = capsys.readouterr().out.splitlines()
    column = table[0].split().index("train.eval_every")
    assert table[1].split()[column] == "-" and table[2].split()[column] == "5"


# ---------------------------------------------------------------------------- damaged directories


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _object_array(path: Path) -> None:
    with path.open("wb") as f:
        np.savez(f, step=np.array([{"a": 1}], dtype=object))


DAMAGE = {
    "truncated": _truncate,
    "empty": lambda p: p.write_bytes(b""),
    "random": lambda p: p.write_bytes(np.random.default_rng(0).bytes(300)),
    "pickled": _object_array,
    "missing": lambda p: p.unlink(),
}

CASES = [
    *((name, "metrics.npz", how) for name in ("run", "bridge_run") for how in DAMAGE),
    *((name, "sweep.npz", how) for name in ("sweep", "bridge_sweep") for how in ("truncated", "empty", "random",
                                                                                   "missing")),
    *((name, "summary.json", how) for name in ("run", "sweep", "bridge_run") for how in ("truncated", "empty",
                                                                                          "missing")),
    *((name, "config.toml", how) for name in ("run", "bridge_sweep") for how in ("unknown key", "missing")),
    ("run", "summary.json", "not a summary"),
    ("sweep", "summary.json", "no points"),
    ("run", "", "a file"),
    ("run", "", "nothing"),
]


def _damage(directory: Path, name: str, how: str) -> None:
    path = directory / name
    if how == "unknown key":
        path.write_text(path.read_text().replace("[mixture]\n", "[mixture]\nn_trian = 3\n"))
    elif how == "not a summary":
        path.write_text(json.dumps({"peak_step": "late"}))
    elif how == "no points":
        document = json.loads(path.read_text())
        del document["points"]
        path.write_text(json.dumps(document))
    elif how == "a file":
        shutil.rmtree(directory)
        directory.write_text("not a directory\n")
    elif how == "nothing":
        shutil.rmtree(directory)
        directory.mkdir()
    else:
        DAMAGE[how](path)


@pytest.mark.parametrize("name, file, how", CASES, ids=[f"{n}-{f or 'dir'}-{h}" for n, f, h in CASES])
def test_a_damaged_directory_exits_2_naming_it(results, tmp_path, capsys, name, file, how):
    directory = tmp_path / name
    shutil.copytree(results[name], directory)
    _damage(directory, file, how)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out"
    for command in (["plot", str(directory)], ["plot", str(directory), str(results["run"]), "--out", f"{out}.png"],
                    ["export", str(directory), "--out", f"{out}.csv"], ["compare", str(directory)],
                    ["compare", str(results["run"]), str(directory)]):
        assert execute(command) == 2, command
        captured = capsys.readouterr()
        err = captured.err
        assert repr(str(directory)) in err and err.startswith(f"cpi {command[0]}: error: "), (command, err)
        assert "allow_pickle" not in err and "Traceback" not in err and err.count("\n") == 1, err
        assert captured.out == ""
        if file:
            assert file in err, err
        if how == "unknown key":
            assert "mixture.n_trian" in err and "did you mean 'mixture.n_train'" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    if directory.is_dir():
        assert not (directory / "plot.png").exists()


@pytest.mark.parametrize("how", ["truncated", "random"])
def test_a_damaged_sweep_archive_is_refused_where_its_arrays_are_read(results, tmp_path, how):
    """read() checks sweep.npz's table of contents; a member damaged inside an intact archive is
    found when the arrays are read."""
    directory = tmp_path / "sweep"
    shutil.copytree(results["sweep"], directory)
    path = directory / "sweep.npz"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle: middle + 64] = np.random.default_rng(1).bytes(64) if how == "random" else bytes(64)
    path.write_bytes(bytes(data))
    saved = read(directory)
    with pytest.raises(ConfigError, match="sweep.npz is damaged") as info:
        saved.metrics()
    assert "allow_pickle" not in str(info.value)
    assert saved_module.RERUN in str(info.value)
