"""M_C over (ρ, step) in the bridge transformer beside the toy's phase diagram, and the ρ
where the rise starts against the ρ* predicted from the transformer's own margins.

Bridge: mixture.context_critical = ρ over `rhos` (the rest CS examples) at each seed of
`seeds`, finetuned by full-batch gradient descent (`optimizer`, `lr`): ρ* is a statement
about the direction of the gradient at t = 0, which Adam's per-coordinate scaling does not
keep (docs/bridge.md). Per seed: M_C over (ρ, recorded step), its initial change over the
first recorded interval at every ρ and its rise (peak − initial), two measured onsets
(`rise_onset`: where the initial change turns positive, `rise_rho`, and where the rise
reaches 0.05, `rise_rho_005`), and ρ* = |m_CS|/(m_C + |m_CS|) from the pretrained model's Lemma 4
margins on the finetuning examples of the ρ nearest ½. Toy, per seed: the calibrated toy
(`cpi.experiments.calibration`) of that seed's run at the ρ nearest ½ (its measured δ_C, δ_M and
the GD step size matching its change of M_C over the first recorded interval), its M_C over
(ρ, step) from the exact reduced dynamics (`toy_n_rho` values of ρ and the transformer's own ρ
values, one step size for every ρ as the transformer has one learning rate), with its ρ*, its
onsets and its rise measured as the transformer's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.bridge import config as bcfg
from cpi.sims import config as cfg
from cpi.sims.theory_inputs import knowledge_of
from cpi.theory.closed_forms import paper_quantities, rho_star
from cpi.theory.reduced import group_trajectory

from .bridge_runs import bridge_config, curves, peak_final_drop, run_points, summary_values
from .calibration import calibrate_runs, calibration_arrays
from .configs import rho_max, theory_counts
from .analysis import mean_sd

PARAMS = dict(seeds=(0, 1, 2, 3, 4), overrides=(),
              rhos=(0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0),
              optimizer="gd", lr=3.0, steps=300, toy_n_rho=21)
"""seeds, overrides: as every bridge experiment; rhos: the mixtures (the runs have round(ρn) C
points; `rho` in the data is that count over n); optimizer, lr, steps: the finetuning (GD at
lr 3 inverts within 300 steps at ρ = ½ for seed 0: 0.235 → 0.941 (step 50) → 0.434; at lr
0.3 the peak comes at step 95 and M_C barely moves at ρ = 0.1); toy_n_rho: ρ values of the
toy's heat map."""


RISE = 0.05
"""The rise of M_C above its start (peak − initial) that counts as a rise in `rise_rho_005`."""


def rise_onset(rho: np.ndarray, change: np.ndarray) -> float:
    """The ρ at which the initial change of M_C turns positive (linear interpolation between
    the last non-positive and the first positive grid point after it); rho[0] when positive at
    every ρ from the first, NaN when never positive."""
    rho, change = np.asarray(rho, dtype=np.float64), np.asarray(change, dtype=np.float64)
    positive = change > 0
    if not positive.any():
        return float("nan")
    if positive.all():
        return float(rho[0])
    last_off = int(np.flatnonzero(~positive)[-1])
    if last_off == len(rho) - 1:
        return float("nan")
    a, b = change[last_off], change[last_off + 1]
    return float(rho[last_off] + (rho[last_off + 1] - rho[last_off]) * (-a) / (b - a))


