"""The inversion itself: context reliance M_C and attention σ_c on conflict examples vs step."""

from __future__ import annotations

import numpy as np

from .style import (
    ANNOTATION, BLUE, GREEN, ORANGE, headline, marker_every, new_figure, panel_label, scalar, sim_line, theory_line,
)


def plot_inversion(data: dict):
    """(a) M_C and σ_c on held-out conflict examples vs step, simulation (markers) and exact
    reduced theory (lines), peak marked; (b) accuracy on held-out aligned examples."""
    step = np.asarray(data["step"])
    every = marker_every(len(step))
    peak_step, peak = int(scalar(data, "sim_peak_step")), float(scalar(data, "sim_peak"))
    reliance = np.asarray(data["sim_reliance"])
    frozen = bool(scalar(data, "values_frozen", True))
    theory_note = "exact reduced theory" + ("" if frozen else " (assumes $W_V$ frozen)")

    # A row under the panels holds their legends and the note: nothing there can cover data.
    fig, (ax, bx, a_key, b_key) = new_figure(11.5, 5.2, ncols=2, nrows=2, gridspec_kw=dict(height_ratios=(4.4, 0.85)))
    for key in (a_key, b_key):
        key.axis("off")
    theory_line(ax, step, data["theory_reliance"], "theory_reliance", f"$M_C$, {theory_note} (line)", color=BLUE)
    sim_line(ax, step, reliance, "sim_reliance", "$M_C$, simulation (markers)", every, color=BLUE)
    theory_line(ax, step, data["theory_attention"], "theory_attention", f"$\\sigma_c$, {theory_note} (line)",
                color=ORANGE)
    sim_line(ax, step, data["sim_attention"], "sim_attention", "$\\sigma_c$, simulation (markers)", every, color=ORANGE,
             marker="s")
    (star,) = ax.plot([peak_step], [peak], marker="*", markersize=15, color="black", linestyle="none",
                      label=f"peak of $M_C$ (simulation): {peak:.3f} at t = {peak_step}")
    star.set_gid("sim_peak")
    ax.axvline(peak_step, color="0.6", linestyle=":", linewidth=1)
    ax.set_xlabel("training step t (full-batch gradient descent, $\\eta$ = %g)" % scalar(data, "lr", 1.0))
    ax.set_ylabel("mean over held-out conflict examples")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(step[0], step[-1])
    a_key.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="upper center", ncol=2, frameon=False)
    panel_label(ax, "(a) context reliance $M_C = p_c/(p_c + p_a)$ and attention $\\sigma_c$")

    if "sim_aligned" in data:
        aligned = np.asarray(data["sim_aligned"])
        sim_line(bx, step, aligned, "sim_aligned", "simulation (markers)", every, color=GREEN)
    else:
        aligned = np.asarray(data["theory_aligned"])
    theory_line(bx, step, data["theory_aligned"], "theory_aligned", f"{theory_note} (line)", color=GREEN)
    bx.axvline(peak_step, color="0.6", linestyle=":", linewidth=1, label=f"peak of $M_C$ (t = {peak_step})")
    low = int(np.argmin(aligned))
    bx.set_xlabel("training step t")
    bx.set_ylabel("$p_c$ on held-out aligned examples")
    bx.set_xlim(step[0], step[-1])
    b_key.legend(*bx.get_legend_handles_labels(), fontsize=8, loc="upper left", frameon=False)
    note = (
        f"$W_V$ {'frozen' if frozen else 'trained'}: accuracy {aligned[0]:.3f} at t = 0\n"
        f"dips to {aligned[low]:.3f} (t = {low}) while attention\nmoves to the context, then "
        f"{'recovers' if aligned[-1] > aligned[low] else 'stays low'} to {aligned[-1]:.3f}\n"
        f"(t = {step[-1]}) as $M_C$ falls"
        + ("; it stays\nbelow its start" if aligned[-1] < aligned[0] else "")
    )
    b_key.text(1.0, 1.0, note, transform=b_key.transAxes, ha="right", va="top", **ANNOTATION)
    bx.set_title("context = the memorised fact", loc="right", fontsize=8.5, color="0.35")
    panel_label(bx, "(b) accuracy on held-out aligned examples")

    rho, rho_star = scalar(data, "rho"), scalar(data, "rho_star")
    finding = (
        f"At $\\rho$ = {rho:.2g} (> $\\rho^*$ = {rho_star:.3f}) $M_C$ rises from {reliance[0]:.3f} to {peak:.3f} "
        f"at step {peak_step}, then falls to {reliance[-1]:.3f} by step {step[-1]}: "
        "context-parametric inversion"
        if peak > reliance[0] and reliance[-1] < peak
        else f"At $\\rho$ = {rho:.2g} ($\\rho^*$ = {rho_star:.3f}) $M_C$ goes {reliance[0]:.3f} → peak {peak:.3f} "
        f"(step {peak_step}) → {reliance[-1]:.3f}: no inversion"
    )
    headline(fig, "Context reliance rises, then falls during finetuning", finding)
    return fig
