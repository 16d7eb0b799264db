"""The paper's Figure 2 and Figure 1a in the toy: counterfactual vs parametric accuracy over
steps (paper embeddings and random ones over seeds), and context reliance against the training
examples' answer probability while train accuracy stays at 1."""

from __future__ import annotations

import numpy as np

from .style import (
    ANNOTATION, BLUE, ORANGE, RED, GREEN, headline, log_marker_indices, new_figure, panel_label, scalar, sim_line,
    theory_line,
)

RHO_COLORS = (BLUE, ORANGE, GREEN, RED)


def _accuracy_panel(ax, data, i, step):
    x = step + 1
    for key, name, color in (("cf", "counterfactual", RED), ("par", "parametric", BLUE)):
        random = np.asarray(data[f"random_{key}"])[i]
        band = ax.fill_between(x, random.min(0), random.max(0), color=color, alpha=0.15, linewidth=0)
        band.set_gid(f"band_random_{key}_{i}")
        theory_line(ax, x, random.mean(0), f"random_{key}_mean_{i}",
                    f"{name}: random emb., mean", color=color,
                    linewidth=2.0)
        theory_line(ax, x, np.asarray(data[f"paper_{key}"])[i], f"paper_{key}_{i}",
                    f"{name}: paper's emb.", color=color, linewidth=1.0, linestyle="--", drawstyle="steps-post")
    ax.set_xscale("log")
    ax.set_xlim(1, x[-1])
    ax.set_ylim(-0.04, 1.35)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel("training step t + 1")
    ax.set_ylabel(f"accuracy on the {int(scalar(data, 'n_test'))} conflict test examples")
    ax.legend(fontsize=7.5, loc="upper right", ncols=2, title_fontsize=7.5,
              title=f"random: dim {int(scalar(data, 'dim'))}, {np.asarray(data['seed']).size} seeds, band min-max")


def plot_paper_metrics(data: dict):
    """(a), (b) the paper's Figure 2 at each of two mixtures: counterfactual and parametric
    accuracy vs step, paper embeddings (dashed steps) and random ones (mean over seeds, min-max
    band); (c) the paper's Figure 1a: M_C against exp(−L), the geometric-mean probability of
    the right answer on the finetuning examples, along training (train accuracy is printed: it
    is 1 at every step)."""
    step = np.asarray(data["step"])
    rhos = np.asarray(data["rho"])
    fig, axes = new_figure(18.0, 5.4, ncols=3)
    for i in range(min(2, len(rhos))):
        _accuracy_panel(axes[i], data, i, step)
        panel_label(axes[i], f"({'ab'[i]}) Figure 2 in the toy, ρ = {rhos[i]:.2g}")

    cx = axes[2]
    marks = log_marker_indices(len(step), 14)
    for i, rho in enumerate(rhos):
        color = RHO_COLORS[i % len(RHO_COLORS)]
        sim_line(cx, np.asarray(data["paper_benchmark"])[i], np.asarray(data["paper_reliance"])[i],
                 f"paper_path_{i}", f"ρ = {rho:.2g}, paper's emb. (markers: log-spaced steps)", marks,
                 color=color, linestyle="-", linewidth=1.0)
        theory_line(cx, np.asarray(data["random_benchmark"])[i].mean(0), np.asarray(data["random_reliance"])[i].mean(0),
                    f"random_path_{i}", f"ρ = {rho:.2g}, random emb.: seed mean",
                    color=color, linestyle=":", linewidth=1.8)
        bench, rel = np.asarray(data["paper_benchmark"])[i], np.asarray(data["paper_reliance"])[i]
        top = int(np.argmax(rel))
        cx.annotate(f"t = {step[top]}", (bench[top], rel[top]), xytext=(4, 4), textcoords="offset points",
                    **ANNOTATION)
    bench0 = float(np.min(np.asarray(data["paper_benchmark"])[:, 0]))
    cx.annotate("t = 0", (bench0, float(np.asarray(data["paper_reliance"])[0, 0])), xytext=(4, -12),
                textcoords="offset points", **ANNOTATION)
    train_min = min(float(np.min(data["paper_train"])), float(np.min(data["random_train"])))
    cx.set_xlabel("exp(−L): geometric-mean probability of\nthe right answer on the finetuning examples")
    cx.set_ylabel(r"context reliance $M_C$ on conflict test examples")
    cx.set_ylim(0.1, 1.12)
    cx.legend(fontsize=7.5, loc="upper right", title=f"train accuracy ≥ {train_min:.3f} at every step",
              title_fontsize=7.5)
    panel_label(cx, "(c) Figure 1a in the toy: reliance vs the training benchmark")

    headline(fig, "The paper's metrics in the toy: the answer flips back to memory only when M_C drops below ½",
             _finding(data))
    return fig


def _finding(data: dict) -> str:
    step, rhos = np.asarray(data["step"]), np.asarray(data["rho"])
    text = []
    for i, rho in enumerate(rhos[:2]):
        cf = np.asarray(data["paper_cf"])[i]
        rand = np.asarray(data["random_cf"])[i].mean(0)
        text.append(f"ρ = {rho:.2g}: paper embeddings {cf.max():.0f} → {cf[-1]:.0f}, "
                    f"random {rand.max():.2f} → {rand[-1]:.2f}")
    return "counterfactual accuracy (max → final, step " + f"{step[-1]}): " + "; ".join(text)
