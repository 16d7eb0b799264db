"""One saved sweep at a glance (`cpi plot SWEEP_DIR`): the reliance summary of every point
against the swept key (lines) or the two swept keys (maps).

Input: the swept keys, their per-point coordinates and the per-point summary arrays
(`cpi.sims.sweep.load_sweep`), points of the first seed only (seeds relabel tokens).
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.patches import Patch

from .style import BLUE, GREEN, ORANGE, headline, new_figure, panel_label, sim_line

NO_INVERSION_COLOR = "0.85"
"""The drop map's colour for a point that does not invert, where it has no drop."""

SUMMARY_LINES = (("initial_reliance", "initial", GREEN), ("peak_reliance", "peak", BLUE),
                 ("final_reliance", "final", ORANGE))


def _positions(values: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
    """Numeric values as they are; other values (strings) at 0, 1, ... with their labels."""
    if np.issubdtype(values.dtype, np.number) or values.dtype == bool:
        return values.astype(float), None
    labels = list(dict.fromkeys(values.tolist()))
    return np.array([labels.index(v) for v in values.tolist()], dtype=float), [str(v) for v in labels]


def plot_sweep(keys: list[str], coords: dict, summary: dict, title: str = "One sweep"):
    """One key: initial, peak and final M_C against it, inversions marked. Two keys: maps of
    the peak and of the drop (peak − final) over both. The drop is drawn only where M_C
    inverts: a point that never falls below a peak has none (NaN, drawn in NO_INVERSION_COLOR)."""
    if len(keys) == 1:
        return _plot_one(keys[0], coords, summary, title)
    if len(keys) == 2:
        return _plot_two(keys, coords, summary, title)
    raise ValueError(f"plot_sweep draws one or two swept keys, not {len(keys)}: {', '.join(keys)}")


def _plot_one(key, coords, summary, title):
    x, labels = _positions(np.asarray(coords[key]))
    order = np.argsort(x, kind="stable")
    x = x[order]
    fig, (ax,) = new_figure(7.5, 4.6)
    for field, name, color in SUMMARY_LINES:
        sim_line(ax, x, np.asarray(summary[field])[order], field, f"{name} $M_C$", color=color, linestyle="-",
                 linewidth=1.2)
    inverted = np.asarray(summary["inversion"], dtype=bool)[order]
    (marks,) = ax.plot(x[inverted], np.asarray(summary["peak_reliance"])[order][inverted], linestyle="none",
                       marker="v", color="black", markersize=5, label="inversion (rise, then fall)")
    marks.set_gid("inversion")
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel(key)
    ax.set_ylabel("context reliance $M_C$ on conflict test examples")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="best")
    panel_label(ax, f"summary of {len(x)} points")
    headline(fig, title, f"inversion at {int(inverted.sum())} of {len(x)} points")
    return fig


def _plot_two(keys, coords, summary, title):
    (xk, yk) = keys
    x, x_labels = _positions(np.asarray(coords[xk]))
    y, y_labels = _positions(np.asarray(coords[yk]))
    xs, ys = np.unique(x), np.unique(y)
    peak, drop = (np.full((len(ys), len(xs)), np.nan) for _ in range(2))
    i, j = np.searchsorted(ys, y), np.searchsorted(xs, x)
    inverted = np.asarray(summary["inversion"], dtype=bool)
    peak[i, j] = np.asarray(summary["peak_reliance"])
    drop[i, j] = np.where(inverted, peak[i, j] - np.asarray(summary["final_reliance"]), np.nan)
    fig, axes = new_figure(11.5, 4.6, ncols=2)
    drop_cmap = matplotlib.colormaps["viridis"].with_extremes(bad=NO_INVERSION_COLOR)
    for ax, values, name, gid, cmap in (
            (axes[0], peak, "peak $M_C$", "peak_map", "viridis"),
            (axes[1], drop, "drop: peak − final $M_C$ (where it inverts)", "drop_map", drop_cmap)):
        mesh = ax.pcolormesh(np.arange(len(xs)) if x_labels else xs, np.arange(len(ys)) if y_labels else ys, values,
                             shading="nearest", cmap=cmap)
        mesh.set_gid(gid)
        fig.colorbar(mesh, ax=ax, label=name)
        if x_labels is not None:
            ax.set_xticks(range(len(x_labels)), x_labels)
        if y_labels is not None:
            ax.set_yticks(range(len(y_labels)), y_labels)
        ax.set_xlabel(xk)
        ax.set_ylabel(yk)
        panel_label(ax, f"({'ab'[ax is axes[1]]}) {name}")
    if not inverted.all():
        axes[1].legend(handles=[Patch(facecolor=NO_INVERSION_COLOR, edgecolor="0.5", label="no inversion: no drop")],
                       fontsize=8, loc="upper right")
    headline(fig, title, f"inversion at {int(inverted.sum())} of {len(inverted)} points")
    return fig