def compute(base, work: Path, seeds, overrides, rhos, optimizer, lr, steps, toy_n_rho) -> dict:
    """The bridge's ρ sweep at every seed (vmapped over ρ per seed) and the toy's heat map on `base`."""
    rhos = np.asarray(rhos, dtype=np.float64)
    configs = [bridge_config(overrides, train__seed=int(s), train__optimizer=str(optimizer), train__lr=float(lr),
                             train__steps=int(steps), mixture__context_critical=float(r))
               for s in seeds for r in rhos]
    results = run_points(configs, work)
    n_seeds, n_rho = len(seeds), len(rhos)
    reliance = curves(results, "reliance").reshape(n_seeds, n_rho, -1)
    change = reliance[:, :, 1] - reliance[:, :, 0]
    rise = reliance.max(axis=-1) - reliance[:, :, 0]
    n = configs[0].mixture.n_train
    rho_eff = np.array([s["counts"]["C"] / n for _, s in results[:n_rho]])
    half = int(np.argmin(np.abs(rhos - 0.5)))
    m_c = summary_values(results, "m_C").reshape(n_seeds, n_rho)[:, half]
    m_cs = summary_values(results, "m_CS").reshape(n_seeds, n_rho)[:, half]
    predicted = np.array([rho_star(a, b) if a > 0 > b else np.nan for a, b in zip(m_c, m_cs)])

    calibrations = calibrate_runs(base, [results[i * n_rho + half] for i in range(n_seeds)],
                                  [configs[i * n_rho + half] for i in range(n_seeds)])
    toy_rho = np.union1d(np.linspace(0.0, rho_max(base), int(toy_n_rho)), rho_eff[rho_eff <= rho_max(base)])
    recorded = np.asarray(results[0][0]["step"], dtype=np.int64)
    toy, toy_star = [], []
    for c in calibrations:
        knowledge = knowledge_of(c["config"])
        toy.append(np.asarray(group_trajectory(knowledge, theory_counts(c["config"], toy_rho), lr=c["lr"],
                                               steps=int(steps))["reliance"]))
        toy_star.append(float(paper_quantities(knowledge)["rho_star"]))
    toy = np.stack(toy)  # seeds × ρ × steps + 1
    toy_rec = toy[:, :, recorded]
    toy_rise = toy_rec.max(axis=-1) - toy_rec[:, :, 0]
    out = dict(
        config=bcfg.to_toml(configs[0]),
        seeds=np.asarray(seeds, dtype=np.int64),
        rho=rho_eff,
        rho_requested=rhos,
        step=np.asarray(results[0][0]["step"]),
        reliance=reliance,
        initial_change=change,
        rise_rho=np.array([rise_onset(rho_eff, c) for c in change]),
        rise=rise,
        rise_rho_005=np.array([rise_onset(rho_eff, r - RISE) for r in rise]),
        m_C=m_c, m_CS=m_cs, rho_star=predicted,
        optimizer=str(optimizer), lr=float(lr),
        toy_rho=toy_rho, toy_step=np.arange(toy.shape[-1]), toy_reliance=toy,
        toy_rho_star=np.array(toy_star), toy_configs=np.array([cfg.to_toml(c["config"]) for c in calibrations]),
        toy_initial_change=toy_rec[:, :, 1] - toy_rec[:, :, 0], toy_rise=toy_rise,
        toy_rise_rho=np.array([rise_onset(toy_rho, c) for c in toy_rec[:, :, 1] - toy_rec[:, :, 0]]),
        toy_rise_rho_005=np.array([rise_onset(toy_rho, r - RISE) for r in toy_rise]),
        toy_config=cfg.to_toml(base),
    )
    out.update(calibration_arrays(calibrations))
    out.update(peak_final_drop(reliance))
    out.update({f"toy_{k}": v for k, v in peak_final_drop(toy_rec).items()})
    return out




def headline(data: dict) -> dict:
    """Over seeds (mean and standard deviation): the smallest ρ whose M_C rises (first step, and
    a rise of ≥ 0.05 within the horizon), Lemma 4's ρ* from the transformer's margins and the
    calibrated toy's (mean ± sd over the seeds' toys); final M_C and the fall at ρ = 1 and ρ = ½,
    the transformer's and the calibrated toy's (`toy_*`); the toy's step size and how many seeds'
    toys were matched and clamped."""
    rho = np.asarray(data["rho"])
    out = dict(seeds=int(len(data["seeds"])), steps=int(data["step"][-1]), lr=float(data["lr"]),
               optimizer=str(data["optimizer"]), n_rho=int(rho.size))
    for key, name in (("rise_rho", "onset_first_step"), ("rise_rho_005", "onset_005"), ("rho_star", "rho_star")):
        out[f"{name}_mean"], out[f"{name}_sd"] = mean_sd(data[key])
    top, half = int(np.argmax(rho)), int(np.argmin(np.abs(rho - 0.5)))
    out["final_at_rho1_mean"], out["final_at_rho1_sd"] = mean_sd(data["final"][:, top])
    out["final_at_half_mean"], out["final_at_half_sd"] = mean_sd(data["final"][:, half])
    out["fall_at_rho1_mean"], out["fall_at_rho1_sd"] = mean_sd(data["drop"][:, top])
    out["fall_at_half_mean"], out["fall_at_half_sd"] = mean_sd(data["drop"][:, half])
    out["initial_at_half_mean"], out["initial_at_half_sd"] = mean_sd(data["initial"][:, half])
    out["peak_at_half_mean"], out["peak_at_half_sd"] = mean_sd(data["peak"][:, half])
    out.update(_toy_headline(data))
    return out


def _toy_headline(data: dict) -> dict:
    toy_rho = np.asarray(data["toy_rho"])
    out = dict(toy_matched_seeds=int(np.sum(data["toy_matched"])), toy_clamped_seeds=int(np.sum(data["toy_clamped"])),
               toy_interval=int(data["toy_interval"]))
    for key, name in (("toy_rise_rho", "toy_onset_first_step"), ("toy_rise_rho_005", "toy_onset_005"),
                      ("toy_rho_star", "toy_rho_star"), ("toy_lr", "toy_lr")):
        out[f"{name}_mean"], out[f"{name}_sd"] = mean_sd(data[key])
    top, half = int(np.argmax(toy_rho)), int(np.argmin(np.abs(toy_rho - 0.5)))
    for key, name in (("final", "final"), ("drop", "fall"), ("initial", "initial"), ("peak", "peak")):
        for where, i in (("rho1", top), ("half", half)):
            out[f"toy_{name}_at_{where}_mean"], out[f"toy_{name}_at_{where}_sd"] = mean_sd(data[f"toy_{key}"][:, i])
    return out
