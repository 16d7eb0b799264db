"""Saved experiment data and the simulations behind them, keyed by content hashes.

An experiment's data dict is saved to `<data_dir>/<name>.npz` (deterministic bytes) and
reused on the next call when its `inputs` (a hash of the experiment name, DATA_VERSION, the
base config's TOML and the experiment's parameters) are unchanged. Its simulations are
cached under a work directory (`<data_dir>/sims`, or a scratch directory without a data
dir): single runs as `cpi run` directories under `runs/`, sweeps as `cpi sweep`
directories under `sweeps/`, each named by a hash of what it computes.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np

from cpi.sims import config as cfg
from cpi.sims.config import Config
from cpi.sims.results import load_run, npz_bytes, save_run, write_atomic

from .registry import get

DATA_VERSION = 1
"""Part of every experiment's input hash; bump it when a computation changes its numbers."""


# ---------------------------------------------------------------------------- digests


def inputs_digest(name: str, base: Config, params: dict) -> str:
    """SHA-256 (16 hex digits) of the experiment name, DATA_VERSION, the base config's TOML
    and the experiment's resolved parameters: the key under which saved data is reused."""
    text = json.dumps(
        {"figure": name, "version": DATA_VERSION, "config": cfg.to_toml(base), "params": params},
        sort_keys=True,
        default=list,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_digest(config: Config) -> str:
    """SHA-256 (12 hex digits) of a config's TOML: the name of its cached run."""
    return hashlib.sha256(cfg.to_toml(config).encode()).hexdigest()[:12]


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


# ---------------------------------------------------------------------------- experiment data


def is_saved(name: str, base: Config | None = None, data_dir: str | Path | None = None, **params) -> bool:
    """Whether `<data_dir>/<name>.npz` holds data for exactly these inputs (would be reused)."""
    if data_dir is None:
        return False
    base = cfg.validate(base if base is not None else Config())
    path = Path(data_dir) / f"{name}.npz"
    try:
        return load_data(path).get("inputs") == inputs_digest(name, base, get(name).resolve(params))
    except (OSError, ValueError, EOFError):
        return False


def experiment_data(
    name: str, base: Config | None = None, data_dir: str | Path | None = None, force: bool = False, **params
) -> dict:
    """The data of experiment `name` for `base` (default: the default config).

    With `data_dir`, `<data_dir>/<name>.npz` is reused when its inputs hash matches (unless
    `force`), and otherwise computed and saved there. The dict carries `figure` (the name),
    `inputs` (the hash) and `base_config` (TOML) besides what the computation returns."""
    experiment = get(name)
    base = cfg.validate(base if base is not None else Config())
    params = experiment.resolve(params)
    inputs = inputs_digest(name, base, params)
    path = Path(data_dir) / f"{name}.npz" if data_dir is not None else None
    if path is not None and path.exists() and not force:
        try:
            saved = load_data(path)
        except (OSError, ValueError, EOFError):
            saved = {}
        if saved.get("inputs") == inputs:
            return saved
    with tempfile.TemporaryDirectory(prefix="cpi-figure-") as scratch:
        work = Path(data_dir) / "sims" if data_dir is not None else Path(scratch)
        data = experiment.compute(base, work, **params)
    data = normalise({**data, "figure": name, "inputs": inputs, "base_config": cfg.to_toml(base)})
    if path is not None:
        save_data(path, data)
    return data


# ---------------------------------------------------------------------------- simulations


def cached_run(config: Config, work: Path) -> tuple[dict, dict]:
    """(metrics, summary) of `cpi.sims.train.run(config)`, saved as a run directory under
    `work/runs` and reused."""
    run_dir = work / "runs" / config_digest(config)
    try:
        _, metrics, summary = load_run(run_dir)
        return metrics, summary
    except FileNotFoundError:
        pass
    from cpi.sims.train import run

    result = run(config)
    save_run(run_dir, config, result.metrics, result.summary)
    return result.metrics, result.summary


def cached_sweep(base: Config, grid: list[str], work: Path, label: str):
    """`run_sweep(base, grid)` saved under `work/sweeps` (completed groups reused)."""
    from cpi.sims.sweep import run_sweep, sweep_digest

    return run_sweep(base, grid, out=work / "sweeps" / f"{label}-{sweep_digest(base, grid)}")


def cached_arrays(path: Path, compute) -> dict:
    """The arrays saved at `path`, or `compute()` saved there first."""
    try:
        return load_data(path)
    except (OSError, ValueError, EOFError):
        data = compute()
        save_data(path, data)
        return data
