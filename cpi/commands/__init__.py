"""One module per `cpi` command, each with `add_parser(subparsers)` that registers it and
sets its function; `COMMANDS` is the order `cpi --help` lists them in."""

from . import bridge, compare, config, explore, export, figures, plot, predict, run, sweep, theory, tour

COMMANDS = (run, theory, sweep, bridge, predict, figures, plot, explore, tour, compare, export, config)
