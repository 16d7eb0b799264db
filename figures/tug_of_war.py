"""The tug of war: the θ_C component of −∇L from C examples (towards the context) against the
one from CS examples (towards the subject)."""

from __future__ import annotations

import numpy as np

from .style import (
    ANNOTATION, BLUE, RED, headline, log_marker_indices, marker_every, new_figure, panel_label, scalar, sim_line,
    theory_line,
)


def plot_tug_of_war(data: dict):
    """θ_C·(−∇L_G) for G = C, CS and their sum vs step (simulation markers, theory lines),
    the step where the sum changes sign marked (linear and log step axes)."""
    step = np.asarray(data["step"])
    every = marker_every(len(step))
    change = int(scalar(data, "sim_sign_change", -1))
    peak_step = int(scalar(data, "sim_peak_step", -1))

    fig, axes = new_figure(11.5, 4.4, ncols=2)
    for ax, log in zip(axes, (False, True)):
        suffix = "_log" if log else ""
        every = log_marker_indices(len(step)) if log else marker_every(len(step))
        theory_line(ax, step, data["theory_C"], "theory_C" + suffix, "C examples, theory (line)", color=BLUE)
        sim_line(ax, step, data["sim_C"], "sim_C" + suffix, "C examples, simulation (markers)", every, color=BLUE)
        theory_line(ax, step, data["theory_CS"], "theory_CS" + suffix, "CS examples, theory (line)", color=RED)
        sim_line(ax, step, data["sim_CS"], "sim_CS" + suffix, "CS examples, simulation (markers)", every,
                 color=RED, marker="s")
        theory_line(ax, step, data["theory_sum"], "theory_sum" + suffix, "sum C + CS, theory (line)", color="black")
        sim_line(ax, step, data["sim_sum"], "sim_sum" + suffix, "sum, simulation (markers)", every, color="black",
                 marker="D", markersize=4)
        ax.axhline(0.0, color="0.5", linewidth=0.8)
        if change >= 0:
            ax.axvline(change, color="0.3", linestyle="--", linewidth=1,
                       label=f"sum changes sign at t = {change}" if not log else None)
        ax.set_ylabel("$\\theta_C$ component of $-\\nabla_{W_{KQ}} L_G\\,\\varphi(r)$")
        if log:
            ax.set_xscale("symlog", linthresh=1.0, linscale=0.3)
            ax.set_xlim(0, step[-1])
            ax.set_xlabel("training step t (symlog scale)")
            panel_label(ax, "(b) the same on a logarithmic step axis")
        else:
            ax.set_xlim(step[0], step[-1])
            ax.set_xlabel("training step t (update = $\\eta$ × these components)")
            panel_label(ax, "(a) pull of each group on the shared context direction $\\theta_C$")
            ax.legend(fontsize=8, loc="upper right")
    if change >= 0:
        axes[1].text(0.97, 0.96, f"C examples pull attention to the context first;\nonce they are fit, "
                     f"CS examples win (t ≥ {change})", transform=axes[1].transAxes, ha="right", va="top",
                     **ANNOTATION)

    if change >= 0:
        finding = (
            f"The $\\theta_C$ update from C examples dominates until step {change}, where the CS pull wins and the sum "
            f"turns negative" + (f" — exactly the peak of $M_C$ (step {peak_step})" if change == peak_step else
                                 f" ($M_C$ peaks at step {peak_step})")
        )
    else:
        finding = "The summed $\\theta_C$ component never changes sign in this window"
    if scalar(data, "other_groups", False):
        finding += " (CF/S groups omitted from the sum)"
    headline(fig, "Tug of war between context-critical and context+subject examples", finding)
    return fig
