"""Counterfactual augmentation: CF examples (context contradicts the memorised fact, answer =
context) postpone the drop of context reliance rather than remove it."""

from __future__ import annotations

import numpy as np

from .style import (
    ANNOTATION, BLUE, GREEN, ORANGE, PURPLE, RED, headline, log_marker_indices, new_figure, panel_label,
    scalar, sim_line, theory_line,
)

COLORS = [BLUE, "#17becf", GREEN, ORANGE, RED, PURPLE, "#8c564b", "#e377c2"]


def plot_counterfactual(data: dict):
    """(a) M_C vs step with k CF examples in place of k CS examples (theory lines, simulation
    markers); (b) peak, final, drop vs k; (c) gradient flow: time of the first peak and depth
    of the fall after it vs k (simulated GD peak steps as markers); (d) the number of CF examples
    to ADD to a C/CS mixture so that M_C does not fall within a horizon, for several n."""
    step = np.asarray(data["step"])
    last = int(step[-1])
    n, n_c, n_cs = (int(scalar(data, k)) for k in ("n_train", "n_c", "n_cs"))
    ks, sim_k = np.asarray(data["theory_k"]), np.asarray(data["sim_k"])
    fig, axes = new_figure(14.5, 10.0, ncols=2, nrows=2)
    ax, bx, cx, dx = axes

    every = log_marker_indices(len(step), 25)
    for i, k in enumerate(sim_k):
        color = COLORS[i % len(COLORS)]
        theory_line(ax, step, data["theory_reliance"][int(k)], f"theory_reliance_{i}", color=color)
        sim_line(ax, step, data["sim_reliance"][i], f"sim_reliance_{i}",
                 f"{k} CF + {n_cs - k} CS (+ {n_c} C)", every, color=color)
    ax.set_xscale("symlog", linthresh=10, linscale=0.5)
    ax.set_xlim(0, last)
    ax.set_ylim(0.2, 1.0)
    ax.set_xlabel(r"training step t (symlog; $\eta$ = %g)" % scalar(data, "lr", 1.0))
    ax.set_ylabel("context reliance $M_C$ on held-out conflict examples")
    ax.legend(title="markers: simulation, lines: theory", fontsize=8, title_fontsize=8, loc="lower right")
    panel_label(ax, rf"(a) $M_C$ with k CF examples in place of CS examples "
                    rf"(n = {n}, $\rho$ = {scalar(data, 'rho'):.2g})")

    for key, label, color, marker in (
        ("peak", "peak", BLUE, "o"), ("final", f"final (step {last})", ORANGE, "s"),
        ("drop", "drop = peak − final", RED, "D"),
    ):
        theory_line(bx, ks, data[f"theory_{key}"], f"theory_{key}", f"{label}, theory (line)", color=color)
        sim_line(bx, sim_k, data[f"sim_{key}"], f"sim_{key}", f"{label}, simulation (markers)", color=color,
                 marker=marker)
    bx.set_xlim(ks[0], ks[-1])
    bx.set_ylim(-0.02, 1.02)
    bx.set_xlabel(f"CF examples k (mixture.counterfactual = k/{n}; CS examples = {n_cs} − k)")
    bx.set_ylabel("context reliance $M_C$")
    bx.legend(fontsize=8, loc="center right")
    panel_label(bx, f"(b) peak, final and drop within {last} steps")

    kind = np.asarray(data["flow_kind"])
    inv = kind == 0
    peak_t = np.where(inv, np.asarray(data["flow_peak_time"], dtype=np.float64), np.nan)
    depth = np.where(inv, np.asarray(data["flow_depth"], dtype=np.float64), np.nan)
    theory_line(cx, ks, peak_t, "flow_peak_time", "time of the peak, gradient flow (line)", color=BLUE, marker=".")
    sim_peak = np.asarray(data["sim_first_peak_step"], dtype=np.float64)
    shown = sim_peak < last
    sim_line(cx, sim_k[shown], sim_peak[shown], "sim_first_peak_step", "peak step, simulation (markers)", color=BLUE,
             markersize=8)
    cx.set_yscale("log")
    cx.set_ylabel(r"time of the first peak of $M_C$ ($t = \eta\times$steps)", color=BLUE)
    tx = cx.twinx()
    theory_line(tx, ks, depth, "flow_depth", "fall after the peak, gradient flow (dashed)", color=RED, linestyle="--",
                marker=".")
    tx.set_yscale("log")
    tx.set_ylabel("fall of $M_C$ after the peak (first peak − lowest after it)", color=RED)
    cx.set_xlim(ks[0], ks[-1])
    cx.set_xlabel(f"CF examples k in place of CS examples (k = {n_cs}: no CS example left)")
    if not inv[-1]:
        cx.text(0.97, 0.05, f"k = {int(ks[-1])}: no peak, $M_C$ rises for ever", transform=cx.transAxes,
                ha="right", **ANNOTATION)
    handles = [*cx.get_legend_handles_labels()[0], *tx.get_legend_handles_labels()[0]]
    cx.legend(handles=handles, fontsize=8, loc="center left")
    panel_label(cx, r"(c) each CF example postpones the peak and shrinks the fall (gradient flow to $10^{12}$)")

    horizon = np.asarray(data["needed_horizon"])
    needed = np.asarray(data["needed"], dtype=np.float64)
    check_steps, check = np.asarray(data["check_steps"]), np.asarray(data["check_needed"], dtype=np.float64)
    for i, m in enumerate(np.asarray(data["needed_n"])):
        color = COLORS[i % len(COLORS)]
        y = np.where(needed[i] >= 0, needed[i], np.nan)
        theory_line(dx, horizon, y, f"needed_{i}", f"n = {m}: smallest k, every horizon (line)", color=color,
                    drawstyle="steps-post")
        sim_line(dx, check_steps, check[i], f"check_needed_{i}", None, color=color, marker="x", markersize=8,
                 markeredgewidth=2)
    dx.plot([], [], "kx", markersize=8, label="theory.mitigations.counterfactual_needed (×)")
    dx.set_xscale("log")
    dx.set_xlim(horizon[0], horizon[-1])
    dx.set_xlabel("horizon: gradient-descent steps at $\\eta$ = %g (log scale)" % scalar(data, "lr", 1.0))
    dx.set_ylabel(r"CF examples to add so that $M_C$ does not fall")
    dx.legend(fontsize=8, loc="upper left")
    panel_label(dx, rf"(d) CF examples to ADD to n examples ($\rho$ = {scalar(data, 'rho'):.2g}): "
                    "grows with the horizon")

    headline(fig, "Counterfactual examples postpone the drop of context reliance rather than remove it", _finding(data))
    return fig


