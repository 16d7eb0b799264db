"""`cpi explore DIR [DIR ...] --out page.html`: one self-contained HTML page to browse a sweep's
points (a slider per swept key, and one over the seeds where the sweep has several) or several
runs (a slider over them), with each selection's recorded curves, its summary, and the exact
reduced dynamics overlaid where its config has one (`cpi.figures.explore` draws the page).

`explore_page` reads the saved results into the page's data; a notebook can call it and
`cpi.figures.explore.page_html` the same way."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from ..arguments import check_out_file

DEFAULT_NAME = "explore.html"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "explore", help="write one self-contained HTML page with sliders over a sweep's points or several runs",
        description=(
            "Write one HTML file that holds everything it shows (plotly.js inlined: it opens from a file, "
            "offline, or as an e-mail attachment): for a sweep (cpi sweep, cpi bridge --grid) a slider per "
            "swept key, and one over the seeds where it has several; for one or more runs (cpi run, cpi "
            "bridge) a slider over them. The selected point's or run's recorded curves against the "
            "training step: reliance on the context M_C, attention to the context, accuracies, training "
            "losses; its summary beneath; and, dashed, the exact reduced dynamics of its config where one "
            "exists (a toy config with W_V frozen and full-batch gradient descent, as cpi theory decides). "
            "A sweep too large for one page (more than about 20 MB of curve data) is refused with its size "
            "and how to cut it. Needs plotly: pip install 'cpi-sim[analysis]'."
        ),
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR",
                        help="one sweep directory, or one or more run directories")
    parser.add_argument("--out", metavar="PAGE.html",
                        help=f"the page to write (default: DIR/{DEFAULT_NAME} for one directory; needed for several)")
    parser.set_defaults(func=cmd_explore)
    return parser


def cmd_explore(args) -> int:
    from cpi.core.errors import ConfigError
    from cpi.figures.explore import page_html
    from cpi.sims.analysis import require
    from cpi.sims.results import write_atomic
    from cpi.sims.saved import read

    saved = [read(d) for d in args.dirs]
    if args.out is None and len(saved) > 1:
        raise ConfigError(f"{len(saved)} directories: give the page's file name with --out PAGE.html")
    out = Path(args.out) if args.out else Path(args.dirs[0]) / DEFAULT_NAME
    check_out_file(out)
    require("plotly", "cpi explore")
    page = explore_page(saved)
    text = page_html(page).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, text)
    what = " × ".join(f"{len(labels)} {dim}" for dim, labels in zip(page.dims, page.labels)) or "1 run"
    print(f"wrote {out} ({what}, {len(text) / 1e6:.1f} MB)", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------- the page's data


def _text(value) -> str:
    """A summary value as the page shows it."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return "—" if value is None else str(value)


def exact_theory(config) -> tuple[dict | None, str]:
    """(trajectory, note): the exact reduced dynamics of a toy `config` (metrics at steps
    0..train.steps) where the reduction is exact (`cpi.sims.theory_report.inexact_reasons` is
    empty: W_V frozen, full-batch gradient descent), as `cpi theory` computes it: the group form
    for the paper's embeddings and constructed W_V, the per-example form otherwise; else None
    and why not."""
    from cpi.sims.theory_inputs import example_trajectory, reduced_trajectory
    from cpi.sims.theory_report import inexact_reasons

    reasons = inexact_reasons(config)
    if reasons:
        return None, "none exact for this config: " + "; ".join(reasons)
    if config.world.embeddings == "paper" and config.knowledge.pretraining == "constructed":
        return reduced_trajectory(config), "exact reduced dynamics (group form), dashed"
    return example_trajectory(config), "exact reduced dynamics (per-example form), dashed"


def _entry(label: str, steps, metrics_at, config, summary_rows, bridge: bool):
    """The page's entry for one point or run: `metrics_at(name)` gives a metric's values at
    `steps` (or None where the point lacks it)."""
    import numpy as np

    from cpi.figures.explore import Entry, finite_list, panel_of

    steps = np.asarray(steps)
    curves = {}
    for name, values in metrics_at.items():
        if panel_of(name) is not None and values is not None and not np.isnan(values).all():
            curves[name] = finite_list(values)
    theory, note = (None, "none: the transformer has no reduced dynamics") if bridge else exact_theory(config)
    drawn = {}
    if theory is not None:
        for name in curves:
            value = theory.get(name)
            if value is not None and np.ndim(value) == 1 and len(value) > steps.max():
                drawn[name] = finite_list(np.asarray(value)[steps])
    rows = [*summary_rows, ("theory", note)]
    return Entry(label=label, steps=[int(s) for s in steps], curves=curves, theory=drawn, summary=rows)


def _too_large(what: str, n_values: int, cut: str, every: int, bridge: bool = False):
    """The ConfigError for a page of `n_values` numbers over `DATA_LIMIT`: its size, and how to cut
    it (`cut`: the command to rerun; `every`: its recording stride now)."""
    from cpi.core.errors import ConfigError
    from cpi.figures.explore import DATA_LIMIT, estimate_bytes

    size = estimate_bytes(n_values)
    factor = math.ceil(size / DATA_LIMIT)
    fewer = f"a train.eval_every {factor} times larger" if bridge else f"--record-every {every * factor}"
    return ConfigError(
        f"{what} ≈ {size / 1e6:.0f} MB of curve data, more than one page holds ({DATA_LIMIT / 1e6:.0f} MB); "
        f"cut it: {cut} with {fewer}, or with fewer points (a smaller --grid); "
        "`cpi export DIR --format netcdf` takes all of it to other tools")


