"""Where the transformer's rise starts: ρ̂* from exact t = 0 derivatives beside Lemma 4's ρ*
and the measured onset, at the default pretraining and with weaker facts.

For each pretraining (`arms`: the bridge default, then `pretrain.steps` = each of
`weak_pretrain_steps`, fewer steps and so weaker facts: a higher CS loss) and each seed of
`seeds`, on the finetuning examples and conflict examples of the default mixture (ρ = ½), with no
training (`cpi.bridge.onset`):
- d_G = −⟨∇_θ M_C, ∇_θ L_G⟩ for G = C, CS over the query and key maps (autodiff), the group's
  mean loss L_G and each example's share; the mixture's derivative ρ d_C + (1 − ρ) d_CS (the
  bridge's loss is the mean over examples) and ρ̂* where it changes sign;
- Lemma 4's ρ* from the model's margins (`cpi.bridge.measure.knowledge`, as every bridge
  experiment), and the variant with λ_CS = 1 − softmax(½v(c) + ½v(s))_c replaced by the
  model's own 1 − p_CS on [c, s, r], example by example (m_i · (1 − p_i)/λ_i);
- the measured onset: full-batch GD on ρ L_C + (1 − ρ) L_CS (same examples, ρ continuous) at each
  step size of `lrs` for `steps` steps, M_C at every step, for ρ over `rhos`; `onset_rise` the ρ
  where the rise (peak − initial) reaches 0.05 (`bridge_phase`'s measured onset) and
  `onset_early` where M_C(early_steps) − M_C(0) turns positive (both interpolated on the grid).
And, at the default pretraining only, the onset as `bridge_phase` measures it, on real
mixtures (round(ρn) C examples, the rest CS, each mixture with its own held-out conflict examples)
for ρ over `mixture_rhos`: `bridge_phase`'s runs (GD at lrs[0], `steps` steps, the same configs,
so the two experiments share their saved runs), `mixture_onset_rise` where the rise reaches
0.05 and `mixture_onset_early` where the change over the first recorded interval
(train.eval_every steps) turns positive.
The pretrained models are the checkpoint cache's (`<work>/checkpoint`), shared with every
bridge experiment of the same pretraining and seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.bridge import config as bcfg
from cpi.bridge import corpus, measure, onset, pretrain
from cpi.core import store
from cpi.theory.closed_forms import margin, rho_star

from .bridge_phase import RISE, rise_onset
from .analysis import mean_sd
from .bridge_runs import bridge_config, curves, run_points

PARAMS = dict(seeds=(0, 1, 2, 3, 4), overrides=(), weak_pretrain_steps=(250, 100),
              rhos=(0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5),
              lrs=(3.0, 0.3), steps=300, early_steps=5, trainable="attention",
              mixture_rhos=(0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2))
"""seeds, overrides: as every bridge experiment; weak_pretrain_steps: the weaker-facts arms
(pretrain.steps; the default is 1000); rhos: the mixtures of the measured onset; lrs, steps: its
GD step sizes (3: `bridge_phase`'s) and horizon; early_steps: the step whose change from step 0
gives `onset_early`; trainable: the parameters the derivatives and GD act on (as train.trainable);
mixture_rhos: the real mixtures of `bridge_phase`'s onset at the default pretraining (a subset of
its grid; empty: none)."""


def _arm_overrides(overrides, pretrain_steps) -> tuple[str, ...]:
    return tuple(overrides) + ((f"pretrain.steps={int(pretrain_steps)}",) if pretrain_steps else ())


def lambda_margin(model, examples: corpus.Examples, p_model: np.ndarray) -> np.ndarray:
    """Per example: Lemma 4's margin m = ⟨v(c) − v(s), e_c − softmax(½v(c) + ½v(s))⟩ with its
    λ = 1 − softmax(½v(c) + ½v(s))_c replaced by the model's own 1 − p_c on [c, s, r]:
    m · (1 − p_model)/λ."""
    v_c, v_s = measure.value_columns(model, examples.tokens)
    z = 0.5 * (v_c + v_s)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    lam = 1.0 - (z / z.sum(axis=-1, keepdims=True))[np.arange(len(examples.target)), examples.target]
    return margin(v_c, v_s, examples.target) * (1.0 - np.asarray(p_model, np.float64)) / lam


def _one(config, work: Path, rhos, lrs, steps: int, early: int, trainable: str) -> dict:
    world = corpus.build_corpus(config)
    model, _ = pretrain.pretrained(config, world.vocab, Path(work) / store.CHECKPOINT.name)
    data = onset.onset_data(world)
    d = onset.derivatives(model, data, trainable)
    d_c, d_cs = float(d["d_C"]), float(d["d_CS"])
    know = measure.knowledge(model, world)
    cs = world.train.take(world.train.group == corpus.GROUPS.index("CS"))
    m_cs_lambda = float(lambda_margin(model, cs, d["p_CS_points"]).mean())
    m_c = know["m_C"]
    reliance = np.stack([onset.weighted_descent(model, data, rhos, lr, steps, trainable) for lr in lrs])
    rise = reliance.max(axis=-1) - reliance[..., 0]
    change = reliance[..., early] - reliance[..., 0]
    slope = np.stack([lr * onset.mixture_derivative(d_c, d_cs, rhos) for lr in lrs])
    return dict(
        d_C=d_c, d_CS=d_cs, rho_hat=onset.rho_hat(d_c, d_cs), d_C_points=d["d_C_points"],
        d_CS_points=d["d_CS_points"], p_C_points=d["p_C_points"], p_CS_points=d["p_CS_points"],
        loss_C=float(d["loss_C"]), loss_CS=float(d["loss_CS"]), initial_reliance=float(d["reliance"]),
        grad_norm_M=float(d["grad_norm_M"]), grad_norm_C=float(d["grad_norm_C"]), grad_norm_CS=float(d["grad_norm_CS"]),
        delta_c=know["delta_c"], delta_m=know["delta_m"], m_C=m_c, m_CS=know["m_CS"], rho_star=know["rho_star"],
        m_CS_lambda=m_cs_lambda,
        rho_star_lambda=float(rho_star(m_c, m_cs_lambda)) if m_c > 0 > m_cs_lambda else float("nan"),
        reliance=reliance, rise=rise, early_change=change,
        first_step_ratio=(reliance[..., 1] - reliance[..., 0]) / slope,
        onset_rise=np.array([rise_onset(rhos, r - RISE) for r in rise]),
        onset_early=np.array([rise_onset(rhos, c) for c in change]),
    )


def mixture_onsets(overrides, seeds, mixture_rhos, lr: float, steps: int, trainable: str, work: Path) -> dict:
    """`bridge_phase`'s measured onset at the default pretraining: its GD runs on real mixtures
    (`run_points`, saved under `<work>/bridge-run` and shared with it), per seed the rise of
    M_C (peak − initial), where it reaches 0.05, and where the change over the first recorded
    interval turns positive."""
    configs = [bridge_config(overrides, train__seed=int(s), train__optimizer="gd", train__lr=float(lr),
                             train__steps=int(steps), train__trainable=str(trainable),
                             mixture__context_critical=float(r)) for s in seeds for r in mixture_rhos]
    results = run_points(configs, work)
    reliance = curves(results, "reliance").reshape(len(seeds), len(mixture_rhos), -1)
    n = configs[0].mixture.n_train
    rho = np.array([s["counts"]["C"] / n for _, s in results[:len(mixture_rhos)]])
    rise = reliance.max(axis=-1) - reliance[..., 0]
    change = reliance[..., 1] - reliance[..., 0]
    return dict(mixture_rho=rho, mixture_rise=rise, mixture_first_interval=int(configs[0].train.eval_every),
                mixture_onset_rise=np.array([rise_onset(rho, r - RISE) for r in rise]),
                mixture_onset_early=np.array([rise_onset(rho, c) for c in change]))


def compute(base, work: Path, seeds, overrides, weak_pretrain_steps, rhos, lrs, steps, early_steps,
            trainable, mixture_rhos) -> dict:
    """Every arm × seed (module docstring); `base` (the toy's) unused."""
    rhos = np.asarray(rhos, dtype=np.float64)
    arms = (0, *weak_pretrain_steps)
    configs = [[bridge_config(_arm_overrides(overrides, a), train__seed=int(s)) for s in seeds] for a in arms]
    rows = [[_one(c, work, rhos, lrs, int(steps), int(early_steps), trainable) for c in row] for row in configs]
    out = {key: np.array([[r[key] for r in row] for row in rows]) for key in rows[0][0]}
    out.update(
        config=bcfg.to_toml(configs[0][0]),
        seeds=np.asarray(seeds, dtype=np.int64),
        arm_pretrain_steps=np.array([row[0].pretrain.steps for row in configs], dtype=np.int64),
        rho=rhos, lr=np.asarray(lrs, dtype=np.float64), steps=int(steps), early_steps=int(early_steps),
        n_train=configs[0][0].mixture.n_train, n_test=configs[0][0].mixture.n_test, trainable=str(trainable),
    )
    if len(mixture_rhos):
        out.update(mixture_onsets(overrides, seeds, mixture_rhos, lrs[0], steps, trainable, work))
    return out


def _stats(name: str, values) -> dict:
    """{name_mean, name_sd} over the finite values (`analysis.mean_sd`: sd with ddof 1) and name_n,
    their number; mean and sd left out when none is finite."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    out = {f"{name}_n": int(v.size)}
    if v.size:
        out[f"{name}_mean"], out[f"{name}_sd"] = mean_sd(v)
    return out


def arm_label(pretrain_steps: int) -> str:
    """The headline's name of an arm: pretrain<steps>."""
    return f"pretrain{int(pretrain_steps)}"


def lr_label(lr: float) -> str:
    """lr3, lr0.3, ... for the headline's names."""
    return f"lr{float(lr):g}"


def headline(data: dict) -> dict:
    """The numbers the documents quote, per arm (`pretrain<steps>`): ρ̂* from the derivatives,
    Lemma 4's ρ*, its 1 − p_CS variant, the measured onsets at each step size, d_C, d_CS, the
    CS and C losses, δ_C, δ_M, mean and sd over seeds; the seeds, horizon, step sizes and ρ grid."""
    lrs, seeds = np.asarray(data["lr"]), np.asarray(data["seeds"])
    out = {"n_seeds": int(seeds.size), "horizon_steps": int(data["steps"]), "early_steps": int(data["early_steps"]),
           "n_rho": int(np.size(data["rho"])), "rho_min_nonzero": float(np.min(np.asarray(data["rho"])[
               np.asarray(data["rho"]) > 0])), "rho_max": float(np.max(data["rho"])),
           "n_train": int(data["n_train"]), "n_test": int(data["n_test"]), "trainable": str(data["trainable"]),
           "lrs": ",".join(f"{x:g}" for x in lrs)}
    for a, steps in enumerate(np.asarray(data["arm_pretrain_steps"])):
        arm = arm_label(steps)
        out[f"{arm}_pretrain_steps"] = int(steps)
        for key in ("rho_hat", "rho_star", "rho_star_lambda", "d_C", "d_CS", "loss_C", "loss_CS", "delta_c",
                    "delta_m", "m_C", "m_CS", "m_CS_lambda", "initial_reliance"):
            out.update(_stats(f"{arm}_{key}", np.asarray(data[key])[a]))
        out.update(_stats(f"{arm}_one_minus_p_CS", 1.0 - np.asarray(data["p_CS_points"])[a].mean(axis=-1)))
        out.update(_stats(f"{arm}_share_CS_points_pulling_down", np.mean(np.asarray(data["d_CS_points"])[a] < 0, -1)))
        out[f"{arm}_rho_hat_below_rho_star"] = int(np.sum(np.asarray(data["rho_hat"])[a]
                                                          < np.asarray(data["rho_star"])[a]))
        for j, lr in enumerate(lrs):
            for key in ("onset_rise", "onset_early"):
                out.update(_stats(f"{arm}_{key}_{lr_label(lr)}", np.asarray(data[key])[a, :, j]))
        out.update(_arm_details(data, a, arm))
        if a > 0:  # paired by seed: this arm minus the default
            for key in ("rho_hat", "rho_star"):
                out.update(_stats(f"{arm}_minus_default_{key}", np.asarray(data[key])[a] - np.asarray(data[key])[0]))
            for j, lr in enumerate(lrs):
                for key in ("onset_rise", "onset_early"):
                    v = np.asarray(data[key])[:, :, j]
                    out.update(_stats(f"{arm}_minus_default_{key}_{lr_label(lr)}", v[a] - v[0]))
    if "mixture_rho" in data:
        arm = arm_label(np.asarray(data["arm_pretrain_steps"])[0])
        rho = np.asarray(data["mixture_rho"])
        out.update({"mixture_n_rho": int(rho.size), "mixture_rho_min_nonzero": float(rho[rho > 0].min()),
                    "mixture_rho_max": float(rho.max()), "mixture_lr": float(lrs[0]),
                    "mixture_first_interval_steps": int(data["mixture_first_interval"])})
        first = np.asarray(data["mixture_rise"])[:, int(np.flatnonzero(rho > 0)[0])]
        out.update({"mixture_rise_at_rho_min_nonzero_min": float(first.min()),
                    "mixture_rise_at_rho_min_nonzero_max": float(first.max())})
        for key in ("mixture_onset_rise", "mixture_onset_early"):
            out.update(_stats(f"{arm}_{key}", data[key]))
            out[f"{arm}_{key}_per_seed"] = _per_seed(data[key])
    return out


def _per_seed(values) -> str:
    """The values of each seed, as text (two significant digits)."""
    return ", ".join(f"{v:.2g}" for v in np.asarray(values, dtype=np.float64).ravel())


def _rank_correlation(x, y) -> float:
    """Spearman's rank correlation (no ties expected): the Pearson correlation of the ranks."""
    rx, ry = (np.argsort(np.argsort(np.asarray(v))) for v in (x, y))
    return float(np.corrcoef(rx, ry)[0, 1])


def _arm_details(data: dict, a: int, arm: str) -> dict:
    """The comparisons the notes quote for arm `a`: per-seed ρ̂* and ρ*, the margins against ρ̂*
    (paired by seed), the ratios behind them, the CS examples' pulls against their losses, how
    far the first GD step follows the derivative, and how often M_C falls over the first
    `early_steps` and still rises 0.05 above its start within the horizon."""
    rho_hat = np.asarray(data["rho_hat"])[a]
    out = {f"{arm}_rho_hat_per_seed": _per_seed(rho_hat), f"{arm}_rho_star_per_seed": _per_seed(data["rho_star"][a]),
           f"{arm}_rho_star_lambda_per_seed": _per_seed(data["rho_star_lambda"][a]),
           f"{arm}_d_C_min": float(np.min(data["d_C"][a])), f"{arm}_d_C_max": float(np.max(data["d_C"][a])),
           f"{arm}_grad_norm_M_per_seed": _per_seed(data["grad_norm_M"][a]),
           f"{arm}_grad_norm_C_per_seed": _per_seed(data["grad_norm_C"][a]),
           # cos of the angle between ∇M_C and −∇L_C: d_C = |∇M_C| |∇L_C| cos
           f"{arm}_cos_C_per_seed": _per_seed(np.asarray(data["d_C"][a]) / (
               np.asarray(data["grad_norm_M"][a]) * np.asarray(data["grad_norm_C"][a])))}
    out.update(_stats(f"{arm}_rho_star_minus_rho_hat", np.asarray(data["rho_star"])[a] - rho_hat))
    out.update(_stats(f"{arm}_rho_star_lambda_minus_rho_hat", np.asarray(data["rho_star_lambda"])[a] - rho_hat))
    cs_ratio = np.abs(np.asarray(data["d_CS"])[a]) / np.asarray(data["d_C"])[a]
    margin_ratio = np.abs(np.asarray(data["m_CS"])[a]) / np.asarray(data["m_C"])[a]
    lam = np.asarray(data["m_CS_lambda"])[a] / np.asarray(data["m_CS"])[a]
    out.update({f"{arm}_abs_d_CS_over_d_C_min": float(cs_ratio.min()),
                f"{arm}_abs_d_CS_over_d_C_max": float(cs_ratio.max()),
                f"{arm}_abs_m_CS_over_m_C_mean": float(margin_ratio.mean()),
                f"{arm}_lambda_ratio_min": float(lam.min()), f"{arm}_lambda_ratio_max": float(lam.max()),
                f"{arm}_rank_corr_d_CS_points_log_loss": _rank_correlation(
                    np.log(1.0 - np.asarray(data["p_CS_points"])[a].ravel()),
                    (np.asarray(data["d_CS_points"])[a] / np.asarray(data["d_C"])[a][:, None]).ravel())})
    rho = np.asarray(data["rho"])
    small = rho <= 0.1
    for j, lr in enumerate(np.asarray(data["lr"])):
        ratio = np.asarray(data["first_step_ratio"])[a, :, j]
        falls = np.asarray(data["early_change"])[a, :, j] < 0
        rises = np.asarray(data["rise"])[a, :, j] >= RISE
        out.update({f"{arm}_first_step_ratio_{lr_label(lr)}_rho_le_0.1_min": float(ratio[:, small].min()),
                    f"{arm}_first_step_ratio_{lr_label(lr)}_rho_le_0.1_max": float(ratio[:, small].max()),
                    f"{arm}_first_step_ratio_{lr_label(lr)}_rho0_min": float(ratio[:, 0].min()),
                    f"{arm}_first_step_ratio_{lr_label(lr)}_rho0_max": float(ratio[:, 0].max()),
                    f"{arm}_early_fall_count_{lr_label(lr)}": int(falls.sum()),
                    f"{arm}_early_fall_then_rise_count_{lr_label(lr)}": int((falls & rises).sum())})
    return out
