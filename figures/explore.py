"""The interactive page of `cpi explore`: one self-contained HTML file (plotly.js inlined, nothing
fetched when it opens) that shows the recorded curves of one selected entry, a point of a sweep
or one of several runs, against the training step, in four panels: reliance on the context
M_C (simulation solid, the exact reduced dynamics dashed where the entry has one), attention to
the context, accuracies, training losses (total and per data group), and the entry's summary in
a table beneath.

A slider per dimension of `Page.shape` selects the entry (for a sweep: one per swept key, and
one for the seeds where it has several; for runs: one over the runs). Plotly's sliders carry
fixed arguments per step, which cannot combine the positions of two sliders, so each slider's
steps do nothing themselves (method "skip") and a short script (`SCRIPT`) reads every slider's
position on `plotly_sliderchange`, takes the entry at that grid position from the page's data
(one JSON block) and restyles the traces with its curves. Trace names are the metric names of
metrics.npz; a theory trace is named "theory: <metric>".

Input is plain data (`Entry`, `Page`): the command (`cpi.commands.explore`) reads the saved
results and computes the theory curves; this module imports plotly only when a page is built.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field

PANELS = (
    ("Reliance on the context M_C (conflict test examples)",
     lambda n: n == "reliance" or n.startswith("reliance_")),
    ("Attention to the context", lambda n: n.startswith("attention_context")),
    ("Accuracies", lambda n: n.endswith("_accuracy")),
    ("Training loss (total and per data group)", lambda n: n == "loss" or n.startswith("loss_")),
)
"""(title, which metrics it draws) of each panel, in page order."""

BYTES_PER_VALUE = 20
"""What one number costs in the page's JSON (a float64 written exactly takes up to 19 characters
and a comma): the estimate behind the size check."""

DATA_LIMIT = 20_000_000
"""The most bytes of curve data one page takes (about a million numbers): a page several times
larger opens slowly and a slider move redraws it slowly."""

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf")


def panel_of(metric: str) -> int | None:
    """The index in `PANELS` of the panel that draws `metric`, None for a metric not drawn."""
    for i, (_, wanted) in enumerate(PANELS):
        if wanted(metric):
            return i
    return None


@dataclass(frozen=True)
class Entry:
    """What the page shows for one selection: `steps` (the recorded steps), `curves` (metric ->
    values at those steps; None for a non-finite value), `theory` (metric -> the exact reduced
    dynamics at the same steps; empty where there is none) and `summary` ((label, text) rows)."""

    label: str
    steps: list[int]
    curves: dict[str, list]
    theory: dict[str, list] = field(default_factory=dict)
    summary: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    """A page: `entries` in C order over `shape`, one slider per dimension (`dims`, their value
    labels `labels`), and the texts above and below the plots."""

    title: str
    description: str
    dims: list[str]
    labels: list[list[str]]
    entries: list[Entry]
    not_drawn: list[str] = field(default_factory=list)

    @property
    def shape(self) -> list[int]:
        return [len(values) for values in self.labels]


def estimate_bytes(n_values: int) -> int:
    """The page's data size for `n_values` numbers (`BYTES_PER_VALUE` each)."""
    return n_values * BYTES_PER_VALUE


def finite_list(values) -> list:
    """Numbers as a JSON-ready list, None (a gap in the curve) where not finite."""
    return [float(v) if math.isfinite(v) else None for v in values]


def _traces(entries: list[Entry]) -> list[dict]:
    """One trace per metric any entry records, in panel order, then one per theory curve."""
    metrics = sorted({m for e in entries for m in e.curves if panel_of(m) is not None})
    theory = sorted({m for e in entries for m in e.theory if panel_of(m) is not None})
    traces = []
    for theory_trace, names in ((False, metrics), (True, theory)):
        for name in names:
            panel = panel_of(name)
            color = COLORS[metrics.index(name) % len(COLORS)] if name in metrics else "#000000"
            traces.append(dict(metric=name, theory=theory_trace, panel=panel, color=color))
    return traces


