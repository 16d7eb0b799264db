"""The inversion in the bridge transformer at its defaults, over seeds: M_C beside the calibrated
toy's, the paper's accuracies, attention to the context, and the C and CS losses that drive it."""

from __future__ import annotations

import numpy as np

from .bridge_common import mean_sd_text, seed_band
from .style import BLUE, GREEN, GREY, ORANGE, PURPLE, RED, headline, new_figure, panel_label, scalar

LAYER_COLORS = [GREEN, PURPLE, "#8c564b", "#17becf"]


def plot_bridge_inversion(data: dict):
    """(a) M_C on held-out conflict examples per seed, mean and spread, beside the calibrated toy's
    (each seed's toy at its measured δ_C, δ_M, ρ and matched step size: mean, spread shaded,
    dashed); (b) argmax accuracies:
    context answer and memorised fact; (c) attention of r to the context, mean and per layer;
    (d) the C and CS examples' losses."""
    step = np.asarray(data["step"])
    fig, (ax, bx, cx, dx) = new_figure(18.0, 4.8, ncols=4)
    seed_band(ax, step, data["reliance"], "reliance", BLUE, "transformer, mean over seeds")
    if "toy_reliance" in data:
        toy_step = np.asarray(data["toy_step"])
        seed_band(ax, toy_step, data["toy_reliance"], "toy_reliance", GREY,
                  f"calibrated toy (GD, η {mean_sd_text(data['toy_lr'])}; its δ_C, δ_M, ρ)", seeds=False,
                  linestyle="--")
    ax.set_ylim(0, 1)
    ax.set_ylabel("context reliance $M_C$ (held-out conflict examples)")
    ax.legend(fontsize=8, loc="lower right")
    panel_label(ax, "(a) $M_C$ per seed")
    seed_band(bx, step, data["counterfactual_accuracy"], "counterfactual_accuracy", BLUE, "context answer", seeds=False)
    seed_band(bx, step, data["parametric_accuracy"], "parametric_accuracy", ORANGE, "memorised fact", seeds=False)
    bx.set_ylim(-0.02, 1.2)
    bx.set_ylabel("share of conflict examples with this argmax")
    bx.legend(fontsize=8, loc="upper center", ncols=2)
    panel_label(bx, "(b) the paper's accuracies")
    seed_band(cx, step, data["attention_context"], "attention_context", RED, "mean over layers", seeds=False)
    layers = np.asarray(data["attention_context_layers"])
    for j in range(layers.shape[1]):
        seed_band(cx, step, layers[:, j], f"attention_context_l{j + 1}", LAYER_COLORS[j % 4], f"layer {j + 1}",
                  seeds=False, linestyle="--")
    cx.set_ylabel("attention of r to the context")
    cx.legend(fontsize=8, loc="upper right")
    panel_label(cx, "(c) attention to the context")
    seed_band(dx, step, data["loss_C"], "loss_C", BLUE, "C examples", seeds=False)
    seed_band(dx, step, data["loss_CS"], "loss_CS", ORANGE, "CS examples", seeds=False)
    dx.set_yscale("log")
    dx.set_ylabel("finetuning loss")
    dx.legend(fontsize=8, loc="upper right")
    panel_label(dx, "(d) the tug of war")
    for x in (ax, bx, cx, dx):
        x.set_xlim(step[0], step[-1])
        x.set_xlabel(f"finetuning step ({scalar(data, 'optimizer', 'adam')} lr {scalar(data, 'lr', 0):g}, QK only)")
    inv = np.asarray(data["inversion_005"])
    headline(fig, "A 2-layer transformer pretrained on synthetic facts inverts; the toy at its strengths barely falls",
             _finding(data, inv))
    return fig


def _finding(data: dict, inv) -> str:
    text = (f"M_C {mean_sd_text(data['initial'])} → peak {mean_sd_text(data['peak'])} → "
            f"final {mean_sd_text(data['final'])}; "
            f"fall below the peak {mean_sd_text(data['drop'])}; {int(inv.sum())} of {inv.size} seeds fall ≥ 0.05 "
            f"(mean ± sd over seeds; δ_C {mean_sd_text(data['delta_c'])}, ρ* {mean_sd_text(data['rho_star'])})")
    if "toy_reliance" not in data:
        return text
    return (text + f"\ncalibrated toy (its δ_C, δ_M, ρ; η matched on the first {scalar(data, 'toy_interval')} steps): "
            f"{mean_sd_text(data['toy_initial'])} → peak {mean_sd_text(data['toy_peak'])} → "
            f"final {mean_sd_text(data['toy_final'])}, "
            f"fall {mean_sd_text(data['toy_drop'])}: it starts far lower (M_C(0) = σ(½(logit δ_C − logit δ_M)))")
