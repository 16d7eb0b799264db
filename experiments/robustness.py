"""Robustness of the inversion to random embeddings (`world.embeddings = "random"`), over seeds.

Varies the embedding dimension `world.dim` (from below the K tokens of the vocabulary, where
W_V realises the Lemma 3 table only in least squares, up to dimensions where the random
directions are nearly orthonormal) and the seed `train.seed` that draws them. Computes, at
the base mixture: M_C over steps per (dim, seed), its peak, final value and drop = peak −
final, whether it inverts, and the worst deviation of the realised value table from Lemma 3's
(`value_table_error`); the paper's run (orthonormal embeddings) as the reference. Then, at a
few dimensions, a sweep of the mixture ρ = n_C/n per seed: the measured ρ*, where the first
step's change of M_C, M_C(1) − M_C(0), turns from ≤ 0 to > 0 (linear interpolation between
the neighbouring grid mixtures; theory/NOTES.md §0.8, §4: no initial rise below ρ*), against the ρ*
predicted from the base config's own margins (`cpi.sims.theory_inputs.initial_direction`: the
mean initial pushes of its C and CS examples on the conflict test gaps) and the paper's
closed-form ρ* = |m_CS| / (m_C + |m_CS|).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import initial_direction, knowledge_of
from cpi.sims.world import build_world
from cpi.theory.closed_forms import paper_quantities
from cpi.theory.summary import summarize

from .configs import with_values
from .seeded import swept
from .simulations import cached_run

PARAMS = dict(
    dims=(40, 60, 80, 100, 121, 150, 200, 300, 500, 1000, 2000, 4000),
    seeds=8,
    steps=300,
    rho_dims=(80, 150, 300, 1000, 4000),
    n_rho=21,
)
"""dims: embedding dimensions of the inversion sweep; seeds: seeds 0..seeds-1 per dimension;
steps: GD steps; rho_dims: dimensions of the ρ* measurement; n_rho: mixtures ρ = 0..1 there."""


def first_rise(rho: np.ndarray, change: np.ndarray) -> float:
    """The smallest ρ at which `change` (the first step's change of M_C at the mixtures `rho`,
    increasing) turns from ≤ 0 to > 0, linearly interpolated between the two neighbouring
    mixtures; NaN when it never does."""
    rho, change = np.asarray(rho, dtype=np.float64), np.asarray(change, dtype=np.float64)
    hits = np.flatnonzero((change[:-1] <= 0) & (change[1:] > 0))
    if not hits.size:
        return float("nan")
    i = hits[0]
    return float(rho[i] - change[i] * (rho[i + 1] - rho[i]) / (change[i + 1] - change[i]))


def random_base(base: Config, steps: int) -> Config:
    """The base config with random embeddings (its own dim, or the first one swept) and `steps`."""
    return with_values(base, world__embeddings="random", train__steps=int(steps))


def compute(base: Config, work: Path, dims, seeds: int, steps: int, rho_dims, n_rho: int) -> dict:
    """M_C per (dim, seed) with its peak, final, drop and the value-table error; the paper's
    run; ρ* measured in a ρ sweep and predicted from the config's margins per (dim, seed)."""
    paper = with_values(base, world__embeddings="paper", world__dim=0, train__steps=int(steps))
    paper_metrics, paper_summary = cached_run(paper, work)
    rand = random_base(base, steps)
    seed_list = list(range(int(seeds)))
    dims, rho_dims = [int(d) for d in dims], [int(d) for d in rho_dims]

    sweep = swept(rand, {"world.dim": dims, "train.seed": seed_list}, work)
    reliance = sweep["reliance"]  # (dims, seeds, steps + 1)
    s = summarize(reliance)
    table_error = np.array([[build_world(with_values(rand, world__dim=d, train__seed=k)).value_table_error
                             for k in seed_list] for d in dims])

    n = base.mixture.n_train
    rho = [k / (n_rho - 1) for k in range(n_rho)]
    rho_eff = np.array([round(x * n) / n for x in rho])  # n_C = round(ρn), as the mixture counts them
    measured, predicted, change, inverts = [], [], [], []
    for d in rho_dims:
        r = swept(with_values(rand, world__dim=d), {"mixture.context_critical": rho, "train.seed": seed_list}, work)
        first = r["reliance"][..., 1] - r["reliance"][..., 0]  # (rho, seeds)
        change.append(first.T)
        inverts.append(r["summary_inversion"].T)
        measured.append([first_rise(rho_eff, first[:, k]) for k in seed_list])
        predicted.append([initial_direction(with_values(rand, world__dim=d, train__seed=k))["rho_star"]
                          for k in seed_list])
    q = paper_quantities(knowledge_of(base))
    peak, final = np.asarray(s["peak_reliance"]), np.asarray(s["final_reliance"])
    return dict(
        config=cfg.to_toml(rand),
        step=np.arange(int(steps) + 1),
        dim=np.array(dims),
        seed=np.array(seed_list),
        n_tokens=int(build_world(paper).embed.shape[1]),
        paper_dim=int(build_world(paper).embed.shape[0]),
        lr=base.train.lr,
        rho=float(round(base.mixture.context_critical * n) / n),
        paper_reliance=paper_metrics["reliance"],
        paper_peak=paper_summary["peak_reliance"],
        paper_final=paper_summary["final_reliance"],
        paper_drop=paper_summary["peak_reliance"] - paper_summary["final_reliance"],
        paper_peak_step=paper_summary["peak_step"],
        paper_rho_star=q["rho_star"],
        sim_reliance=reliance,
        sim_initial=np.asarray(s["initial_reliance"]),
        sim_peak=peak,
        sim_final=final,
        sim_drop=peak - final,
        sim_peak_step=np.asarray(s["peak_step"]),
        sim_inversion=np.asarray(s["inversion"]),
        value_table_error=table_error,
        sim_configs=sweep["configs"],
        rho_dim=np.array(rho_dims),
        rho_grid=rho_eff,
        rho_first_change=np.array(change),  # (rho_dims, seeds, rho)
        rho_inversion=np.array(inverts),
        rho_star_measured=np.array(measured),
        rho_star_predicted=np.array(predicted, dtype=np.float64),
    )


