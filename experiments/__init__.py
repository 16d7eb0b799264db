"""The experiments layer (between `cpi.sims` and `cpi.figures`): what each figure computes.

One module per experiment (`inversion`, `tug_of_war`, `phase_diagram`, `three_steps`,
`knowledge_strength`, `filtering`, `counterfactual`, `value_training`, `fact_recall`,
`tasks`), each stating what it varies and computes, its parameters with their defaults
(`PARAMS`) and its computation (`compute(base, work, **params)` -> dict of NumPy arrays and
scalars: simulated quantities under `sim_*` keys, theory under `theory_*` keys, the configs
used as TOML text). `registry` lists them (`EXPERIMENTS`, `get(name)`); `cache` saves and
reuses their data (`experiment_data`, `<data_dir>/<name>.npz`) and `simulations` the
simulations behind them; `analysis`, `configs` and `seeded` hold what several experiments
share. Nothing here plots. The imports go one way: `cache` → `registry` → (on first use) each
experiment → `simulations`, `analysis`, `configs`.

The theory curves assume W_V frozen (value training has no theory beyond its frozen
reference). The first five experiments assume one relation and no filtering (the default
config); the others change the mixture, the relations or value_lr themselves, each starting
from the base config; every experiment's simulations run the configs it reports.

The bridge experiments (`bridge_inversion`, `bridge_phase`, `bridge_mitigations`,
`bridge_depth`; shared code in `bridge_runs`) run the transformer of `cpi.bridge` from its own
defaults over seeds; the toy's base config only feeds their toy panels.

    >>> from cpi.experiments.cache import experiment_data
    >>> data = experiment_data("inversion", data_dir="figure-data")  # doctest: +SKIP

Importing this package (or `registry`) loads neither JAX nor the simulator; an experiment's
module is imported when its parameters, computation or data are first asked for.
"""

from .registry import EXPERIMENTS, NAMES, Experiment, get

__all__ = ["EXPERIMENTS", "NAMES", "Experiment", "get"]
