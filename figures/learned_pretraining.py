"""Learned pretraining: M_C over finetuning when W_V is learned by gradient descent on a fact and
context-copy corpus, for several pretraining lengths, with the achieved δ_C, δ_M."""

from __future__ import annotations

import numpy as np

from .style import (
    BLUE, GREEN, ORANGE, PURPLE, RED, headline, log_marker_indices, new_figure, panel_label, scalar, sim_line,
    theory_line,
)

COLORS = [BLUE, ORANGE, GREEN, PURPLE, RED]


def plot_learned_pretraining(data: dict):
    """(a) M_C vs finetuning step for each shown pretraining length (simulation markers, exact
    per-example theory with the learned table as lines; legend: the achieved δ_C, δ_M), and the
    constructed W_V of the base config as the reference; (b) over the pretraining length: the
    achieved δ_C and δ_M and the initial, peak and final M_C of the exact reduced dynamics."""
    step = np.asarray(data["step"])
    shown = np.asarray(data["shown"])
    delta_c, delta_m = np.asarray(data["delta_c"]), np.asarray(data["delta_m"])
    sim, theory = np.asarray(data["sim_reliance"]), np.asarray(data["theory_reliance"])
    last = int(step[-1])
    fig, (ax, bx) = new_figure(13.0, 5.6, ncols=2)

    every = log_marker_indices(len(step), 25)
    theory_line(ax, step, data["constructed_reliance"], "constructed_reliance",
                f"constructed $W_V$ (Lemma 3): $\\delta_C$ = {scalar(data, 'constructed_delta_c'):.2f}, "
                f"$\\delta_M$ = {scalar(data, 'constructed_delta_m'):.2f}", color="black", linestyle="--",
                linewidth=1.2)
    for i, length in enumerate(shown):
        color = COLORS[i % len(COLORS)]
        theory_line(ax, step, theory[i], f"theory_reliance_{i}", None, color=color)
        sim_line(ax, step, sim[i], f"sim_reliance_{i}",
                 f"{length} pretraining steps: $\\delta_C$ = {delta_c[i]:.3f}, $\\delta_M$ = {delta_m[i]:.3f}",
                 every, color=color)
    ax.set_xscale("symlog", linthresh=10, linscale=0.5)
    ax.set_xlim(0, last)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel(f"finetuning step t (full-batch GD, $\\eta$ = {scalar(data, 'lr', 1.0):g}; symlog)")
    ax.set_ylabel("context reliance $M_C$ on held-out conflict examples")
    ax.legend(title="markers: simulation; lines: exact per-example theory", fontsize=7.5, title_fontsize=7.5,
              loc="lower right")
    panel_label(ax, "(a) $M_C$ after learned pretraining ($W_V$ frozen)")

    grid = np.asarray(data["grid"])
    for key, label, color in (("grid_delta_c", "achieved $\\delta_C$", BLUE),
                              ("grid_delta_m", "achieved $\\delta_M$", RED)):
        theory_line(bx, grid, data[key], key, label, color=color, linestyle="--", linewidth=1.2, marker=".")
    for key, label, color in (("grid_initial", "$M_C$ at t = 0", "0.5"), ("grid_peak", "peak $M_C$", GREEN),
                              ("grid_final", f"$M_C$ at t = {last}", ORANGE)):
        theory_line(bx, grid, data[key], key, label, color=color)
    for length in shown:
        bx.axvline(length, color="0.75", linestyle=":", linewidth=1)
    bx.set_xlabel(f"pretraining steps (pretrain.steps; lr {scalar(data, 'pretrain_lr'):g}, fact_repeats "
                  f"{scalar(data, 'fact_repeats')}, context_repeats {scalar(data, 'context_repeats')})")
    bx.set_ylabel("probability / $M_C$")
    bx.set_ylim(0, 1.08)
    bx.set_xlim(grid[0], grid[-1])
    bx.legend(fontsize=8, loc="lower right", title="exact reduced dynamics; dotted: the lengths of (a)",
              title_fontsize=7.5)
    panel_label(bx, "(b) strengths and the inversion vs pretraining length")

    drop = np.asarray(data["grid_peak"]) - np.asarray(data["grid_final"])
    deep = int(np.argmax(drop))
    finding = (f"The inversion survives a learned $W_V$: deepest fall {drop[deep]:.2f} (peak → step {last}) after "
               f"{grid[deep]} pretraining steps ($\\delta_C$ {np.asarray(data['grid_delta_c'])[deep]:.2f}, "
               f"$\\delta_M$ {np.asarray(data['grid_delta_m'])[deep]:.2f}); it fades to {drop[-1]:.3f} "
               f"as $\\delta_M$ → {np.asarray(data['grid_delta_m'])[-1]:.3f}")
    headline(fig, "Learned pretraining: context-parametric inversion with a learned value matrix", finding)
    return fig
