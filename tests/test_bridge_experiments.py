"""The bridge experiments at a tiny scale: each returns the arrays its figure reads, one number
of each checked against an independent path (a run of `cpi.bridge.run.run`, `rho_star` of the
margins, the toy's own run), and each figure draws from the saved data."""

import numpy as np
import pytest

import cpi.figures
from cpi.bridge import config as bcfg
from cpi.bridge import corpus, measure, pretrain
from cpi.bridge.run import run
from cpi.experiments.cache import experiment_data, load_data, save_data
from cpi.experiments.calibration import calibrate, toy_initial
from cpi.experiments.configs import with_values
from cpi.figures.style import artist
from cpi.sims.config import Config
from cpi.sims.theory_inputs import reduced_trajectory
from cpi.theory.closed_forms import rho_star

from .bridge_figure_data import BRIDGE_TINY
from .test_bridge_model import TINY

OVERRIDES = tuple(TINY)
PARAMS = {
    "bridge_inversion": dict(seeds=(0,), overrides=OVERRIDES),
    "bridge_phase": dict(seeds=(0,), overrides=OVERRIDES, rhos=(0.0, 0.5), steps=10, toy_n_rho=3),
    "bridge_mitigations": dict(seeds=(0,), overrides=OVERRIDES),
    "bridge_depth": dict(seeds=(0,), overrides=OVERRIDES, layers=(1, 2)),
}


class Computed(dict):
    """Each bridge experiment's data at the tiny scale, computed on first use and saved in one
    data directory (one work directory: the experiments share the seed-0 pretrained model)."""

    def __init__(self, data_dir):
        super().__init__()
        self.data_dir = data_dir

    def __missing__(self, name):
        self[name] = experiment_data(name, None, self.data_dir, **PARAMS[name])
        return self[name]


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    data = Computed(tmp_path_factory.mktemp("data"))
    return data.data_dir, data


SLOW = {"bridge_mitigations", "bridge_depth"}
"""Experiments whose tiny computation compiles several finetunings (4 settings; 2 depths):
run with -m slow; their figures are drawn from saved tiny data in the default suite."""


def _cache(data_dir):
    return data_dir / "sims" / "checkpoint"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in PARAMS])
def test_each_experiment_returns_what_its_figure_reads(computed, name):
    _, data = computed
    tiny = BRIDGE_TINY[name]()
    missing = set(tiny) - set(data[name])
    assert not missing
    for key, value in tiny.items():
        assert np.ndim(data[name][key]) == np.ndim(value), key


def test_inversion_is_the_single_run_of_its_config(computed):
    data_dir, data = computed
    d = data["bridge_inversion"]
    metrics, summary = run(bcfg.load(overrides=list(OVERRIDES)), cache_dir=_cache(data_dir))
    np.testing.assert_array_equal(d["reliance"][0], metrics["reliance"])
    np.testing.assert_array_equal(d["attention_context_layers"][0, 1], metrics["attention_context_l2"])
    assert d["rho_star"][0] == summary["rho_star"] or np.isnan(summary["rho_star"])


def test_phase_rho_star_is_the_closed_form_of_the_margins(computed):
    data_dir, data = computed
    d = data["bridge_phase"]
    assert list(d["rho"]) == [0.0, 0.5]
    m_c, m_cs = d["m_C"][0], d["m_CS"][0]
    expected = rho_star(m_c, m_cs) if m_c > 0 > m_cs else np.nan
    np.testing.assert_equal(d["rho_star"][0], expected)
    config = bcfg.load(overrides=[*OVERRIDES, "train.optimizer=gd", "train.lr=3.0", "mixture.context_critical=0.5"])
    world = corpus.build_corpus(config)
    model, cached = pretrain.pretrained(config, world.vocab, _cache(data_dir))
    knowledge = measure.knowledge(model, world)  # the margins read off the checkpoint again
    assert cached and knowledge["m_C"] == m_c and knowledge["m_CS"] == m_cs
    np.testing.assert_array_equal(d["initial_change"][0], d["reliance"][0, :, 1] - d["reliance"][0, :, 0])
    np.testing.assert_array_equal(d["rise"][0], d["reliance"][0].max(axis=1) - d["reliance"][0, :, 0])


