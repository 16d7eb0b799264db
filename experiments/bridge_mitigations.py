"""Mitigations in the bridge transformer beside the toy's: filtering, counterfactual
augmentation, and which parameters finetune.

Settings (bridge defaults otherwise, each at every seed of `seeds`): the default (QK-only:
the attention's query and key maps train, the analog of the toy's frozen W_V), `mixture.filter`
= `filter` (at ρ = ½ the 32 CS examples are the context-bearing examples with the lowest
no-context loss, so 0.5 drops all of them), `mixture.counterfactual` = `counterfactual`, and
`train.trainable = "all"` (every parameter: the analog of training W_V in the toy). Computes
M_C over finetuning steps per setting and seed, and its peak, final value and largest fall;
and, per seed, the calibrated toy (`cpi.experiments.calibration`: the toy at that seed's measured
δ_C, δ_M and ρ, with the GD step size η matched on the default setting's change of M_C over its
first recorded interval) under the same mitigations: the same η in every setting, as the
transformer keeps one learning rate, and W_V trained at `toy_value_ratio` × η for "all
parameters". W_V frozen: the exact reduced dynamics; W_V trained: the fast engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.bridge import config as bcfg
from cpi.sims import config as cfg
from cpi.sims.theory_inputs import reduced_trajectory

from .bridge_runs import bridge_config, curves, peak_final_drop, run_points
from .calibration import calibrate_runs, calibration_arrays
from .configs import with_values
from .simulations import cached_run
from .analysis import mean_sd

PARAMS = dict(seeds=(0, 1, 2, 3, 4), overrides=(), filter=0.5, counterfactual=0.25, toy_value_ratio=1.0)
"""seeds: train.seed of each run; overrides: bridge settings on the defaults; filter: the
filtered fraction; counterfactual: the CF fraction; toy_value_ratio: the calibrated toy's W_V
step size in the "all parameters" setting, as a multiple of its matched W_KQ step size (1: one
step size for every parameter, as the transformer has one learning rate)."""

SETTINGS = ("default (QK only)", "filter CS", "counterfactual", "all parameters")
SETTING_KEYS = ("default", "filter", "counterfactual", "all_parameters")
"""The settings' names in the headline summary, in the order of SETTINGS."""


def _bridge_values(filter: float, counterfactual: float) -> list[dict]:
    return [{}, {"mixture__filter": float(filter)}, {"mixture__counterfactual": float(counterfactual)},
            {"train__trainable": "all"}]


def compute(base, work: Path, seeds, overrides, filter, counterfactual, toy_value_ratio) -> dict:
    """The bridge at every setting and seed; each seed's calibrated toy (on `base`) at every setting."""
    values = _bridge_values(filter, counterfactual)
    configs = [bridge_config(overrides, train__seed=int(s), **v) for v in values for s in seeds]
    results = run_points(configs, work)
    n_seeds = len(seeds)
    steps = int(configs[0].train.steps)
    reliance = curves(results, "reliance").reshape(len(values), n_seeds, -1)
    calibrations = calibrate_runs(base, results[:n_seeds], configs[:n_seeds])
    toy, toy_configs = [], []
    for c in calibrations:
        toy_base = with_values(c["config"], train__steps=steps)
        settings = [toy_base, with_values(toy_base, mixture__filter=float(filter)),
                    with_values(toy_base, mixture__counterfactual=float(counterfactual)),
                    with_values(toy_base, train__value_lr=float(toy_value_ratio) * c["lr"])]
        toy.append([_toy_reliance(t, work) for t in settings])
        toy_configs.append([cfg.to_toml(t) for t in settings])
    toy = np.stack([np.stack(t) for t in toy], axis=1)  # settings × seeds × steps + 1
    recorded = np.asarray(results[0][0]["step"], dtype=np.int64)
    out = dict(
        settings=np.array(SETTINGS),
        seeds=np.asarray(seeds, dtype=np.int64),
        config=bcfg.to_toml(configs[0]),
        setting_configs=np.array([bcfg.to_toml(configs[i * n_seeds]) for i in range(len(values))]),
        step=np.asarray(results[0][0]["step"]),
        reliance=reliance,
        toy_step=np.arange(toy.shape[-1]),
        toy_reliance=toy,
        toy_configs=np.array(toy_configs).T,
        filter=float(filter), counterfactual=float(counterfactual), toy_value_ratio=float(toy_value_ratio),
        inversion_005=np.array([bool(s["inversion_005"]) for _, s in results]).reshape(len(values), n_seeds),
    )
    out.update(calibration_arrays(calibrations))
    out.update(peak_final_drop(reliance))
    out.update({f"toy_{k}": v for k, v in peak_final_drop(toy[..., recorded]).items()})
    return out


def _toy_reliance(config, work: Path) -> np.ndarray:
    """M_C at steps 0..train.steps of a toy config: the exact reduced dynamics with W_V frozen,
    the fast engine's run (cached) when W_V trains."""
    if config.train.value_lr == 0:
        return np.asarray(reduced_trajectory(config)["reliance"], dtype=np.float64)
    return np.asarray(cached_run(config, work)[0]["reliance"], dtype=np.float64)




def headline(data: dict) -> dict:
    """Per setting (default, filtered, counterfactual, all parameters): the largest fall of M_C
    below its running maximum over seeds (mean and standard deviation), how many seeds fall by
    ≥ 0.05, and the calibrated toys' fall in the matching setting (mean and standard deviation
    over the seeds' toys, read at the transformer's recorded steps); the toys' step size and how
    many seeds' toys were matched and clamped."""
    out = dict(seeds=int(len(data["seeds"])), steps=int(data["step"][-1]), toy_steps=int(data["toy_step"][-1]),
               filter=float(data["filter"]), counterfactual=float(data["counterfactual"]),
               toy_value_ratio=float(data["toy_value_ratio"]), toy_matched_seeds=int(np.sum(data["toy_matched"])),
               toy_clamped_seeds=int(np.sum(data["toy_clamped"])))
    out["toy_lr_mean"], out["toy_lr_sd"] = mean_sd(data["toy_lr"])
    for i, name in enumerate(SETTING_KEYS[:len(data["settings"])]):
        out[f"{name}_fall_mean"], out[f"{name}_fall_sd"] = mean_sd(data["drop"][i])
        out[f"{name}_inverting_seeds"] = int(np.sum(data["inversion_005"][i]))
        out[f"{name}_toy_fall_mean"], out[f"{name}_toy_fall_sd"] = mean_sd(data["toy_drop"][i])
    return out
