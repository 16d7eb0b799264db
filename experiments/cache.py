"""Saved experiment data: each experiment's data dict in `<data_dir>/<name>.npz`, reused while
its inputs are unchanged.

The file is written with deterministic bytes and carries `inputs`, the keyed store's key
(`cpi.core.store.EXPERIMENT`) of the experiment name, the base config's TOML and the
experiment's resolved parameters; a later call with the same inputs loads it instead of
computing. The simulations behind the data are kept under `<data_dir>/sims`
(`cpi.experiments.simulations`). This module looks experiments up in the registry; the
registry and the experiments never import it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from cpi.core import store
from cpi.sims import config as cfg
from cpi.sims.config import Config

from .registry import get
from .simulations import data_bytes, load_data, normalise, save_data

__all__ = ["inputs_digest", "is_saved", "experiment_data", "data_bytes", "load_data", "save_data", "normalise"]


def inputs_digest(name: str, base: Config, params: dict) -> str:
    """The key (`cpi.core.store.EXPERIMENT`) of the experiment name, the base config's TOML, the
    experiment's resolved parameters and, from its second version on, the version of its
    computation (`Experiment.version`): the key under which saved data is reused."""
    payload = {"experiment": name, "config": cfg.to_toml(base), "params": params}
    version = get(name).version
    if version != 1:
        payload["version"] = version
    return store.EXPERIMENT.key(payload)


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

    With `data_dir`, `<data_dir>/<name>.npz` is reused when its inputs key matches (unless
    `force`), and otherwise computed and saved there. The dict carries `figure` (the name),
    `inputs` (the key) and `base_config` (TOML) besides what the computation returns."""
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
