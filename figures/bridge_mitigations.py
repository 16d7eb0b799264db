"""Mitigations in the bridge transformer beside the toy: filtering the CS points,
counterfactual augmentation, and finetuning every parameter instead of the QK maps."""

from __future__ import annotations

import numpy as np

from .bridge_common import mean_sd, seed_band
from .style import BLUE, GREEN, ORANGE, RED, headline, new_figure, panel_label

COLORS = [BLUE, GREEN, ORANGE, RED]
MEASURES = ("peak", "final", "drop")


def plot_bridge_mitigations(data: dict):
    """(a) the transformer's M_C per setting (mean over seeds, spread shaded); (b) the toy's M_C
    for the same mitigations; (c) peak, final and drop per setting: transformer (mean ± sd over
    seeds, solid bars) beside the toy (hatched)."""
    settings = [str(s) for s in np.asarray(data["settings"])]
    step, toy_step = np.asarray(data["step"]), np.asarray(data["toy_step"])
    reliance, toy = np.asarray(data["reliance"]), np.asarray(data["toy_reliance"])
    fig, (ax, bx, cx) = new_figure(17.0, 5.0, ncols=3)
    for i, name in enumerate(settings):
        seed_band(ax, step, reliance[i], f"reliance_{i}", COLORS[i % 4], name, seeds=False)
        (line,) = bx.plot(toy_step, toy[i], color=COLORS[i % 4], linewidth=1.7, label=name)
        line.set_gid(f"toy_reliance_{i}")
    ax.set_xlabel("finetuning step (transformer)")
    bx.set_xlabel("GD step (toy)")
    for x, title in ((ax, "(a) transformer: $M_C$, mean over seeds"), (bx, "(b) toy at its defaults: $M_C$")):
        x.set_ylim(0, 1)
        x.set_ylabel("context reliance $M_C$")
        x.legend(fontsize=8, loc="lower right")
        panel_label(x, title)
    width = 0.2
    x0 = np.arange(len(MEASURES))
    for i, name in enumerate(settings):
        mean = np.array([np.mean(np.asarray(data[m])[i]) for m in MEASURES])
        sd = np.array([np.std(np.asarray(data[m])[i]) for m in MEASURES])
        toy_values = np.array([np.asarray(data[f"toy_{m}"])[i] for m in MEASURES])
        offset = (i - (len(settings) - 1) / 2) * width
        bars = cx.bar(x0 + offset - width / 4, mean, width / 2, yerr=sd, color=COLORS[i % 4], label=name,
                      capsize=2)
        for patch, m in zip(bars.patches, MEASURES):
            patch.set_gid(f"{m}_{i}")
        toy_bars = cx.bar(x0 + offset + width / 4, toy_values, width / 2, color="white", edgecolor=COLORS[i % 4],
                          hatch="///")
        for patch, m in zip(toy_bars.patches, MEASURES):
            patch.set_gid(f"toy_{m}_{i}")
    cx.set_xticks(x0, [f"{m}\n(solid: transformer, hatched: toy)" if m == "final" else m for m in MEASURES])
    cx.set_ylim(0, 1.15)
    cx.set_ylabel("$M_C$")
    cx.legend(fontsize=8, loc="upper left", ncols=2)
    panel_label(cx, "(c) peak, final, fall below the peak")
    headline(fig, "Mitigations: filtering and counterfactual points shrink the fall in the transformer as in the "
                  "toy; training every parameter removes it", _finding(data, settings))
    return fig


def _finding(data: dict, settings) -> str:
    drop, toy_drop = np.asarray(data["drop"]), np.asarray(data["toy_drop"])
    return "; ".join(f"{name}: fall {mean_sd(drop[i])} (toy {toy_drop[i]:.2f})" for i, name in enumerate(settings))
