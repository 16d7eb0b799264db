"""What the bridge experiments share: bridge configs, their runs (cached) and seed statistics.

The bridge experiments start from the bridge's own defaults (`cpi.bridge.config`), not from the
toy's base config that `compute(base, work, ...)` receives: the transformer's knowledge is
learned in pretraining, so the toy's knowledge keys have no counterpart, and the toy's
mixture (n_train = 20) is too small for the transformer's held-out examples. `base` is used
only where a figure shows the toy beside the transformer (its phase diagram, its mitigations).
Every experiment takes `overrides`, bridge `section.key=value` settings applied to the
defaults (the tests' tiny scale), and `seeds`.

Runs are saved under `<work>/bridge-run/<config key>` (`cpi bridge`'s files) and the pretrained
models under `<work>/checkpoint/<key>`, so `cpi figures` reuses both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpi.bridge import config as bcfg
from cpi.bridge.config import BridgeConfig
from cpi.core import store
from cpi.theory.summary import reliance_drop


def bridge_config(overrides=(), **values) -> BridgeConfig:
    """The bridge defaults with `overrides` ("section.key=value" strings), then `values`
    (`section__key=value`), validated."""
    config = bcfg.load(overrides=list(overrides))
    return bcfg.with_values(config, {k.replace("__", "."): v for k, v in values.items()})


def run_points(configs, work: Path, vmap: bool = True) -> list[tuple[dict, dict]]:
    """(metrics, summary) of each bridge config (`cpi.bridge.sweep.run_configs`), kept in the work
    directory as the keyed store lays it out: checkpoints in `<work>/checkpoint/`, runs in
    `<work>/bridge-run/`."""
    from cpi.bridge.sweep import run_configs

    root = Path(work)
    return run_configs(configs, cache_dir=root / store.CHECKPOINT.name, runs_dir=root / store.BRIDGE_RUN.name,
                       vmap=vmap)


def curves(results, name: str) -> np.ndarray:
    """Metric `name` of every run stacked (runs × recorded steps)."""
    return np.stack([np.asarray(m[name], dtype=np.float64) for m, _ in results])


def summary_values(results, key: str) -> np.ndarray:
    """Summary value `key` of every run (NaN where missing)."""
    return np.array([np.nan if s.get(key) is None else float(s[key]) for _, s in results])


def peak_final_drop(reliance: np.ndarray) -> dict[str, np.ndarray]:
    """Per curve (last axis: steps): initial, peak, final M_C and the largest fall below the
    running peak (`cpi.theory.summary.reliance_drop`)."""
    r = np.asarray(reliance, dtype=np.float64)
    return {"initial": r[..., 0], "peak": r.max(axis=-1), "final": r[..., -1], "drop": reliance_drop(r)}
