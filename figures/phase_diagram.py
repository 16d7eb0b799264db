"""The phase diagram in the mixture ratio ρ: when the inversion happens, how deep it is, and
what happens at long times."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from matplotlib.lines import Line2D

from .style import (
    THEORY_STYLE, ANNOTATION, BLUE, GREY, ORANGE, PURPLE, RED, headline, new_figure, panel_label, scalar, sim_line,
    theory_line,
)


def _slope_text(slope: float, n: int) -> str:
    """The ln t slope as the fraction (n_C − n_CS)/(n + 1) when it is one."""
    if abs(slope) < 1e-9:
        return "0"
    frac = Fraction(slope).limit_denominator(4 * (n + 1))
    if abs(float(frac) - slope) < 1e-9 and frac.denominator > 1:
        return f"{frac.numerator}/{frac.denominator}".replace("-", "−")
    return f"{slope:.3g}".replace("-", "−")


def _label_line_ends(ax, labels, gap: float = 0.06) -> None:
    """Write each (y, text, color, index) label just right of the axes at the height y where
    its curve ends, moved apart to at least `gap` of the y range: beside the curves, never on
    them."""
    lo, hi = ax.get_ylim()
    step = gap * (hi - lo)
    placed = []
    for y, text, color, i in sorted(labels):
        y = max(y, placed[-1] + step) if placed else y
        placed.append(y)
        label = ax.annotate(text, xy=(1.0, y), xycoords=("axes fraction", "data"), xytext=(4, 0),
                            textcoords="offset points", ha="left", va="center", color=color, fontsize=8.5,
                            annotation_clip=False)
        label.set_gid(f"flow_label_{i}")


def plot_phase_diagram(data: dict):
    """(a) theory heat map of M_C over (ρ, step) with simulated peak steps and ρ*; (b) peak,
    final and drop vs ρ (theory lines, simulation markers); (c) the test gap A(t) of the
    gradient flow for several ρ with the predicted ln t asymptotes (dashed)."""
    rho_star = float(scalar(data, "rho_star"))
    step = np.asarray(data["step"])
    last = int(step[-1])
    n = int(scalar(data, "n_train", 20))
    # A row under the panels holds their legends: nothing there can cover data.
    fig, (ax, bx, cx, a_key, b_key, c_key) = new_figure(
        16.5, 6.0, ncols=3, nrows=2, gridspec_kw=dict(height_ratios=(5.0, 1.0))
    )
    for key in (a_key, b_key, c_key):
        key.axis("off")

    # (a) heat map
    rho = np.asarray(data["theory_rho"])
    mesh = ax.pcolormesh(rho, step, np.asarray(data["theory_reliance"]).T, shading="nearest", cmap="viridis",
                         vmin=0.0, vmax=1.0, rasterized=True)
    mesh.set_gid("theory_reliance")
    ax.set_yscale("symlog", linthresh=10, linscale=0.6)
    ax.set_ylim(0, last)
    fig.colorbar(mesh, ax=ax, label=r"$M_C$ (exact reduced theory)", pad=0.01)
    lines_rho = np.asarray(data["theory_rho_lines"])
    lines_peak = np.asarray(data["theory_lines_peak_step"])
    inside = (lines_peak > 0) & (lines_peak < last)
    theory_line(ax, np.where(inside, lines_rho, np.nan), np.where(inside, lines_peak, np.nan),
                "theory_lines_peak_step", "peak step, theory (line)", color="white", linewidth=1.3)
    sim_rho, sim_peak_step = np.asarray(data["sim_rho"]), np.asarray(data["sim_peak_step"])
    shown = (sim_peak_step > 0) & (sim_peak_step < last)
    sim_line(ax, sim_rho[shown], sim_peak_step[shown], "sim_peak_step", "peak step, simulation (markers)",
             color=RED, markerfacecolor="white", markersize=5)
    ax.axvline(rho_star, color="white", linestyle="--", linewidth=1.2, label=rf"$\rho^*$ = {rho_star:.3f}")
    ax.set_xlabel(r"fraction of context-critical examples $\rho = n_C/n$")
    ax.set_ylabel(r"training step $t$ (symlog scale)")
    a_key.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="upper center", ncol=2,
                 facecolor="0.8", edgecolor="none")  # grey: the handles are white, as on the heat map
    panel_label(ax, r"(a) $M_C$ over ($\rho$, step); no rise left of $\rho^*$")

    # (b) peak, final, drop vs ρ
    theory_line(bx, lines_rho, data["theory_initial"], "theory_initial", r"initial $M_C$ (theory)", color=GREY,
                linewidth=1.0)
    for key, label, color, marker in (
        ("peak", "peak", BLUE, "o"),
        ("final", f"final (step {last})", ORANGE, "s"),
        ("drop", "drop = peak − final", RED, "D"),
    ):
        theory_line(bx, lines_rho, data[f"theory_{key}"], f"theory_{key}", f"{label}, theory (line)", color=color)
        sim_line(bx, data["sim_rho"], data[f"sim_{key}"], f"sim_{key}", f"{label}, simulation (markers)",
                 color=color, marker=marker)
    bx.axvline(rho_star, color="black", linestyle="--", linewidth=1, label=rf"$\rho^*$ = {rho_star:.3f}")
    bx.axvline(0.5, color="0.6", linestyle=":", linewidth=1)
    bx.text(rho_star / 2, 0.12, r"$\rho < \rho^*$: no rise;" "\n" "drop = fall from the start", ha="center",
            **ANNOTATION)
    bx.set_xlabel(r"$\rho = n_C/n$ (simulation: $n_C$ = round($\rho n$), n = %d)" % n)
    bx.set_ylabel(r"context reliance $M_C$")
    bx.set_ylim(-0.02, 1.02)
    bx.set_xlim(lines_rho[0], lines_rho[-1])
    b_key.legend(*bx.get_legend_handles_labels(), fontsize=7.5, loc="upper center", ncol=2, frameon=False)
    panel_label(bx, rf"(b) peak, final and drop of $M_C$ over {last} steps ($\eta$ = {scalar(data, 'lr', 1.0):g})")

    # (c) long-time gradient flow
    t = np.asarray(data["flow_time"])
    colors = [PURPLE, BLUE, "#17becf", ORANGE, RED, "#8c564b", "#e377c2"]
    t_late = t[t >= 1e2]
    labels = []
    for i, (r, a, slope, const) in enumerate(
        zip(data["flow_rho"], data["flow_A"], data["flow_slope"], data["flow_constant"])
    ):
        color = colors[i % len(colors)]
        theory_line(cx, t, a, f"flow_A_{i}", color=color)
        text = rf"$\rho$ = {r:.2g}"
        if np.isfinite(const):
            (asym,) = cx.plot(t_late, slope * np.log(t_late) + const, color=color, linestyle="--", linewidth=1.1)
            asym.set_gid(f"flow_law_{i}")
            text += f", slope {_slope_text(float(slope), n)}"
        labels.append((float(a[-1]), text, color, i))
    cx.axhline(0.0, color="0.6", linewidth=0.8)
    cx.set_xscale("log")
    cx.set_xlim(t[0], t[-1])
    _label_line_ends(cx, labels)
    cx.set_xlabel(r"time $t = \eta \times$ steps (log scale, so $\ln t$ is linear)")
    cx.set_ylabel(r"test attention gap $A = \mathrm{logit}\,\sigma_c$")
    c_key.legend(
        handles=[Line2D([], [], color="black", **THEORY_STYLE, label=r"gradient flow $A(t)$ (exact reduced theory)"),
                 Line2D([], [], color="black", linestyle="--", linewidth=1.1,
                        label=r"$\ln t$ law: $(n+1)A \approx (n_C - n_{CS})\ln t$ + const")],
        fontsize=8, loc="upper center", frameon=False,
    )
    panel_label(cx, r"(c) gradient flow: $A(t)$ vs $\ln t$ and the predicted slopes")

    sim_drop = np.asarray(data["sim_drop"])
    best = int(np.argmax(sim_drop))
    finding = (
        rf"$M_C$ rises only for $\rho > \rho^*$ = {rho_star:.3f}; the drop is deepest at $\rho$ = "
        f"{sim_rho[best]:.2g} ({sim_drop[best]:.2f} in simulation) and the peak moves later as $\\rho$ grows; "
        r"at long times $A$ follows $(n_C - n_{CS})/(n+1)\cdot\ln t$"
    )
    headline(fig, r"Phase diagram in the mixture ratio $\rho$", finding)
    return fig
