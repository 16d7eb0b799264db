"""Where the transformer's rise starts: ρ̂* from the exact t = 0 derivatives, Lemma 4's ρ*, its
1 − p_CS variant and the measured onset, at the default pretraining and with weaker facts."""

from __future__ import annotations

import numpy as np

from .bridge_common import seed_band
from .style import BLUE, GREEN, GREY, ORANGE, PURPLE, RED, headline, new_figure, panel_label, scalar

MEASURES = (("rho_hat", "ρ̂* (t = 0 derivatives)", "o", BLUE), ("rho_star", "ρ* (Lemma 4 margins)", "x", RED),
            ("rho_star_lambda", "ρ* with λ_CS = 1 − p_CS", "+", PURPLE),
            ("onset_early", "onset: M_C(k) − M_C(0) > 0", "v", GREEN),
            ("onset_rise", "onset: rise ≥ 0.05", "s", ORANGE))
ARM_COLORS = [BLUE, ORANGE, RED, GREEN]
LINTHRESH = 1e-3


def _values(data: dict, key: str, lr_index: int) -> np.ndarray:
    """(arms, seeds) of a measure; the onsets at step size `lr_index`."""
    v = np.asarray(data[key], dtype=np.float64)
    return v[..., lr_index] if key.startswith("onset") else v


def _arm_names(data: dict) -> list[str]:
    steps = np.asarray(data["arm_pretrain_steps"])
    return [f"{int(s)} pretraining steps" + (" (default)" if i == 0 else "") for i, s in enumerate(steps)]


def _strip(ax, values, offset: float, width: float, key: str, label: str, marker: str, color: str):
    """Each arm's seeds of one measure as markers at x = arm + offset·width, their mean a bar."""
    for a in range(values.shape[0]):
        x = a + offset * width
        (pts,) = ax.plot(np.full(values.shape[1], x), values[a], marker, color=color, linestyle="none",
                         markersize=6, label=label if a == 0 else None)
        pts.set_gid(f"{key}_arm{a}")
        finite = values[a][np.isfinite(values[a])]
        if finite.size:
            ax.plot([x - width / 2, x + width / 2], [finite.mean()] * 2, color=color, linewidth=2.2)


