"""The inversion under GD, SGD (two batch sizes, and with momentum) and Adam at the default
mixture: M_C over steps, the seeds' mean and spread."""

from __future__ import annotations

import numpy as np

from .style import (
    BLUE, GREEN, ORANGE, PURPLE, RED, headline, log_marker_indices, new_figure, panel_label, scalar, sim_line,
    theory_line,
)


def _band(ax, step, reliance, color, gid):
    band = ax.fill_between(step + 1, reliance.min(0), reliance.max(0), color=color, alpha=0.18, linewidth=0)
    band.set_gid(gid)


def plot_optimizers(data: dict):
    """(a) M_C vs step (log axis, step + 1) for GD (markers, its exact theory as a line), SGD
    at each batch size and SGD with momentum (mean over seeds as a line, min-max band), Adam
    at each learning rate; (b) peak, final and drop of every run, seeds as points."""
    step = np.asarray(data["step"])
    every = log_marker_indices(len(step), 30)
    fig, (ax, bx) = new_figure(15.0, 5.4, ncols=2, gridspec_kw=dict(width_ratios=[1.6, 1.0]))
    lr, n_seeds = scalar(data, "lr"), len(np.asarray(data["seed"]))

    theory_line(ax, step + 1, data["theory_gd_reliance"], "theory_gd_reliance", "GD: exact per-example theory",
                color="k", linewidth=1.2)
    sim_line(ax, step + 1, data["gd_reliance"], "gd_reliance", rf"GD (full batch), $\eta$ = {lr:g}", every,
             color="k")
    sgd = np.asarray(data["sgd_reliance"])
    for i, b in enumerate(np.asarray(data["batch_size"])):
        color = (BLUE, GREEN)[i % 2]
        _band(ax, step, sgd[i], color, f"band_sgd_{i}")
        theory_line(ax, step + 1, sgd[i].mean(0), f"sgd_mean_{i}", rf"SGD, batch {b}, $\eta$ = {lr:g}", color=color,
                    linewidth=1.3)
    mom = np.asarray(data["momentum_reliance"])
    _band(ax, step, mom, PURPLE, "band_momentum")
    theory_line(ax, step + 1, mom.mean(0), "momentum_mean",
                rf"SGD, batch {int(scalar(data, 'momentum_batch'))}, momentum {scalar(data, 'momentum'):g}, "
                rf"$\eta$ = {scalar(data, 'momentum_lr'):.2g}", color=PURPLE, linewidth=1.3)
    for i, (a_lr, factor) in enumerate(zip(np.asarray(data["adam_lr"]), np.asarray(data["adam_factor"]))):
        theory_line(ax, step + 1, data["adam_reliance"][i], f"adam_{i}",
                    f"Adam (full batch), lr = {a_lr:.3g}"
                    + (" (matched)" if factor == 1 else f" ({factor:g}× matched)"),
                    color=(RED, ORANGE)[i % 2], linestyle="-" if factor == 1 else "--", linewidth=1.5)
    ax.set_xscale("log")
    ax.set_xlim(1, step[-1] + 1)
    ax.set_ylim(0.2, 1.0)
    ax.set_xlabel("training step t + 1")
    ax.set_ylabel(r"context reliance $M_C$ on held-out conflict examples")
    ax.legend(title=f"SGD: mean of {n_seeds} seeds, band min-max", fontsize=7.5, title_fontsize=7.5,
              loc="lower right")
    panel_label(ax, rf"(a) $M_C$ at $\rho$ = {scalar(data, 'rho'):.2g} under each optimizer")

    def values(prefix, index=...):
        return [np.atleast_1d(np.asarray(data[f"{prefix}_{k}"])[index]) for k in ("first_peak", "trough", "final")]

    rows = [("GD", *values("gd"), "k")]
    for i, b in enumerate(np.asarray(data["batch_size"])):
        rows.append((f"SGD b={b}", *values("sgd", i), (BLUE, GREEN)[i % 2]))
    rows.append(("SGD+mom.", *values("momentum"), PURPLE))
    for i, factor in enumerate(np.asarray(data["adam_factor"])):
        rows.append((f"Adam ×{factor:g}", *values("adam", i), (RED, ORANGE)[i % 2]))
    for j, (name, peak, trough, final, color) in enumerate(rows):
        x = np.full(len(peak), float(j))
        p = bx.scatter(x - 0.15, peak, marker="^", s=22, color=color, label="first peak" if j == 0 else None)
        p.set_gid(f"first_peak_{j}")
        t = bx.scatter(x, trough, marker="s", s=18, color=color, alpha=0.6,
                       label="lowest after it" if j == 0 else None)
        t.set_gid(f"trough_{j}")
        f = bx.scatter(x + 0.15, final, marker="v", s=22, facecolors="none", color=color,
                       label=f"final (step {step[-1]})" if j == 0 else None)
        f.set_gid(f"final_{j}")
        bx.vlines(j, trough.mean(), peak.mean(), color=color, linewidth=1, alpha=0.6)
    bx.set_xticks(range(len(rows)), [r[0] for r in rows], fontsize=8, rotation=20)
    bx.set_xlim(-0.6, len(rows) - 0.4)
    bx.set_ylim(0.4, 1.05)
    bx.set_ylabel(r"$M_C$: first peak (▲), lowest after it (■), final (▽)")
    bx.legend(fontsize=8, loc="lower right")
    panel_label(bx, "(b) first peak, trough and final per run (every seed)")

    headline(fig, "The inversion survives SGD and momentum; Adam makes it brief and shallow, then relies on context",
             _finding(data))
    return fig


def _finding(data: dict) -> str:
    steps = int(np.asarray(data["step"])[-1])
    gd = float(scalar(data, "gd_drop"))
    sgd = np.asarray(data["sgd_drop"])
    text = f"drop over {steps} steps: GD {gd:.3f}"
    for i, b in enumerate(np.asarray(data["batch_size"])):
        text += f", SGD b={b} {sgd[i].mean():.3f} ± {sgd[i].std():.3f}"
    mom = np.asarray(data["momentum_drop"])
    text += f", momentum {mom.mean():.3f} ± {mom.std():.3f}"
    first, trough = np.asarray(data["adam_first_peak"])[0], np.asarray(data["adam_trough"])[0]
    text += (f"; Adam (matched lr): first peak {first:.3f}, trough {trough:.3f}, "
             f"final {np.asarray(data['adam_final'])[0]:.3f}")
    return text
