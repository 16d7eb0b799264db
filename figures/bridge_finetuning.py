"""Full finetuning against the paper: every parameter against the query and key maps only,
AdamW with minibatches at several learning rates (the paper's Figures 5c and 13)."""

from __future__ import annotations

import numpy as np

from .bridge_common import mean_sd_text, seed_band
from .style import BLUE, GREEN, ORANGE, PURPLE, RED, headline, new_figure, panel_label

COLORS = [BLUE, GREEN, ORANGE, RED, PURPLE]
NAMES = {"attention": "query/key maps only", "all": "all parameters",
         "attention_after_l1": "query/key maps after layer 1"}


def plot_bridge_finetuning(data: dict):
    """(a), (b) M_C over finetuning steps per learning rate (mean over seeds, spread shaded) for
    each trainable set; (c) the largest fall of M_C below its running peak against the learning
    rate, mean ± sd over seeds, per trainable set."""
    trainables = [str(t) for t in np.asarray(data["trainables"])]
    lrs, step = np.asarray(data["lrs"], dtype=np.float64), np.asarray(data["step"])
    reliance, drop = np.asarray(data["reliance"]), np.asarray(data["drop"])
    fig, axes = new_figure(5.2 * (len(trainables) + 1), 4.8, ncols=len(trainables) + 1)
    for k, tr in enumerate(trainables):
        ax = axes[k]
        for i, lr in enumerate(lrs):
            seed_band(ax, step, reliance[k, i], f"reliance_{k}_{i}", COLORS[i % len(COLORS)], f"lr {lr:g}",
                      seeds=False)
        ax.set_ylim(0, 1)
        ax.set_xlabel("finetuning step")
        ax.set_ylabel("context reliance $M_C$")
        ax.legend(fontsize=8, loc="lower right")
        panel_label(ax, f"({chr(97 + k)}) {NAMES.get(tr, tr)}: $M_C$")
    cx = axes[-1]
    for k, tr in enumerate(trainables):
        shift = 1.0 + 0.06 * (k - (len(trainables) - 1) / 2)
        bars = cx.errorbar(lrs * shift, drop[k].mean(-1), yerr=drop[k].std(-1), marker="o", capsize=3,
                           color=COLORS[k % len(COLORS)], label=NAMES.get(tr, tr))
        bars.lines[0].set_gid(f"fall_{k}")
    cx.axhline(0.05, color="0.6", linewidth=0.8, linestyle=":")
    cx.set_xscale("log")
    cx.set_xlabel("learning rate")
    cx.set_ylabel("largest fall of $M_C$ below its peak")
    cx.set_ylim(bottom=0)
    cx.legend(fontsize=8, loc="upper left")
    panel_label(cx, f"({chr(97 + len(trainables))}) fall vs learning rate (mean ± sd)")
    optimizer = str(np.asarray(data.get("optimizer", "adamw")))
    batch = int(np.asarray(data.get("batch_size", 0)))
    headline(fig, f"Which parameters finetune: {optimizer}, minibatches of {batch}, {len(data['seeds'])} seeds",
             _finding(trainables, lrs, drop))
    return fig


def _finding(trainables, lrs, drop) -> str:
    parts = []
    for k, tr in enumerate(trainables):
        parts.append(f"{NAMES.get(tr, tr)}: fall " + ", ".join(mean_sd_text(drop[k, i]) for i in range(len(lrs))))
    return "; ".join(parts) + f" (lr {', '.join(f'{lr:g}' for lr in lrs)})"
