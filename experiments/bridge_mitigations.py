"""Mitigations in the bridge transformer beside the toy's: filtering, counterfactual
augmentation, and which parameters finetune.

Settings (bridge defaults otherwise, each at every seed of `seeds`): the default (QK-only:
the attention's query and key maps train, the analog of the toy's frozen W_V), `mixture.filter`
= `filter` (at ρ = ½ the 32 CS points are the context-bearing points with the lowest
no-context loss, so 0.5 drops all of them), `mixture.counterfactual` = `counterfactual`, and
`train.trainable = "all"` (every parameter: the analog of training W_V in the toy). Computes
M_C over finetuning steps per setting and seed, and its peak, final value and largest fall;
and the toy's M_C for the same mitigations at its base config (`toy_value_lr` for W_V).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.bridge import config as bcfg
from cpi.sims import config as cfg

from .bridge_runs import bridge_config, curves, peak_final_drop, run_points
from .configs import with_values
from .simulations import cached_run

PARAMS = dict(seeds=(0, 1, 2, 3, 4), overrides=(), filter=0.5, counterfactual=0.25, toy_value_lr=1.0)
"""seeds: train.seed of each run; overrides: bridge settings on the defaults; filter: the
filtered fraction; counterfactual: the CF fraction; toy_value_lr: the toy's W_V step size for
the "all parameters" setting."""

SETTINGS = ("default (QK only)", "filter CS", "counterfactual", "all parameters")
SETTING_KEYS = ("default", "filter", "counterfactual", "all_parameters")
"""The settings' names in the headline summary, in the order of SETTINGS."""


def _bridge_values(filter: float, counterfactual: float) -> list[dict]:
    return [{}, {"mixture__filter": float(filter)}, {"mixture__counterfactual": float(counterfactual)},
            {"train__trainable": "all"}]


def compute(base, work: Path, seeds, overrides, filter, counterfactual, toy_value_lr) -> dict:
    """The bridge at every setting and seed; the toy at every setting on `base`."""
    values = _bridge_values(filter, counterfactual)
    configs = [bridge_config(overrides, train__seed=int(s), **v) for v in values for s in seeds]
    results = run_points(configs, work)
    n_seeds = len(seeds)
    reliance = curves(results, "reliance").reshape(len(values), n_seeds, -1)
    toy_configs = [base, with_values(base, mixture__filter=float(filter)),
                   with_values(base, mixture__counterfactual=float(counterfactual)),
                   with_values(base, train__value_lr=float(toy_value_lr))]
    toy = np.stack([np.asarray(cached_run(c, work)[0]["reliance"], dtype=np.float64) for c in toy_configs])
    out = dict(
        settings=np.array(SETTINGS),
        seeds=np.asarray(seeds, dtype=np.int64),
        config=bcfg.to_toml(configs[0]),
        setting_configs=np.array([bcfg.to_toml(configs[i * n_seeds]) for i in range(len(values))]),
        step=np.asarray(results[0][0]["step"]),
        reliance=reliance,
        toy_step=np.arange(toy.shape[1]),
        toy_reliance=toy,
        toy_configs=np.array([cfg.to_toml(c) for c in toy_configs]),
        filter=float(filter), counterfactual=float(counterfactual), toy_value_lr=float(toy_value_lr),
        inversion_005=np.array([bool(s["inversion_005"]) for _, s in results]).reshape(len(values), n_seeds),
    )
    out.update(peak_final_drop(reliance))
    out.update({f"toy_{k}": v for k, v in peak_final_drop(toy).items()})
    return out


def _spread(values) -> tuple[float, float]:
    """Mean and standard deviation (ddof = 1) over seeds."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def headline(data: dict) -> dict:
    """Per setting (default, filtered, counterfactual, all parameters): the largest fall of M_C
    below its running maximum over seeds (mean and standard deviation), how many seeds fall by
    ≥ 0.05, and the toy's fall at its own defaults in the matching setting."""
    out = dict(seeds=int(len(data["seeds"])), steps=int(data["step"][-1]), toy_steps=int(data["toy_step"][-1]),
               filter=float(data["filter"]), counterfactual=float(data["counterfactual"]),
               toy_value_lr=float(data["toy_value_lr"]))
    for i, name in enumerate(SETTING_KEYS[:len(data["settings"])]):
        out[f"{name}_fall_mean"], out[f"{name}_fall_sd"] = _spread(data["drop"][i])
        out[f"{name}_inverting_seeds"] = int(np.sum(data["inversion_005"][i]))
        out[f"{name}_toy_fall"] = float(data["toy_drop"][i])
    return out
