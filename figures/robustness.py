"""Robustness to random embeddings: the inversion against the embedding dimension, over seeds,
and ρ* measured in ρ sweeps against ρ* predicted from each world's own margins."""

from __future__ import annotations

import numpy as np

from .style import (
    ANNOTATION, BLUE, GREEN, GREY, ORANGE, PURPLE, RED, headline, marker_every, new_figure, panel_label, scalar,
    sim_line, theory_line,
)

DIM_COLORS = [RED, ORANGE, GREEN, BLUE, PURPLE, "#8c564b", "#17becf"]


def shown_dims(dims: np.ndarray, n_tokens: int) -> list[int]:
    """Indices of up to four dimensions to draw over steps: the smallest, the first at or
    above the K tokens, one in between, and the largest."""
    dims = np.asarray(dims)
    above = np.flatnonzero(dims >= n_tokens)
    picks = [0, int(above[0]) if above.size else len(dims) // 2, len(dims) - 1]
    middle = int(np.argmin(np.abs(np.log(dims) - 0.5 * (np.log(dims[picks[1]]) + np.log(dims[-1])))))
    return sorted(set(picks + [middle]))


def plot_robustness(data: dict):
    """(a) M_C vs step at a few dimensions: mean over seeds (markers) and its min-max band,
    the paper's orthonormal run as a line; (b) peak, final and drop of M_C vs dim: mean ±
    standard deviation over seeds, the paper's values as dashed lines; (c) ρ* measured in a ρ
    sweep (first rise of M_C) against ρ* predicted from each world's margins, one point per
    (dim, seed)."""
    step, dims = np.asarray(data["step"]), np.asarray(data["dim"])
    n_tokens, n_seeds = int(scalar(data, "n_tokens")), len(np.asarray(data["seed"]))
    reliance = np.asarray(data["sim_reliance"])
    fig, (ax, bx, cx) = new_figure(17.0, 5.2, ncols=3)

    every = marker_every(len(step), 25)
    for j, i in enumerate(shown_dims(dims, n_tokens)):
        color = DIM_COLORS[j % len(DIM_COLORS)]
        band = ax.fill_between(step, reliance[i].min(0), reliance[i].max(0), color=color, alpha=0.18, linewidth=0)
        band.set_gid(f"band_reliance_{i}")
        sim_line(ax, step, reliance[i].mean(0), f"sim_reliance_mean_{i}", f"dim {dims[i]}: mean of {n_seeds} seeds",
                 every, color=color, markersize=4)
    theory_line(ax, step, data["paper_reliance"], "paper_reliance", "paper's orthonormal embeddings", color="k",
                linewidth=1.3)
    ax.set_xlim(step[0], step[-1])
    ax.set_ylim(0.2, 1.0)
    ax.set_xlabel(r"training step t (full-batch GD, $\eta$ = %g)" % scalar(data, "lr", 1.0))
    ax.set_ylabel(r"context reliance $M_C$ on held-out conflict examples")
    ax.legend(title="bands: min-max over seeds", fontsize=8, title_fontsize=8, loc="lower right")
    panel_label(ax, rf"(a) $M_C$ at $\rho$ = {scalar(data, 'rho'):.2g}, random embeddings")

    for key, label, color, marker in (("peak", "peak", BLUE, "o"), ("final", f"final (step {step[-1]})", ORANGE, "s"),
                                       ("drop", "drop = peak − final", RED, "D")):
        values = np.asarray(data[f"sim_{key}"])
        line = bx.errorbar(dims, values.mean(1), yerr=values.std(1), color=color, marker=marker, linestyle="-",
                           linewidth=1, markersize=5, markerfacecolor="none", capsize=2,
                           label=f"{label}: mean ± sd")
        line.lines[0].set_gid(f"sim_{key}_mean")
        bx.axhline(scalar(data, f"paper_{key}"), color=color, linestyle="--", linewidth=1)
    bx.axvline(n_tokens, color=GREY, linestyle=":", linewidth=1)
    bx.text(n_tokens * 1.06, 0.04, f"K = {n_tokens} tokens: below, Lemma 3's\ntable holds only in least squares",
            **ANNOTATION)
    bx.set_xscale("log")
    bx.set_xlim(dims[0] / 1.15, dims[-1] * 1.15)
    bx.set_ylim(-0.03, 1.32)
    bx.set_xlabel(f"embedding dimension (world.dim); {n_seeds} seeds each")
    bx.set_ylabel("context reliance $M_C$")
    bx.legend(title="dashed: the paper's values", fontsize=7.5, title_fontsize=7.5, loc="upper right", ncols=2)
    panel_label(bx, "(b) peak, final and drop against the dimension")

    measured, predicted = np.asarray(data["rho_star_measured"]), np.asarray(data["rho_star_predicted"])
    rho_dims = np.asarray(data["rho_dim"])
    for i, d in enumerate(rho_dims):
        points = cx.scatter(predicted[i], measured[i], s=22, color=DIM_COLORS[i % len(DIM_COLORS)],
                            facecolors="none", label=f"dim {d}")
        points.set_gid(f"rho_star_{i}")
    finite = np.isfinite(measured) & np.isfinite(predicted)
    lo = float(min(measured[finite].min(), predicted[finite].min())) - 0.02 if finite.any() else 0.0
    hi = float(max(measured[finite].max(), predicted[finite].max())) + 0.02 if finite.any() else 1.0
    theory_line(cx, [lo, hi], [lo, hi], "diagonal", "measured = predicted", color=GREY, linewidth=1)
    paper = scalar(data, "paper_rho_star")
    cx.axvline(paper, color="k", linestyle="--", linewidth=0.8)
    cx.axhline(paper, color="k", linestyle="--", linewidth=0.8, label=f"paper's closed form {paper:.3f}")
    cx.set_xlim(lo, hi)
    cx.set_ylim(lo, hi)
    cx.set_xlabel(r"$\rho^*$ predicted from the world's own margins (initial drift)")
    cx.set_ylabel(r"$\rho^*$ measured: first rise of $M_C$ in a $\rho$ sweep")
    cx.legend(fontsize=8, loc="upper left")
    panel_label(cx, rf"(c) $\rho^*$ measured vs predicted, {n_seeds} seeds per dim")

    headline(fig, "Random embeddings: the inversion survives once dim ≥ K tokens, and ρ* follows each world's margins",
             _finding(data))
    return fig


def _finding(data: dict) -> str:
    dims, n_tokens = np.asarray(data["dim"]), int(scalar(data, "n_tokens"))
    inversion = np.asarray(data["sim_inversion"]).mean(1)
    drop = np.asarray(data["sim_drop"])
    none = dims[inversion == 0]
    text = ""
    if none.size:
        text += f"no inversion within {np.asarray(data['step'])[-1]} steps for dim ≤ {none.max()}; "
    text += (f"dim {dims[-1]}: drop {drop[-1].mean():.3f} ± {drop[-1].std():.3f} "
             f"(paper {scalar(data, 'paper_drop'):.3f})")
    err = np.abs(np.asarray(data["rho_star_measured"]) - np.asarray(data["rho_star_predicted"]))
    rho_dims = np.asarray(data["rho_dim"])
    above = rho_dims >= n_tokens
    if above.any() and np.isfinite(err[above]).any():
        text += rf"; $\rho^*$ |measured − predicted| ≤ {np.nanmax(err[above]):.3f} for dim ≥ {rho_dims[above].min()}"
    return text
