"""cpi: the reference simulator of context-parametric inversion (Goyal et al., ICLR 2025).

The public API, re-exported lazily from `cpi.api` (so that `import cpi`, and the `cpi` command's
start-up, import nothing heavy until one of them is used):

- `load_config(path=None, overrides=())`: a validated config from a TOML file and `--set`-style overrides;
- `run(config)`: train the toy model on one config (metrics, summary, final parameters);
- `sweep(config, grid)`: train a grid of configs and save the sweep directory;
- `load_run(path)` and `load_sweep(path)`: a saved run or sweep of any kind (toy or transformer);
- `predict(config)`: the theory's report for a config (closed forms, regime, exact prediction).

The layers are subpackages: `cpi.theory` (mathematics), `cpi.sims` (the simulator),
`cpi.bridge` (the transformer), `cpi.experiments`, `cpi.figures`; `cpi.cli` is the command.
Internals stay importable, but only the names above are the documented surface.
"""

from pathlib import Path

__all__ = ["load_config", "run", "sweep", "load_run", "load_sweep", "predict"]

_checkout = Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "sims" / "__init__.py").is_file():
    # A source checkout keeps the layers' folders (theory/, sims/, ...) beside this one; an
    # install maps them into this namespace (pyproject.toml's package-dir), and this does the
    # same for the checkout itself, so that `python -m pytest` from its root imports its files.
    __path__.append(str(_checkout))


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'cpi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
