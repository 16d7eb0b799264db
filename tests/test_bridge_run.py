"""A tiny bridge run end to end: the checkpoint cache, δ_C, δ_M and the margins against a
direct computation, `cpi bridge`'s files, byte-identical reruns and bad input."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from cpi.bridge import config as bcfg
from cpi.bridge import corpus, measure, pretrain
from cpi.bridge.model import answer_logits
from cpi.cli import execute

from .test_bridge_model import TINY, tiny

SETS = [arg for item in TINY for arg in ("--set", item)]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """(config, world, model, cache dir) of the tiny config, pretrained once for the module."""
    cache = tmp_path_factory.mktemp("bridge-cache")
    config = tiny()
    world = corpus.build_corpus(config)
    model, cached = pretrain.pretrained(config, world.vocab, cache)
    assert not cached
    return config, world, model, cache


def _softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _last_logits(model, tokens):
    """The logits at the last position, one sequence at a time (no vmap)."""
    return np.stack([np.asarray(model(jnp.asarray(t))[0][-1]) for t in tokens])


def test_checkpoint_reloads_to_identical_outputs(pretrained):
    config, world, model, cache = pretrained
    again, cached = pretrain.pretrained(config, world.vocab, cache)
    assert cached
    tokens = jnp.asarray(world.conflict.tokens)
    np.testing.assert_array_equal(np.asarray(answer_logits(model, tokens)), np.asarray(answer_logits(again, tokens)))
    info = json.loads((pretrain.checkpoint_dir(config, cache) / "pretrain.json").read_text())
    assert info["digest"] == bcfg.pretrain_digest(config) and len(info["loss"]) == config.pretrain.steps
    # another pretraining config or seed has another digest; finetuning keys share it
    assert pretrain.load(tiny("pretrain.steps=21"), world.vocab, pretrain.checkpoint_dir(config, cache)) is None
    assert bcfg.pretrain_digest(tiny("train.seed=1")) != bcfg.pretrain_digest(config)
    assert bcfg.pretrain_digest(tiny("train.lr=0.1", "mixture.context_critical=0.25")) == bcfg.pretrain_digest(config)


def test_knowledge_matches_a_direct_computation(pretrained):
    config, world, model, _ = pretrained
    got = measure.knowledge(model, world)
    c, s, a = world.conflict.context, world.conflict.tokens[:, 1], world.conflict.fact
    rows = np.arange(len(c))
    context_only = [[ci, corpus.NULL, corpus.RELATION] for ci in c]
    subject_only = [[corpus.NULL, si, corpus.RELATION] for si in s]
    assert got["delta_c"] == pytest.approx(_softmax(_last_logits(model, context_only))[rows, c].mean(), rel=1e-5)
    assert got["delta_m"] == pytest.approx(_softmax(_last_logits(model, subject_only))[rows, a].mean(), rel=1e-5)
    train = world.train
    v_c = _last_logits(model, [[ci, corpus.NULL, corpus.RELATION] for ci in train.context]).astype(np.float64)
    v_s = _last_logits(model, [[corpus.NULL, si, corpus.RELATION] for si in train.tokens[:, 1]]).astype(np.float64)
    margins = []
    for vc, vs, target in zip(v_c, v_s, train.target):
        e = np.zeros_like(vc)
        e[target] = 1.0
        margins.append((vc - vs) @ (e - _softmax(0.5 * vc + 0.5 * vs)))
    margins = np.array(margins)
    m_c, m_cs = margins[train.group == 0].mean(), margins[train.group == 1].mean()
    assert got["m_C"] == pytest.approx(m_c, rel=1e-4, abs=1e-5)
    assert got["m_CS"] == pytest.approx(m_cs, rel=1e-4, abs=1e-5)
    if m_c > 0 > m_cs:
        assert got["rho_star"] == pytest.approx(abs(m_cs) / (m_c + abs(m_cs)), rel=1e-4)
    # the paper's section 4.4 criterion: context-bearing examples the model gets wrong without the context
    p_no_context = _softmax(v_s)[np.arange(len(train.target)), train.target]
    bearing = train.group < 3
    assert got["context_needed_share"] == pytest.approx(np.mean(p_no_context[bearing] < 0.5))


def test_cpi_bridge_writes_the_toys_files_and_reruns_byte_identically(pretrained, tmp_path, capsys):
    config, world, model, cache = pretrained
    first, second = tmp_path / "a", tmp_path / "b"
    assert execute(["bridge", *SETS, "--out", str(first), "--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "context reliance M_C" in out and "predicted rho*" in out and "from the cache" in out
    assert sorted(p.name for p in first.iterdir()) == ["config.toml", "metrics.npz", "summary.json"]
    assert execute(["bridge", *SETS, "--out", str(second), "--cache", str(cache)]) == 0
    for name in ("config.toml", "metrics.npz", "summary.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert bcfg.load(first / "config.toml") == config
    summary = json.loads((first / "summary.json").read_text())
    for key in ("initial_reliance", "peak_reliance", "peak_step", "final_reliance", "inversion", "inversion_005",
                "delta_c", "delta_m", "m_C", "m_CS", "rho_star"):
        assert key in summary
    with np.load(first / "metrics.npz") as archive:
        metrics = {k: archive[k] for k in archive.files}
    np.testing.assert_array_equal(metrics["step"], [0, 5, 10])
    for key in ("reliance", "counterfactual_accuracy", "parametric_accuracy", "attention_context",
                "attention_context_l1", "attention_context_l2", "loss_C", "loss_CS", "in_distribution_accuracy"):
        assert metrics[key].shape == (3,), key
    # step 0 is the pretrained model: M_C = p_c/(p_c + p_a) on the conflict examples, computed directly
    p = _softmax(_last_logits(model, world.conflict.tokens))
    rows = np.arange(len(p))
    p_c, p_a = p[rows, world.conflict.context], p[rows, world.conflict.fact]
    assert metrics["reliance"][0] == pytest.approx(np.mean(p_c / (p_c + p_a)), rel=1e-5)
    assert summary["initial_reliance"] == metrics["reliance"][0]


@pytest.mark.parametrize("args, words", [
    (["--set", "train.lr=0"], ["train.lr", "> 0"]),
    (["--set", "transformer.layers=0"], ["transformer.layers", ">= 1"]),
    (["--set", "mixture.context_critical=1.5"], ["mixture.context_critical", "[0, 1]"]),
    (["--set", "world.n_subjects=3"], ["unknown", "world.n_subjects"]),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, words):
    out = tmp_path / "run"
    assert execute(["bridge", *args, "--out", str(out), "--cache", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_out_holding_another_config_is_refused(pretrained, tmp_path, capsys):
    _, _, _, cache = pretrained
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.toml").write_text(bcfg.to_toml(tiny("train.lr=0.5")))
    assert execute(["bridge", *SETS, "--out", str(out), "--cache", str(cache)]) == 2
    assert "another config" in capsys.readouterr().err


def test_keys_lists_every_bridge_key(capsys):
    assert execute(["bridge", "--keys"]) == 0
    out = capsys.readouterr().out
    assert all(key in out for key in bcfg.KEYS)


@pytest.fixture
def segment_traces(monkeypatch) -> list:
    """A list that grows by one each time a finetuning segment is traced (compiled)."""
    from cpi.bridge import finetune as ft

    traces = []
    original = ft.steps_then_metrics
    monkeypatch.setattr(ft, "steps_then_metrics", lambda *a: traces.append(1) or original(*a))
    return traces


def test_finetunings_of_one_shape_share_one_compilation(pretrained, segment_traces):
    """Two finetunings of one train config on different data of the same shapes trace the
    segment once: the data are arguments of the program, not constants in it."""
    from cpi.bridge import finetune as ft
    from cpi.bridge.run import prepare

    model = pretrained[2]
    train = bcfg.load(overrides=[*TINY, "train.steps=4", "train.eval_every=2", "train.lr=0.0123"]).train
    datas = [prepare(tiny(f"mixture.context_critical={rho}"), model)[2] for rho in (0.25, 0.75)]
    assert datas[0].groups_present == datas[1].groups_present
    rows = [ft.finetune(model, train, d) for d in datas]
    assert len(segment_traces) == 1
    assert not np.array_equal(rows[0], rows[1])  # different data, different curves


def test_learning_rates_share_one_compilation_and_stack_like_single_runs(pretrained, segment_traces):
    """Finetunings that differ only in train.lr trace the segment once (the rate is in the
    optimizer's state), give different curves, and a vmapped stack over the rates equals the
    one-by-one runs to float32 rounding."""
    from cpi.bridge import finetune as ft
    from cpi.bridge.run import prepare

    model = pretrained[2]
    # A segment shape no other test compiles (the programs are cached for the whole process).
    trains = [bcfg.load(overrides=[*TINY, "train.steps=6", "train.eval_every=3", f"train.lr={lr}"]).train
              for lr in (0.0071, 0.0213)]
    data = prepare(tiny(), model)[2]
    rows = [ft.finetune(model, train, data) for train in trains]
    assert len(segment_traces) == 1
    assert not np.array_equal(rows[0], rows[1])  # each run's own rate, not the one first traced
    stacked = ft.finetune_stack(model, trains[0], [data, data], lrs=[t.lr for t in trains])
    for one, many in zip(rows, stacked):
        np.testing.assert_allclose(many, one, rtol=0, atol=5e-6)
