"""Measure, then predict: the toy's predictions from the quantities measured in each transformer
run, against what the run did."""

from __future__ import annotations

import numpy as np

from .style import BLUE, GREEN, ORANGE, headline, new_figure, panel_label


def _mean_sd(values, axis=0):
    v = np.asarray(values, dtype=np.float64)
    return np.nanmean(v, axis=axis), np.nanstd(v, axis=axis, ddof=1)


def plot_bridge_prediction(data: dict):
    """(a) over the ρ grid: the transformer's change of M_C over its first recorded interval
    (mean ± sd over seeds) against the measured ρ̂, with the toy's ρ* at the measured strengths
    (mean; the toy predicts a rise right of it); (b) the calibrated toy's fall against the
    transformer's, one marker per run of the ρ grid; (c) the fall against mixture.filter:
    transformer and calibrated toy (mean ± sd over seeds)."""
    fig, (ax, bx, cx) = new_figure(17.0, 5.0, ncols=3)
    rho_hat = np.nanmean(np.asarray(data["rho_rho_hat"], dtype=np.float64), axis=0)
    change, change_sd = _mean_sd(data["rho_first_change"])
    line = ax.errorbar(rho_hat, change, yerr=change_sd, marker="o", color=BLUE, capsize=2,
                       label="transformer: ΔM_C over the first interval")
    line.lines[0].set_gid("first_change")
    toy_star = float(np.nanmean(np.asarray(data["rho_toy_rho_star"], dtype=np.float64)))
    own_star = float(np.nanmean(np.asarray(data["rho_rho_star_margins"], dtype=np.float64)))
    ax.axvline(toy_star, color=ORANGE, linestyle="--", label=f"toy's ρ* at the measured strengths ({toy_star:.3f})")
    ax.axvline(own_star, color=GREEN, linestyle=":", label=f"ρ* of the transformer's margins ({own_star:.3f})")
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    ax.set_xlabel("measured ρ̂ (examples needing their context)")
    ax.set_ylabel("change of $M_C$")
    ax.legend(fontsize=7, loc="lower right")
    panel_label(ax, "(a) initial direction: transformer vs the toy's ρ*")
    fall, toy_fall = np.asarray(data["rho_fall"]).ravel(), np.asarray(data["rho_toy_fall"]).ravel()
    colour = np.tile(np.asarray(data["rho_requested"]), len(np.asarray(data["seeds"])))
    points = bx.scatter(fall, toy_fall, c=colour, cmap="viridis", s=16)
    points.set_gid("falls")
    top = max(float(np.nanmax(fall)), float(np.nanmax(toy_fall)), 0.05)
    bx.plot([0, top], [0, top], color="0.6", linewidth=0.8)
    fig.colorbar(points, ax=bx, label="ρ (requested)")
    bx.set_xlabel("transformer: fall of $M_C$")
    bx.set_ylabel("calibrated toy: fall of $M_C$")
    panel_label(bx, "(b) falls over the ρ grid, one marker per run")
    filters = np.asarray(data["filters"])
    for key, colour, label in (("filter_fall", BLUE, "transformer"), ("filter_toy_fall", ORANGE, "calibrated toy")):
        mean, sd = _mean_sd(data[key])
        bars = cx.errorbar(filters, mean, yerr=sd, marker="o", color=colour, capsize=2, label=label)
        bars.lines[0].set_gid(key)
    cx.set_xlabel("mixture.filter")
    cx.set_ylabel("fall of $M_C$")
    cx.legend(fontsize=8)
    panel_label(cx, "(c) the fall against the filtered fraction")
    right = float(data["rho_score_initial_direction"])
    headline(fig, "Measure, then predict: the toy's predictions from the transformer's own δ_C, δ_M and ρ̂",
             f"initial direction right in {right:.0%} of the ρ grid's runs; "
             f"fall order τ = {float(data['rho_score_fall_order_tau']):.2f}")
    return fig
