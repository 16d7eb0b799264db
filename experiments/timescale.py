"""When the inversion happens: the peak step of M_C against the number of finetuning examples n.

Varies n (the vocabulary grown to the smallest that `cpi.sims.world.check_vocabulary` accepts,
never below the base config's: K_S ≥ n + n_test + n_aligned, K_A ≥ n + 2 n_test + n_aligned
for C and CS examples) and ρ. Computes, per (n, ρ):
- the exact gradient flow's peak time (`cpi.theory.timescale.flow_peak`, the peak of the test
  gap A, which M_C follows), against the law ln t_peak = nΨ(ρ) + ½ ln n + C
  (`peak_time_law`), and on a ρ grid ln t_peak / n against Ψ(ρ) = KL(ρ ‖ ρ_∞);
- full-batch GD's peak step from the reduced engine (`group_descent`), where the flow peaks
  within `gd_steps`/2;
- minibatch SGD's peak step over seeds from the fast engine, where the flow peaks within
  `sgd_steps`/2; in epochs, step·b/n;
- the first epoch of SGD at `first_epoch_n`: the fast engine's M_C against the
  one-dimensional recursion of `first_epoch_gap` driven by the same batches, its largest fall
  below the running maximum, and the expected recursion (b_C = ρb).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.theory_inputs import knowledge_of
from cpi.sims.world import vocabulary_needs
from cpi.theory.closed_forms import paper_quantities
from cpi.theory.params import GroupCounts, Knowledge
from cpi.theory.reduced import group_descent
from cpi.theory.timescale import first_epoch_gap, flow_peak, local_balance, peak_time_law

from .configs import with_values
from .seeded import swept

PARAMS = dict(n_train=(20, 40, 80, 160, 320, 640, 1280), rho=(0.5, 0.6, 0.7), rho_grid=(0.25, 0.9, 27),
              rho_grid_n=(80, 320, 1280), gd_steps=20000, sgd_steps=4000, sgd_seeds=4, batch_size=10,
              first_epoch_n=(80, 320, 1280), first_epoch_seeds=4)
"""n_train: examples n; rho: mixtures ρ = n_C/n (n_C = round(ρn)); rho_grid (start, stop, num) and
rho_grid_n: the ρ scan of the flow's peak time; gd_steps: horizon of the reduced engine's GD;
sgd_steps, sgd_seeds, batch_size: SGD on the fast engine (seeds 0..sgd_seeds−1, minibatches of
batch_size); first_epoch_n, first_epoch_seeds: the one-epoch runs at ρ = ½."""


def fitted(base: Config, n: int, rho: float) -> Config:
    """`base` with n examples, n_C = round(ρn) and the vocabulary grown to the smallest that
    fits (never below the base config's)."""
    config = with_values(base, mixture__n_train=int(n), mixture__context_critical=float(rho),
                         mixture__counterfactual=0.0, mixture__fact_recall=0.0, mixture__filter=0.0)
    subjects, answers = vocabulary_needs(config)
    return with_values(config, world__n_subjects=max(base.world.n_subjects, subjects),
                       world__n_answers=max(base.world.n_answers, answers))


def _counts(n: int, rho: float) -> tuple[int, int]:
    n_c = int(round(rho * n))
    return n_c, int(n) - n_c


def _batch_c(seed: int, steps: int, n: int, n_c: int, batch_size: int) -> np.ndarray:
    """C examples (the first n_c of the world's training examples) in each of `steps` batches."""
    from cpi.sims.optimizers import batch_weights

    return np.array([float(np.sum(np.asarray(batch_weights(np.uint32(seed), k, n, batch_size, np.float32))[:n_c] > 0))
                     for k in range(steps)])


def compute(base: Config, work: Path, n_train, rho, rho_grid, rho_grid_n, gd_steps: int, sgd_steps: int,
            sgd_seeds: int, batch_size: int, first_epoch_n, first_epoch_seeds: int) -> dict:
    """Peak times of the flow, GD and SGD against n and ρ, the law, and the first epoch."""
    base = with_values(base, train__optimizer="gd", train__batch_size=0, train__momentum=0.0,
                       train__weight_decay=0.0, train__value_lr=0.0)
    lr = base.train.lr
    ns, rhos = [int(n) for n in n_train], [float(r) for r in rho]
    shape = (len(rhos), len(ns))
    knowledge = [[knowledge_of(fitted(base, n, r)) for n in ns] for r in rhos]
    k_s = np.array([k.n_subjects for k in knowledge[0]])
    k_a = np.array([k.n_answers for k in knowledge[0]])

    # the exact flow's peak and the law
    flow_log_t, flow_a, law_log_t, law_psi, rho_eff, rho_inf = (np.zeros(shape) for _ in range(6))
    for i, r in enumerate(rhos):
        for j, n in enumerate(ns):
            n_c, n_cs = _counts(n, r)
            peak = flow_peak(knowledge[i][j], n_c, n_cs)
            law = peak_time_law(knowledge[i][j], n_c / n, n)
            flow_log_t[i, j], flow_a[i, j] = peak["log_t_peak"], peak["a_peak"]
            law_log_t[i, j], law_psi[i, j], rho_inf[i, j] = law["log_t"], law["psi"], law["rho_inf"]
            rho_eff[i, j] = n_c / n
    law_constant = flow_log_t - law_log_t  # C(ρ) + o(1): converges as n grows

    # full-batch GD on the reduced engine, where the flow peaks within gd_steps / 2
    gd_peak = np.full(shape, -1)
    gd_mask = np.exp(flow_log_t) <= gd_steps / 2
    if gd_mask.any():
        idx = np.argwhere(gd_mask)
        know = Knowledge(*(np.array([getattr(knowledge[i][j], f) for i, j in idx], dtype=np.float64)
                           for f in Knowledge._fields))
        counts = GroupCounts(n_c=np.array([_counts(ns[j], rhos[i])[0] for i, j in idx], dtype=np.float64),
                             n_cs=np.array([_counts(ns[j], rhos[i])[1] for i, j in idx], dtype=np.float64))
        _, summary = group_descent(know, counts, lr=lr, steps=int(gd_steps), record=False)
        gd_peak[tuple(idx.T)] = np.asarray(summary["peak_step"])

    # the ρ scan: ln t_peak / n of the flow against Ψ(ρ)
    grid = np.linspace(float(rho_grid[0]), float(rho_grid[1]), int(rho_grid[2]))
    grid_ns = [int(n) for n in rho_grid_n]
    grid_log_t = np.zeros((len(grid_ns), len(grid)))
    grid_psi, grid_rho_inf, grid_rho_star = (np.zeros((len(grid_ns), len(grid))) for _ in range(3))
    for a, n in enumerate(grid_ns):
        know = knowledge_of(fitted(base, n, 0.5))  # the vocabulary does not depend on ρ
        law_n = peak_time_law(know, grid, n)
        grid_psi[a], grid_rho_inf[a] = law_n["psi"], law_n["rho_inf"]
        grid_rho_star[a] = paper_quantities(know)["rho_star"]
        for b, r in enumerate(grid):
            grid_log_t[a, b] = flow_peak(know, r * n, n - r * n)["log_t_peak"]

    # minibatch SGD on the fast engine, over seeds, where the flow peaks within sgd_steps / 2
    seeds = list(range(int(sgd_seeds)))
    sgd_mask = np.exp(flow_log_t) <= sgd_steps / 2
    sgd_peak = np.full(shape + (len(seeds),), -1)
    sgd_peak_reliance = np.full(shape + (len(seeds),), np.nan)
    for i, j in np.argwhere(sgd_mask):
        config = with_values(fitted(base, ns[j], rhos[i]), train__optimizer="sgd", train__batch_size=int(batch_size),
                             train__steps=int(sgd_steps))
        out = swept(config, {"train.seed": seeds}, work)
        sgd_peak[i, j] = out["summary_peak_step"]
        sgd_peak_reliance[i, j] = out["summary_peak_reliance"]

    # the first epoch of SGD at ρ = ½: engine against the one-dimensional recursion
    epoch_ns = [int(n) for n in first_epoch_n]
    epoch_seeds = list(range(int(first_epoch_seeds)))
    epoch_steps = [n // int(batch_size) for n in epoch_ns]
    longest = max(epoch_steps)
    epoch_engine = np.full((len(epoch_ns), len(epoch_seeds), longest + 1), np.nan)
    epoch_recursion = np.full_like(epoch_engine, np.nan)
    epoch_expected = np.full((len(epoch_ns), longest + 1), np.nan)
    epoch_batch_c = np.full((len(epoch_ns), len(epoch_seeds), longest), np.nan)
    epoch_balance_start, epoch_balance_end = np.zeros(len(epoch_ns)), np.zeros(len(epoch_ns))
    for a, n in enumerate(epoch_ns):
        config = with_values(fitted(base, n, 0.5), train__optimizer="sgd", train__batch_size=int(batch_size),
                             train__steps=epoch_steps[a])
        know = knowledge_of(config)
        n_c = _counts(n, 0.5)[0]
        out = swept(config, {"train.seed": epoch_seeds}, work)
        steps = epoch_steps[a]
        epoch_engine[a, :, : steps + 1] = out["reliance"]
        bc = np.array([_batch_c(s, steps, n, n_c, int(batch_size)) for s in epoch_seeds])
        epoch_batch_c[a, :, :steps] = bc
        epoch_recursion[a, :, : steps + 1] = first_epoch_gap(know, bc, int(batch_size), lr)["reliance"]
        expected = first_epoch_gap(know, np.full(steps, n_c / n * int(batch_size)), int(batch_size), lr)
        epoch_expected[a, : steps + 1] = expected["reliance"]
        epoch_balance_start[a] = float(local_balance(know, 0.0))
        epoch_balance_end[a] = float(local_balance(know, expected["gap"][-1]))
    running = np.fmax.accumulate(np.nan_to_num(epoch_engine, nan=-np.inf), axis=-1)
    epoch_fall = np.nanmax(np.where(np.isfinite(epoch_engine), running - epoch_engine, np.nan), axis=-1)
    expected_steps = np.diff(epoch_expected, axis=-1)

    return dict(
        config=cfg.to_toml(base),
        lr=lr,
        n_train=np.array(ns),
        rho=np.array(rhos),
        rho_eff=rho_eff,
        n_subjects=k_s,
        n_answers=k_a,
        rho_star=np.array([[paper_quantities(k)["rho_star"] for k in row] for row in knowledge]),
        rho_inf=rho_inf,
        flow_log_peak_time=flow_log_t,
        flow_peak_gap=flow_a,
        law_psi=law_psi,
        law_log_time=law_log_t,
        law_constant=law_constant,
        gd_steps=int(gd_steps),
        gd_peak_step=gd_peak,
        grid_rho=grid,
        grid_n=np.array(grid_ns),
        grid_log_peak_time=grid_log_t,
        grid_psi=grid_psi,
        grid_rho_inf=grid_rho_inf,
        grid_rho_star=grid_rho_star,
        sgd_steps=int(sgd_steps),
        sgd_seeds=np.array(seeds),
        batch_size=int(batch_size),
        sgd_peak_step=sgd_peak,
        sgd_peak_reliance=sgd_peak_reliance,
        epoch_n=np.array(epoch_ns),
        epoch_steps=np.array(epoch_steps),
        epoch_seeds=np.array(epoch_seeds),
        epoch_engine_reliance=epoch_engine,
        epoch_recursion_reliance=epoch_recursion,
        epoch_expected_reliance=epoch_expected,
        epoch_batch_c=epoch_batch_c,
        epoch_fall=epoch_fall,
        epoch_expected_min_step=np.nanmin(expected_steps, axis=-1),
        epoch_balance_start=epoch_balance_start,
        epoch_balance_end=epoch_balance_end,
        gd_final_drop=_gd_drop(base, lr),
    )


def _gd_drop(base: Config, lr: float) -> float:
    """The full-batch inversion at the base world (n = 20, ρ = ½), for scale: peak − final of
    M_C over 300 steps of the reduced engine."""
    know = knowledge_of(fitted(base, 20, 0.5))
    _, s = group_descent(know, GroupCounts(n_c=10, n_cs=10), lr=lr, steps=300, record=False)
    return float(s["peak_reliance"] - s["final_reliance"])


def _key(rho: float) -> str:
    return f"rho{int(round(100 * rho)):02d}"


def headline(data: dict) -> dict:
    """The numbers the documents quote, computed from the saved data: per ρ and n the flow's
    peak time (log10 of the flow time; full-batch GD: time = step = epoch), the law's Ψ and
    residual constant, GD's and SGD's peak steps (SGD: mean and sd over seeds, in steps and
    epochs), the first epoch's comparison and falls, the horizons and seed counts."""
    out: dict = {}
    ns, rhos = np.asarray(data["n_train"]), np.asarray(data["rho"])
    log10 = np.asarray(data["flow_log_peak_time"]) / np.log(10.0)
    b = int(data["batch_size"])
    out["gd_horizon_steps"] = int(data["gd_steps"])
    out["sgd_horizon_steps"] = int(data["sgd_steps"])
    out["sgd_seeds"] = int(len(np.asarray(data["sgd_seeds"])))
    out["sgd_batch_size"] = b
    out["n_max"] = int(ns[-1])
    out["rho_star_n20"] = float(np.asarray(data["rho_star"])[0, 0])
    for i, r in enumerate(rhos):
        k = _key(float(r))
        for j, n in enumerate(ns):
            out[f"flow_log10_peak_{k}_n{int(n)}"] = float(log10[i, j])
            gd = int(np.asarray(data["gd_peak_step"])[i, j])
            if gd >= 0:
                out[f"gd_peak_step_{k}_n{int(n)}"] = gd
            sgd = np.asarray(data["sgd_peak_step"])[i, j]
            if np.all(sgd >= 0):
                out[f"sgd_peak_step_{k}_n{int(n)}_mean"] = float(np.mean(sgd))
                out[f"sgd_peak_step_{k}_n{int(n)}_sd"] = float(np.std(sgd, ddof=1) if sgd.size > 1 else 0.0)
                out[f"sgd_peak_epoch_{k}_n{int(n)}_mean"] = float(np.mean(sgd) * b / n)
                out[f"sgd_peak_epoch_{k}_n{int(n)}_sd"] = float((np.std(sgd, ddof=1) if sgd.size > 1 else 0.0) * b / n)
        out[f"psi_{k}_n{int(ns[-1])}"] = float(np.asarray(data["law_psi"])[i, -1])
        out[f"rho_inf_n{int(ns[-1])}"] = float(np.asarray(data["rho_inf"])[i, -1])
        out[f"law_constant_{k}_n{int(ns[-2])}"] = float(np.asarray(data["law_constant"])[i, -2])
        out[f"law_constant_{k}_n{int(ns[-1])}"] = float(np.asarray(data["law_constant"])[i, -1])
        out[f"flow_log_peak_over_law_{k}_n{int(ns[-1])}"] = float(
            np.asarray(data["flow_log_peak_time"])[i, -1] / np.asarray(data["law_log_time"])[i, -1])
    out["rho_inf_n20"] = float(np.asarray(data["rho_inf"])[0, 0])
    engine, recursion = np.asarray(data["epoch_engine_reliance"]), np.asarray(data["epoch_recursion_reliance"])
    out["first_epoch_seeds"] = int(len(np.asarray(data["epoch_seeds"])))
    out["first_epoch_max_abs_error"] = float(np.nanmax(np.abs(engine - recursion)))
    for a, n in enumerate(np.asarray(data["epoch_n"])):
        fall = np.asarray(data["epoch_fall"])[a]
        out[f"first_epoch_steps_n{int(n)}"] = int(np.asarray(data["epoch_steps"])[a])
        out[f"first_epoch_fall_n{int(n)}_mean"] = float(np.mean(fall))
        out[f"first_epoch_fall_n{int(n)}_sd"] = float(np.std(fall, ddof=1) if np.size(fall) > 1 else 0.0)
        out[f"first_epoch_expected_min_step_n{int(n)}"] = float(np.asarray(data["epoch_expected_min_step"])[a])
        final = engine[a, :, int(np.asarray(data["epoch_steps"])[a])]
        out[f"first_epoch_final_reliance_n{int(n)}_mean"] = float(np.mean(final))
        out[f"first_epoch_final_reliance_n{int(n)}_sd"] = float(np.std(final, ddof=1) if np.size(final) > 1 else 0.0)
    out["gd_drop_n20"] = float(data["gd_final_drop"])
    return out
