"""The full-finetuning experiment (issue 26 item 5): its headline's spreads and comparisons, and
(slow) the experiment at a tiny scale returns what its figure reads, each run that of its own config."""

import numpy as np
import pytest

from cpi.bridge import config as bcfg
from cpi.bridge.run import run
from cpi.experiments import bridge_finetuning as experiment
from cpi.experiments.cache import experiment_data

from .bridge_figure_data import tiny_bridge_finetuning
from .test_bridge_model import TINY


def test_headline_reports_every_setting_with_its_spread():
    d = tiny_bridge_finetuning()
    h = experiment.headline(d)
    assert h["seeds"] == 2 and h["n_lrs"] == 3 and h["lr_2"] == 0.01 and h["epochs"] == 25 * 16 / 64
    assert h["attention_1_fall_mean"] == pytest.approx(d["drop"][0, 1].mean())
    assert h["attention_1_fall_sd"] == pytest.approx(d["drop"][0, 1].std(ddof=1))
    assert h["all_1_fall_mean"] == 0.0 and h["all_1_falling_seeds"] == 0
    assert h["lrs_told_apart"] == "0.001, 0.003, 0.01"
    assert h["attention_largest_fall_lr"] == 0.01


@pytest.mark.slow
def test_experiment_at_a_tiny_scale_returns_what_its_figure_reads(tmp_path):
    d = experiment_data("bridge_finetuning", None, tmp_path, seeds=(0, 1), overrides=tuple(TINY),
                        lrs=(0.003, 0.03), batch_size=4, steps=10, eval_every=5)
    tiny_data = tiny_bridge_finetuning()
    assert not set(tiny_data) - set(d)
    for key, value in tiny_data.items():
        assert np.ndim(d[key]) == np.ndim(value), key
    assert d["reliance"].shape[:3] == (2, 2, 2)
    config = bcfg.load(overrides=[*TINY, "train.trainable='all'", "train.lr=0.03", "train.optimizer='adamw'",
                                  "train.weight_decay=0.01", "train.batch_size=4", "train.seed=1"])
    metrics, _ = run(config, cache_dir=tmp_path / "sims" / "checkpoint")
    np.testing.assert_allclose(d["reliance"][1, 1, 1], metrics["reliance"], atol=1e-5)
    experiment.headline(d)
