"""The public API of `cpi` (re-exported from `cpi/__init__.py`): load a config, run it, sweep
it, reload what was saved, and ask the theory what it predicts, the same functions the `cpi`
commands call.

    >>> import cpi
    >>> config = cpi.load_config(overrides=["mixture.context_critical=0.4"])
    >>> result = cpi.run(config)
    >>> result.summary["peak_reliance"], cpi.predict(config)["peak_reliance"]
"""

from __future__ import annotations

from pathlib import Path

from .sims.config import Config

__all__ = ["load_config", "run", "sweep", "load_run", "load_sweep", "predict"]


def load_config(path: str | Path | None = None, overrides=()) -> Config:
    """The defaults, then the TOML file at `path` (if any), then `overrides` ("section.key=value"
    strings, as `--set` takes them), validated and checked against the vocabulary (as `cpi run`
    loads its config). Raises `cpi.core.errors.ConfigError` naming the bad key or value."""
    from .sims import config as cfg
    from .sims.world import check_vocabulary

    config = cfg.load(path, list(overrides))
    check_vocabulary(config)
    return config


def run(config: Config, *, out: str | Path | None = None, record_every: int = 1, force: bool = False,
        progress: bool = False):
    """Train the toy model on `config` (`cpi.sims.train.run`): a `RunResult` with `metrics`
    (arrays over `metrics["step"]`), `summary` (from every step), `world` and `params`. With
    `out`, also save it there as `cpi run --out` does (config.toml, metrics.npz, summary.json),
    refusing (ConfigError) a directory that holds another config's run unless `force`, or
    that another process is writing."""
    from .core.dir_lock import claim_dir
    from .sims.results import check_out_dir, check_run_dir, save_run
    from .sims.train import run as train

    if out is None:
        return train(config, progress=progress, record_every=record_every)
    check_out_dir(out)
    check_run_dir(out, config, force=force)
    with claim_dir(out):
        check_run_dir(out, config, force=force)
        result = train(config, progress=progress, record_every=record_every)
        save_run(out, config, result.metrics, result.summary)
    return result


def sweep(config: Config, grid=(), *, seeds: int = 1, out: str | Path | None = None, record_every: int = 1,
          summaries_only: bool = False, engine: str = "fast", force: bool = False, progress: bool = False):
    """Train every point of `grid` (specs "section.key=start:stop:num" or "section.key=v1,v2,...")
    over the base `config`, `seeds` seeds each, and save the sweep directory `out` (default
    sweeps/<hash>), resuming from its saved chunks (`cpi.sims.sweep.run_sweep`): a `SweepResult`."""
    from .sims.sweep import run_sweep

    return run_sweep(config, grid, seeds, out, progress=progress, record_every=record_every,
                     summaries_only=summaries_only, engine=engine, force=force)


def load_run(path: str | Path):
    """A saved run, toy (`cpi run`) or transformer (`cpi bridge`): a `cpi.sims.saved.SavedRun`
    with `config`, `metrics`, `summary`. Raises ConfigError naming the directory when it holds
    no complete run."""
    from .core.errors import ConfigError
    from .sims.saved import SavedRun, read

    saved = read(path)
    if not isinstance(saved, SavedRun):
        raise ConfigError(f"{str(path)!r} holds a sweep, not a run; load it with cpi.load_sweep")
    return saved


def load_sweep(path: str | Path):
    """A saved sweep, toy (`cpi sweep`) or transformer (`cpi bridge --grid`): a
    `cpi.sims.saved.SavedSweep` with `config` (the base), `keys`, one summary row per point
    (`rows`) and its metrics read when asked. Raises ConfigError naming the directory when it
    holds no complete sweep."""
    from .core.errors import ConfigError
    from .sims.saved import SavedSweep, read

    saved = read(path)
    if not isinstance(saved, SavedSweep):
        raise ConfigError(f"{str(path)!r} holds a run, not a sweep; load it with cpi.load_run")
    return saved


def predict(config: Config) -> dict:
    """What the theory says of `config` (`cpi theory --json`): the paper's closed forms (Z0,
    m_C, m_CS, rho_star, eta_star), the regime of the gradient flow, and the exact reduced-
    dynamics prediction of `cpi run`'s summary where one exists (`exact` says whether it is)."""
    from .sims.theory_report import theory_report

    return theory_report(config)
