"""Measure, then predict: what the toy predicts for transformer runs, scored against them.

Fitting the toy's curve to a transformer's is not identifiable (a rise, a peak and a fall give
about three numbers for four parameters; docs/results.md shows that the calibrated toy does not
even start where the transformer starts). This module goes the other way: it measures the toy's
quantities in each transformer run, asks the toy only what it can answer from them, and scores
each answer against what the transformer did.

Measured per run (`measure`):
- δ_C, δ_M: the pretrained model's context-only and closed-book probabilities of the right
  answer (the run's summary, docs/bridge.md);
- ρ: the share of C examples in the mixture it trains on (after filtering);
- ρ̂: the paper's section 4.4 criterion, the share of the context-bearing examples it trains on
  whose no-context probability of the target is below ½ (`context_needed_share`, measured on the
  corpus before filtering; filtering drops the examples with the lowest no-context loss first,
  so after dropping k of the N context-bearing examples, ρ̂ = min(m, N − k)/(N − k + n_S) for the
  m that need their context and the n_S subject-only ones; NaN for runs saved before the
  summary carried the share).

Predicted from the toy (`predict`), at the measured strengths and ρ̂ (ρ where ρ̂ is missing):
- the initial direction: M_C rises at t = 0 iff ρ̂ > ρ*(δ_C, δ_M) (Lemma 4 with the toy's
  closed-form margins); also with the ρ* of the transformer's own margins (its summary's
  `rho_star`);
- a rise of at least RISE within the horizon, and the fall: from the calibrated toy
  (`cpi.experiments.calibration.calibrate`: full-batch GD on the exact reduced dynamics with the
  step size matched on the transformer's first recorded interval), read at the transformer's
  recorded steps.

Scored (`score`) over a set of runs: the share of runs whose initial direction, and whose rise,
the toy gets right; the rank agreement (Kendall's τ) of the toy's falls with the transformer's
across the runs of each seed, averaged over seeds; and, for runs that differ only in
`mixture.filter`, the share of consecutive pairs where the fall moves the same way in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from cpi.sims.config import Config
from cpi.sims.theory_inputs import knowledge_of, reduced_trajectory
from cpi.theory.closed_forms import paper_quantities
from cpi.theory.summary import reliance_drop

from .calibration import calibrate
from .configs import with_values

RISE = 0.05
"""A rise counts when M_C's maximum exceeds its start by at least this much (as `bridge_phase`)."""


@dataclass(frozen=True)
class Run:
    """One transformer run: a label, its bridge config, its summary and its metrics."""

    label: str
    config: Any
    summary: dict
    metrics: dict


def _fraction_needing_context(summary: dict, config) -> float:
    share = summary.get("context_needed_share")
    if share is None or not math.isfinite(float(share)):
        return float("nan")
    from cpi.bridge.config import group_counts

    before = group_counts(config.mixture)
    bearing = before["C"] + before["CS"] + before["CF"]
    needed = float(share) * bearing
    dropped = bearing - (summary["counts"]["C"] + summary["counts"]["CS"] + summary["counts"]["CF"])
    remaining = bearing - dropped
    total = remaining + summary["counts"]["S"]
    return min(needed, remaining) / total if total else float("nan")


def measure(run: Run) -> dict:
    """The toy's quantities measured in one transformer run (module doc) and what it did:
    initial M_C, its change over the first recorded interval, its rise and its fall (the
    largest fall below the running maximum)."""
    s = run.summary
    reliance = np.asarray(run.metrics["reliance"], dtype=np.float64)
    step = np.asarray(run.metrics["step"])
    counts = s["counts"]
    n = sum(int(v) for v in counts.values())
    return dict(
        label=run.label, seed=int(run.config.train.seed), filter=float(run.config.mixture.filter),
        delta_c=float(s["delta_c"]), delta_m=float(s["delta_m"]), rho=counts["C"] / n if n else float("nan"),
        rho_hat=_fraction_needing_context(s, run.config),
        rho_star_margins=float("nan") if s.get("rho_star") is None else float(s["rho_star"]),
        initial=float(reliance[0]), first_change=float(reliance[1] - reliance[0]),
        interval=int(step[1] - step[0]), steps=[int(x) for x in step],
        rise=float(reliance.max() - reliance[0]), fall=float(reliance_drop(reliance)),
    )


