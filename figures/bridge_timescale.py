"""When the transformer inverts on a large data set: M_C over epochs of minibatch finetuning
(AdamW and SGD, seeds), and the C examples' loss for those visited and those not yet visited in
the current epoch."""

from __future__ import annotations

import numpy as np

from .bridge_common import mean_sd_text, seed_band
from .style import BLUE, GREEN, ORANGE, PURPLE, RED, headline, new_figure, panel_label

COLORS = [BLUE, ORANGE, GREEN, PURPLE]


def plot_bridge_timescale(data: dict):
    """(a) M_C on held-out conflict examples against the epoch, per optimizer (seeds and mean);
    then per optimizer, the loss of the C examples already visited in the current epoch and of
    those not yet visited (mean over seeds, band: lowest to highest seed), and the CS examples'
    loss; the epoch boundaries dotted."""
    step = np.asarray(data["step"])
    per_epoch = int(np.asarray(data["steps_per_epoch"]))
    epoch = step / per_epoch
    lrs = np.asarray(data["lrs"])
    optimizers = np.asarray(data["optimizers"])
    trainables = np.asarray(data.get("trainables", ["attention"] * len(optimizers)))
    names = [_label(str(o), float(lr), str(t)) for o, lr, t in zip(optimizers, lrs, trainables)]
    titles = [f"{o} lr {lr:g}" + (" (QK)" if t == "attention" else f" ({t} params)")
              for o, lr, t in zip(optimizers, lrs, trainables)]
    fig, axes = new_figure(5.5 * (1 + len(names)), 4.8, ncols=1 + len(names))
    ax = axes[0]
    for o, name in enumerate(names):
        seed_band(ax, epoch, np.asarray(data["reliance"])[o], f"reliance_{name}", COLORS[o % 4], titles[o])
    ax.set_ylabel("context reliance $M_C$ (held-out conflict examples)")
    ax.legend(fontsize=8, loc="lower right")
    panel_label(ax, "(a) $M_C$ per seed")
    for o, name in enumerate(names):
        bx = axes[1 + o]
        for key, color, label in (("loss_C_visited", BLUE, "C, visited this epoch"),
                                  ("loss_C_unvisited", RED, "C, not yet visited this epoch"),
                                  ("loss_CS", ORANGE, "CS (all)")):
            curves = np.asarray(data[key])[o]
            keep = np.all(np.isfinite(curves), axis=0)
            seed_band(bx, epoch[keep], curves[:, keep], f"{key}_{name}", color, label, seeds=False,
                      marker="." if key != "loss_CS" else None, markersize=3)
        bx.set_yscale("log")
        bx.set_ylabel("finetuning loss")
        bx.legend(fontsize=8, loc="lower left")
        panel_label(bx, f"({chr(ord('b') + o)}) {titles[o]}: C examples visited or not")
    for x in axes:
        for e in range(1, int(np.ceil(epoch[-1])) + 1):
            x.axvline(e, color="0.6", linestyle=":", linewidth=0.8)
        x.set_xlim(0, epoch[-1])
        x.set_xlabel(f"epoch ({int(np.asarray(data['n_train']))} examples, minibatches of "
                     f"{int(np.asarray(data['batch_size']))})")
    headline(fig, "The transformer on a large data set: when M_C peaks, and whether unvisited C examples fit too",
             _finding(data, titles, step, per_epoch))
    return fig


def _label(optimizer: str, lr: float, trainable: str) -> str:
    """A setting's name in the artists' gids, as the experiment's headline names it."""
    name = f"{optimizer}_lr{lr:g}".replace(".", "p").replace("-", "m")
    return name if trainable == "attention" else f"{name}_{trainable}"


def _finding(data: dict, names: list, step: np.ndarray, per_epoch: int) -> str:
    parts = []
    for o, name in enumerate(names):
        r = np.asarray(data["reliance"])[o]
        peak_step = step[np.argmax(r, axis=-1)]
        parts.append(f"{name}: peak epoch {mean_sd_text(peak_step / per_epoch)}, "
                     f"{int(np.sum(peak_step < per_epoch))} of {len(r)} seeds before one epoch")
    return "; ".join(parts) + " (mean ± sd over seeds)"
