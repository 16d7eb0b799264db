"""The tiny world of the experiments' tests, and reading a drawn line back from a figure."""

from __future__ import annotations

import numpy as np

from cpi.experiments.cache import experiment_data
from cpi.figures.style import artist
from cpi.sims import config as cfg


def tiny_base() -> cfg.Config:
    """A small world (25 tokens) with 4 training examples: seconds per experiment."""
    return cfg.with_values(
        cfg.Config(),
        {"world.n_subjects": 8, "world.n_answers": 16, "mixture.n_train": 4, "mixture.n_test": 2,
         "mixture.n_aligned": 2, "train.steps": 6},
    )


def data_of(name, tmp_path, **params):
    """Experiment `name`'s data dict on the tiny world, saved under `tmp_path`."""
    return experiment_data(name, tiny_base(), tmp_path, **params)


def line_data(fig, gid):
    """(x, y) of the line with id `gid` in `fig`, as float arrays."""
    line = artist(fig, gid)
    return np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)