def _finding(data: dict) -> str:
    kind = np.asarray(data["flow_kind"])
    t = np.asarray(data["flow_peak_time"], dtype=np.float64)
    depth = np.asarray(data["flow_depth"], dtype=np.float64)
    inv = np.flatnonzero(kind == 0)
    n_cs = int(scalar(data, "n_cs"))
    text = ""
    if inv.size >= 2:
        k1 = int(inv[-1])
        ratios = t[inv[1:]] / t[inv[:-1]]
        text = (
            f"Each CF example multiplies the time of the peak (×{ratios[0]:.1f} for the first, ×{ratios[-1]:.0f} for "
            f"the last, k = {k1}): flow peak {t[0]:.0f} → {t[k1]:.1e}, fall {depth[0]:.2f} → {depth[k1]:.0e};"
            f" only replacing all {n_cs} CS examples removes it.\n"
        )
    horizon, needed = np.asarray(data["needed_horizon"]), np.asarray(data["needed"])
    n0 = int(np.asarray(data["needed_n"])[0])
    picks = [h for h in (300, 1000, 10000) if h in horizon]
    if picks:
        parts = [f"{int(needed[0][list(horizon).index(h)])} by step {h}" for h in picks]
        text += f"CF examples to add to n = {n0} so that $M_C$ does not fall: " + ", ".join(parts)
        text += " — a larger horizon always needs more"
    return text
