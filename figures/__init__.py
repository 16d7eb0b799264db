"""Presentation layer: one function per figure, data dict -> matplotlib `Figure`.

The data dicts come from `sims.figure_data` (or from saved `<data_dir>/<figure>.npz` files);
nothing here trains or imports the simulator, so a figure can be restyled without re-running
anything. `figures.make.make_figures` (`cpi figures`) computes or reuses the data and writes
every figure as PNG and PDF. Figures are drawn on the Agg canvas without pyplot.
"""

NAMES = (
    "inversion",
    "tug_of_war",
    "phase_diagram",
    "three_steps",
    "knowledge_strength",
    "filtering",
    "counterfactual",
    "value_training",
    "fact_recall",
    "tasks",
)
"""The figures, in the order `cpi figures` writes them (known without importing matplotlib)."""


def __getattr__(name: str):
    """`PLOTS` and the plot functions, imported on first use: the CLI can list the figures
    without loading matplotlib."""
    if name == "PLOTS" or name.startswith("plot_"):
        from importlib import import_module

        plots = {n: getattr(import_module(f".{n}", __name__), f"plot_{n}") for n in NAMES}
        globals().update({f"plot_{n}": f for n, f in plots.items()}, PLOTS=plots)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["NAMES", "PLOTS", *(f"plot_{n}" for n in NAMES)]
