"""The inversion in bridge transformers of 1, 2 and 4 layers."""

from __future__ import annotations

import numpy as np

from .bridge_common import mean_sd_text, seed_band
from .style import BLUE, GREEN, ORANGE, PURPLE, headline, new_figure, panel_label

COLORS = [BLUE, ORANGE, GREEN, PURPLE]


def plot_bridge_depth(data: dict):
    """(a) M_C per depth (mean over seeds, spread shaded); (b) attention of r to the context
    (mean over layers) per depth; (c) initial, peak, final M_C and the fall per depth, each
    seed a marker."""
    step, layers = np.asarray(data["step"]), np.asarray(data["layers"])
    fig, (ax, bx, cx) = new_figure(16.0, 4.8, ncols=3)
    for i, L in enumerate(layers):
        seed_band(ax, step, np.asarray(data["reliance"])[i], f"reliance_L{L}", COLORS[i % 4], f"{L} layer(s)",
                  seeds=False)
        seed_band(bx, step, np.asarray(data["attention_context"])[i], f"attention_context_L{L}", COLORS[i % 4],
                  f"{L} layer(s)", seeds=False)
    for x in (ax, bx):
        x.set_xlim(step[0], step[-1])
        x.set_xlabel("finetuning step")
        x.legend(fontsize=8, loc="lower right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("context reliance $M_C$")
    bx.set_ylabel("attention of r to the context (mean over layers)")
    panel_label(ax, "(a) $M_C$, mean over seeds")
    panel_label(bx, "(b) attention to the context")
    for j, (key, marker) in enumerate((("initial", "s"), ("peak", "^"), ("final", "v"), ("drop", "D"))):
        values = np.asarray(data[key])
        for i, L in enumerate(layers):
            pts = cx.plot(np.full(values.shape[1], i + (j - 1.5) * 0.12), values[i], marker, color=COLORS[j],
                          linestyle="none", label=key if i == 0 else None)
            pts[0].set_gid(f"{key}_L{L}")
    cx.set_xticks(np.arange(len(layers)), [f"{L} layer(s)" for L in layers])
    cx.set_ylim(0, 1.3)
    cx.set_ylabel("$M_C$ (each marker a seed)")
    cx.legend(fontsize=8, loc="upper center", ncols=4)
    panel_label(cx, "(c) initial, peak, final, fall")
    inv = np.asarray(data["inversion_005"])
    finding = "; ".join(f"{L} layer(s): fall {mean_sd_text(np.asarray(data['drop'])[i])}, "
                        f"{int(inv[i].sum())}/{inv.shape[1]} "
                        f"seeds ≥ 0.05" for i, L in enumerate(layers))
    headline(fig, "Depth: the inversion in transformers of 1, 2 and 4 layers", finding)
    return fig
