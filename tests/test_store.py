"""The keyed store (`cpi.core.store`): one key per (kind, version, payload)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cpi.core import store


def test_the_key_is_the_sha256_of_kind_version_and_canonical_payload():
    text = 'run\n3\n{"a":[1,2],"b":"x"}'
    assert store.key("run", 3, {"b": "x", "a": (1, 2)}) == hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("other", [("sweep", 3, {"a": 1}), ("run", 4, {"a": 1}), ("run", 3, {"a": 2}),
                                   ("run", 3, {"a": 1.0 + 1e-12}), ("run", 3, '{"a":1}x')])
def test_kind_version_and_payload_each_change_the_key(other):
    assert store.key(*other) != store.key("run", 3, {"a": 1})


def test_a_string_payload_is_keyed_as_it_is_and_the_path_follows_the_layout(tmp_path):
    assert store.key("run", 1, "text") == hashlib.sha256(b"run\n1\ntext").hexdigest()[:16]
    assert store.path(tmp_path, "chunk", 2, "x", ".npz") == tmp_path / "chunk" / f"{store.key('chunk', 2, 'x')}.npz"
    with pytest.raises(TypeError):
        store.key("run", 1, {"a": object()})


# ---------------------------------------------------------------------------- the caches that key through it

ROOT = Path(__file__).resolve().parents[1]

def test_every_kind_has_its_own_name_and_keys_as_the_functions_do(tmp_path):
    names = [k.name for k in store.KINDS]
    assert len(set(names)) == len(names)
    for kind in store.KINDS:
        assert kind.key({"a": 1}) == store.key(kind.name, kind.version, {"a": 1})
        assert kind.path(tmp_path, "x", ".npz") == store.path(tmp_path, kind.name, kind.version, "x", ".npz")


def test_only_the_store_hashes_in_the_library():
    folders = ("theory", "core", "sims", "bridge", "experiments", "figures", "cpi")
    hashing = {str(p.relative_to(ROOT)) for folder in folders for p in (ROOT / folder).rglob("*.py")
               if "hashlib" in p.read_text()}
    assert hashing == {"core/store.py"}


def test_run_directories_and_experiment_inputs_are_store_keys():
    from cpi.arguments import default_run_dir
    from cpi.experiments.cache import inputs_digest
    from cpi.sims import config as cfg

    config = cfg.with_values(cfg.Config(), {"train.lr": 0.5})
    assert default_run_dir(config) == Path("runs") / store.RUN.key(cfg.to_toml(config))
    assert default_run_dir(config) != default_run_dir(cfg.Config())
    params = {"n_eta": 5, "etas": (0.5, 1.0)}
    assert inputs_digest("three_steps", config, params) == store.EXPERIMENT.key(
        {"experiment": "three_steps", "config": cfg.to_toml(config), "params": params})


def test_the_user_caches_lie_at_cache_root_kind_key(tmp_path, monkeypatch):
    from cpi.bridge import config as bcfg
    from cpi.bridge import pretrain
    from cpi.cli import compilation_cache_dir
    from cpi.sims import config as cfg
    from cpi.sims import pretraining

    for variable in ("CPI_PRETRAIN_CACHE_DIR", "CPI_PRETRAIN_CACHE", "CPI_BRIDGE_CACHE", "CPI_COMPILATION_CACHE_DIR",
                     "CPI_COMPILATION_CACHE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = tmp_path / "cpi"
    config = cfg.Config()
    assert pretraining.cache_dir() == root / "pretrained-table"
    assert pretraining.pretrain_digest(config) == store.PRETRAINED_TABLE.key(
        {key: getattr(getattr(config, key.split(".")[0]), key.split(".")[1]) for key in pretraining.DIGEST_KEYS})
    bridge = bcfg.load(overrides=[])
    assert bcfg.pretrain_digest(bridge) == store.CHECKPOINT.key(bcfg.pretrain_keys(bridge))
    assert pretrain.checkpoint_dir(bridge) == store.CHECKPOINT.path(root, bcfg.pretrain_keys(bridge))
    assert compilation_cache_dir() == root / "jax"  # keyed by JAX itself, under the same root
