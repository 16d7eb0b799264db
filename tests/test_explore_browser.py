"""The `cpi explore` page in a real browser: headless Chromium (Debian's `chromium` package, driven
by playwright with its executable path; playwright's own browser download is not used) opens the
page from a file, each slider is moved to each of its positions by the mouse, and the plotted
curves must then be the selected point's saved data (and its exact theory), with no error in the
console and no request beyond the file itself. Skipped, saying why, where no Chromium is found
(`apt-get install chromium` installs it; .ci/run does so when it runs as root)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from cpi.cli import execute
from cpi.commands.explore import exact_theory
from cpi.sims.saved import read

pytest.importorskip("plotly", reason="the analysis extra (pip install 'cpi-sim[analysis]') is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

CHROMIUM = os.environ.get("CPI_CHROMIUM") or next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")) if p and
     os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install chromium, or set "
                                                        "CPI_CHROMIUM to its path): the browser test needs one")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: Chromium refuses to start as root (CI) with its sandbox
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def acceptance_sweep(tmp_path_factory):
    """The issue's acceptance sweep: five values of ρ, 100 steps."""
    out = tmp_path_factory.mktemp("acceptance") / "S"
    assert execute(["sweep", "--grid", "mixture.context_critical=0:1:5", "--set", "train.steps=100",
                    "--out", str(out)]) == 0
    return out


PLOT = "document.getElementById('cpi-explore-plot')"


def open_page(browser, path):
    """(page, problems): the page opened from its file, and a list that gathers console errors,
    uncaught exceptions and any request other than the file."""
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    problems = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    url = path.resolve().as_uri()
    page.on("request", lambda r: r.url != url and problems.append(f"request: {r.url}"))
    page.goto(url)
    page.wait_for_function(f"{PLOT}.getAttribute('data-selected') !== null")
    return page, problems


def move_slider(page, slider: int, position: int) -> None:
    """Click slider `slider`'s rail at its tick `position`, as a reader would."""
    x, y = page.evaluate("""([d, j]) => {
        const group = document.querySelectorAll('.slider-group')[d];
        const tick = group.querySelectorAll('.slider-tick-rect')[j].getBoundingClientRect();
        const rail = group.querySelector('.slider-rail-rect').getBoundingClientRect();
        return [tick.x + tick.width / 2, rail.y + rail.height / 2]; }""", [slider, position])
    page.mouse.click(x, y)


def plotted(page) -> dict:
    """{trace name: (x, y)} as drawn now."""
    traces = page.evaluate(f"{PLOT}.data.map(t => [t.name, Array.from(t.x), Array.from(t.y)])")
    return {name: (np.asarray(x, dtype=float), np.asarray([np.nan if v is None else v for v in y], dtype=float))
            for name, x, y in traces}


def check_point(saved, i, traces, theory_cache):
    """The traces are point i's recorded curves and its exact theory (an empty trace for a
    metric the point lacks)."""
    steps = saved.point_steps(i)
    metrics = saved.metrics()
    if i not in theory_cache:
        theory_cache[i] = exact_theory(saved.point_config(i))[0]
    theory = theory_cache[i]
    assert "reliance" in traces and "theory: reliance" in traces
    for name, (x, y) in traces.items():
        metric = name.removeprefix("theory: ")
        recorded = metrics[metric][i, : len(steps)]
        if np.isnan(recorded).all():  # a metric of a group the point has no examples of: no curve
            assert len(x) == len(y) == 0, f"point {i}, {name}"
            continue
        expected = theory[metric][steps] if name.startswith("theory: ") else recorded
        np.testing.assert_array_equal(x, steps, err_msg=f"point {i}, {name}")
        np.testing.assert_array_equal(y, expected, err_msg=f"point {i}, {name}")


@pytest.mark.parametrize("which", ["acceptance", "grid"])
def test_each_slider_selects_each_points_curves(browser, acceptance_sweep, grid_sweep, tmp_path, which):
    directory = acceptance_sweep if which == "acceptance" else grid_sweep
    out = tmp_path / "page.html"
    assert execute(["explore", str(directory), "--out", str(out)]) == 0
    saved = read(directory)
    shape = [5] if which == "acceptance" else [2, 3, 2]  # delta_m × rho × seed
    page, problems = open_page(browser, out)
    assert page.evaluate("document.querySelectorAll('.slider-group').length") == len(shape)
    position, cache = [0] * len(shape), {}
    check_point(saved, 0, plotted(page), cache)
    for slider, size in enumerate(shape):
        for j in [*range(1, size), 0]:  # every position, and back to the first
            move_slider(page, slider, j)
            position[slider] = j
            i = int(np.ravel_multi_index(position, shape))
            page.wait_for_function(f"{PLOT}.getAttribute('data-selected') === '{i}'", timeout=5000)
            check_point(saved, i, plotted(page), cache)
            label = page.evaluate("document.getElementById('cpi-explore-label').textContent")
            assert label.startswith(f"point {i}: ")
            summary = page.evaluate("document.getElementById('cpi-explore-summary').textContent")
            assert f"peak_step{saved.rows[i]['peak_step']}" in summary
    page.close()
    assert problems == []


def test_the_run_selector_selects_each_run(browser, result_dirs, tmp_path):
    runs = [result_dirs["run"], result_dirs["bridge_run"]]
    out = tmp_path / "runs.html"
    assert execute(["explore", *map(str, runs), "--out", str(out)]) == 0
    page, problems = open_page(browser, out)
    for j in (1, 0):
        move_slider(page, 0, j)
        page.wait_for_function(f"{PLOT}.getAttribute('data-selected') === '{j}'", timeout=5000)
        metrics = read(runs[j]).metrics
        traces = plotted(page)
        np.testing.assert_array_equal(traces["reliance"][1], metrics["reliance"])
        assert ("theory: reliance" in traces and len(traces["theory: reliance"][1]) > 0) == (j == 0)
    page.close()
    assert problems == []