def explore_page(saved: list):
    """The `cpi.figures.explore.Page` of one saved sweep, or of one or more saved runs;
    ConfigError for anything else (several sweeps, a sweep and runs, a sweep that recorded
    summaries only) or for more curve data than one page holds (`DATA_LIMIT`)."""
    from cpi.core.errors import ConfigError
    from cpi.sims.saved import SavedSweep

    sweeps = [s for s in saved if isinstance(s, SavedSweep)]
    if sweeps and len(saved) > 1:
        raise ConfigError(f"{', '.join(repr(str(s.path)) for s in saved)}: cpi explore takes one sweep, or one "
                          f"or more runs; {str(sweeps[0].path)!r} is a sweep")
    if sweeps:
        return _sweep_page(sweeps[0])
    return _runs_page(saved)


def _sweep_page(saved):
    from cpi.core.errors import ConfigError
    from cpi.figures.explore import DATA_LIMIT, Page, estimate_bytes, panel_of
    from cpi.sims.analysis import grid_layout

    where = repr(str(saved.path))
    if not saved.recorded:
        raise ConfigError(f"{where} recorded summaries only (--summaries-only): no curves to explore; sweep again "
                          "without --summaries-only, or read its table with cpi export")
    names = saved.metric_names()
    drawn = [n for n in names if panel_of(n) is not None]
    n_steps = len(saved.arrays(["step"])["step"])
    curves = len(drawn) * (1 if saved.bridge else 2)  # the toy's theory may add a curve per metric
    n_values = len(saved) * n_steps * curves
    if estimate_bytes(n_values) > DATA_LIMIT:
        raise _too_large(f"{where}: {len(saved)} points × {n_steps} recorded steps × {curves} curves", n_values,
                         "run cpi bridge --grid again" if saved.bridge else "run cpi sweep again", saved.record_every,
                         saved.bridge)
    metrics = saved.metrics()
    layout = grid_layout(saved)
    if layout is None:  # not a full grid: one slider over the points in order
        dims, labels = ["point"], [[str(i) for i in range(len(saved))]]
    else:
        dims, coords, _ = layout
        labels = [[_text(v) for v in coords[d]] for d in dims]
    entries = []
    for i, row in enumerate(saved.rows):
        steps = saved.point_steps(i)
        config = saved.point_config(i)
        lead = [*saved.keys, "seed"]
        summary = [(k, _text(row[k])) for k in lead] + [(k, _text(v)) for k, v in sorted(row.items())
                                                        if k not in lead]
        label = f"point {i}: " + ", ".join(f"{k} = {_text(row[k])}" for k in lead)
        entries.append(_entry(label, steps, {n: metrics[n][i, : len(steps)] for n in drawn}, config, summary,
                              saved.bridge))
    description = (f"{saved.kind} {saved.path} ({len(saved)} points). Move the sliders to select a point. "
                   "Solid lines: the simulation's recorded metrics; dashed: the exact reduced dynamics of the "
                   "point's config, where one exists.")
    return Page(title=f"cpi explore: {saved.name}", description=description, dims=dims, labels=labels,
                entries=entries, not_drawn=[n for n in names if n not in drawn])


def _stride(steps) -> int:
    """The recording stride of a run's recorded steps (1 for a single step)."""
    return int(steps[1] - steps[0]) if len(steps) > 1 else 1


def _runs_page(runs):
    from cpi.figures.explore import DATA_LIMIT, Page, estimate_bytes, panel_of

    names = sorted({n for r in runs for n in r.metrics if n != "step"})
    drawn = [n for n in names if panel_of(n) is not None]
    n_values = sum(len(r.metrics["step"]) * len(drawn) * (1 if r.bridge else 2) for r in runs)
    if estimate_bytes(n_values) > DATA_LIMIT:
        longest = max(len(r.metrics["step"]) for r in runs)
        raise _too_large(f"{len(runs)} runs × up to {longest} recorded steps × {len(drawn)} curves (and theory)",
                         n_values, "run them again", max(_stride(r.metrics["step"]) for r in runs),
                         any(r.bridge for r in runs))
    labels = [r.name for r in runs]
    if len(set(labels)) < len(labels):
        labels = [str(r.path) for r in runs]
    entries = []
    for run, label in zip(runs, labels):
        summary = [("directory", str(run.path)), ("kind", run.kind)]
        summary += [(k, _text(v)) for k, v in sorted(run.summary.items()) if isinstance(v, (bool, int, float, str))
                    or v is None]
        entries.append(_entry(label, run.metrics["step"], {n: run.metrics.get(n) for n in drawn}, run.config,
                              summary, run.bridge))
    several = len(runs) > 1
    description = (f"{len(runs)} runs. " + ("Move the slider to select a run. " if several else "")
                   + "Solid lines: the simulation's recorded metrics; dashed: the exact reduced dynamics of the "
                   "run's config, where one exists.")
    return Page(title="cpi explore: " + ", ".join(labels), description=description,
                dims=["run"] if several else [], labels=[labels] if several else [], entries=entries,
                not_drawn=[n for n in names if n not in drawn])