@pytest.mark.slow
def test_mitigations_and_depth_runs(computed):
    data_dir, data = computed
    d = data["bridge_mitigations"]
    assert d["reliance"].shape[:2] == (4, 1) and d["toy_reliance"].shape[:2] == (4, 1)
    from cpi.sims.train import run as toy_run

    inversion = data["bridge_inversion"]  # the same default runs: the same calibrated toy
    assert d["toy_lr"][0] == inversion["toy_lr"][0]
    np.testing.assert_array_equal(d["toy_reliance"][0, 0], inversion["toy_reliance"][0])
    config = calibrate(Config(), inversion["delta_c"][0], inversion["delta_m"][0], 0.5,
                       inversion["reliance"][0, 1] - inversion["reliance"][0, 0])["config"]
    every = with_values(config, train__steps=int(d["step"][-1]), train__value_lr=config.train.lr)
    np.testing.assert_allclose(d["toy_reliance"][3, 0], toy_run(every).metrics["reliance"], atol=1e-12)
    np.testing.assert_allclose(d["drop"], np.max(np.maximum.accumulate(d["reliance"], -1) - d["reliance"], -1))
    depth = data["bridge_depth"]
    assert depth["reliance"].shape[:2] == (2, 1)
    assert depth["attention_context"][1, 0, 0] == data["bridge_inversion"]["attention_context"][0, 0]


def test_inversion_beside_its_calibrated_toy(computed):
    """The toy at the run's measured strengths: its M_C(0) is the closed form of the strengths, its
    step size reproduces the run's change over the first recorded interval, and the reduced
    dynamics at that step size is the toy curve the data hold."""
    _, data = computed
    d = data["bridge_inversion"]
    assert not d["toy_clamped"][0] and d["toy_delta_c"][0] == d["delta_c"][0] and d["toy_delta_m"][0] == d["delta_m"][0]
    np.testing.assert_allclose(d["toy_initial"], toy_initial(d["delta_c"], d["delta_m"]), atol=1e-12)
    interval = int(d["step"][1] - d["step"][0])
    assert d["toy_interval"] == interval
    target = d["reliance"][0, 1] - d["reliance"][0, 0]
    if d["toy_matched"][0]:
        change = d["toy_reliance"][0, interval] - d["toy_reliance"][0, 0]
        assert change == pytest.approx(target, abs=1e-8)
    c = calibrate(Config(), d["delta_c"][0], d["delta_m"][0], 0.5, target, interval)
    assert c["lr"] == d["toy_lr"][0]
    np.testing.assert_array_equal(d["toy_reliance"][0],
                                  reduced_trajectory(c["config"], steps=int(d["step"][-1]))["reliance"])


def test_rise_onset_interpolates_where_the_change_turns_positive():
    from cpi.experiments.bridge_phase import rise_onset

    assert rise_onset([0.0, 0.1, 0.2], [-0.02, 0.02, 0.1]) == pytest.approx(0.05)
    assert rise_onset([0.0, 0.1], [0.01, 0.02]) == 0.0
    assert np.isnan(rise_onset([0.0, 0.1], [-0.01, -0.02]))


@pytest.mark.parametrize("name", list(PARAMS))
def test_each_figure_draws_the_saved_data(computed, name, tmp_path):
    data_dir, data = computed
    if name in SLOW:  # tiny data of the figure's shape, saved and loaded as computed data are
        save_data(tmp_path / f"{name}.npz", BRIDGE_TINY[name]())
        saved = load_data(tmp_path / f"{name}.npz")
    else:
        data[name]
        saved = load_data(data_dir / f"{name}.npz")
    fig = cpi.figures.plot(name, saved)
    gid = {"bridge_inversion": "reliance_mean", "bridge_phase": "rise_0",
           "bridge_mitigations": "toy_reliance_0_mean", "bridge_depth": "reliance_L1_mean"}[name]
    y = artist(fig, gid).get_ydata()
    expected = {"bridge_inversion": lambda: saved["reliance"].mean(axis=0),
                "bridge_phase": lambda: saved["rise"][0],
                "bridge_mitigations": lambda: saved["toy_reliance"][0].mean(axis=0),
                "bridge_depth": lambda: saved["reliance"][0].mean(axis=0)}[name]()
    np.testing.assert_array_equal(y, expected)
