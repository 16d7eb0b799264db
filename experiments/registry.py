"""The experiments, in the order `cpi figures` draws them: one `Experiment` record each.

A record knows its name, what it shows, its module (`experiments.<name>`: the parameters
with their defaults, `PARAMS`, and the computation, `compute`) and the plot function that
draws its data (`figures.<name>.plot_<name>`). Names and plot functions are known without
importing anything: the CLI lists the experiments and `cpi.figures` re-plots saved data without
loading JAX or the simulator. `params` and `compute` import the experiment's module on first
use. The registry is data: computing, saving and reusing an experiment's data is
`cpi.experiments.cache.experiment_data`, which looks experiments up here.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any, Callable


@dataclass(frozen=True)
class Experiment:
    """One experiment: `compute(base, work, **params)` -> data dict, drawn by `plot`."""

    name: str
    description: str  # one line: what the data show
    version: int = 1
    """The version of the computation: raise it when `compute` changes what it returns for the
    same config and parameters, so that data saved by the earlier code are computed again
    (saved data are reused while their inputs key, `cpi.experiments.cache.inputs_digest`,
    matches, and the key does not see the code)."""

    @property
    def module(self):
        """`experiments.<name>`, imported on first use."""
        return import_module(f"{__package__}.{self.name}")

    @property
    def params(self) -> dict[str, Any]:
        """The experiment's own parameters and their defaults (overridable per call)."""
        return dict(self.module.PARAMS)

    @property
    def compute(self) -> Callable[..., dict]:
        """(base config, work directory, **params) -> data dict (looked up at call time)."""
        return self.module.compute

    @property
    def plot(self) -> str:
        """The plot function: `plot_<name>` in `figures/<name>.py` (data dict -> Figure)."""
        return f"plot_{self.name}"

    def resolve(self, params: dict) -> dict:
        """The defaults updated with `params`; unknown names raise TypeError."""
        defaults = self.params
        unknown = set(params) - set(defaults)
        if unknown:
            raise TypeError(
                f"experiment {self.name!r} has no parameter(s) {sorted(unknown)}; it takes {sorted(defaults)}"
            )
        return {**defaults, **params}


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("inversion", "M_C, σ_c and aligned accuracy vs step: simulation and exact reduced theory"),
    Experiment("tug_of_war", "θ_C components of −∇L from C and CS examples vs step: simulation and theory"),
    Experiment("phase_diagram", "M_C over (ρ, step), peak/final/drop vs ρ, long-time gradient flows"),
    Experiment("three_steps", "M_C at steps 0, 1, 2 and the t = 1 θ_C component vs η (Prop. 1, Theorem 1)"),
    Experiment("knowledge_strength", "depth of the inversion over (δ_M, ρ) and (δ_C, ρ), ρ* curves"),
    Experiment("filtering", "M_C, peak/final/drop and aligned accuracy vs the filtered fraction"),
    Experiment("counterfactual", "M_C vs the counterfactual fraction, flow peak times, CF examples needed"),
    Experiment("value_training", "W_V trained at several value_lr: M_C, the CS pull, value-logit blocks"),
    Experiment("fact_recall", "M_C with seen / unseen fact-recall examples added, Proposition 2 at t = 0"),
    Experiment("tasks", "two relations, CF examples on relation 1: M_C per relation vs the overlap γ"),
    Experiment("robustness",
               "random embeddings: peak, final and drop of M_C vs world.dim over seeds; ρ* measured vs predicted"),
    Experiment("optimizers",
               "M_C vs step for GD (with theory), SGD at two batch sizes and with momentum over seeds, Adam"),
    Experiment("paper_metrics", "the paper's Figure 2 (counterfactual vs parametric accuracy) and Figure 1a "
               "(M_C vs train accuracy) in the toy"),
    Experiment("learned_pretraining",
               "W_V learned in pretraining: M_C vs step for several pretraining lengths, achieved δ's"),
    Experiment("bridge_inversion",
               "the transformer bridge at its defaults: M_C, accuracies, attention, losses (seeds)", version=2),
    Experiment("bridge_phase", "the transformer's M_C over (ρ, step) under GD beside the toy's, rise onset vs ρ*",
               version=2),
    Experiment("bridge_mitigations", "filter, counterfactual, all parameters: the transformer beside the toy",
               version=2),
    Experiment("bridge_depth", "the transformer's inversion at 1, 2 and 4 layers (seeds)"),
    Experiment("timescale", "peak step of M_C vs n (flow, GD, SGD), the law nΨ(ρ) + ½ ln n, the first epoch of SGD"),
    Experiment("bridge_prediction",
               "measure, then predict: the toy's predictions from each transformer run's δ_C, δ_M and ρ̂, scored"),
    Experiment("bridge_onset", "where the transformer's rise starts: ρ̂* from exact t = 0 derivatives beside "
               "Lemma 4's ρ* and the measured onset, default and weaker facts (seeds)"),
    Experiment("bridge_finetuning", "all parameters vs query/key maps only, AdamW with minibatches at several "
               "learning rates (seeds): against the paper's Figures 5c and 13", version=2),
    Experiment("bridge_small_falls", "the transformer's small falls without CS examples: GD vs Adam, the first "
               "layer's subject-to-context attention, its maps frozen; the toy at ρ = 1 under Adam", version=2),
    Experiment("bridge_timescale", "the transformer on thousands of examples, minibatch AdamW and SGD over epochs: "
               "when M_C peaks, and the loss of C examples visited or not yet visited (seeds)", version=2),
)

NAMES: tuple[str, ...] = tuple(e.name for e in EXPERIMENTS)

_BY_NAME = {e.name: e for e in EXPERIMENTS}


def get(name: str) -> Experiment:
    """The experiment called `name` (KeyError naming the known ones otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown experiment {name!r}; experiments: {', '.join(NAMES)}") from None
