"""The reliance summary and `cpi theory`'s report say what they mean (`cpi.report`).

The theory's regime (t -> infinity) and its finite-horizon prediction say why when they
disagree; every term the report prints is in the glossary of `cpi theory --help`; signs
print as signs; `cpi run` shows the first peak and the fall below it; float32's tie-level
wobble is no inversion; the two-key sweep map draws no drop where nothing inverts."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from cpi.cli import execute as main
from cpi.report import GLOSSARY, reliance_lines, signed
from cpi.sims import config as cfg
from cpi.theory.asymptotics import REGIMES
from cpi.theory.summary import INVERSION_TOL, fold_finish, fold_init, fold_update, inversion_tol, summarize


CONTRADICTION = ["mixture.n_train=100", "mixture.context_critical=0.4", "mixture.counterfactual=0.2",
                 "mixture.fact_recall=0.1", "train.steps=1000", "world.n_subjects=120", "world.n_answers=150"]
"""The issue's config: the flow's regime inverts (first peak at t = 3.2e7), 1000 steps do not."""

RECOVERS = ["knowledge.delta_c=0.32", "knowledge.delta_m=0.995"]
"""First peak 0.7535 at step 14, a fall to 0.7032 at step 51, then a rise past it to 0.7943."""


def _sets(overrides):
    return [arg for o in overrides for arg in ("--set", o)]


def _theory(capsys, overrides, *flags) -> str:
    assert main(["theory", *_sets(overrides), *flags]) == 0
    return capsys.readouterr().out


# ---------------------------------------------------------------------------- regime vs horizon


def test_the_contradiction_case_says_why_regime_and_horizon_differ(capsys):
    text = _theory(capsys, CONTRADICTION)
    assert "long-time regime of the gradient flow (t -> infinity): inversion with slow recovery" in text
    assert "finite horizon, 1000 steps at lr 1 (t = 1000)" in text
    assert "inversion (rise, then fall below an earlier peak): no" in text
    (why,) = [line for line in text.splitlines() if "regime and horizon disagree" in line]
    assert "first peaks at t = 3.22e7, after this horizon ends (t = 1000)" in why
    report = json.loads(_theory(capsys, CONTRADICTION, "--json"))
    assert report["flow_inversion"] and not report["inversion"]
    assert report["flow_first_peak_time"] == pytest.approx(3.22e7, rel=0.01) and report["horizon_time"] == 1000
    assert report["horizon_note"] in why and report["regime"] == "inversion with slow recovery"


@pytest.mark.parametrize("overrides, note", [
    ([], None),  # the default: both invert
    (["train.lr=100"], "lr 100 is above eta* = 12.8"),  # the flow inverts, steps of 100 overshoot and do not
    (["mixture.context_critical=0.25", "train.lr=30"], "depart from the gradient flow"),  # the reverse
])
def test_regime_and_horizon_agree_or_say_why(overrides, note):
    from cpi.sims.theory_report import theory_report

    report = theory_report(cfg.load(overrides=overrides))
    assert (report["flow_inversion"] != report["inversion"]) == (note is not None)
    if note is None:
        assert report["horizon_note"] is None
    else:
        assert note in report["horizon_note"]


# ---------------------------------------------------------------------------- glossary

GLOSSARY_CONFIGS = [
    [],
    CONTRADICTION,
    ["train.lr=100"],
    RECOVERS,
    ["mixture.context_critical=0.1", "train.steps=100"],
    ["train.optimizer=\"adam\"", "train.lr=0.05", "train.steps=50"],
    ['world.embeddings="random"', "world.dim=60", "train.steps=50"],
    ["world.n_subjects=60", "world.n_answers=100", "world.n_relations=2", "train.steps=50"],
]
SYMBOL = re.compile(r"dA/dt\(0\)|A\(t\)|\b[A-Za-z]+(?:_[A-Za-z]+)+\b|\b(?:rho|eta)\*|\bZ0\b|\brho\b(?!\*)|\blr\b"
                    r"|\bt(?= = )|\bLemma \d\b|\bProposition \d\b")


def report_terms(text: str) -> set[str]:
    """The terms a report prints: its symbols (m_C, rho*, A(t), ...), the regime it names, the
    words before the numbers of its reliance lines (initial, peak, first peak, falls to, ...),
    and, for each "label: value" line, the glossary term its label contains (None: none)."""
    names = dict(GLOSSARY)
    terms = set(SYMBOL.findall(text))
    for line in text.splitlines():
        line = line.strip()
        regime = re.match(r"long-time regime of the gradient flow \(t -> infinity\): (.+)$", line)
        if regime and not regime.group(1).startswith("n/a"):
            terms |= {"regime", regime.group(1)}
        summary_line = re.match(r"(initial|first peak) \d", line)
        if summary_line:
            for part in line.split(" -> "):
                terms.add(re.match(r"([a-z ]+?) -?\d", part).group(1))
            terms |= {"step"} if " step " in line else set()
        if ":" in line and not summary_line:
            label = re.sub(r"\(.*?\)", "", line.split(":")[0])
            label = re.sub(r"relation \d+", "relation j", label)
            found = [term for term in names if term in label]
            terms.add(max(found, key=len) if found else f"(no glossary term in the label {label!r})")
    return terms


@pytest.fixture(scope="module")
def theory_help():
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["theory", "--help"])
    return out.getvalue()


def test_the_help_glossary_defines_every_entry(theory_help):
    assert "glossary (every term the report prints):" in theory_help
    for term, _ in GLOSSARY:
        assert re.search(rf"^  {re.escape(term)}: \S", theory_help, re.M), term
    for regime in REGIMES:  # every regime the report can print
        assert regime in dict(GLOSSARY), regime


@pytest.mark.parametrize("overrides", GLOSSARY_CONFIGS, ids=lambda o: ",".join(o) or "default")
def test_every_term_the_report_prints_is_in_the_help(overrides, theory_help):
    from cpi.sims.theory_report import theory_report

    from cpi.report import format_theory

    config = cfg.load(overrides=overrides)
    text = format_theory(theory_report(config), config)
    terms = report_terms(text)
    assert {"initial", "peak", "final", "inversion"} <= terms
    defined = {term for term, _ in GLOSSARY}
    assert terms <= defined, sorted(terms - defined)
    for term in terms:
        assert re.search(rf"^  {re.escape(term)}: ", theory_help, re.M), term


# ---------------------------------------------------------------------------- signs


def test_signs_print_as_signs(capsys):
    assert (signed(-0.2971), signed(0.5), signed(0.0)) == ("- 0.2971", "+ 0.5", "+ 0")
    text = _theory(capsys, CONTRADICTION)
    assert "A(t) ~ 0.3248 ln t - 0.2971" in text and "+ -" not in text


# ---------------------------------------------------------------------------- first peak and fall


def test_reliance_lines_show_the_first_peak_and_the_fall_only_when_they_add_something():
    plain = summarize(np.array([0.3, 0.9, 0.6, 0.5]))  # first peak = peak, lowest = final
    assert len(reliance_lines(plain)) == 2
    assert len(reliance_lines(summarize(np.array([0.3, 0.4, 0.5])))) == 2
    recovers = summarize(np.array([0.3, 0.6, 0.5, 0.4, 0.55, 0.7, 0.8]))
    assert recovers["trough_reliance"] == 0.4 and recovers["trough_step"] == 3
    assert reliance_lines(recovers)[2] == ("first peak 0.6000 at step 1 -> falls to 0.4000 at step 3 "
                                           "-> final 0.8000, above the first peak")
    partial = summarize(np.array([0.3, 0.9, 0.5, 0.6]))
    assert reliance_lines(partial)[2].endswith("-> final 0.6000, below the first peak")


def test_cpi_run_prints_the_first_peak_and_the_fall_as_cpi_theory_does(tmp_path, capsys):
    assert main(["run", *_sets(RECOVERS), "--out", str(tmp_path / "run")]) == 0
    run_text = capsys.readouterr().out
    expected = ["  initial 0.0464 -> peak 0.7943 at step 300 -> final 0.7943",
                "  inversion (rise, then fall below an earlier peak): yes",
                "  first peak 0.7535 at step 14 -> falls to 0.7032 at step 51 -> final 0.7943, above the first peak"]
    lines = run_text.splitlines()
    start = lines.index(expected[0])
    assert lines[start:start + 3] == expected
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["trough_step"], round(summary["trough_reliance"], 4)) == (51, 0.7032)
    theory_text = _theory(capsys, RECOVERS)
    assert "\n".join(expected) in theory_text  # one function words both


# ---------------------------------------------------------------------------- dtype tolerance


def test_the_tolerance_follows_the_dtype():
    assert inversion_tol(np.float64) == INVERSION_TOL == inversion_tol()
    assert inversion_tol(np.float32) == pytest.approx(8 * np.finfo(np.float32).eps)


def test_fold_equals_summarize_at_the_float32_tolerance():
    import jax
    import jax.numpy as jnp

    wobble = np.array([0.2, 0.9, 0.9 - 6e-8, 0.9, 0.9 - 3e-7], dtype=np.float32)  # ties within 3 epsilons
    real = np.array([0.2, 0.9, 0.8, 0.85], dtype=np.float32)
    tol = inversion_tol(np.float32)
    for curve, inverts in ((wobble, False), (real, True)):
        s = summarize(curve, tol=tol)
        assert s["inversion"] == inverts
        assert summarize(curve)["inversion"]  # the float64 tolerance calls both an inversion
        fold = fold_init(1, jnp.float32)
        for t, r in enumerate(curve):
            fold = fold_update(fold, jnp.asarray(r), jnp.asarray([r]), t, tol=tol)
        folded = fold_finish(jax.tree_util.tree_map(np.asarray, fold))
        assert folded.pop("nonfinite_step") is None
        assert folded == s


@pytest.mark.parametrize("lr, inverts", [(100, False), (1, True)])
def test_float32_calls_an_inversion_what_float64_does(lr, inverts):
    """At lr 100 float32's M_C wobbles at tie level after step 1 (the same value rounded
    differently in two fusions): no inversion, as in float64; the default lr 1 inverts."""
    from cpi.sims.train import run

    for dtype in ("float64", "float32"):
        config = cfg.load(overrides=[f"train.lr={lr}", f"train.dtype={dtype}", "train.steps=60"])
        assert run(config, record_every=60).summary["inversion"] == inverts, dtype


# ---------------------------------------------------------------------------- sweep drop map


def test_the_drop_map_shows_no_drop_where_nothing_inverts():
    from cpi.figures.style import artist
    from cpi.figures.sweep_plot import NO_INVERSION_COLOR, plot_sweep

    rho = np.array([0.0, 0.0, 0.5, 0.5])
    lr = np.array([1.0, 2.0, 1.0, 2.0])
    summary = {"initial_reliance": np.full(4, 0.3), "peak_reliance": np.array([0.7, 0.7, 0.9, 0.95]),
               "final_reliance": np.array([0.3, 0.3, 0.6, 0.95]), "inversion": np.array([False, False, True, False])}
    fig = plot_sweep(["mixture.context_critical", "train.lr"], {"mixture.context_critical": rho, "train.lr": lr},
                     summary)
    drop = np.ma.filled(artist(fig, "drop_map").get_array(), np.nan).reshape(2, 2)  # rows: train.lr
    assert np.isnan(drop[:, 0]).all()  # rho = 0: nothing inverts, so no drop (it was 0.4)
    assert drop[0, 1] == pytest.approx(0.3) and np.isnan(drop[1, 1])
    mesh = artist(fig, "drop_map")
    assert mesh.get_cmap().get_bad().tolist() == list(__import__("matplotlib").colors.to_rgba(NO_INVERSION_COLOR))
    texts = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert texts == ["no inversion: no drop"]
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert any("where it inverts" in label for label in labels)
