"""A sweep directory, whatever computes its points (the toy's chunks or the bridge's runs):
the manifest (`sweep.json`, written first) that names the sweep the directory computes, the
check that refuses another sweep (or a run) there unless forced, the digest that names a
sweep's default directory, the summary table as CSV, and the removal of stale files.

An identity is a JSON-ready mapping of what makes two sweeps the same sweep (the base
config's SHA-256, the grid specs, the seeds, and whatever else the caller's sweep depends
on); two sweeps with equal identities compute the same files, so one resumes the other.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Callable

from . import store
from .errors import ConfigError

MANIFEST = "sweep.json"
"""Written first into a sweep directory: the sweep's identity, so that a rerun (or a shard)
can tell a resumed sweep from another one."""

IDENTITY_FLAGS = {"kind": "the kind of sweep (the toy's or the transformer's)", "grid": "--grid",
                  "seeds": "--seeds", "base_config_sha256": "the base config"}
"""What the user changes to change an identity's key, for the message refusing another sweep."""


def config_sha256(config_text: str) -> str:
    """The SHA-256 (all 64 hex digits) of a config's TOML text: the identity's
    `base_config_sha256`."""
    return store.fingerprint(config_text)


def grid_specs(grid) -> list[str]:
    """The grid specs as the identity records them: a list of stripped strings."""
    return [s.strip() for s in ([grid] if isinstance(grid, str) else grid)]


def sweep_digest(kind: store.Kind, config_text: str, grid, seeds: int = 1) -> str:
    """The key of a sweep of `kind` (`cpi.core.store.SWEEP` for the toy, `BRIDGE_SWEEP` for the
    transformer) from its base config's TOML text, grid specs and seeds: the name of its
    default directory."""
    return kind.key({"config": config_text, "grid": grid_specs(grid), "seeds": int(seeds)})


def saved_identity(out: Path, keys, legacy: tuple[str, ...] = ()) -> dict | None:
    """The identity recorded in `out` (its manifest, else the first of the `legacy` files,
    documents that repeat the identity), restricted to `keys`; {"unreadable": name} when
    that file is not JSON; None when there is none."""
    for name in (MANIFEST, *legacy):
        path = out / name
        if path.exists():
            try:
                document = json.loads(path.read_text())
            except (OSError, ValueError):
                return {"unreadable": name}
            if not isinstance(document, dict):
                return {"unreadable": name}
            return {k: document.get(k) for k in keys}
    return None


def check_sweep_dir(out: str | Path, identity: dict, force: bool = False, flags: dict | None = None,
                    legacy: tuple[str, ...] = (), run_file: str = "metrics.npz",
                    forced: str = "the points the two sweeps share are kept, the others deleted") -> None:
    """ConfigError when `out` holds another sweep (a manifest whose identity differs from
    `identity` in any key) or a run (`run_file` without a manifest), unless `force`. The same
    sweep is resumed; a directory without a manifest (nor a `legacy` file) is written into.
    `flags` names what the user changes for each key of the identity, and `forced` what --force
    does to the files there, in the message."""
    out = Path(out)
    if force or not out.is_dir():
        return
    if (out / run_file).exists() and not (out / MANIFEST).exists():
        raise ConfigError(f"--out {str(out)!r} holds a run, not a sweep; choose another directory "
                          "(or --force to write the sweep there anyway)")
    saved = saved_identity(out, identity, legacy)
    if saved is None or saved == identity:
        return
    names = {**IDENTITY_FLAGS, **(flags or {})}
    differ = [names.get(k, k) for k in identity if saved.get(k) != identity.get(k)] or ["its files"]
    raise ConfigError(
        f"--out {str(out)!r} holds another sweep (it differs in {', '.join(differ)}); choose another "
        f"directory, or --force to replace it ({forced})"
    )


def write_identity_files(out: Path, files: dict[str, bytes], write: Callable[[Path, bytes], None],
                         exclusive: bool) -> None:
    """Write the manifest and the files that describe the sweep (`files`: name → bytes, the
    manifest among them) into `out` with `write` (an atomic writer). `exclusive`: this
    process holds the directory, so it writes them all. Otherwise (a shard, beside others
    writing the same files at once) each is written only when absent, and ConfigError
    (exit 2) when one present differs: another sweep has claimed the directory."""
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = out / name
        if not exclusive and path.exists():
            try:
                same = path.read_bytes() == data
            except OSError:
                same = False
            if not same:
                raise ConfigError(f"--out {str(out)!r}: its {name} names another sweep (written since this "
                                  "one started); choose another directory")
            continue
        write(path, data)


def remove_stale(folder: Path, keep: set[str]) -> int:
    """Delete the entries of `folder` not named in `keep` (files, and folders with what they
    hold: the points of another sweep, or temporary files of an interrupted write); returns
    how many."""
    import shutil

    stale = [p for p in folder.iterdir() if p.name not in keep]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(stale)


def csv_cell(value) -> str:
    """A summary value as summary.csv writes it: empty for None, true/false for booleans,
    repr for floats (every digit), str otherwise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def csv_bytes(columns: list[str], rows: list[dict]) -> bytes:
    """summary.csv: a header of `columns`, then one line per row (`csv_cell` of each column)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row[c]) for c in columns])
    return buffer.getvalue().encode()