def predict(measured: dict, base: Config | None = None) -> dict:
    """What the toy (`base`, default the default config) predicts from one run's measured
    quantities (module doc): the toy's ρ* at the measured strengths, the initial direction by
    that ρ* and by the transformer's own, and the calibrated toy's rise and fall."""
    base = base if base is not None else Config()
    rho = measured["rho_hat"] if math.isfinite(measured["rho_hat"]) else measured["rho"]
    cal = calibrate(base, measured["delta_c"], measured["delta_m"], rho, measured["first_change"],
                    measured["interval"])
    toy_rho_star = float(paper_quantities(knowledge_of(cal["config"]))["rho_star"])
    steps = measured["steps"]
    trajectory = np.asarray(reduced_trajectory(with_values(cal["config"], train__steps=int(steps[-1])))["reliance"])
    toy = trajectory[np.asarray(steps)]
    own = measured["rho_star_margins"]
    return dict(
        rho_used=float(rho), toy_rho_star=toy_rho_star, rises_initially=bool(rho > toy_rho_star),
        rises_initially_by_margins=bool(rho > own) if math.isfinite(own) else None,
        toy_lr=cal["lr"], toy_matched=cal["matched"], toy_clamped=cal["clamped"],
        toy_initial=float(toy[0]), toy_rise=float(toy.max() - toy[0]), toy_fall=float(reliance_drop(toy)),
    )


def _share(hits: list[bool]) -> float:
    return float(np.mean(hits)) if hits else float("nan")


def score(measured: list[dict], predicted: list[dict], same: list[tuple] | None = None,
          seeds: list[tuple] | None = None) -> dict:
    """The toy's predictions scored against the transformer's runs (module doc): `initial_direction`
    and `initial_direction_by_margins` (shares of runs right), `rise` (share right about a rise of
    at least RISE), `fall_order_tau` (Kendall's τ of the toy's against the transformer's falls
    across each seed's runs, averaged over the seeds with at least 3 runs; NaN without),
    `filter_response` (the share of consecutive filter values, among runs equal in `same` — their
    other swept values and seed; by default their seed — where the toy's and the transformer's
    falls move the same way; NaN without such pairs), with the number of runs each share counts.
    `seeds` groups the runs for the fall order (default: by seed)."""
    rises = [m["first_change"] > 0 for m in measured]
    by_toy = [p["rises_initially"] == r for p, r in zip(predicted, rises)]
    by_own = [p["rises_initially_by_margins"] == r for p, r in zip(predicted, rises)
              if p["rises_initially_by_margins"] is not None]
    rise = [(p["toy_rise"] >= RISE) == (m["rise"] >= RISE) for m, p in zip(measured, predicted)]
    same = same if same is not None else [(m["seed"],) for m in measured]
    seeds = seeds if seeds is not None else [(m["seed"],) for m in measured]
    taus = []
    for key in sorted(set(seeds)):
        idx = [i for i, k in enumerate(seeds) if k == key]
        if len(idx) >= 3:
            tau = kendalltau([predicted[i]["toy_fall"] for i in idx], [measured[i]["fall"] for i in idx]).statistic
            if math.isfinite(tau):
                taus.append(float(tau))
    pairs = []
    for key in sorted(set(same)):
        idx = sorted((i for i, k in enumerate(same) if k == key), key=lambda i: measured[i]["filter"])
        for a, b in zip(idx, idx[1:]):
            if measured[a]["filter"] == measured[b]["filter"]:
                continue
            pairs.append(np.sign(predicted[b]["toy_fall"] - predicted[a]["toy_fall"])
                         == np.sign(measured[b]["fall"] - measured[a]["fall"]))
    return dict(runs=len(measured), initial_direction=_share(by_toy), initial_direction_by_margins=_share(by_own),
                initial_direction_by_margins_runs=len(by_own), rise=_share(rise),
                fall_order_tau=float(np.mean(taus)) if taus else float("nan"), fall_order_groups=len(taus),
                filter_response=_share(pairs), filter_pairs=len(pairs))
