"""One saved run at a glance (`cpi plot RUN_DIR`): context reliance, attention on the
context, and the training losses per data group, against the training step.

Input: the run's metrics (`sims.results.load_run`: arrays over `step`) and its summary.
"""

from __future__ import annotations

import numpy as np

from .style import BLUE, GREEN, GREY, ORANGE, PURPLE, RED, headline, marker_every, new_figure, panel_label, sim_line

GROUP_COLORS = {"C": BLUE, "CS": ORANGE, "CF": RED, "S": PURPLE}


def plot_run(metrics: dict, summary: dict, title: str = "One run"):
    """(a) M_C (and per relation) and aligned accuracy, peak marked; (b) attention σ_c on
    the conflict test points and per training group; (c) the training loss, total and per group."""
    step = np.asarray(metrics["step"])
    every = marker_every(len(step))
    fig, (ax, bx, cx) = new_figure(14, 4.2, ncols=3)

    sim_line(ax, step, metrics["reliance"], "reliance", "$M_C$ on conflict test points", every, color=BLUE,
             linestyle="-", linewidth=1.2)
    relations = sorted(k for k in metrics if k.startswith("reliance_r"))
    if len(relations) > 1:
        for key in relations:
            ax.plot(step, metrics[key], linewidth=1, linestyle="--", label=f"$M_C$, relation {key[10:]}", gid=key)
    if "aligned_accuracy" in metrics:
        sim_line(ax, step, metrics["aligned_accuracy"], "aligned_accuracy", "$p_c$ on aligned points", every,
                 color=GREEN, marker="s", linestyle="-", linewidth=1.2)
    peak_step, peak = int(summary["peak_step"]), float(summary["peak_reliance"])
    (star,) = ax.plot([peak_step], [peak], marker="*", markersize=14, color="black", linestyle="none",
                      label=f"peak {peak:.3f} at step {peak_step}")
    star.set_gid("peak")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training step")
    ax.legend(fontsize=8, loc="best")
    panel_label(ax, "(a) context reliance")

    sim_line(bx, step, metrics["attention_context"], "attention_context", "conflict test points", every,
             color=GREY, linestyle="-", linewidth=1.2)
    for group, color in GROUP_COLORS.items():
        key = f"attention_context_{group}"
        if key in metrics:
            bx.plot(step, metrics[key], color=color, linewidth=1.4, label=f"training group {group}", gid=key)
    bx.set_ylim(0, 1.02)
    bx.set_xlabel("training step")
    bx.set_ylabel("attention on the context $\\sigma_c$")
    bx.legend(fontsize=8, loc="best")
    panel_label(bx, "(b) attention on the context")

    cx.plot(step, metrics["loss"], color="black", linewidth=1.8, label="training loss", gid="loss")
    for group, color in GROUP_COLORS.items():
        key = f"loss_{group}"
        if key in metrics:
            cx.plot(step, metrics[key], color=color, linewidth=1.2, label=f"group {group} (mean over its points)", gid=key)
    cx.set_xlabel("training step")
    cx.set_ylabel("cross-entropy loss")
    cx.legend(fontsize=8, loc="best")
    panel_label(cx, "(c) training loss per group")

    initial, final = float(summary["initial_reliance"]), float(summary["final_reliance"])
    finding = (f"$M_C$ {initial:.3f} → peak {peak:.3f} at step {peak_step} → {final:.3f} at step {int(step[-1])}: "
               + ("inversion" if summary.get("inversion") else "no inversion"))
    headline(fig, title, finding)
    return fig