SCRIPT = """
var gd = document.getElementById('{plot_id}');
var page = JSON.parse(document.getElementById('cpi-explore-data').textContent);
function esc(s) { var d = document.createElement('div'); d.textContent = s; return d.innerHTML; }
function selected() {
  var sliders = gd.layout.sliders || [], k = 0;
  for (var d = 0; d < page.shape.length; d++) k = k * page.shape[d] + ((sliders[d] || {}).active || 0);
  return k;
}
function show(k) {
  var e = page.entries[k], xs = [], ys = [];
  page.traces.forEach(function (t) {
    var y = (t.theory ? e.theory : e.curves)[t.metric] || [];
    xs.push(y.length ? e.steps : []); ys.push(y);
  });
  Plotly.restyle(gd, {x: xs, y: ys});
  document.getElementById('cpi-explore-label').textContent = e.label;
  document.getElementById('cpi-explore-summary').innerHTML = e.summary.map(function (r) {
    return '<tr><th>' + esc(r[0]) + '</th><td>' + esc(r[1]) + '</td></tr>'; }).join('');
  gd.setAttribute('data-selected', k);
}
function start() { gd.on('plotly_sliderchange', function () { show(selected()); }); show(selected()); }
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
"""
"""The page's one script (run once plotly has drawn): a slider moves -> the entry at the sliders'
grid position (C order over `page.shape`) -> its curves into the traces, its summary into the table."""


def build_figure(page: Page):
    """The plotly Figure of `page`: four panels of traces (drawn with the first entry's curves)
    and one slider per dimension whose steps call no plotly method (`SCRIPT` does the work)."""
    from cpi.sims.analysis import require

    go = require("plotly.graph_objects", "cpi explore")
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=2, subplot_titles=[title for title, _ in PANELS],
                        horizontal_spacing=0.08, vertical_spacing=0.12)
    first = page.entries[0]
    for trace in _traces(page.entries):
        y = (first.theory if trace["theory"] else first.curves).get(trace["metric"], [])
        fig.add_trace(go.Scatter(
            x=first.steps if y else [], y=y, mode="lines",
            name=f"theory: {trace['metric']}" if trace["theory"] else trace["metric"],
            line=dict(color=trace["color"], dash="dash" if trace["theory"] else "solid",
                      width=2.5 if trace["theory"] else 1.6),
            opacity=0.9, legendgroup=str(trace["panel"]),
        ), row=trace["panel"] // 2 + 1, col=trace["panel"] % 2 + 1)
    sliders = []
    for d, (dim, labels) in enumerate(zip(page.dims, page.labels)):
        sliders.append(dict(
            active=0, currentvalue=dict(prefix=f"{dim} = ", font=dict(size=13)),
            steps=[dict(label=label, method="skip", args=[]) for label in labels],
            y=-0.1 - 0.16 * d, yanchor="top", x=0.0, len=1.0, pad=dict(t=10, b=10),
        ))
    fig.update_layout(
        sliders=sliders, height=760 + 110 * len(sliders), margin=dict(t=40, b=60 + 110 * len(sliders)),
        legend=dict(groupclick="toggleitem"), template="plotly_white",
    )
    fig.update_xaxes(title_text="training step")
    return fig


def page_data(page: Page) -> dict:
    """The JSON block `SCRIPT` reads: the grid's shape, the traces in figure order, the entries."""
    return dict(
        shape=page.shape,
        traces=[{"metric": t["metric"], "theory": t["theory"]} for t in _traces(page.entries)],
        entries=[dict(label=e.label, steps=e.steps, curves=e.curves, theory=e.theory, summary=e.summary)
                 for e in page.entries],
    )


def page_html(page: Page) -> str:
    """The whole page as one HTML document: plotly.js, the figure, the data and `SCRIPT` inline."""
    fig = build_figure(page)
    plot = fig.to_html(full_html=False, include_plotlyjs=True, div_id="cpi-explore-plot",
                       post_script=SCRIPT, config={"responsive": True, "displaylogo": False})
    data = json.dumps(page_data(page), separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    not_drawn = (f"<p class='note'>Recorded but not drawn (in <code>cpi export</code>): "
                 f"{html.escape(', '.join(page.not_drawn))}.</p>" if page.not_drawn else "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(page.title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.3em; margin-bottom: 0.2em; }}
.note {{ color: #555; font-size: 0.9em; max-width: 70em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ text-align: left; padding: 0.15em 1em 0.15em 0; border-bottom: 1px solid #eee; }}
th {{ font-weight: 600; }}
</style>
</head>
<body>
<h1>{html.escape(page.title)}</h1>
<p class="note">{html.escape(page.description)}</p>
<script type="application/json" id="cpi-explore-data">{data}</script>
{plot}
<h2 id="cpi-explore-label" style="font-size: 1.1em">{html.escape(page.entries[0].label)}</h2>
<table id="cpi-explore-summary"></table>
{not_drawn}
</body>
</html>
"""
