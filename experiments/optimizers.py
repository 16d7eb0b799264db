"""The inversion under the optimizers used in practice (`train.optimizer`), at the base mixture.

Varies the optimizer: full-batch gradient descent (the theory's; with its exact per-example
reduced prediction), plain SGD with minibatches at two batch sizes and SGD with momentum over
seeds (the seed draws the minibatches), and full-batch Adam (deterministic: one run per
learning rate). Computes M_C over steps for each, with mean, standard deviation, min and max
over seeds, and the peak, final value and drop of every run, its first peak (the running
maximum at the first step where M_C has fallen more than FALL below it: minibatch noise makes
smaller falls) and the lowest M_C from the first peak on (the trough).

Comparable learning rates: SGD takes GD's η (a minibatch gradient is an unbiased estimate of
the full one, so the expected step is GD's); SGD with momentum β takes η(1 − β) (the same
long-run step η); Adam's first step moves every entry of W_KQ by its learning rate (m̂/√v̂ =
sign of the gradient), so its base learning rate is the one whose first step moves θ_Cᵀu, the
shared context component of u = W_KQ φ(r), exactly as far as GD's first step (measured from
one Adam step at learning rate 1, exactly linear in it up to optax's ε); it is also run at
`adam_factors` times that rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import example_trajectory
from cpi.theory.summary import summarize

from .configs import with_values
from .seeded import swept
from .simulations import cached_run

FALL = 0.05
"""A first peak is one that M_C falls more than this below (`cpi.theory.summary.summarize`'s tol)."""

PARAMS = dict(steps=1000, seeds=8, batch_sizes=(5, 10), momentum=0.9, momentum_batch=5, adam_factors=(1.0, 0.3))
"""steps: optimizer steps; seeds: SGD seeds 0..seeds-1; batch_sizes: plain SGD's minibatch
sizes; momentum, momentum_batch: SGD with momentum β at η(1 − β) on minibatches of that size;
adam_factors: multiples of the matched Adam learning rate."""


def matched_adam_lr(base: Config, work: Path) -> tuple[float, float, float]:
    """(Adam learning rate, θ_Cᵀu after GD's first step, θ_Cᵀu after one Adam step at
    learning rate 1): the rate at which Adam's first step moves θ_Cᵀu as far as GD's."""
    gd, _ = cached_run(with_values(base, train__steps=1), work)
    adam, _ = cached_run(with_values(base, train__optimizer="adam", train__lr=1.0, train__steps=1), work)
    gd_move, adam_move = float(gd["u_theta_c"][1]), float(adam["u_theta_c"][1])
    return gd_move / adam_move, gd_move, adam_move


def compute(base: Config, work: Path, steps: int, seeds: int, batch_sizes, momentum: float, momentum_batch: int,
            adam_factors) -> dict:
    """M_C over steps for GD (simulation and exact theory), SGD per batch size and seed, SGD
    with momentum per seed, and Adam per learning rate; their peaks, finals and drops."""
    gd_config = with_values(base, train__optimizer="gd", train__batch_size=0, train__momentum=0.0,
                            train__steps=int(steps))
    lr = gd_config.train.lr
    gd_metrics, _ = cached_run(gd_config, work)
    theory = example_trajectory(gd_config)["reliance"]
    seed_list = list(range(int(seeds)))

    sgd = []
    for b in batch_sizes:
        config = with_values(gd_config, train__optimizer="sgd", train__batch_size=int(b))
        sgd.append(swept(config, {"train.seed": seed_list}, work)["reliance"])
    sgd = np.array(sgd)  # (batch sizes, seeds, steps + 1)
    mom_config = with_values(gd_config, train__optimizer="sgd", train__batch_size=int(momentum_batch),
                             train__momentum=float(momentum), train__lr=lr * (1.0 - float(momentum)))
    mom = swept(mom_config, {"train.seed": seed_list}, work)["reliance"]

    adam_lr, gd_move, adam_move = matched_adam_lr(gd_config, work)
    adam_configs = [with_values(gd_config, train__optimizer="adam", train__lr=adam_lr * f) for f in adam_factors]
    adam = np.array([cached_run(c, work)[0]["reliance"] for c in adam_configs])

    def summary(prefix, reliance):
        s = summarize(reliance)
        first = summarize(reliance, tol=FALL)
        peak, final = np.asarray(s["peak_reliance"]), np.asarray(s["final_reliance"])
        r = np.asarray(reliance)
        after = np.arange(r.shape[-1]) >= np.asarray(first["first_peak_step"])[..., None]
        trough = np.where(after, r, np.inf).min(axis=-1)  # lowest M_C from the first peak on
        return {f"{prefix}_peak": peak, f"{prefix}_peak_step": np.asarray(s["peak_step"]),
                f"{prefix}_final": final, f"{prefix}_drop": peak - final,
                f"{prefix}_first_peak": np.asarray(first["first_peak_reliance"]),
                f"{prefix}_first_peak_step": np.asarray(first["first_peak_step"]), f"{prefix}_trough": trough}

    return dict(
        config=cfg.to_toml(gd_config),
        step=np.arange(int(steps) + 1),
        lr=lr,
        rho=float(round(base.mixture.context_critical * base.mixture.n_train) / base.mixture.n_train),
        seed=np.array(seed_list),
        gd_reliance=gd_metrics["reliance"],
        theory_gd_reliance=theory,
        **summary("gd", gd_metrics["reliance"]),
        batch_size=np.array([int(b) for b in batch_sizes]),
        n_train=base.mixture.n_train,
        sgd_reliance=sgd,
        **summary("sgd", sgd),
        momentum=float(momentum),
        momentum_batch=int(momentum_batch),
        momentum_lr=mom_config.train.lr,
        momentum_reliance=mom,
        **summary("momentum", mom),
        adam_lr=np.array([c.train.lr for c in adam_configs]),
        adam_factor=np.array([float(f) for f in adam_factors]),
        adam_matched_lr=adam_lr,
        gd_first_move=gd_move,
        adam_unit_first_move=adam_move,
        adam_reliance=adam,
        **summary("adam", adam),
        adam_configs=np.array([cfg.to_toml(c) for c in adam_configs]),
    )


def headline(data: dict) -> dict:
    """Drops of M_C (peak − final over the horizon) under GD, SGD per batch size and SGD with
    momentum (mean and standard deviation over seeds), and Adam's early peak, trough and final
    value at the matched learning rate."""
    out = dict(
        steps=int(data["step"][-1]), seeds=int(len(data["seed"])), lr=float(data["lr"]),
        gd_drop=float(data["gd_drop"]), gd_final=float(data["gd_final"]),
        momentum=float(data["momentum"]), momentum_lr=float(data["momentum_lr"]),
        momentum_batch=int(data["momentum_batch"]),
        momentum_drop_mean=float(data["momentum_drop"].mean()),
        momentum_drop_sd=float(data["momentum_drop"].std(ddof=1)),
        momentum_peak_mean=float(data["momentum_peak"].mean()),
        momentum_peak_step_mean=float(data["momentum_peak_step"].mean()),
    )
    finals = [float(data["gd_final"]), *np.ravel(data["sgd_final"]), *np.ravel(data["momentum_final"])]
    out["final_min"], out["final_max"] = min(finals), max(finals)
    for i, b in enumerate(data["batch_size"]):
        drops = np.asarray(data["sgd_drop"])[i]
        out[f"sgd{int(b)}_drop_mean"] = float(drops.mean())
        out[f"sgd{int(b)}_drop_sd"] = float(drops.std(ddof=1))
    matched = int(np.argmin(np.abs(data["adam_factor"] - 1.0)))
    out.update(
        adam_lr=float(data["adam_lr"][matched]),
        adam_first_peak=float(data["adam_first_peak"][matched]),
        adam_first_peak_step=int(data["adam_first_peak_step"][matched]),
        adam_trough=float(data["adam_trough"][matched]), adam_final=float(data["adam_final"][matched]),
    )
    return out
