"""The inversion in the bridge transformer at its default mixture, over seeds.

Runs `cpi bridge`'s default (2 layers, QK-only Adam finetuning on 32 C and 32 CS examples)
at each seed of `seeds` (the toy's base config is not used: see `cpi.experiments.bridge_runs`).
Computes, per seed and over recorded finetuning steps, M_C on the held-out conflict examples,
the argmax accuracies (context answer, memorised fact), attention of the last position to the
context (mean and per layer) and to the subject, the C and CS examples' losses, and the
pretrained model's δ_C, δ_M, margins and ρ*. Beside each seed, the calibrated toy
(`cpi.experiments.calibration`): the toy at that seed's measured δ_C, δ_M, its ρ and the GD step
size at which the toy's M_C changes over the first recorded interval (5 steps) as the seed's
does, trained by the exact reduced dynamics for the transformer's number of steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.bridge import config as bcfg
from cpi.sims import config as cfg
from cpi.sims.theory_inputs import reduced_trajectory

from .bridge_runs import bridge_config, curves, peak_final_drop, run_points, summary_values
from .calibration import calibrate_runs, calibration_arrays, effective_delta_m, initial_tolerance
from .analysis import mean_sd

PARAMS = dict(seeds=(0, 1, 2, 3, 4), overrides=())
"""seeds: train.seed of each run; overrides: bridge settings "section.key=value" on the defaults."""


def compute(base, work: Path, seeds, overrides) -> dict:
    """Every seed's run at the bridge defaults (with `overrides`), and beside each the toy `base`
    calibrated to it."""
    configs = [bridge_config(overrides, train__seed=int(s)) for s in seeds]
    results = run_points(configs, work)
    layers = configs[0].transformer.layers
    reliance = curves(results, "reliance")
    out = dict(
        config=bcfg.to_toml(configs[0]),
        seeds=np.asarray(seeds, dtype=np.int64),
        step=np.asarray(results[0][0]["step"]),
        reliance=reliance,
        counterfactual_accuracy=curves(results, "counterfactual_accuracy"),
        parametric_accuracy=curves(results, "parametric_accuracy"),
        attention_context=curves(results, "attention_context"),
        attention_subject=curves(results, "attention_subject"),
        attention_context_layers=np.stack([curves(results, f"attention_context_l{j + 1}") for j in range(layers)],
                                          axis=1),
        loss_C=curves(results, "loss_C"),
        loss_CS=curves(results, "loss_CS"),
        in_distribution_accuracy=curves(results, "in_distribution_accuracy"),
        inversion_005=np.array([bool(s["inversion_005"]) for _, s in results]),
        peak_step=summary_values(results, "peak_step"),
        lr=configs[0].train.lr,
        optimizer=configs[0].train.optimizer,
    )
    out.update({k: v for k, v in peak_final_drop(reliance).items()})
    for key in ("delta_c", "delta_m", "m_C", "m_CS", "rho_star"):
        out[key] = summary_values(results, key)
    out.update(calibrated_toys(base, results, configs, int(configs[0].train.steps)))
    return out


def calibrated_toys(base, results, configs, steps: int) -> dict:
    """The calibrated toy of each run (`calibration_arrays`: toy_lr, toy_delta_c, ...), its M_C at
    every GD step 0..steps (`toy_reliance`, runs × steps + 1), its TOML (`toy_configs`), and its
    initial, peak, final M_C and fall read at the transformer's recorded steps (`toy_initial`,
    `toy_peak`, `toy_final`, `toy_drop`) with its peak step (`toy_peak_step`)."""
    calibrations = calibrate_runs(base, results, configs)
    toy = np.stack([np.asarray(reduced_trajectory(c["config"], steps=steps)["reliance"], dtype=np.float64)
                    for c in calibrations])
    recorded = np.asarray(results[0][0]["step"], dtype=np.int64)
    out = calibration_arrays(calibrations)
    out.update(toy_step=np.arange(steps + 1), toy_reliance=toy,
               toy_configs=np.array([cfg.to_toml(c["config"]) for c in calibrations]))
    out.update({f"toy_{k}": v for k, v in peak_final_drop(toy[:, recorded]).items()})
    out["toy_peak_step"] = recorded[np.argmax(toy[:, recorded], axis=-1)].astype(np.float64)
    return out




def headline(data: dict) -> dict:
    """Over seeds (mean and standard deviation): initial, peak and final M_C, the peak step, the
    largest fall below the running maximum (`fall`) and peak − final, how many seeds fall by
    ≥ 0.05, the C and CS losses at the start, at the peak and at the end, the measured strengths
    δ_C, δ_M and Lemma 4's ρ* from the model's margins, and the lowest in-distribution accuracy.
    The calibrated toy beside it (`toy_*`: its initial, peak, final M_C, peak step and fall at the
    transformer's recorded steps, its step size, how many seeds were matched and clamped), the
    differences toy − transformer per seed (`gap_*`), the δ_M at which the toy would start where
    the transformer does (`effective_delta_m`), and the spread of the toy's M_C(0) that the
    strengths' spread over seeds allows (`toy_initial_tolerance`)."""
    out = dict(seeds=int(len(data["seeds"])), steps=int(data["step"][-1]), lr=float(data["lr"]),
               optimizer=str(data["optimizer"]), inverting_seeds=int(np.sum(data["inversion_005"])))
    for key in ("initial", "peak", "final", "drop", "peak_step", "delta_c", "delta_m", "rho_star"):
        name = "fall" if key == "drop" else key
        out[f"{name}_mean"], out[f"{name}_sd"] = mean_sd(data[key])
    out["peak_minus_final_mean"], out["peak_minus_final_sd"] = mean_sd(data["peak"] - data["final"])
    peak_index = np.argmax(data["reliance"], axis=-1)
    for group in ("C", "CS"):
        loss = data[f"loss_{group}"]
        out[f"loss_{group}_initial_min"] = float(loss[:, 0].min())
        out[f"loss_{group}_initial_max"] = float(loss[:, 0].max())
        at_peak = loss[np.arange(len(loss)), peak_index]
        out[f"loss_{group}_at_peak_min"] = float(at_peak.min())
        out[f"loss_{group}_at_peak_max"] = float(at_peak.max())
        out[f"loss_{group}_final_min"] = float(loss[:, -1].min())
        out[f"loss_{group}_final_max"] = float(loss[:, -1].max())
    out["in_distribution_accuracy_min"] = float(np.min(data["in_distribution_accuracy"]))
    if "toy_reliance" in data:
        out.update(toy_headline(data))
    return out


def toy_headline(data: dict) -> dict:
    """The calibrated toy's numbers beside the transformer's (see `headline`)."""
    out = dict(toy_matched_seeds=int(np.sum(data["toy_matched"])), toy_clamped_seeds=int(np.sum(data["toy_clamped"])),
               toy_interval=int(data["toy_interval"]))
    for key in ("initial", "peak", "final", "drop", "peak_step", "lr", "target"):
        name = "fall" if key == "drop" else key
        out[f"toy_{name}_mean"], out[f"toy_{name}_sd"] = mean_sd(data[f"toy_{key}"])
    for key in ("initial", "peak", "final", "drop"):
        name = "fall" if key == "drop" else key
        out[f"gap_{name}_mean"], out[f"gap_{name}_sd"] = mean_sd(np.asarray(data[f"toy_{key}"]) - data[key])
    out["effective_delta_m_mean"], out["effective_delta_m_sd"] = mean_sd(
        effective_delta_m(data["delta_c"], data["initial"]))
    out["toy_initial_tolerance"] = initial_tolerance(
        np.std(data["delta_c"], ddof=1) if len(data["delta_c"]) > 1 else 0.0,
        np.std(data["delta_m"], ddof=1) if len(data["delta_m"]) > 1 else 0.0,
        float(np.mean(data["delta_c"])), float(np.mean(data["delta_m"])))
    return out