def plot_bridge_onset(data: dict):
    """(a) per pretraining (arm): ρ̂*, Lemma 4's ρ*, its 1 − p_CS variant and the measured onsets
    (the early one at the smaller step size, the 0.05 rise at the larger; and `bridge_phase`'s
    on real mixtures, default pretraining), each seed a marker, the mean a bar; (b, c) the rise
    of M_C (peak − initial within the horizon) vs ρ at each GD step size for the default and the
    weakest pretraining (mean, seed band; real mixtures too at the default), ρ̂* and ρ* (means)
    dashed; (d) each CS example's share d_i of the derivative (over the arm's mean d_C) against
    its loss 1 − p_i, every seed."""
    rho, lrs = np.asarray(data["rho"]), np.asarray(data["lr"])
    arms = _arm_names(data)
    big, small = int(np.argmax(lrs)), int(np.argmin(lrs))
    fig, axes = new_figure(13.5, 9.5, ncols=2, nrows=2)
    ax, bx, cx, dx = axes
    width = 0.13
    mixture = "mixture_onset_rise" in data
    columns = len(MEASURES) + mixture
    for j, (key, label, marker, color) in enumerate(MEASURES):
        lr_index = big if key == "onset_rise" else small
        _strip(ax, _values(data, key, lr_index), j - (columns - 1) / 2, width, key, label, marker, color)
    if mixture:  # bridge_phase's onset on real mixtures, default pretraining only
        _strip(ax, np.asarray(data["mixture_onset_rise"], dtype=np.float64)[None], len(MEASURES) - (columns - 1) / 2,
               width, "mixture_onset_rise", "onset: rise ≥ 0.05, real mixtures (default only)", "D", GREY)
    ax.set_yscale("symlog", linthresh=LINTHRESH)
    ax.set_ylim(0, 1.0)
    ax.set_xticks(np.arange(len(arms)), arms, fontsize=8.5)
    ax.set_xlim(-0.5, len(arms) - 0.5)
    ax.set_ylabel(r"mixture $\rho$ = share of C (symlog)")
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncols=3,
              title=f"onsets: rise at GD lr {lrs[big]:g}, early (k = {int(scalar(data, 'early_steps'))}) at "
                    f"lr {lrs[small]:g}", title_fontsize=7.5)
    panel_label(ax, "(a) where the rise starts, per pretraining (each seed a marker, mean a bar)")

    steps = int(scalar(data, "steps"))
    for panel, a, tag in ((bx, 0, "b"), (cx, len(arms) - 1, "c")):
        for i, (j, color) in enumerate(((big, BLUE), (small, ORANGE))):
            seed_band(panel, rho, np.asarray(data["rise"])[a, :, j], f"rise_arm{a}_lr{i}", color,
                      f"GD lr {lrs[j]:g}", seeds=False, marker="o", markersize=3)
        if mixture and a == 0:
            seed_band(panel, np.asarray(data["mixture_rho"]), np.asarray(data["mixture_rise"]), "mixture_rise", GREY,
                      f"GD lr {lrs[big]:g}, real mixtures", seeds=False, marker="D", markersize=3)
        for key, color in (("rho_hat", BLUE), ("rho_star", RED)):
            values = np.asarray(data[key], dtype=np.float64)[a]
            if not np.isfinite(values).any():
                continue
            value = float(np.mean(values[np.isfinite(values)]))
            panel.axvline(value, color=color, linestyle="--", linewidth=1.0,
                          label=f"{'ρ̂*' if key == 'rho_hat' else 'ρ* (Lemma 4)'} = {value:.3f}")
        panel.axhline(0.05, color=GREY, linestyle=":", linewidth=0.8)
        panel.set_xscale("symlog", linthresh=LINTHRESH)
        panel.set_xlim(0, rho.max())
        panel.set_ylim(-0.02, 1.0)
        panel.set_xlabel(r"mixture $\rho$ (symlog)")
        panel.set_ylabel(f"rise of $M_C$ within {steps} steps")
        panel.legend(fontsize=7.5, loc="upper left")
        panel_label(panel, f"({tag}) {arms[a]}: rise of $M_C$ vs ρ")

    for a in range(len(arms)):
        d_c = np.asarray(data["d_C"])[a].mean()
        share = np.asarray(data["d_CS_points"])[a].ravel() / d_c
        loss = 1.0 - np.asarray(data["p_CS_points"])[a].ravel()
        (pts,) = dx.plot(loss, share, ".", color=ARM_COLORS[a % 4], alpha=0.6, label=arms[a])
        pts.set_gid(f"cs_points_arm{a}")
    dx.axhline(0.0, color=GREY, linewidth=0.8)
    dx.set_xscale("log")
    dx.set_yscale("symlog", linthresh=1e-3)
    dx.set_xlabel(r"CS example's $1 - p_{target}$ on [c, s, r] (pretrained)")
    dx.set_ylabel(r"its $d_i = -\langle\nabla M_C, \nabla \ell_i\rangle$ / mean $d_C$")
    dx.legend(fontsize=7.5, loc="lower left")
    panel_label(dx, "(d) each CS example's pull on $M_C$ at t = 0 vs its loss")
    headline(fig, "Where the transformer's rise starts: exact t = 0 derivatives against Lemma 4", _finding(data))
    return fig


def _ms(values) -> str:
    """'m ± s' over the finite values, two significant digits (ρ's here span 1e-3 to 0.3)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return "n/a" if v.size == 0 else f"{v.mean():.2g} ± {v.std():.2g}"


def _finding(data: dict) -> str:
    n = np.asarray(data["seeds"]).size
    lrs = np.asarray(data["lr"])
    big, small = int(np.argmax(lrs)), int(np.argmin(lrs))
    parts = []
    for a, steps in enumerate(np.asarray(data["arm_pretrain_steps"])[[0, -1]]):
        a = 0 if a == 0 else len(np.asarray(data["arm_pretrain_steps"])) - 1
        parts.append(f"{int(steps)} pretraining steps: ρ̂* = {_ms(np.asarray(data['rho_hat'])[a])}, "
                     f"early onset {_ms(np.asarray(data['onset_early'])[a, :, small])}, Lemma 4 ρ* = "
                     f"{_ms(np.asarray(data['rho_star'])[a])}, rise ≥ 0.05 from "
                     f"{_ms(np.asarray(data['onset_rise'])[a, :, big])} (lr {lrs[big]:g})")
    return "\n".join(parts) + f"  (mean ± sd over {n} seeds)"
