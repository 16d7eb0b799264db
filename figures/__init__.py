"""Presentation layer: one function per figure, data dict -> matplotlib `Figure`.

The data dicts come from `sims.figure_data` (or from saved `<data_dir>/<figure>.npz` files);
nothing here trains or imports the simulator, so a figure can be restyled without re-running
anything. `figures.make.make_figures` (`cpi figures`) computes or reuses the data and writes
every figure as PNG and PDF. Figures are drawn on the Agg canvas without pyplot.
"""

from .counterfactual import plot_counterfactual
from .fact_recall import plot_fact_recall
from .filtering import plot_filtering
from .inversion import plot_inversion
from .knowledge_strength import plot_knowledge_strength
from .phase_diagram import plot_phase_diagram
from .tasks import plot_tasks
from .three_steps import plot_three_steps
from .tug_of_war import plot_tug_of_war
from .value_training import plot_value_training

PLOTS = {
    "inversion": plot_inversion,
    "tug_of_war": plot_tug_of_war,
    "phase_diagram": plot_phase_diagram,
    "three_steps": plot_three_steps,
    "knowledge_strength": plot_knowledge_strength,
    "filtering": plot_filtering,
    "counterfactual": plot_counterfactual,
    "value_training": plot_value_training,
    "fact_recall": plot_fact_recall,
    "tasks": plot_tasks,
}
"""figure name -> plotting function, in the order `cpi figures` writes them."""

__all__ = ["PLOTS", *(f.__name__ for f in PLOTS.values())]
