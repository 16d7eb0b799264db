"""Mitigations of the inversion in the reduced dynamics (issue 5): filtering by no-context
loss and counterfactual augmentation.

Filtering (the paper's mitigation for LLMs: drop the examples with the lowest no-context
loss). The no-context loss of a training example is the loss of its answer given [s, r] alone
under the pretrained model (W_KQ = 0, keys s and r both visible, σ = ½ each):

    ℓ_nc = −log softmax(½v(s) + ½v(r))_a.

v(r) is flat over the answers (o_c on every answer row), so only the subject's column
moves the answer away from the flat level: with Z' = K_A e^{o_c} + R e^{o_r} + K_S and
L = logit δ_M + log Z₀ the memorised entry (L > o_c whenever δ_M exceeds the flat
probability e^{o_c}/(Z₀ + e^{o_c})),

    C, S_unseen : log Z' − o_c
    CS          : log(Z' − e^{o_c} + e^{(L + o_c)/2}) − (L + o_c)/2          (< C)
    CF          : log(Z' − e^{o_c} + e^{(L + o_c)/2}) − o_c                  (> C)
    S_seen      : as CS with δ_S in place of δ_M.

So the CS examples go first (their subject already predicts the answer), then C, then CF.

Counterfactual augmentation: `counterfactual_needed` finds the smallest number of CF
examples to add to (or to put in place of CS examples of) a C/CS mixture so that the
conflict reliance no longer falls within a horizon. A horizon is needed: in the gradient
flow CF examples postpone the drop (geometrically in their number) rather than remove it
(NOTES.md, section 13).
"""

from __future__ import annotations

import numpy as np
from .numerics import logsumexp

from .groups import CONTEXT_INDICES, GROUPS
from .params import GroupCounts, Knowledge
from .reduced_system import class_columns
from .summary import reliance_drop

__all__ = ["no_context_loss", "filtered_counts", "context_order", "has_drop", "counterfactual_needed"]

# CS, C, CF: lowest no-context loss first (see the module docstring)
_DEFAULT_ORDER = tuple(GROUPS.index(g) for g in ("CS", "C", "CF"))


def no_context_loss(knowledge: Knowledge, n_relations: int = 1) -> np.ndarray:
    """ℓ_nc = −log softmax(½v(s) + ½v(r))_a for one example of each group, shape (…, 5) in
    GROUPS order (C, CS, CF, S_seen, S_unseen); the fields of `knowledge` broadcast.
    δ_C does not enter (no context token is read)."""
    cols = class_columns(knowledge, n_relations)
    subject = np.stack([cols["flat"], cols["mem_c"], cols["mem_b"], cols["seen"], cols["flat"]], axis=-2)
    z = 0.5 * subject + 0.5 * cols["flat"][..., None, :]  # v(r) = the flat column
    return logsumexp(z + cols["logmult"][..., None, :], axis=-1) - z[..., 2]


def context_order(no_context_losses=None) -> tuple[int, ...]:
    """Indices (into GROUPS) of the context-bearing groups, lowest no-context loss first;
    ties keep GROUPS order. Without losses: (CS, C, CF), the order whenever the memorised
    fact is stronger than the flat level (module docstring)."""
    if no_context_losses is None:
        return _DEFAULT_ORDER
    losses = np.asarray(no_context_losses, dtype=np.float64)
    if losses.shape != (len(GROUPS),):
        raise ValueError("no_context_losses must have one entry per group (GROUPS order)")
    return tuple(int(CONTEXT_INDICES[i]) for i in np.argsort(losses[list(CONTEXT_INDICES)], kind="stable"))


