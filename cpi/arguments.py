"""What the `cpi` commands share: exit statuses, the config flags (`--config`, `--set`) and
their loading with every check, `--record-every`, `--out` checks, and the one-line
description of a run.

Exit status: 0 success, 2 bad input (the message names the key or path, the bad value and
what is allowed; nothing is written), 1 anything else, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cpi.core import store
from cpi.sims import config as cfg
from cpi.sims.results import check_out_dir, check_out_file

__all__ = [
    "EXIT_FAILURE", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "KEYS_HINT", "add_config_arguments", "load_config",
    "add_record_every", "add_force", "check_out_dir", "check_out_file", "default_run_dir", "training_counts",
    "describe_run", "end_process",
]

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

KEYS_HINT = "`cpi config` lists every key with its default, allowed values and meaning"


def end_process(status: int) -> None:
    """Flush the standard streams and end the process at once with `status`, skipping the
    interpreter's teardown (and whatever threads still run)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a closed pipe (`cpi ... | head`): nothing more can reach the reader
            pass
    os._exit(status)


def add_config_arguments(parser: argparse.ArgumentParser, what: str = "the config") -> None:
    """`--config FILE.toml` and repeatable `--set SECTION.KEY=VALUE`."""
    parser.add_argument(
        "--config", metavar="FILE.toml",
        help=f"TOML file with [world], [knowledge], [mixture], [train] sections: {what} (default: the defaults)",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable), e.g. --set mixture.context_critical=0.35; " + KEYS_HINT,
    )


def load_config(args: argparse.Namespace) -> cfg.Config:
    """The config of `--config` and `--set`, validated (types, ranges, mixture, filter) and
    checked against the vocabulary; raises ConfigError otherwise."""
    from cpi.sims.world import check_vocabulary

    config = cfg.load(args.config, args.overrides)
    check_vocabulary(config)
    return config


def add_record_every(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--record-every", type=int, default=1, metavar="N",
        help="record the metrics every N steps and at the last step (default 1: every step); "
             "the summary always comes from every step",
    )


def add_force(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--force", action="store_true", help=what)


def default_run_dir(config: cfg.Config) -> Path:
    """runs/<key of the resolved config's TOML> (`cpi.core.store.RUN`)."""
    return Path("runs") / store.RUN.key(cfg.to_toml(config))


def training_counts(config: cfg.Config) -> dict[str, int]:
    """Training examples per group (C, CS, CF, S) after `mixture.filter`."""
    counts = cfg.group_counts(config.mixture)
    merged = {"C": counts["C"], "CS": counts["CS"], "CF": counts["CF"], "S": counts["S_seen"] + counts["S_unseen"]}
    if config.mixture.filter == 0:
        return merged
    import numpy as np

    from cpi.sims.world import GROUPS, build_world

    group = build_world(config).train.group
    return {name: int(np.sum(group == i)) for i, name in enumerate(GROUPS)}


def describe_run(config: cfg.Config) -> str:
    """One line: the training examples (after filtering) per group, knowledge, optimiser."""
    counts = training_counts(config)
    mix = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    n = sum(counts.values())
    points = f"{n} training examples" if n == config.mixture.n_train else (
        f"{n} training examples after filtering {config.mixture.n_train}")
    k, t, p = config.knowledge, config.train, config.pretrain
    knowledge = (f"delta_c {k.delta_c:g}, delta_m {k.delta_m:g}" if k.pretraining == "constructed" else
                 f"W_V learned ({p.steps} steps at lr {p.lr:g}, fact_repeats {p.fact_repeats}, "
                 f"context_repeats {p.context_repeats})")
    return f"{points} ({mix}); {knowledge}; lr {t.lr:g}, value_lr {t.value_lr:g}, {t.steps} steps, {t.dtype}"