def headline(data: dict) -> dict:
    """Over random embeddings (mean and standard deviation over seeds, per world.dim): from
    which dim every seed inverts, the ranges of mean peak and drop from K tokens on, the largest
    dim's drop against the paper embeddings', the value-table error below K, and ρ* measured
    against predicted."""
    dims, k = data["dim"], int(data["n_tokens"])
    inverts = np.all(data["sim_inversion"], axis=1)
    fails = dims[~inverts]
    every_from = int(dims[dims > fails.max()].min()) if fails.size else int(dims.min())
    big, small = dims >= k, dims < k
    peak, drop = data["sim_peak"].mean(axis=1), data["sim_drop"].mean(axis=1)
    no_fall = dims <= dims[small & (drop < 0.05)].max() if (small & (drop < 0.05)).any() else dims < dims.min()
    last = int(np.argmax(dims))
    measured, predicted = data["rho_star_measured"], data["rho_star_predicted"]
    gap = np.abs(measured - predicted).max(axis=1)  # per rho_dim
    close = data["rho_dim"] >= 150
    return dict(
        steps=int(data["step"][-1]), seeds=int(len(data["seed"])), rho=float(data["rho"]), n_tokens=k,
        paper_dim=int(data["paper_dim"]), every_seed_inverts_from_dim=every_from,
        big_peak_min=float(peak[big].min()), big_peak_max=float(peak[big].max()),
        big_drop_min=float(drop[big].min()), big_drop_max=float(drop[big].max()),
        largest_dim=int(dims[last]), largest_drop_mean=float(drop[last]),
        largest_drop_sd=float(data["sim_drop"][last].std(ddof=1)), paper_drop=float(data["paper_drop"]),
        paper_rho_star=float(data["paper_rho_star"]),
        small_table_error_min=float(data["value_table_error"][small].max(axis=1).min()),
        small_table_error_max=float(data["value_table_error"][small].max()),
        no_fall_max_dim=int(dims[no_fall].max()) if no_fall.any() else 0,
        no_fall_peak_min=float(peak[no_fall].min()) if no_fall.any() else float("nan"),
        no_fall_peak_max=float(peak[no_fall].max()) if no_fall.any() else float("nan"),
        rho_star_gap_from_150=float(gap[close].max()),
        rho_star_measured_mean_min=float(measured[close].mean(axis=1).min()),
        rho_star_measured_mean_max=float(measured[close].mean(axis=1).max()),
        low_rho_dim=int(data["rho_dim"].min()),
        low_rho_star_measured=float(measured[np.argmin(data["rho_dim"])].mean()),
        low_rho_star_predicted=float(predicted[np.argmin(data["rho_dim"])].mean()),
    )
