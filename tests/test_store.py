"""The keyed store (`cpi.core.store`): one key per (kind, version, payload)."""

from __future__ import annotations

import hashlib

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
