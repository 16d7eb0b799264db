"""Presentation layer: one function per figure, data dict -> matplotlib `Figure`.

The data dicts come from the experiments (`cpi.experiments`, or saved `<data_dir>/<figure>.npz`
files); nothing here trains or imports the simulator, so a figure can be restyled without
re-running anything. Which figures exist, and which plot function draws each, is read from
`cpi.experiments.registry` (`plot_<name>` in `figures/<name>.py`). `cpi.figures.make.make_figures`
(`cpi figures`) computes or reuses the data and writes every figure as PNG and PDF. Figures
are drawn on the Agg canvas without pyplot.
"""

from importlib import import_module

from cpi.experiments.registry import NAMES, get

__all__ = ["NAMES", "plot", "plot_function", *(f"plot_{n}" for n in NAMES)]


def plot_function(name: str):
    """The function that draws experiment `name`'s data (imports matplotlib on first use)."""
    return getattr(import_module(f".{name}", __name__), get(name).plot)


def plot(name: str, data: dict):
    """The Figure of experiment `name` for its data dict."""
    return plot_function(name)(data)


def __getattr__(name: str):
    """`plot_<experiment>`, imported on first use: the CLI can list the figures without
    loading matplotlib."""
    if name.startswith("plot_") and name[len("plot_"):] in NAMES:
        function = plot_function(name[len("plot_"):])
        globals()[name] = function
        return function
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
