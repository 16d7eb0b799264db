"""`cpi predict`: the toy's quantities measured in transformer runs, the toy's predictions, and
their scores (`cpi.experiments.prediction`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cpi.bridge import config as bcfg
from cpi.cli import execute
from cpi.experiments import prediction
from cpi.sims import config as cfg
from cpi.sims.saved import read
from cpi.sims.theory_inputs import knowledge_of
from cpi.theory.closed_forms import paper_quantities


def _measured(seed, filter, fall, first_change=0.1, rise=0.3):
    return dict(seed=seed, filter=filter, fall=fall, first_change=first_change, rise=rise)


def _predicted(toy_fall, rises=True, own=None, toy_rise=0.3):
    return dict(toy_fall=toy_fall, rises_initially=rises, rises_initially_by_margins=own, toy_rise=toy_rise)


def test_score_counts_what_the_toy_gets_right():
    measured = [_measured(0, 0.0, 0.4), _measured(0, 0.25, 0.2), _measured(0, 0.5, 0.1, first_change=-0.01, rise=0.0),
                _measured(1, 0.0, 0.3), _measured(1, 0.25, 0.35)]
    predicted = [_predicted(0.3, own=True), _predicted(0.2), _predicted(0.1, rises=True, toy_rise=0.0),
                 _predicted(0.2, own=False), _predicted(0.1, rises=False)]
    s = prediction.score(measured, predicted)
    assert s["runs"] == 5
    assert s["initial_direction"] == pytest.approx(3 / 5)  # runs 2 (rises, toy says so) and 4 wrong
    assert s["initial_direction_by_margins"] == pytest.approx(1 / 2) and s["initial_direction_by_margins_runs"] == 2
    assert s["rise"] == 1.0
    assert s["fall_order_tau"] == pytest.approx(1.0) and s["fall_order_groups"] == 1  # seed 0: same order; seed 1 < 3
    # filter steps: seed 0 (0 -> .25 -> .5) both fall twice; seed 1 transformer rises, toy falls
    assert s["filter_response"] == pytest.approx(2 / 3) and s["filter_pairs"] == 3


def test_the_share_needing_context_after_filtering():
    """Filtering drops the examples with the lowest no-context loss first: those that do not
    need their context go before those that do."""
    config = bcfg.with_values(bcfg.load(), {"mixture.n_train": 8, "mixture.context_critical": 0.5,
                                            "mixture.filter": 0.25})
    summary = {"context_needed_share": 0.5, "counts": {"C": 4, "CS": 2, "CF": 0, "S": 0}}
    assert prediction._fraction_needing_context(summary, config) == pytest.approx(4 / 6)
    summary = {"context_needed_share": 0.875, "counts": {"C": 4, "CS": 2, "CF": 0, "S": 0}}
    assert prediction._fraction_needing_context(summary, config) == pytest.approx(1.0)  # min(7, 6) / 6
    assert math.isnan(prediction._fraction_needing_context({"counts": summary["counts"]}, config))


@pytest.mark.parametrize("which", ["bridge_run", "bridge_sweep"])
def test_cpi_predict_measures_and_predicts(result_dirs, which, capsys):
    assert execute(["predict", str(result_dirs[which]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    saved = read(result_dirs[which])
    assert out["scores"]["runs"] == len(out["runs"]) == (1 if which == "bridge_run" else len(saved.rows))
    for row in out["runs"]:
        # the toy's rho* at the measured strengths is Lemma 4's closed form there
        toy = cfg.with_values(cfg.Config(), {"knowledge.delta_c": row["delta_c"], "knowledge.delta_m": row["delta_m"]})
        assert row["toy_rho_star"] == pytest.approx(paper_quantities(knowledge_of(toy))["rho_star"], rel=1e-12)
        assert row["rises_initially"] == (row["rho_used"] > row["toy_rho_star"])
        assert 0.0 <= row["rho"] <= 1.0 and 0.0 <= row["rho_hat"] <= 1.0
    assert execute(["predict", str(result_dirs[which])]) == 0
    text = capsys.readouterr().out
    assert "scores over" in text and "Kendall" in text


def test_cpi_predict_refuses_a_toy_directory(result_dirs, capsys):
    assert execute(["predict", str(result_dirs["run"])]) == 2
    assert "toy run" in capsys.readouterr().err


def test_the_calibrated_toy_matches_the_first_interval():
    measured = dict(seed=0, filter=0.0, delta_c=0.3, delta_m=0.9, rho=0.5, rho_hat=0.5, rho_star_margins=0.2,
                    initial=0.3, first_change=0.05, interval=5, steps=list(range(0, 51, 5)), rise=0.4, fall=0.2)
    p = prediction.predict(measured)
    assert p["toy_matched"] and p["rho_used"] == 0.5 and p["rises_initially_by_margins"] is True
    assert p["toy_rise"] >= 0.05 - 1e-12  # the change over the first interval alone is 0.05
    assert np.isfinite(p["toy_fall"])


def test_bridge_prediction_experiment_is_cpi_predicts_measurement_of_each_run(tmp_path):
    """The experiment at a tiny scale: its measured values for a run are `measure` of the same
    config run on its own (`cpi.bridge.run.run`), its predictions `predict` of those, and its
    headline reads the data."""
    from cpi.bridge.run import run
    from cpi.experiments.bridge_prediction import headline
    from cpi.experiments.cache import experiment_data

    from .test_bridge_model import TINY

    params = dict(seeds=(0,), overrides=tuple(TINY), rhos=(0.25, 0.5, 1.0), steps=10, filters=(0.0, 0.5))
    data = experiment_data("bridge_prediction", None, tmp_path, **params)
    config = bcfg.load(overrides=[*TINY, "train.optimizer=gd", "train.lr=3", "train.steps=10",
                                  "mixture.context_critical=0.5"])
    metrics, summary = run(config, cache_dir=tmp_path / "cache")
    m = prediction.measure(prediction.Run("direct", config, summary, metrics))
    for key in ("delta_c", "delta_m", "rho", "rho_hat", "first_change", "fall"):
        assert data[f"rho_{key}"][0, 1] == pytest.approx(m[key], rel=1e-5, abs=1e-6), key
    p = prediction.predict(m)
    assert data["rho_toy_rho_star"][0, 1] == pytest.approx(p["toy_rho_star"], rel=1e-6)
    numbers = headline(data)
    assert numbers["rho_runs"] == 3 and numbers["filter_runs"] == 2 and numbers["seeds"] == 1
