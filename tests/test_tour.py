"""The live tour (notebooks/tour.py, a marimo notebook) runs headless without a cell error, and
`cpi tour` opens it with marimo (or says how to install marimo)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cpi.cli import execute
from cpi.commands import tour


def test_the_tour_runs_headless_without_a_cell_error():
    pytest.importorskip("marimo", reason="the tour extra (pip install 'cpi-sim[tour]') is not installed")
    # run as a script, marimo executes every cell in order and raises on the first that fails
    done = subprocess.run([sys.executable, str(tour.NOTEBOOK)], capture_output=True, text=True, timeout=300,
                          cwd=tour.NOTEBOOK.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Error" not in done.stderr, done.stderr[-3000:]


def test_cpi_tour_opens_the_notebook_with_marimo(monkeypatch, capsys):
    pytest.importorskip("marimo", reason="the tour extra (pip install 'cpi-sim[tour]') is not installed")
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda argv: calls.append(argv) or 0)
    assert execute(["tour"]) == 0 and execute(["tour", "--edit"]) == 0
    assert [c[1:4] for c in calls] == [["-m", "marimo", "run"], ["-m", "marimo", "edit"]]
    assert all(c[-1] == str(tour.NOTEBOOK) for c in calls)
    assert execute(["tour", "--path"]) == 0 and capsys.readouterr().out.strip() == str(tour.NOTEBOOK)


def test_without_marimo_cpi_tour_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "marimo", None)
    monkeypatch.setattr(subprocess, "call", lambda argv: pytest.fail("marimo started"))
    assert execute(["tour"]) == 2
    assert "pip install 'cpi-sim[tour]'" in capsys.readouterr().err
