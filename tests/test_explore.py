"""`cpi explore`: one self-contained page whose data are the saved curves of every point (or
run), with the exact theory where the config has one; bad input exits 2 and writes nothing.
The page in a real browser: tests/test_explore_browser.py."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from cpi.cli import execute
from cpi.commands.explore import exact_theory
from cpi.sims.saved import read

pytest.importorskip("plotly", reason="the analysis extra (pip install 'cpi-sim[analysis]') is not installed")


def page_data(path) -> dict:
    """The JSON block of a written page."""
    text = path.read_text()
    block = re.search(r'<script type="application/json" id="cpi-explore-data">(.*?)</script>', text, re.S)
    return json.loads(block.group(1).replace("<\\/", "</"))


def test_a_sweep_page_holds_every_point_and_its_theory(grid_sweep, tmp_path):
    out = tmp_path / "page.html"
    assert execute(["explore", str(grid_sweep), "--out", str(out)]) == 0
    text = out.read_text()
    # self-contained: plotly.js inline, nothing to fetch
    assert not re.search(r"<script[^>]*\bsrc=|<link[^>]*\bhref=", text)
    data = page_data(out)
    saved = read(grid_sweep)
    assert data["shape"] == [2, 3, 2]  # knowledge.delta_m × mixture.context_critical × seed
    metrics = saved.metrics()
    for i, entry in enumerate(data["entries"]):
        steps = saved.point_steps(i)
        assert entry["steps"] == steps.tolist()
        assert {"reliance", "attention_context", "aligned_accuracy", "loss_C"} <= set(entry["curves"])
        for name, values in entry["curves"].items():
            np.testing.assert_array_equal(values, metrics[name][i, : len(steps)], err_msg=name)
        theory, _ = exact_theory(saved.point_config(i))
        assert "reliance" in entry["theory"]
        for name, values in entry["theory"].items():
            np.testing.assert_array_equal(values, theory[name][steps], err_msg=name)
        # the simulation and the exact reduced dynamics agree
        np.testing.assert_allclose(entry["theory"]["reliance"], entry["curves"]["reliance"], atol=1e-9)


def test_runs_give_a_page_with_a_selector_and_no_theory_for_the_transformer(result_dirs, tmp_path):
    out = tmp_path / "runs.html"
    runs = [result_dirs["run"], result_dirs["bridge_run"]]
    assert execute(["explore", *map(str, runs), "--out", str(out)]) == 0
    data = page_data(out)
    assert data["shape"] == [2]
    toy, bridge = data["entries"]
    assert toy["theory"] and not bridge["theory"]
    assert "attention_context_l2" in bridge["curves"]
    np.testing.assert_array_equal(bridge["curves"]["reliance"], read(runs[1]).metrics["reliance"])


def test_one_directory_writes_its_page_beside_it(result_dirs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(result_dirs["run"], run)
    assert execute(["explore", str(run)]) == 0
    assert page_data(run / "explore.html")["shape"] == []


@pytest.mark.parametrize("case", ["not a directory", "empty directory", "damaged archive", "summaries only",
                                  "a sweep and a run", "several without --out"])
def test_bad_input_exits_2_and_writes_nothing(result_dirs, tmp_path, capsys, case):
    out = tmp_path / "out" / "page.html"
    bad = tmp_path / "bad"
    argv = {"not a directory": [str(tmp_path / "missing")], "empty directory": [str(bad)],
            "damaged archive": [str(bad)], "summaries only": [str(result_dirs["summaries"])],
            "a sweep and a run": [str(result_dirs["sweep"]), str(result_dirs["run"])]}.get(case)
    if case == "empty directory":
        bad.mkdir()
    if case == "damaged archive":
        shutil.copytree(result_dirs["sweep"], bad)
        (bad / "sweep.npz").write_bytes((bad / "sweep.npz").read_bytes()[:200])
    if case == "several without --out":
        assert execute(["explore", str(result_dirs["run"]), str(result_dirs["bridge_run"])]) == 2
    else:
        assert execute(["explore", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cpi explore: error: ") and "Traceback" not in err
    assert not out.parent.exists() and not (result_dirs["run"] / "explore.html").exists()


def test_a_sweep_too_large_for_one_page_says_its_size_and_how_to_cut_it(grid_sweep, tmp_path, capsys, monkeypatch):
    import cpi.figures.explore as explore

    monkeypatch.setattr(explore, "DATA_LIMIT", 10_000)
    out = tmp_path / "page.html"
    assert execute(["explore", str(grid_sweep), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "12 points × 11 recorded steps" in err and "MB" in err and "--record-every" in err
    assert "smaller --grid" in err and not out.exists()
