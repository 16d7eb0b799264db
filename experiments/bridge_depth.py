"""Depth: the inversion in bridge transformers of 1, 2 and 4 layers.

`transformer.layers` over `layers` (each its own pretraining) at each seed of `seeds`, bridge
defaults otherwise (QK-only Adam finetuning at ρ = ½). Computes M_C and the attention of the
last position to the context (mean over layers) over finetuning steps, per depth and seed,
with M_C's initial, peak and final value and largest fall, the pretrained models' δ_C, δ_M
and ρ*, and whether each run inverts (a rise, then a fall of at least 0.05).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.bridge import config as bcfg

from .bridge_runs import bridge_config, curves, peak_final_drop, run_points, summary_values
from .analysis import mean_sd

PARAMS = dict(seeds=(0, 1, 2, 3, 4), overrides=(), layers=(1, 2, 4))
"""seeds, overrides: as every bridge experiment; layers: the depths."""


def compute(base, work: Path, seeds, overrides, layers) -> dict:
    """Every depth at every seed; `base` (the toy's) unused."""
    configs = [bridge_config(overrides, train__seed=int(s), transformer__layers=int(L)) for L in layers for s in seeds]
    results = run_points(configs, work)
    shape = (len(layers), len(seeds))
    reliance = curves(results, "reliance").reshape(*shape, -1)
    out = dict(
        config=bcfg.to_toml(configs[0]),
        seeds=np.asarray(seeds, dtype=np.int64),
        layers=np.asarray(layers, dtype=np.int64),
        step=np.asarray(results[0][0]["step"]),
        reliance=reliance,
        attention_context=curves(results, "attention_context").reshape(*shape, -1),
        inversion_005=np.array([bool(s["inversion_005"]) for _, s in results]).reshape(shape),
    )
    out.update(peak_final_drop(reliance))
    for key in ("delta_c", "delta_m", "rho_star"):
        out[key] = summary_values(results, key).reshape(shape)
    return out




def headline(data: dict) -> dict:
    """Per depth: the largest fall of M_C below its running maximum over seeds (mean and
    standard deviation) and how many seeds fall by ≥ 0.05; whether any two depths differ by more
    than the larger of their spreads."""
    out = dict(seeds=int(len(data["seeds"])), steps=int(data["step"][-1]))
    means, sds = [], []
    for i, layers in enumerate(data["layers"]):
        mean, sd = mean_sd(data["drop"][i])
        out[f"fall_mean_{int(layers)}"], out[f"fall_sd_{int(layers)}"] = mean, sd
        out[f"inverting_seeds_{int(layers)}"] = int(np.sum(data["inversion_005"][i]))
        means.append(mean)
        sds.append(sd)
    separated = [f"{int(data['layers'][i])} and {int(data['layers'][j])} layers"
                 for i in range(len(means)) for j in range(i + 1, len(means))
                 if abs(means[i] - means[j]) > max(sds[i], sds[j])]
    out["depths_told_apart"] = ", ".join(separated) if separated else "none"
    return out
