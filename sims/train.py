"""One training run: build the world of a config, train it with the fast engine
(`cpi.sims.engine`), and return NumPy metrics, the summary and the final d×d parameters.

Step 0 of every metric is before any update; step t is after t updates. W_KQ starts at 0;
W_V starts at its pretrained value and trains only when train.value_lr > 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from cpi.theory.groups import TRAINING_GROUPS, training_index
from cpi.theory.summary import first_nonfinite_step, inversion_tol, summarize

from . import engine, optimizers, packing
from .budget import check_record_every, check_run_budget
from .config import EXACT_OPTIMIZERS, Config
from cpi.core.errors import SimulationError
from .metrics import group_metric_names, metric_names
from .precision import precision
from .pretraining import world_strengths
from cpi.core.progress import StepProgress
from .world import World, build_world


@dataclass(frozen=True)
class RunResult:
    config: Config
    metrics: dict[str, np.ndarray]  # over metrics["step"] (every step, or a stride)
    summary: dict  # from every step, whatever was recorded
    world: World = field(repr=False)
    state: engine.State | dict = field(repr=False)  # the final state in token coordinates, or {kq, v} (adam, adamw)

    @cached_property
    def params(self) -> dict[str, np.ndarray]:
        """The final d×d parameters: W_KQ ("kq") and W_V ("v")."""
        if isinstance(self.state, dict):  # a run on the generic engine (adam, adamw)
            return self.state
        return engine.full_parameters(self.world, self.state, self.config.train.value_lr)


def check_finite(nonfinite_step: int | None, config: Config) -> None:
    """Raise SimulationError naming the first step where a metric became non-finite."""
    if nonfinite_step is not None:
        raise SimulationError(
            f"the numbers became non-finite at step {nonfinite_step} (train.lr = {config.train.lr:g}, "
            f"train.value_lr = {config.train.value_lr:g}); try a smaller step size"
        )


def absent_metrics(world) -> set[str]:
    """Metric names of the data groups the world's training set lacks (and of the aligned
    points when there are none): they are NaN throughout and left out of the results."""
    absent = {name for g in TRAINING_GROUPS if not np.any(world.train.group == training_index(g))
              for name in group_metric_names(g)}
    if len(world.aligned) == 0:
        absent |= {k for k in metric_names(world.n_relations) if k.startswith("aligned_")}
    return absent


def generic_run(world: World, config: Config, hyper, record_every: int, progress):
    """adam and adamw (not exact in token coordinates, `cpi.sims.optimizers`) on the generic d×d
    engine: (metrics every `record_every` steps, summary of every step, final {kq, v})."""
    from . import generic  # the d×d oracle: only adam and adamw need it on this path

    t = config.train
    values, params = generic.simulate(
        generic.pack(world, t.dtype), t.lr, t.value_lr, t.steps, train_values=t.value_lr > 0,
        progress=lambda done, total: progress(done), hyper=hyper, name=t.optimizer, batch_size=t.batch_size)
    values = {k: np.asarray(v) for k, v in values.items()}
    summary = summarize(values["reliance"], tol=inversion_tol(values["reliance"].dtype))
    summary["nonfinite_step"] = first_nonfinite_step(np.stack(list(values.values()), axis=-1))
    columns = engine.recorded_steps(t.steps, record_every)
    return {k: v[columns] for k, v in values.items()}, summary, {k: np.asarray(v) for k, v in params.items()}


def run(config: Config, progress: bool = False, record_every: int = 1) -> RunResult:
    """Build the world of `config`, train, and return the metrics recorded every
    `record_every` steps (and at the last step), the summary of every step (with the achieved
    strengths δ_C, δ_M of the pretrained W_V, `cpi.sims.pretraining.achieved_strengths`), and the
    final parameters. Raises ConfigError when record_every is not an integer >= 1 or the recorded
    metrics would not fit in memory, and
    SimulationError when the numbers become non-finite."""
    steps = config.train.steps
    check_record_every(record_every)
    check_run_budget(config, record_every)
    world = build_world(config)
    t = config.train
    train_values = t.value_lr > 0
    bar = StepProgress(steps, "steps", enabled=progress and steps > engine.SEGMENT_STEPS)
    with bar, precision(t.dtype):
        hyper = None if optimizers.is_plain(t) else optimizers.hyper(t, t.dtype)
        if t.optimizer in EXACT_OPTIMIZERS:
            values, summary, state = engine.simulate(
                *packing.pack(world, t.dtype, frozen_values=not train_values),
                t.lr, t.value_lr, steps, train_values=train_values, record_every=record_every, progress=bar.advance_to,
                hyper=hyper, optimizer=t.optimizer, batch_size=t.batch_size,
            )
        else:
            values, summary, state = generic_run(world, config, hyper, record_every, bar.advance_to)
    check_finite(summary.pop("nonfinite_step"), config)
    if world.value_table_error is not None:  # random embeddings: how well W_V realises Lemma 3's table
        summary["value_table_error"] = world.value_table_error
    summary.update(world_strengths(world))
    skip = absent_metrics(world)
    metrics = {k: np.asarray(v) for k, v in values.items() if k not in skip}
    metrics["step"] = engine.recorded_steps(steps, record_every)
    return RunResult(config, metrics, summary, world, state)
