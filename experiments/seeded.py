"""Sweeps over seeds, shared by the experiments outside the idealisation (`robustness`,
`optimizers`, `paper_metrics`): a grid axis over `train.seed`, a sweep's metrics arranged on
the grid's axes, and the spread of a quantity over seeds (mean, standard deviation, min, max).
"""

from __future__ import annotations

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config

from .simulations import cached_sweep


def seed_spec(seeds: int) -> str:
    """The grid spec `train.seed=0,1,...,seeds-1`."""
    return "train.seed=" + ",".join(str(s) for s in range(int(seeds)))


def swept(base: Config, axes: dict[str, list], work, metrics=("reliance",)) -> dict:
    """Sweep `base` over the product of `axes` ({key: values}, e.g. {"world.dim": [...],
    "train.seed": [...]}) and return each metric in `metrics` as an array of shape
    (len(values) per axis ..., steps + 1), plus `summary_<field>` arrays of the grid's shape
    (from every step) and `configs` (TOML per point, grid-shaped)."""
    keys = list(axes)
    grid = [f"{k}=" + ",".join(repr(v) if isinstance(v, float) else str(v) for v in axes[k]) for k in keys]
    result = cached_sweep(base, grid, work)
    shape = tuple(len(axes[k]) for k in keys)
    where = np.empty(shape, dtype=np.int64)
    for i, config in enumerate(result.configs):
        index = tuple(list(axes[k]).index(_value(config, k)) for k in keys)
        where[index] = i
    out = {name: np.asarray(result.metrics[name])[where] for name in metrics}
    for field in ("peak_reliance", "peak_step", "final_reliance", "inversion"):
        out[f"summary_{field}"] = np.array([result.summaries[i][field] for i in where.ravel()]).reshape(shape)
    out["configs"] = np.array([cfg.to_toml(result.configs[i]) for i in where.ravel()]).reshape(shape)
    out["step"] = np.asarray(result.metrics["step"])
    return out


def _value(config: Config, key: str):
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def spread(x, axis: int = -1) -> dict:
    """mean, std (ddof 0), min and max of `x` over `axis` (the seeds)."""
    x = np.asarray(x, dtype=np.float64)
    return dict(mean=x.mean(axis=axis), std=x.std(axis=axis), min=x.min(axis=axis), max=x.max(axis=axis))
