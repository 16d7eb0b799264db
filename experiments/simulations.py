"""The simulations behind the experiments, and the .npz files their data are saved in.

A work directory (`<data_dir>/sims`, or a scratch directory without a data dir) is a root of
the keyed store (`cpi.core.store`): single runs are `cpi run` directories at
`<work>/run/<key>/`, sweeps `cpi sweep` directories at `<work>/sweep/<sweep digest>/`, other
arrays `<work>/<kind>/<key>.npz`; each is computed once and reused while its key matches.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from cpi.core import store
from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.results import load_run, npz_bytes, save_run, write_atomic

# ---------------------------------------------------------------------------- npz files


def _from_archive(archive) -> dict:
    """0-d arrays back to Python scalars (str, float, int, bool); other arrays as they are."""
    out = {}
    for key in archive.files:
        value = archive[key]
        out[key] = value.item() if value.ndim == 0 else value
    return out


def data_bytes(data: dict) -> bytes:
    """The .npz bytes of a data dict (same dict, same bytes)."""
    return npz_bytes({k: np.asarray(v) for k, v in data.items()})


def load_data(path: str | Path) -> dict:
    """A data dict saved by `save_data` (scalars as Python scalars)."""
    with np.load(Path(path), allow_pickle=False) as archive:
        return _from_archive(archive)


def save_data(path: str | Path, data: dict) -> None:
    """Write `data` to `path` atomically (parent directories created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data_bytes(data))


def normalise(data: dict) -> dict:
    """The dict exactly as `load_data` would return it after saving."""
    with np.load(io.BytesIO(data_bytes(data)), allow_pickle=False) as archive:
        return _from_archive(archive)


# ---------------------------------------------------------------------------- simulations


def cached_run(config: Config, work: Path) -> tuple[dict, dict]:
    """(metrics, summary) of `cpi.sims.train.run(config)`, saved as a run directory at
    `<work>/run/<key of the config's TOML>` and reused."""
    run_dir = store.RUN.path(work, cfg.to_toml(config))
    try:
        _, metrics, summary = load_run(run_dir)
        return metrics, summary
    except FileNotFoundError:
        pass
    from cpi.sims.train import run

    result = run(config)
    save_run(run_dir, config, result.metrics, result.summary)
    return result.metrics, result.summary


def cached_sweep(base: Config, grid: list[str], work: Path):
    """`run_sweep(base, grid)` saved at `<work>/sweep/<sweep digest>` (completed chunks reused)."""
    from cpi.sims.sweep import run_sweep, sweep_digest

    return run_sweep(base, grid, out=Path(work) / "sweep" / sweep_digest(base, grid))


def cached_arrays(kind: store.Kind, payload, work: Path, compute) -> dict:
    """The arrays saved at `<work>/<kind>/<key of payload>.npz`, or `compute()` saved there first."""
    path = kind.path(work, payload, ".npz")
    try:
        return load_data(path)
    except (OSError, ValueError, EOFError):
        data = compute()
        save_data(path, data)
        return data
