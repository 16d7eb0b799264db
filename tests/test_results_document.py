"""docs/results.md is rendered from data: the committed document equals what the committed
summaries (figures/<name>.json) render through docs/templates/results.md, the template types no
result, every summary belongs to the current default config, and (slow) every summary equals a
recomputation of its experiment."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cpi.cli import execute
from cpi.experiments import registry
from cpi.experiments.cache import inputs_digest
from cpi.experiments.summaries import load_summaries, summary_text
from cpi.figures import document
from cpi.sims import config as cfg

from .conftest import xla_flags_at_xla_level

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_committed_document_is_what_the_summaries_render(at_root):
    rendered = document.render_document()
    committed = document.DOCUMENT.read_text(encoding="utf-8")
    assert committed == rendered, "docs/results.md is stale: run `cpi figures --docs` from the repository root"


def test_template_types_no_result(at_root):
    assert document.typed_numbers(document.TEMPLATE.read_text(encoding="utf-8")) == []


def test_typed_numbers_finds_a_hand_typed_result():
    text = "M_C rises to 0.899 at step 32 ({{inversion.peak:.3f}}); see section 4.4 and `--set a=0.35`."
    assert document.typed_numbers(text) == ["M_C rises to 0.899 at step 32 ( ); see   and  ."]


def test_every_experiment_has_a_headline_and_a_committed_summary(at_root):
    summaries = load_summaries(document.SUMMARIES)
    for experiment in registry.EXPERIMENTS:
        assert callable(getattr(experiment.module, "headline", None)), experiment.name
        assert experiment.name in summaries, f"figures/{experiment.name}.json missing"


def test_summaries_belong_to_the_default_config(at_root):
    """A summary computed from another config or other parameters (a stale one) is refused."""
    base = cfg.validate(cfg.Config())
    for path in sorted(document.SUMMARIES.glob("*.json")):
        summary = json.loads(path.read_text(encoding="utf-8"))
        experiment = registry.get(summary["experiment"])
        assert summary["inputs"] == inputs_digest(experiment.name, base, experiment.resolve({})), path
        assert path.read_text(encoding="utf-8") == summary_text(summary), f"{path} not written by save_summary"


def test_every_placeholder_names_an_existing_number(at_root):
    summaries = load_summaries(document.SUMMARIES)
    paper = document.load_paper()
    for experiment, name in document.placeholders(document.TEMPLATE.read_text(encoding="utf-8")):
        source = paper if experiment == "paper" else summaries[experiment]
        assert name in source, (experiment, name)


def test_render_reports_every_missing_number_and_bad_spec():
    with pytest.raises(document.RenderError) as info:
        document.render("{{a.x:.2f}} {{a.y:.2f}} {{b.z}} {{a.f}}", {"a": {"x": 1.0, "f": 0.5}})
    message = str(info.value)
    assert "'a' has no number 'y'" in message and "no summary for 'b'" in message and "{{a.f}}" in message


def test_render_formats_numbers():
    text = document.render("{{a.x:.3f}}, {{a.n}}, {{a.p:pct}}, {{a.t}}, {{paper.q:g}}",
                           {"a": {"x": 0.89916, "n": 32, "p": 0.25, "t": "never"}}, {"q": 0.3})
    assert text.endswith("0.899, 32, 25%, never, 0.3")


def test_paper_numbers_need_their_source(tmp_path):
    bad = tmp_path / "paper.toml"
    bad.write_text("[x]\nvalue = 1.0\n", encoding="utf-8")
    with pytest.raises(document.RenderError, match=r"\[x\] needs a value and its source"):
        document.load_paper(bad)
    assert all(isinstance(v, (int, float)) for v in document.load_paper(ROOT / document.PAPER).values())


def _copy_docs(tmp_path: Path) -> Path:
    for folder in ("docs", "figures"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("data", "*.png", "*.pdf"))
    return tmp_path


def test_figures_docs_command_renders_the_document(tmp_path, monkeypatch, capsys):
    root = _copy_docs(tmp_path)
    (root / "docs" / "results.md").write_text("stale\n", encoding="utf-8")
    monkeypatch.chdir(root)
    assert execute(["figures", "--docs"]) == 0
    assert (root / "docs" / "results.md").read_text(encoding="utf-8") == (ROOT / "docs" / "results.md").read_text(
        encoding="utf-8")


def test_figures_docs_command_refuses_a_missing_number_and_writes_nothing(tmp_path, monkeypatch, capsys):
    root = _copy_docs(tmp_path)
    summary = json.loads((root / "figures" / "inversion.json").read_text(encoding="utf-8"))
    del summary["numbers"]["peak"]
    (root / "figures" / "inversion.json").write_text(json.dumps(summary), encoding="utf-8")
    (root / "docs" / "results.md").write_text("before\n", encoding="utf-8")
    monkeypatch.chdir(root)
    assert execute(["figures", "--docs"]) == 2
    assert "'inversion' has no number 'peak'" in capsys.readouterr().err
    assert (root / "docs" / "results.md").read_text(encoding="utf-8") == "before\n"


def test_figures_docs_command_outside_the_repository(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert execute(["figures", "--docs"]) == 2
    assert "from the repository root" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


FLOAT32_REL = 1e-4
"""How close a transformer experiment's recomputed numbers must be (relative). The transformer
trains in float32, and a run's last bits depend on the stack of finetunings it was first
computed in (a stack equals one-by-one finetuning to float32 rounding), which the run cache
keeps: recomputed from scratch, bridge_mitigations' numbers moved by up to 4e-6 and
bridge_onset's by 7e-6. The toy computes in float64 and is held to 1e-6."""


