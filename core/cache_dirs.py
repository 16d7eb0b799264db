"""Where the project keeps what it computes once and reuses between processes.

Every cache lives under the user's cache directory, `$XDG_CACHE_HOME/cpi/<name>` (default
`~/.cache/cpi/<name>`), unless an environment variable names another folder or turns it off:
`jax` (the compilation cache, keyed by JAX itself), and the keyed store's kinds
(`cpi.core.store`) `pretrained-table` (learned W_V tables, `<key>.npz`) and `checkpoint` (the
bridge's pretrained transformers, `<key>/`), so that a stored item lies at
`~/.cache/cpi/<kind>/<key><suffix>`, the store's one layout.
Imports nothing but the standard library: the `cpi` entry point reads it before JAX starts.
"""

from __future__ import annotations

import os
from pathlib import Path

OFF = ("0", "false", "no", "off")


def user_cache_dir(name: str, folder_variable: str, switch_variable: str | None = None) -> Path | None:
    """None when `$switch_variable` is one of OFF; else `$folder_variable` when set; else
    `$XDG_CACHE_HOME/cpi/<name>` (or `~/.cache/cpi/<name>`)."""
    if switch_variable and os.environ.get(switch_variable, "1").strip().lower() in OFF:
        return None
    if os.environ.get(folder_variable):
        return Path(os.environ[folder_variable])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cpi" / name
