"""Measure, then predict, over the transformer's grid: the toy's predictions from the quantities
measured in each run (`cpi.experiments.prediction`, as `cpi predict` prints them), scored against
the runs.

Two grids at every seed of `seeds`: bridge_phase's mixtures (`rhos`, full-batch GD at `lr` for
`steps` steps: the same configs, so the two experiments share their saved runs), and the
default mixture under the default optimizer with `mixture.filter` over `filters`. For every run:
the measured δ_C, δ_M, ρ and ρ̂ (the share of context-bearing examples whose no-context
probability of the target is below ½, from the run's pretrained model), the transformer's change
over its first recorded interval, its rise and its fall; the toy's ρ* at those strengths, its
predicted initial direction, and the calibrated toy's rise and fall. Scores: over the ρ grid, the
share of runs whose initial direction and rise the toy gets right and the rank agreement of the
falls per seed; over the filter grid, the share of filter steps where both falls move the same
way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.bridge import config as bcfg
from cpi.core import store

from .bridge_runs import bridge_config, run_points
from .prediction import Run, measure, predict, score
from .analysis import mean_sd

PARAMS = dict(seeds=(0, 1, 2, 3, 4), overrides=(),
              rhos=(0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0),
              optimizer="gd", lr=3.0, steps=300, filters=(0.0, 0.25, 0.5, 0.75))
"""seeds, overrides: as every bridge experiment; rhos, optimizer, lr, steps: bridge_phase's grid
(its defaults, so that the runs are shared); filters: mixture.filter at the bridge's defaults."""

MEASURED = ("delta_c", "delta_m", "rho", "rho_hat", "rho_star_margins", "initial", "first_change", "rise", "fall")
PREDICTED = ("toy_rho_star", "rises_initially", "toy_lr", "toy_matched", "toy_initial", "toy_rise", "toy_fall")


def _share_of(config, work: Path, models: dict) -> float:
    """The pretrained model's `context_needed_share` (runs saved before summaries carried it);
    each pretrained model is loaded once into `models`, by its digest."""
    from cpi.bridge.corpus import build_corpus
    from cpi.bridge.measure import context_needed_share
    from cpi.bridge.pretrain import pretrained

    corpus = build_corpus(config)
    digest = bcfg.pretrain_digest(config)
    if digest not in models:
        models[digest] = pretrained(config, corpus.vocab, Path(work) / store.CHECKPOINT.name)[0]
    return context_needed_share(models[digest], corpus.train)


def _grid(configs, results, work: Path, shape) -> tuple[dict, list, list]:
    runs, models = [], {}
    for i, (config, (metrics, summary)) in enumerate(zip(configs, results)):
        if summary.get("context_needed_share") is None:
            summary = {**summary, "context_needed_share": _share_of(config, work, models)}
        runs.append(Run(f"run {i}", config, summary, metrics))
    measured = [measure(r) for r in runs]
    predicted = [predict(m) for m in measured]
    arrays = {k: np.array([m[k] for m in measured], dtype=np.float64).reshape(shape) for k in MEASURED}
    arrays.update({k: np.array([p[k] for p in predicted]).reshape(shape) for k in PREDICTED})
    return arrays, measured, predicted


def compute(base, work: Path, seeds, overrides, rhos, optimizer, lr, steps, filters) -> dict:
    """Both grids at every seed, measured, predicted and scored (module doc); `base` unused (the
    toy's predictions start from the default config, as `cpi predict`'s)."""
    seeds, rhos, filters = [int(s) for s in seeds], [float(r) for r in rhos], [float(f) for f in filters]
    rho_configs = [bridge_config(overrides, train__seed=s, train__optimizer=str(optimizer), train__lr=float(lr),
                                 train__steps=int(steps), mixture__context_critical=r) for s in seeds for r in rhos]
    filter_configs = [bridge_config(overrides, train__seed=s, mixture__filter=f) for s in seeds for f in filters]
    results = run_points([*rho_configs, *filter_configs], work)
    rho_arrays, rho_measured, rho_predicted = _grid(rho_configs, results[:len(rho_configs)], work,
                                                    (len(seeds), len(rhos)))
    f_arrays, f_measured, f_predicted = _grid(filter_configs, results[len(rho_configs):], work,
                                              (len(seeds), len(filters)))
    rho_score = score(rho_measured, rho_predicted)
    filter_score = score(f_measured, f_predicted)
    out = dict(seeds=np.asarray(seeds, dtype=np.int64), rho_requested=np.asarray(rhos), filters=np.asarray(filters),
               optimizer=str(optimizer), lr=float(lr), steps=int(steps),
               filter_optimizer=filter_configs[0].train.optimizer, filter_lr=filter_configs[0].train.lr,
               filter_steps=filter_configs[0].train.steps, config=bcfg.to_toml(rho_configs[0]))
    out.update({f"rho_{k}": v for k, v in rho_arrays.items()})
    out.update({f"filter_{k}": v for k, v in f_arrays.items()})
    out.update({f"rho_score_{k}": np.float64(np.nan if v is None else v) for k, v in rho_score.items()})
    out.update({f"filter_score_{k}": np.float64(np.nan if v is None else v) for k, v in filter_score.items()})
    return out




def headline(data: dict) -> dict:
    """The scores of both grids, with the horizons and seeds; the measured ρ̂ against ρ, the
    toy's ρ* at the measured strengths (mean ± sd over runs), and the falls' means per filter
    value (transformer and calibrated toy)."""
    out = dict(seeds=int(len(data["seeds"])), steps=int(data["steps"]), lr=float(data["lr"]),
               optimizer=str(data["optimizer"]), n_rho=int(len(data["rho_requested"])),
               filter_steps=int(data["filter_steps"]), filter_optimizer=str(data["filter_optimizer"]))
    for grid in ("rho", "filter"):
        for key in ("runs", "initial_direction", "initial_direction_by_margins", "initial_direction_by_margins_runs",
                    "rise", "fall_order_tau", "fall_order_groups", "filter_response", "filter_pairs"):
            value = float(data[f"{grid}_score_{key}"])
            out[f"{grid}_{key}"] = int(value) if key.endswith(("runs", "groups", "pairs")) else value
    out["toy_rho_star_mean"], out["toy_rho_star_sd"] = mean_sd(data["rho_toy_rho_star"], finite_only=True)
    out["rho_hat_minus_rho_max"] = float(np.nanmax(np.abs(data["rho_rho_hat"] - data["rho_rho"])))
    for j, f in enumerate(np.asarray(data["filters"])):
        tag = f"{round(100 * float(f)):02d}"
        for key, name in (("filter_fall", "fall"), ("filter_toy_fall", "toy_fall")):
            out[f"{name}_filter{tag}_mean"], out[f"{name}_filter{tag}_sd"] = mean_sd(data[key][:, j], finite_only=True)
    return out
