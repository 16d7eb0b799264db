"""The transformer's small falls without CS examples: GD against Adam, the first layer's
subject-to-context attention, the same runs with the first layer's query and key maps frozen,
and the toy at ρ = 1 under GD and Adam."""

from __future__ import annotations

import numpy as np

from .bridge_common import mean_sd_text
from .style import BLUE, GREEN, ORANGE, PURPLE, RED, headline, new_figure, panel_label

COLORS = {("gd", "attention"): BLUE, ("adam", "attention"): RED, ("gd", "attention_after_l1"): GREEN,
          ("adam", "attention_after_l1"): ORANGE}
STYLES = {"attention": "-", "attention_after_l1": "--"}
SHORT = {"attention": "QK", "attention_after_l1": "QK, layer 1 frozen"}


def _label(opt: str, tr: str) -> str:
    return f"{opt.upper() if opt == 'gd' else opt.capitalize()}, {SHORT.get(tr, tr)}"


def _mean_line(ax, x, curves, gid, opt, tr, label=None, seeds=False):
    """The mean over seeds (gid `gid`), the range shaded, and with `seeds` each seed thin."""
    curves = np.asarray(curves, dtype=np.float64)
    color = COLORS.get((opt, tr), PURPLE)
    ax.fill_between(x, curves.min(0), curves.max(0), color=color, alpha=0.12, linewidth=0)
    if seeds:
        for s, c in enumerate(curves):
            (thin,) = ax.plot(x, c, color=color, linewidth=0.6, alpha=0.5)
            thin.set_gid(f"{gid}_seed{s}")
    (line,) = ax.plot(x, curves.mean(0), color=color, linestyle=STYLES.get(tr, "-"), linewidth=1.6, label=label)
    line.set_gid(gid)


def plot_bridge_small_falls(data: dict):
    """(a), (b) M_C per optimizer and trainable set in the C-only and filtered mixtures (mean over
    seeds, range shaded, each seed thin for the runs that train every layer's maps); (c) the first
    layer's attention of the last position to the context and (d) the first layer's attention of
    the subject to the context, C-only mixture; (e) the largest fall per setting, mean ± sd over
    seeds; (f) the toy at ρ = 1 under GD and Adam."""
    mixtures = [str(m) for m in np.asarray(data["mixtures"])]
    opts = [str(o) for o in np.asarray(data["optimizers"])]
    trainables = [str(t) for t in np.asarray(data["trainables"])]
    step = np.asarray(data["step"])
    reliance, drop = np.asarray(data["reliance"]), np.asarray(data["drop"])
    first_r = np.asarray(data["attention_context_layers"])[..., 0, :]
    first = np.asarray(data["subject_context_layers"])[..., 0, :]
    fig, axes = new_figure(16.5, 9.0, ncols=3, nrows=2)
    for i, mix in enumerate(mixtures[:2]):
        ax = axes[i]
        for j, opt in enumerate(opts):
            for k, tr in enumerate(trainables):
                _mean_line(ax, step, reliance[i, j, k], f"reliance_{i}_{j}_{k}", opt, tr, _label(opt, tr),
                           seeds=k == 0)
        ax.set_ylim(0, 1)
        ax.set_ylabel("context reliance $M_C$")
        ax.legend(fontsize=8, loc="lower right")
        panel_label(ax, f"({chr(97 + i)}) {mix}: $M_C$")
    for x, values, name, title in ((axes[2], first_r, "first_attention", "(c) C only: layer 1, r → context"),
                                   (axes[3], first, "subject_context", "(d) C only: layer 1, subject → context")):
        for j, opt in enumerate(opts):
            for k, tr in enumerate(trainables):
                _mean_line(x, step, values[0, j, k], f"{name}_{j}_{k}", opt, tr, _label(opt, tr))
        x.set_ylim(0, 1)
        x.set_ylabel("attention")
        x.legend(fontsize=8, loc="lower left")
        panel_label(x, title)
    for ax in axes[:4]:
        ax.set_xlabel("finetuning step")
    ex = axes[4]
    labels, k_all = [], 0
    for i, mix in enumerate(mixtures):
        for j, opt in enumerate(opts):
            for k, tr in enumerate(trainables):
                bar = ex.bar(k_all, drop[i, j, k].mean(), yerr=drop[i, j, k].std(), capsize=2,
                             color=COLORS.get((opt, tr), PURPLE), hatch=(None, "//", "..")[i % 3], edgecolor="white")
                bar.patches[0].set_gid(f"fall_{i}_{j}_{k}")
                labels.append(f"{mix}\n{_label(opt, tr)}")
                k_all += 1
    ex.set_xticks(np.arange(k_all), labels, fontsize=6, rotation=60, ha="right")
    ex.axhline(0.05, color="0.6", linewidth=0.8, linestyle=":")
    ex.set_ylim(bottom=0)
    ex.set_ylabel("largest fall of $M_C$")
    panel_label(ex, "(e) fall, mean ± sd over seeds")
    fx = axes[5]
    toy = np.asarray(data["toy_reliance"])
    toy_step = np.asarray(data["toy_step"])
    for r, (opt, lr) in enumerate(zip(np.asarray(data["toy_optimizer"]), np.asarray(data["toy_lr"]))):
        (line,) = fx.plot(toy_step, toy[r], linewidth=1.5, label=f"{opt} lr {float(lr):.3g}",
                          linestyle="-" if str(opt) == "gd" else "--")
        line.set_gid(f"toy_reliance_{r}")
    fx.set_ylim(0, 1)
    fx.set_xscale("symlog", linthresh=1.0)
    fx.set_xlim(0, max(float(toy_step[-1]), 1.0))
    fx.set_xlabel("step (toy)")
    fx.set_ylabel("$M_C$")
    fx.legend(fontsize=8, loc="lower right")
    panel_label(fx, "(f) toy at ρ = 1")
    headline(fig, "Without CS examples the transformer's M_C still falls a little; the toy's cannot",
             _finding(mixtures, opts, trainables, drop, np.asarray(data["toy_drop"])))
    return fig


def _finding(mixtures, opts, trainables, drop, toy_drop) -> str:
    parts = [f"{mix}, {_label(opt, tr)}: {mean_sd_text(drop[i, j, k])}" for i, mix in enumerate(mixtures)
             for j, opt in enumerate(opts) for k, tr in enumerate(trainables) if k == 0]
    return "; ".join(parts) + f"; toy: largest fall {toy_drop.max():.3f}"
