"""Drawing helpers the bridge figures share: a mean over seeds with its spread."""

from __future__ import annotations

import numpy as np


def seed_band(ax, x, curves, gid: str, color: str, label: str | None = None, seeds: bool = True, **kw):
    """The mean of `curves` (seeds × steps) as a line (gid `<gid>_mean`), the band between the
    lowest and highest seed shaded, and each seed as a thin line (gid `<gid>_seed<i>`)."""
    curves = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    x = np.asarray(x)
    ax.fill_between(x, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.15, linewidth=0)
    if seeds and len(curves) > 1:
        for i, c in enumerate(curves):
            (thin,) = ax.plot(x, c, color=color, linewidth=0.7, alpha=0.5)
            thin.set_gid(f"{gid}_seed{i}")
    (line,) = ax.plot(x, curves.mean(axis=0), color=color, linewidth=1.8, label=label, **kw)
    line.set_gid(f"{gid}_mean")
    return line


def mean_sd_text(values) -> str:
    """'m ± s' over seeds (s the standard deviation with ddof 1; just m for one seed)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "n/a"
    return f"{np.nanmean(v):.2f}" + (f" ± {np.nanstd(v, ddof=1):.2f}" if v.size > 1 else "")
