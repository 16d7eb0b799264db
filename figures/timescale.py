"""When the inversion happens: the peak time of M_C against the number of examples n, the
threshold ρ_∞ above which it grows exponentially, and the first epoch of SGD."""

from __future__ import annotations

import numpy as np

from .style import BLUE, GREY, ORANGE, RED, headline, new_figure, panel_label, scalar, sim_line, theory_line

COLORS = (BLUE, ORANGE, RED)


def plot_timescale(data: dict):
    """(a) log10 of the peak time vs n per ρ: exact gradient flow (line), the law
    nΨ + ½ ln n + C with C from the largest n (dashed), full-batch GD on the reduced engine and
    SGD on the fast engine (markers, mean over seeds); (b) the peak in epochs (GD: = steps;
    SGD: steps·b/n) with the one-epoch line; (c) ln t_peak / n of the flow vs ρ at several n
    against Ψ(ρ) = KL(ρ ‖ ρ_∞), ρ* and ρ_∞ marked; (d) the first epoch of SGD at the largest
    first-epoch n: the fast engine (markers) on the one-dimensional recursion (lines), and the
    expected recursion."""
    ns, rhos = np.asarray(data["n_train"], dtype=float), np.asarray(data["rho"])
    b = int(scalar(data, "batch_size"))
    ln10 = np.log(10.0)
    fig, (ax, bx, cx, dx) = new_figure(14.0, 10.0, ncols=2, nrows=2)

    flow = np.asarray(data["flow_log_peak_time"])
    law = np.asarray(data["law_log_time"]) + np.asarray(data["law_constant"])[:, -1:]
    gd, sgd = np.asarray(data["gd_peak_step"]), np.asarray(data["sgd_peak_step"], dtype=float)
    for i, r in enumerate(rhos):
        color = COLORS[i % len(COLORS)]
        theory_line(ax, ns, flow[i] / ln10, f"flow_log_peak_time_{i}", rf"$\rho$ = {r:g}: exact flow", color=color)
        (dash,) = ax.plot(ns, law[i] / ln10, color=color, linestyle="--", linewidth=1.0)
        dash.set_gid(f"law_log_time_{i}")
        have = gd[i] >= 0
        sim_line(ax, ns[have], np.log10(gd[i][have]), f"gd_peak_step_{i}", None, color=color, marker="s")
        ok = np.all(sgd[i] >= 0, axis=-1)
        sim_line(ax, ns[ok], np.log10(sgd[i][ok].mean(-1)), f"sgd_peak_step_{i}", None, color=color, marker="^")
        # (b) the small n that GD and SGD reach, in epochs
        small = ns <= 2 * ns[np.flatnonzero(ok | have)].max() if (ok | have).any() else ns <= ns[2]
        theory_line(bx, ns[small], flow[i][small] / ln10, f"flow_peak_epoch_{i}",
                    rf"$\rho$ = {r:g}: full batch (flow; epoch = step)", color=color)
        sim_line(bx, ns[have], np.log10(gd[i][have]), f"gd_peak_epoch_{i}", None, color=color, marker="s")
        if ok.any():
            epochs = sgd[i][ok] * b / ns[ok, None]
            bars = bx.errorbar(ns[ok], np.log10(epochs.mean(-1)), yerr=epochs.std(-1) / (epochs.mean(-1) * ln10),
                               color=color, marker="^", linestyle="none", markerfacecolor="none", capsize=3,
                               label=rf"$\rho$ = {r:g}: SGD b = {b} (mean $\pm$ sd)")
            bars[0].set_gid(f"sgd_peak_epoch_{i}")
    ax.plot([], [], color="k", linestyle="--", linewidth=1.0, label=r"law $n\Psi(\rho) + \frac{1}{2}\ln n + C$")
    ax.plot([], [], color="k", marker="s", linestyle="none", markerfacecolor="none", label="GD, reduced engine")
    ax.plot([], [], color="k", marker="^", linestyle="none", markerfacecolor="none",
            label=f"SGD b = {b}, fast engine ({len(np.asarray(data['sgd_seeds']))} seeds)")
    ax.set_xlabel("finetuning examples n (vocabulary grown to fit)")
    ax.set_ylabel(r"$\log_{10}$ peak time (steps at $\eta$ = %g)" % scalar(data, "lr", 1.0))
    ax.legend(fontsize=8, loc="upper left")
    panel_label(ax, "(a) peak of $M_C$ against n: exponential in n (straight lines)")

    reached = [np.log10(gd[gd >= 0])] + [np.log10(sgd[i][np.all(sgd[i] >= 0, -1)].mean(-1)) for i in range(len(rhos))]
    top = max((float(np.max(x)) for x in reached if np.size(x)), default=3.0)
    bx.set_ylim(-0.5, top + 1.5)
    (one,) = bx.plot(bx.get_xlim(), [0.0, 0.0], color=GREY, linestyle=":", linewidth=1.2, label="one epoch")
    one.set_gid("one_epoch")
    bx.set_xlabel("finetuning examples n")
    bx.set_ylabel(r"$\log_{10}$ peak epoch")
    bx.legend(fontsize=8, loc="lower right")
    panel_label(bx, "(b) small n in epochs: never within the first")

    grid, grid_n = np.asarray(data["grid_rho"]), np.asarray(data["grid_n"])
    log_t, psi = np.asarray(data["grid_log_peak_time"]), np.asarray(data["grid_psi"])
    for a, n in enumerate(grid_n):
        color = ("0.65", "0.4", "k")[a % 3] if len(grid_n) <= 3 else None
        sim_line(cx, grid, log_t[a] / n, f"grid_log_peak_time_{a}", rf"flow: $\ln t_{{peak}}/n$, n = {n}", color=color)
        theory_line(cx, grid, psi[a], f"grid_psi_{a}", None, color=color, linewidth=1.0)
        cx.axvline(float(np.asarray(data["grid_rho_inf"])[a, 0]), color=color, linestyle="--", linewidth=0.9)
    cx.axvline(float(np.asarray(data["grid_rho_star"])[0, 0]), color=GREY, linestyle=":", linewidth=1.0,
               label=rf"$\rho^*$ (n = {grid_n[0]})")
    cx.plot([], [], color="k", linewidth=1.0, label=r"$\Psi(\rho) = \mathrm{KL}(\rho\,\|\,\rho_\infty)$")
    cx.plot([], [], color="k", linestyle="--", linewidth=0.9, label=r"$\rho_\infty = K_{CS}/(K_C + K_{CS})$")
    cx.set_xlabel(r"$\rho = n_C/n$")
    cx.set_ylabel(r"$\ln t_{peak} / n$")
    cx.legend(fontsize=8, loc="upper left")
    panel_label(cx, r"(c) the rate per example: 0 below $\rho_\infty$, $\Psi(\rho)$ above")

    epoch_n = np.asarray(data["epoch_n"])
    a = len(epoch_n) - 1
    steps = int(np.asarray(data["epoch_steps"])[a])
    k = np.arange(steps + 1)
    engine = np.asarray(data["epoch_engine_reliance"])[a, :, : steps + 1]
    recursion = np.asarray(data["epoch_recursion_reliance"])[a, :, : steps + 1]
    for s in range(engine.shape[0]):
        color = COLORS[s % len(COLORS)] if s < len(COLORS) else GREY
        theory_line(dx, k, recursion[s], f"epoch_recursion_{s}", "1-D recursion, same batches" if s == 0 else None,
                    color=color, linewidth=1.0)
        sim_line(dx, k, engine[s], f"epoch_engine_{s}", "fast engine, SGD seeds" if s == 0 else None,
                 every=max(1, steps // 25), color=color, markersize=3.5)
    theory_line(dx, k, np.asarray(data["epoch_expected_reliance"])[a, : steps + 1], "epoch_expected",
                r"expected recursion ($b_C = \rho b$)", color="k", linestyle="--", linewidth=1.2)
    dx.set_xscale("symlog", linthresh=1)
    dx.set_xlabel(f"SGD step within the first epoch (n = {epoch_n[a]}, b = {b})")
    dx.set_ylabel(r"context reliance $M_C$")
    dx.legend(fontsize=8, loc="lower right")
    panel_label(dx, "(d) first epoch: a 1-D recursion, no systematic fall")

    rho0 = float(rhos[0])
    finding = (
        rf"at $\rho$ = {rho0:g} the peak moves from step {np.exp(flow[0, 0]):.0f} (n = {ns[0]:g}) to "
        rf"$10^{{{flow[0, -1] / ln10:.0f}}}$ (n = {ns[-1]:g}), ln t growing like n KL($\rho$ $\|$ $\rho_\infty$);" "\n"
        "in the first epoch the test gap follows a 1-D recursion that rises in expectation: "
        "the toy cannot invert within one epoch"
    )
    headline(fig, "When the inversion happens: peak time against the number of examples", finding)
    return fig
