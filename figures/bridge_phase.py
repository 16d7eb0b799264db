"""M_C over (ρ, step) in the bridge transformer (GD finetuning) beside the calibrated toy's
phase diagram (the toy at the transformer's measured strengths, with its step size matched), and
the measured onset of the rise against the ρ* predicted from the transformer's own margins."""

from __future__ import annotations

import numpy as np

from .bridge_common import mean_sd_text
from .style import BLUE, GREY, ORANGE, RED, headline, new_figure, panel_label, scalar


def _heat(ax, fig, x, rho, z, gid: str):
    mesh = ax.pcolormesh(x, rho, z, shading="nearest", vmin=0, vmax=1, cmap="viridis")
    mesh.set_gid(gid)
    return mesh


def plot_bridge_phase(data: dict):
    """(a) the calibrated toy's M_C over (ρ, step) from its reduced dynamics (mean over the
    seeds' toys), its ρ* dashed; (b) the
    transformer's M_C over (ρ, step), mean over seeds, ρ* per seed dashed; (c) the initial
    change of M_C vs ρ per seed, with the measured onset ρ_rise (circles) and ρ* (crosses)."""
    rho, step = np.asarray(data["rho"]), np.asarray(data["step"])
    fig, (ax, bx, cx) = new_figure(17.0, 5.0, ncols=3)
    toy = np.asarray(data["toy_reliance"])
    toy = toy.mean(axis=0) if toy.ndim == 3 else toy
    mesh = _heat(ax, fig, np.asarray(data["toy_step"]), np.asarray(data["toy_rho"]), toy, "toy_reliance")
    toy_star = float(np.mean(data["toy_rho_star"]))
    ax.axhline(toy_star, color="white", linestyle="--", linewidth=1.2)
    ax.set_xlabel(r"GD step (calibrated toy, $\eta$ = %s)" % mean_sd_text(data["toy_lr"]))
    panel_label(ax, rf"(a) calibrated toy: $M_C$, $\rho^*$ = {toy_star:.2f} (dashed)")
    _heat(bx, fig, step, rho, np.asarray(data["reliance"]).mean(axis=0), "reliance_mean")
    for r in np.asarray(data["rho_star"]):
        bx.axhline(r, color="white", linestyle="--", linewidth=1.0)
    bx.set_xlabel(f"finetuning step (transformer, {scalar(data, 'optimizer')} lr {scalar(data, 'lr'):g}, QK only)")
    panel_label(bx, r"(b) transformer: $M_C$, mean over seeds; $\rho^*$ per seed (dashed)")
    for x in (ax, bx):
        x.set_ylabel(r"mixture $\rho$ = $n_C/n$ (rest CS)")
    fig.colorbar(mesh, ax=[ax, bx], label="$M_C$", shrink=0.9)
    colors = [BLUE, ORANGE, RED, "#2ca02c"]
    for i, r in enumerate(np.asarray(data["rise"])):
        (line,) = cx.plot(rho, r, marker="o", markersize=4, color=colors[i % 4],
                          label=f"seed {int(np.asarray(data['seeds'])[i])}")
        line.set_gid(f"rise_{i}")
        onset, star = float(np.asarray(data["rise_rho_005"])[i]), float(np.asarray(data["rho_star"])[i])
        if np.isfinite(onset):
            cx.plot([onset], [0.05], "o", markersize=10, markerfacecolor="none", color=colors[i % 4])
        if np.isfinite(star):
            cx.plot([star], [0.05], "x", markersize=10, color=colors[i % 4])
    cx.axhline(0.05, color=GREY, linewidth=0.8, linestyle=":")
    cx.set_xlabel(r"mixture $\rho$")
    cx.set_ylabel("rise of $M_C$: peak − initial")
    cx.set_ylim(-0.02, 1.0)
    cx.legend(fontsize=8, loc="upper left", title=r"○ rise reaches 0.05, × predicted $\rho^*$", title_fontsize=8)
    panel_label(cx, "(c) where the rise starts")
    headline(fig, "The transformer's phase diagram beside the calibrated toy's", _finding(data))
    return fig


def _finding(data: dict) -> str:
    rise, first, star = (np.asarray(data[k]) for k in ("rise_rho_005", "rise_rho", "rho_star"))
    return (rf"the rise reaches 0.05 from $\rho$ = {mean_sd_text(rise)}, the first step's change turns positive at "
            rf"{mean_sd_text(first)}, the predicted $\rho^*$ = {mean_sd_text(star)} (mean ± sd over {star.size} seeds);"
            f"\nthe calibrated toy's rise reaches 0.05 from ρ = {mean_sd_text(data['toy_rise_rho_005'])}, "
            f"its ρ* = {mean_sd_text(data['toy_rho_star'])}")
