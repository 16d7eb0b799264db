"""The keyed store: one way to name what is computed from what, so that it is reused when the
same inputs come again and never when they differ.

A key is the SHA-256 of the canonical text of (kind, version, payload): `kind` says what is
stored ("run", "sweep", "chunk", "experiment", "pretrained-table", "checkpoint", ...),
`version` is the integer to raise when what is stored under that kind changes meaning for the
same payload, and `payload` is what it is computed from (a config's TOML text, or plain data:
strings, numbers, booleans, None, lists and mappings with string keys). On disk a stored item
lives at `<root>/<kind>/<key><suffix>` (`path`); a result directory named by its inputs is
`<root>/<key>` (`key` alone).
"""

from __future__ import annotations

import hashlib
import json
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
