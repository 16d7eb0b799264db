"""Shared look of the figures: Agg-backed `Figure` objects (no pyplot, no global state),
simulation as markers, theory as lines, a headline stating the finding.

Every plotted data artist carries a gid naming the data key it shows, so tests (and
readers) can find it with `artist(fig, gid)`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SIM_STYLE = dict(linestyle="none", marker="o", markersize=5, markerfacecolor="none", markeredgewidth=1.2)
THEORY_STYLE = dict(linestyle="-", linewidth=1.7)
ANNOTATION = dict(fontsize=8.5, color="0.25")

BLUE, ORANGE, GREEN, RED, PURPLE, GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "0.35"


def new_figure(width: float, height: float, ncols: int = 1, nrows: int = 1, **subplot_kw):
    """(figure, flat array of axes) with constrained layout, drawn by the Agg canvas."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw).ravel()
    return fig, axes


def headline(fig: Figure, title: str, finding: str) -> None:
    """Figure title (bold) and one line stating what the figure shows."""
    fig.suptitle(f"{title}\n{finding}", fontsize=11)


def panel_label(ax, label: str) -> None:
    ax.set_title(label, loc="left", fontsize=10)


def sim_line(ax, x, y, gid: str, label: str | None = None, every: int | list = 1, **kw):
    """Simulation: markers only (every `every`-th point, or at the indices in a list), the
    full arrays kept as the line data."""
    style = {**SIM_STYLE, **kw}
    every = list(every) if isinstance(every, (list, tuple)) else max(1, int(every))
    (line,) = ax.plot(np.asarray(x), np.asarray(y), label=label, markevery=every, **style)
    line.set_gid(gid)
    return line


def theory_line(ax, x, y, gid: str, label: str | None = None, **kw):
    """Theory: a solid line."""
    style = {**THEORY_STYLE, **kw}
    (line,) = ax.plot(np.asarray(x), np.asarray(y), label=label, **style)
    line.set_gid(gid)
    return line


def marker_every(n: int, target: int = 30) -> int:
    """A marker stride that leaves about `target` markers on n points."""
    return max(1, int(round(n / target)))


def log_marker_indices(n: int, target: int = 30) -> list[int]:
    """About `target` marker indices evenly spaced on a logarithmic axis over 0..n-1."""
    if n <= 1:
        return [0]
    return sorted({0, *np.unique(np.round(np.geomspace(1, n - 1, target)).astype(int)).tolist()})


def artist(fig: Figure, gid: str):
    """The one artist of `fig` with this gid (KeyError if none, ValueError if several)."""
    found = fig.findobj(lambda a: a.get_gid() == gid)
    if not found:
        raise KeyError(gid)
    if len(found) > 1:
        raise ValueError(f"{len(found)} artists with gid {gid!r}")
    return found[0]


def scalar(data: dict, key: str, default=None):
    """A scalar of a data dict as a Python number (0-d arrays included)."""
    value = data.get(key, default)
    return value.item() if isinstance(value, np.ndarray) else value
