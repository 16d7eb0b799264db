"""Fact-recall (S) examples [s, r] added to the finetuning mixture: seen ones (the subject's
fact was memorised) pull attention towards subjects (Proposition 2); unseen ones never move
W_KQ and only dilute the step."""

from __future__ import annotations

import numpy as np

from .style import (
    ANNOTATION, BLUE, GREEN, ORANGE, PURPLE, RED, headline, marker_every, new_figure, panel_label, scalar, sim_line,
    theory_line,
)

COLORS = [BLUE, GREEN, RED, ORANGE, PURPLE]
KINDS = (("seen", "-", "o"), ("unseen", "--", "s"))


def plot_fact_recall(data: dict):
    """(a) M_C vs step with k seen / unseen S examples added (theory lines, simulation markers);
    (b) peak and final M_C vs k; (c) Proposition 2 at t = 0: θ_C and θ_S components of −∇L
    in the summed-loss accounting vs k."""
    step = np.asarray(data["step"])
    every = marker_every(len(step), 25)
    ks, sim_k = np.asarray(data["theory_k"]), np.asarray(data["sim_k"])
    n_c, n_cs = int(scalar(data, "n_c")), int(scalar(data, "n_cs"))
    fig, (ax, bx, cx) = new_figure(17.5, 5.2, ncols=3)

    for j, k in enumerate(sim_k):
        color = COLORS[j % len(COLORS)]
        for i, (kind, ls, marker) in enumerate(KINDS):
            if k == 0 and i == 1:
                continue  # the same mixture as seen
            label = "no S examples" if k == 0 else f"{k} {kind} S examples"
            theory_line(ax, step, data["theory_reliance"][i, int(k)], f"theory_reliance_{i}_{j}", color=color,
                        linestyle=ls)
            sim_line(ax, step, data["sim_reliance"][i, j], f"sim_reliance_{i}_{j}", label, every, color=color,
                     marker=marker)
    ax.set_xlim(step[0], step[-1])
    ax.set_ylim(0.2, 1.0)
    ax.set_xlabel(r"training step t ($\eta$ = %g)" % scalar(data, "lr", 1.0))
    ax.set_ylabel("context reliance $M_C$ on held-out conflict examples")
    ax.legend(title="markers: simulation, lines: theory\n(solid: seen, dashed: unseen)", fontsize=8,
              title_fontsize=8, loc="lower right")
    panel_label(ax, f"(a) $M_C$ with k S examples added to {n_c} C + {n_cs} CS examples")

    for i, (kind, ls, marker) in enumerate(KINDS):
        for key, label, color in (("peak", "peak", BLUE), ("final", f"final (step {step[-1]})", ORANGE)):
            theory_line(bx, ks, data[f"theory_{key}"][i], f"theory_{key}_{i}", f"{label}, {kind}, theory (line)",
                        color=color, linestyle=ls)
            sim_line(bx, sim_k, data[f"sim_{key}"][i], f"sim_{key}_{i}", f"{label}, {kind}, simulation", color=color,
                     marker=marker)
    bx.set_xlim(ks[0], ks[-1])
    bx.set_xlabel("S examples k added (n = %d + k)" % (n_c + n_cs + int(scalar(data, "n_cf", 0))))
    bx.set_ylabel("context reliance $M_C$")
    bx.legend(fontsize=7.5, loc="center right", ncol=1)
    panel_label(bx, "(b) peak and final $M_C$")

    for i, (kind, ls, marker) in enumerate(KINDS):
        for key, theta, color in (("c", r"\theta_C", BLUE), ("s", r"\theta_S", RED)):
            theory_line(cx, ks, data[f"theory_sum_theta_{key}"][i], f"theory_sum_theta_{key}_{i}",
                        rf"${theta}$, {kind} S, theory (line)", color=color, linestyle=ls)
            sim_line(cx, sim_k, data[f"sim_sum_theta_{key}"][i], f"sim_sum_theta_{key}_{i}",
                     rf"${theta}$, {kind} S, simulation", color=color, marker=marker)
    cx.axhline(0.0, color="0.6", linewidth=0.8)
    cx.set_xlim(ks[0], ks[-1])
    cx.set_xlabel("S examples k added")
    cx.set_ylabel(r"component of $-\nabla_{W_{KQ}}\sum_i \ell_i\,\varphi(r)$ at $t = 0$")
    low, high = cx.get_ylim()
    cx.set_ylim(low, high + 0.3 * (high - low))
    cx.legend(fontsize=7.5, loc="upper left", ncol=2)
    cx.text(0.97, 0.1, "summed loss: seen S examples add only along $\\theta_S$;\nunseen S examples add nothing",
            transform=cx.transAxes, ha="right", va="bottom", **ANNOTATION)
    panel_label(cx, "(c) Proposition 2 at $t = 0$ (summed-loss accounting)")

    headline(fig, "Seen fact-recall examples pull attention to the subject (Proposition 2); unseen ones only slow "
             "training", _finding(data))
    return fig


def _finding(data: dict) -> str:
    sim_k = np.asarray(data["sim_k"])
    pick = [j for j, k in enumerate(sim_k) if k > 0]
    if not pick:
        return "No S examples simulated"
    j = pick[0]
    k = int(sim_k[j])
    th_c, th_s = np.asarray(data["theory_sum_theta_c"]), np.asarray(data["theory_sum_theta_s"])
    peak, final = np.asarray(data["theory_peak"]), np.asarray(data["theory_final"])
    return (
        rf"{k} seen S examples: $t = 0$ $\theta_S$ pull {th_s[0, 0]:.2f} → {th_s[0, k]:.2f}, $\theta_C$ unchanged "
        rf"({th_c[0, 0]:.2f} → {th_c[0, k]:.2f}); peak {peak[0, 0]:.3f} → {peak[0, k]:.3f}, final "
        f"{final[0, 0]:.3f} → {final[0, k]:.3f}.  {k} unseen: peak {peak[1, k]:.3f}, final {final[1, k]:.3f}"
        " (no pull, a smaller step per example)"
    )