def _close(a, b, rel: float = 1e-6) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-9)
    return a == b


RECOMPUTE = """
import sys
from cpi.cli import configure_process
configure_process()
from cpi.experiments.cache import experiment_data
from cpi.experiments.summaries import headline, summary_text
print(summary_text(headline(sys.argv[1], experiment_data(sys.argv[1], None, sys.argv[2]))))
"""
"""An experiment's headline recomputed as `cpi figures` computes it: in a process set up by the
entry point, at XLA's own optimisation level. The suite's level 0 (`conftest.TEST_OPTIMIZATION`)
changes the last bits of what the compiled code computes, and thousands of float32 training steps
amplify them: a pretrained δ_C of the bridge moved by up to 2e-3 at level 0."""


@pytest.mark.slow
@pytest.mark.parametrize("name", registry.NAMES)
def test_summary_equals_a_recomputation(name, tmp_path):
    """The committed numbers are what the experiment computes now (data recomputed from scratch
    in a fresh data directory: minutes for the bridge experiments)."""
    committed = json.loads((ROOT / "figures" / f"{name}.json").read_text(encoding="utf-8"))
    done = subprocess.run([sys.executable, "-c", RECOMPUTE, name, str(tmp_path)], capture_output=True, text=True,
                          env=dict(os.environ, XLA_FLAGS=xla_flags_at_xla_level()), cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = json.loads(done.stdout)
    assert fresh["inputs"] == committed["inputs"]
    assert fresh["numbers"].keys() == committed["numbers"].keys()
    rel = FLOAT32_REL if name.startswith("bridge_") else 1e-6  # the transformer experiments
    differ = {k: (v, fresh["numbers"][k]) for k, v in committed["numbers"].items()
              if not _close(v, fresh["numbers"][k], rel)}
    assert not differ, differ


def test_a_new_version_of_an_experiment_computes_its_data_again(tmp_path, monkeypatch):
    """Saved data are reused while the inputs key matches; raising an experiment's `version`
    (its computation changed) changes the key, so `cpi figures` computes the data again instead
    of summarising data the earlier code saved."""
    import dataclasses

    from cpi.experiments import cache

    base = cfg.validate(cfg.Config())
    experiment = registry.get("three_steps")
    first = inputs_digest("three_steps", base, experiment.resolve({}))
    calls = []
    real = experiment.module.compute
    monkeypatch.setattr(experiment.module, "compute", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache.experiment_data("three_steps", base, tmp_path)
    cache.experiment_data("three_steps", base, tmp_path)
    assert len(calls) == 1  # the second call reused the saved data
    bumped = {**registry._BY_NAME, "three_steps": dataclasses.replace(experiment, version=2)}
    monkeypatch.setattr(registry, "_BY_NAME", bumped)
    assert inputs_digest("three_steps", base, experiment.resolve({})) != first
    assert not cache.is_saved("three_steps", base, tmp_path)
    cache.experiment_data("three_steps", base, tmp_path)
    assert len(calls) == 2
