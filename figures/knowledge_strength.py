"""How the strength of memorised facts (δ_M) and of context tokens (δ_C) decide, with ρ,
whether the inversion happens and how deep it is."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from cpi.theory.summary import INVERSION, NO_PEAK

from .style import headline, new_figure, panel_label, scalar

CMAP = "magma"
STAR_COLOR = "#00bfff"


def _panel(ax, data, short: str, xlabel: str, norm, steps: int):
    x, rho = np.asarray(data[f"theory_{short}"]), np.asarray(data["theory_rho"])
    depth, kind = np.asarray(data[f"theory_{short}_depth"]), np.asarray(data[f"theory_{short}_kind"])
    shown = np.ma.masked_where(kind != INVERSION, depth)
    cmap = matplotlib.colormaps[CMAP].with_extremes(bad="0.86")
    mesh = ax.pcolormesh(x, rho, shown.T, shading="nearest", cmap=cmap, norm=norm, rasterized=True)
    mesh.set_gid(f"theory_{short}_depth")
    if (kind == NO_PEAK).any():
        ax.contourf(x, rho, (kind == NO_PEAK).T.astype(float), levels=[0.5, 1.5], colors="none", hatches=["///"])
    (curve,) = ax.plot(data[f"rho_star_{short}_x"], data[f"rho_star_{short}"], color=STAR_COLOR, linewidth=2.2)
    curve.set_gid(f"rho_star_{short}")

    sim_x, sim_rho = np.asarray(data[f"sim_{short}"]), np.asarray(data[f"sim_{short}_rho"])
    sim_depth, sim_kind = np.asarray(data[f"sim_{short}_depth"]), np.asarray(data[f"sim_{short}_kind"])
    inv = sim_kind == INVERSION
    dots = ax.scatter(sim_x[inv], sim_rho[inv], c=sim_depth[inv], cmap=CMAP, norm=norm, s=80, edgecolors=STAR_COLOR,
                      linewidths=1.8, zorder=3)
    dots.set_gid(f"sim_{short}_inversion")
    crosses = ax.scatter(sim_x[~inv], sim_rho[~inv], marker="X", s=70, color="black", edgecolors="white",
                         linewidths=0.8, zorder=3)
    crosses.set_gid(f"sim_{short}_none")
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(rho[0], rho[-1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"fraction of context-critical examples $\rho$")
    return mesh


def _legend_handles(steps: int, extra=()):
    return [
        Line2D([], [], color=STAR_COLOR, linewidth=2.2, label=r"$\rho^*$ (closed form): no rise below it"),
        Line2D([], [], linestyle="none", marker="o", markersize=8, markerfacecolor="#f0605d",
               markeredgecolor=STAR_COLOR, markeredgewidth=1.8,
               label="simulation with inversion (fill = simulated depth)"),
        Line2D([], [], linestyle="none", marker="X", markersize=8, color="black", markeredgecolor="white",
               label="simulation without inversion"),
        Patch(facecolor="0.86", label=r"theory: $M_C$ falls from step 0 (no rise)"),
        Patch(facecolor="white", edgecolor="0.3", hatch="///", label=f"theory: no fall by step {steps}"),
        *extra,
    ]


def plot_knowledge_strength(data: dict):
    """Depth of the inversion (first peak of M_C minus the lowest M_C after it, within the
    window) over (δ_M, ρ) and (δ_C, ρ) from the reduced theory, grey where M_C never rises,
    hatched where it has not started to fall by the last step; the closed-form ρ* curve and
    simulated points (filled: inversion, coloured by the simulated depth; crosses: none)."""
    steps = int(scalar(data, "steps"))
    top = max(float(np.nanmax(data["theory_dm_depth"])), float(np.nanmax(data["theory_dc_depth"])), 1e-9)
    norm = Normalize(0.0, top)
    fig, (ax, bx) = new_figure(13.5, 6.4, ncols=2)
    dc, dm = scalar(data, "delta_c"), scalar(data, "delta_m")

    mesh = _panel(ax, data, "dm", rf"memorised-fact strength $\delta_M$ ($\delta_C$ = {dc:g})", norm, steps)
    extra = []
    if ax.get_xlim()[0] < 2 * dc < ax.get_xlim()[1]:
        ax.axvline(2 * dc, color="white", linestyle=":", linewidth=1.5)
        extra.append(Line2D([], [], color="0.4", linestyle=":", linewidth=1.5,
                            label=r"$\delta_M = 2\delta_C$ (paper's assumption holds right of it)"))
    panel_label(ax, r"(a) depth of the inversion over ($\delta_M$, $\rho$)")

    _panel(bx, data, "dc", rf"context-token strength $\delta_C$ ($\delta_M$ = {dm:g})", norm, steps)
    bx.axhline(0.5, color="white", linestyle=":", linewidth=1.5)
    star, x = np.asarray(data["rho_star_dc"]), np.asarray(data["rho_star_dc_x"])
    title = r"(b) depth of the inversion over ($\delta_C$, $\rho$)"
    if (star > 0.5).any():
        edge = x[np.flatnonzero(star > 0.5)[-1]]
        title += "\n" + (rf"$\rho^* > 1/2$ for $\delta_C \leq$ {edge:.3f} (Lemma 6 fails): "
                         "a balanced mixture never rises")
    panel_label(bx, title)
    fig.colorbar(mesh, ax=[ax, bx], label=rf"depth = first peak of $M_C$ − lowest $M_C$ after it (by step {steps})",
                 pad=0.01)
    fig.legend(handles=_legend_handles(steps, extra), loc="outside lower center", ncol=3, fontsize=8.5,
               frameon=False)
    headline(fig, "Knowledge strength and mixture decide the inversion", _finding(data))
    return fig


def _finding(data: dict) -> str:
    """ρ*'s range over δ_M and δ_C, and the depth at the grid ρ nearest ½ at the base δ's."""
    sm, sc = np.asarray(data["rho_star_dm"]), np.asarray(data["rho_star_dc"])
    return (
        rf"The inversion needs $\rho > \rho^*$: $\rho^*$ spans {sm.min():.2f}–{sm.max():.2f} over $\delta_M$ and "
        rf"{sc.min():.2f}–{sc.max():.2f} over $\delta_C$" "\n"
        r"stronger memorised facts raise $\rho^*$ and make the fall come sooner; weak contexts (small $\delta_C$) "
        r"push $\rho^*$ above 1/2"
    )
