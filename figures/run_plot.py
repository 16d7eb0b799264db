"""Saved runs at a glance (`cpi plot RUN_DIR...`): context reliance, attention on the
context, and the training losses per data group, against the training step; one run
(`plot_run`) or several overlaid (`plot_runs`).

Input: each run's metrics (`cpi.sims.saved.read`: arrays over `step`) and its summary. Runs of
the toy model and of the transformer (`cpi bridge`) record different metrics beyond
`reliance`: each panel draws those a run has (the transformer's attention per layer
`attention_context_l<j>` in place of the toy's per group).
"""

from __future__ import annotations

import numpy as np

from .style import BLUE, GREEN, GREY, ORANGE, PURPLE, RED, headline, marker_every, new_figure, panel_label, sim_line

GROUP_COLORS = {"C": BLUE, "CS": ORANGE, "CF": RED, "S": PURPLE}


def plot_run(metrics: dict, summary: dict, title: str = "One run"):
    """(a) M_C (and per relation) and aligned accuracy, peak marked; (b) attention σ_c on
    the conflict test examples and per training group (or per layer); (c) the training loss,
    total and per group. Metrics the run lacks are left out."""
    step = np.asarray(metrics["step"])
    every = marker_every(len(step))
    fig, (ax, bx, cx) = new_figure(14, 4.2, ncols=3)

    sim_line(ax, step, metrics["reliance"], "reliance", "$M_C$ on conflict test examples", every, color=BLUE,
             linestyle="-", linewidth=1.2)
    relations = sorted(k for k in metrics if k.startswith("reliance_r"))
    if len(relations) > 1:
        for key in relations:
            ax.plot(step, metrics[key], linewidth=1, linestyle="--", label=f"$M_C$, relation {key[10:]}", gid=key)
    if "aligned_accuracy" in metrics:
        sim_line(ax, step, metrics["aligned_accuracy"], "aligned_accuracy", "$p_c$ on aligned examples", every,
                 color=GREEN, marker="s", linestyle="-", linewidth=1.2)
    peak_step, peak = int(summary["peak_step"]), float(summary["peak_reliance"])
    (star,) = ax.plot([peak_step], [peak], marker="*", markersize=14, color="black", linestyle="none",
                      label=f"peak {peak:.3f} at step {peak_step}")
    star.set_gid("peak")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training step")
    ax.legend(fontsize=8, loc="best")
    panel_label(ax, "(a) context reliance")

    if "attention_context" in metrics:
        sim_line(bx, step, metrics["attention_context"], "attention_context", "conflict test examples", every,
                 color=GREY, linestyle="-", linewidth=1.2)
    for group, color in GROUP_COLORS.items():
        key = f"attention_context_{group}"
        if key in metrics:
            bx.plot(step, metrics[key], color=color, linewidth=1.4, label=f"training group {group}", gid=key)
    for key in sorted((k for k in metrics if k.startswith("attention_context_l") and k[19:].isdigit()),
                      key=lambda k: int(k[19:])):
        bx.plot(step, metrics[key], linewidth=1, linestyle="--", label=f"layer {key[19:]}", gid=key)
    bx.set_ylim(0, 1.02)
    bx.set_xlabel("training step")
    bx.set_ylabel("attention on the context $\\sigma_c$")
    if bx.get_legend_handles_labels()[0]:
        bx.legend(fontsize=8, loc="best")
    panel_label(bx, "(b) attention on the context")

    if "loss" in metrics:
        cx.plot(step, metrics["loss"], color="black", linewidth=1.8, label="training loss", gid="loss")
    for group, color in GROUP_COLORS.items():
        key = f"loss_{group}"
        if key in metrics:
            cx.plot(step, metrics[key], color=color, linewidth=1.2, label=f"group {group} (mean over its examples)",
                    gid=key)
    cx.set_xlabel("training step")
    cx.set_ylabel("cross-entropy loss")
    if cx.get_legend_handles_labels()[0]:
        cx.legend(fontsize=8, loc="best")
    panel_label(cx, "(c) training loss per group")

    initial, final = float(summary["initial_reliance"]), float(summary["final_reliance"])
    finding = (f"$M_C$ {initial:.3f} → peak {peak:.3f} at step {peak_step} → {final:.3f} at step {int(step[-1])}: "
               + ("inversion" if summary.get("inversion") else "no inversion"))
    headline(fig, title, finding)
    return fig


OVERLAY_PANELS = (("reliance", "(a) context reliance", "$M_C$ on conflict test examples", (0, 1.02)),
                  ("attention_context", "(b) attention on the context", "attention on the context $\\sigma_c$",
                   (0, 1.02)),
                  ("loss", "(c) training loss", "cross-entropy loss", None))
"""The panels of `plot_runs`: the metric each draws for every run that has it."""


def plot_runs(runs: list[tuple[str, dict, dict]], title: str = "Runs"):
    """Several runs, overlaid: for each (label, metrics, summary), one line per panel of
    `OVERLAY_PANELS` (the metric against the step; gid "<metric>:<label>", legend the label)
    where the run has that metric, and its peak M_C marked (gid "peak:<label>")."""
    fig, axes = new_figure(14, 4.4, ncols=len(OVERLAY_PANELS))
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for ax, (metric, panel, ylabel, ylim) in zip(axes, OVERLAY_PANELS):
        for (label, metrics, summary), color in zip(runs, colors):
            if metric not in metrics:
                continue
            step = np.asarray(metrics["step"])
            ax.plot(step, np.asarray(metrics[metric]), color=color, linewidth=1.4, label=label,
                    gid=f"{metric}:{label}")
            if metric == "reliance":
                (star,) = ax.plot([int(summary["peak_step"])], [float(summary["peak_reliance"])], marker="*",
                                  markersize=11, color=color, linestyle="none")
                star.set_gid(f"peak:{label}")
        if ylim:
            ax.set_ylim(*ylim)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "not recorded by these runs", ha="center", va="center", transform=ax.transAxes,
                    color="0.4")
        panel_label(ax, panel)
    inverting = [label for label, _, summary in runs if summary.get("inversion")]
    finding = ("★ marks each run's peak of $M_C$; inversion: "
               + (", ".join(inverting) if inverting else "in none of them"))
    headline(fig, title, finding)
    return fig