def filtered_counts(counts, fraction: float, no_context_losses=None) -> np.ndarray:
    """Drop round(fraction × (n_C + n_CS + n_CF)) context-bearing examples, those with the
    LOWEST no-context loss first (examples of one group are interchangeable), and return the
    new counts. S examples are never dropped. counts: (…, 5) in GROUPS order (leading axes:
    independent data sets, each filtered on its own; for relation counts (R, 5) this filters
    each relation separately). round is Python's (half to even), as sims' group counts.
    no_context_losses: (5,) from `no_context_loss`; None uses the order CS, C, CF."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
    counts = np.asarray(counts)
    if counts.shape[-1] != len(GROUPS):
        raise ValueError("counts must have shape (..., 5) in GROUPS order")
    if np.any(counts < 0) or np.any(counts != np.round(counts)):
        raise ValueError("counts must be non-negative integers")
    order = context_order(no_context_losses)
    out = counts.astype(np.int64).copy()
    flat = out.reshape(-1, len(GROUPS))
    for row in flat:
        left = int(round(fraction * int(row[list(CONTEXT_INDICES)].sum())))
        for gi in order:
            take = min(left, int(row[gi]))
            row[gi] -= take
            left -= take
    return flat.reshape(out.shape)


def _base_counts(rho: float, n: int) -> tuple[int, int]:
    n_c = round(rho * n)
    return n_c, n - n_c


def _mixture(n_c, n_cs, k, mode) -> GroupCounts:
    if mode == "add":
        return GroupCounts(n_c, n_cs, k)
    return GroupCounts(n_c, n_cs - k, k)


def has_drop(
    knowledge: Knowledge,
    counts: GroupCounts,
    criterion: str = "flow",
    t_max: float = 1e8,
    tol: float = 1e-9,
    lr=1.0,
    steps: int = 300,
    n_grid: int = 2000,
):
    """Whether the conflict reliance M_C of a mixture falls somewhere within a horizon:

    - "flow": the gradient flow on [0, t_max] (log grid of n_grid points) falls more than
      tol below its running maximum (`reliance_drop`);
    - "discrete": the same for GD at rate lr over `steps` steps (the counts may be arrays);
    - "regime": `asymptotics.classify_regime(..., t_max)` is not "monotone rise" (turning
      examples of A, however small their effect on M_C, plus the long-time slope).
    Every criterion needs a horizon: in the flow, CF examples postpone the drop rather than
    remove it (measured up to t = 1e13, with a heuristic argument in NOTES.md)."""
    if criterion == "flow":
        from .reduced import group_flow

        times = np.concatenate([[0.0], np.geomspace(1e-3, t_max, n_grid)])
        return bool(reliance_drop(group_flow(knowledge, counts, times=times)["reliance"]) > tol)
    if criterion == "discrete":
        from .reduced import group_trajectory

        return reliance_drop(group_trajectory(knowledge, counts, lr=lr, steps=steps)["reliance"]) > tol
    if criterion == "regime":
        from .asymptotics import classify_regime

        return classify_regime(knowledge, counts, t_max=t_max) != "monotone rise"
    raise ValueError(f"criterion must be 'flow', 'discrete' or 'regime', got {criterion!r}")


def counterfactual_needed(
    knowledge: Knowledge,
    rho: float,
    n: int,
    mode: str = "add",
    criterion: str = "flow",
    t_max: float = 1e8,
    tol: float = 1e-9,
    lr: float = 1.0,
    steps: int = 300,
    max_cf=None,
    n_grid: int = 2000,
) -> dict:
    """Smallest number k of counterfactual examples that removes the drop of a C/CS mixture
    (n_C = round(ρn), n_CS = n − n_C) within the horizon of `has_drop`'s `criterion`
    (flow up to t_max, or GD at lr for `steps` steps, or the regime up to t_max).

    mode "add" (the default, augmentation): the data become (n_C, n_CS, k), n + k examples;
    fraction = k/(n + k), the CF share of the augmented set. mode "replace": k of the CS
    examples become CF examples, (n_C, n_CS − k, k), n examples; fraction = k/n.
    Search: "discrete" tries every k in 0..max_cf at once (exact smallest); "flow" and
    "regime" double then bisect, which assumes that a k without a drop stays without one
    for larger k (true in every scan made, NOTES.md: more CF examples push the peak later).
    max_cf defaults to 20n (add) / n_CS (replace); n_grid is the flow's log grid.
    Returns n_cf (None if no k ≤ max_cf works), fraction, per_n (= k/n), counts
    (n_C, n_CS, n_CF) of the result, and base_has_drop (k = 0)."""
    if mode not in ("add", "replace"):
        raise ValueError(f"mode must be 'add' or 'replace', got {mode!r}")
    n_c, n_cs = _base_counts(rho, n)
    if max_cf is None:
        max_cf = 20 * n if mode == "add" else n_cs
    if mode == "replace":
        max_cf = min(max_cf, n_cs)
    opts = dict(criterion=criterion, t_max=t_max, tol=tol, lr=lr, steps=steps, n_grid=n_grid)

    def drop(k):
        return bool(has_drop(knowledge, _mixture(n_c, n_cs, k, mode), **opts))

    if criterion == "discrete":
        ks = np.arange(max_cf + 1)
        drops = np.asarray(has_drop(knowledge, _mixture(n_c, n_cs, ks, mode), **opts), dtype=bool)
        ok = np.flatnonzero(~drops)
        k = int(ok[0]) if ok.size else None
        base = bool(drops[0])
    else:
        base = drop(0)
        k = 0 if not base else None
        if base:
            lo, hi = 0, 1  # invariant: drop(lo)
            while hi < max_cf and drop(hi):
                lo, hi = hi, 2 * hi
            hi = min(hi, max_cf)
            if hi > lo and not drop(hi):
                k = hi
                while k - lo > 1:
                    mid = (lo + k) // 2
                    if drop(mid):
                        lo = mid
                    else:
                        k = mid
    if k is None:
        return dict(n_cf=None, fraction=np.nan, per_n=np.nan, counts=None, base_has_drop=base)
    total = n + k if mode == "add" else n
    return dict(n_cf=k, fraction=k / total, per_n=k / n, counts=tuple(_mixture(n_c, n_cs, k, mode)[:3]),
                base_has_drop=base)
