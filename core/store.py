"""The keyed store: one way to name what is computed from what, so that it is reused when the
same inputs come again and never when they differ.

A key is the SHA-256 of the canonical text of (kind, version, payload): `kind` says what is
stored ("run", "sweep", "chunk", "experiment", "pretrained-table", "checkpoint", ...),
`version` is the integer to raise when what is stored under that kind changes meaning for the
same payload, and `payload` is what it is computed from (a config's TOML text, or plain data:
strings, numbers, booleans, None, lists and mappings with string keys). On disk a stored item
lives at `<root>/<kind>/<key><suffix>` (`path`); a result directory named by its inputs is
`<root>/<key>` (`key` alone). Each kind the project stores is a `Kind` (name, version, what it
is keyed by) in the table at the end of this module (`KINDS`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

DIGITS = 16
"""Hex digits of a key: 64 bits, so that two different payloads of one kind collide with
probability about n²/2⁶⁵ among n stored items."""


def canonical(payload) -> str:
    """The text a payload is keyed by: a string as it is, anything else as JSON with sorted keys
    and no optional white space (tuples as lists); TypeError for what JSON cannot hold."""
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=True)


def key(kind: str, version: int, payload, digits: int = DIGITS) -> str:
    """The first `digits` hex digits of the SHA-256 of (kind, version, canonical payload)."""
    text = f"{kind}\n{int(version)}\n{canonical(payload)}"
    return hashlib.sha256(text.encode()).hexdigest()[:digits]


def path(root: str | Path, kind: str, version: int, payload, suffix: str = "") -> Path:
    """Where an item of `kind` keyed by `payload` is stored under `root`:
    `<root>/<kind>/<key><suffix>`."""
    return Path(root) / kind / f"{key(kind, version, payload)}{suffix}"


@dataclass(frozen=True)
class Kind:
    """One kind of stored item: its `name` (the folder that holds its items in a store root),
    its `version` (raise it when what is stored changes meaning for the same payload: the
    old items are then recomputed, never reused) and what its payload is."""

    name: str
    version: int
    payload: str

    def key(self, payload) -> str:
        """`key(self.name, self.version, payload)`."""
        return key(self.name, self.version, payload)

    def path(self, root: str | Path, payload, suffix: str = "") -> Path:
        """`<root>/<name>/<key><suffix>`."""
        return path(root, self.name, self.version, payload, suffix)


# Every kind the project stores, with its version: one table, so that every cache and what it is
# keyed by is read in one place, and a kind that two layers share (a run directory is named by
# the `cpi` commands and reused by the experiments) has a home both can import.
RUN = Kind("run", 1, "a toy config's TOML: a `cpi run` directory, runs/<key>, and the runs behind the experiments")
BRIDGE_RUN = Kind("bridge-run", 1, "a bridge config's TOML: a `cpi bridge` directory, runs/bridge-<key>")
EXPERIMENT = Kind("experiment", 1, "an experiment's name, base config TOML and resolved parameters: the `inputs` "
                  "of <data_dir>/<name>.npz")
VALUE_TRAINING = Kind("value-training", 1, "the base config's TOML, value_lrs and record_every of the "
                      "value-training experiment's simulation")
PRETRAINED_TABLE = Kind("pretrained-table", 1, "the config keys a learned W_V depends on "
                        "(cpi.sims.pretraining.DIGEST_KEYS)")
CHECKPOINT = Kind("checkpoint", 1, "the bridge config keys its pretrained transformer depends on "
                  "([transformer], [pretrain], train.seed)")
BRIDGE_PROBE = Kind("bridge-probe", 1, "a bridge config's TOML: its finetuning's metrics with the attention of the "
                    "subject to the context per layer (the bridge_small_falls experiment's runs)")

SWEEP = Kind("sweep", 1, "a toy sweep's base config TOML, grid specs and seeds: sweeps/<key>")
BRIDGE_SWEEP = Kind("bridge-sweep", 1, "a bridge sweep's base config TOML, grid specs and seeds: "
                    "sweeps/bridge-<key>")
CHUNK = Kind("chunk", 6, "the resolved configs of a chunk's points, in order, the engine and what is recorded: "
             "<sweep>/groups/<key>.npz")
KINDS: tuple[Kind, ...] = (RUN, BRIDGE_RUN, EXPERIMENT, VALUE_TRAINING, PRETRAINED_TABLE, CHECKPOINT,
                           BRIDGE_PROBE, SWEEP, BRIDGE_SWEEP, CHUNK)


def fingerprint(text: str) -> str:
    """All 64 hex digits of the SHA-256 of `text`: what a manifest records of a config (its
    `base_config_sha256`), to compare, never to name a file."""
    return hashlib.sha256(text.encode()).hexdigest()
