"""What a sweep directory holds and whether a new sweep may write there: the manifest
(`sweep.json`, written first) that names the sweep a directory computes, the check that
refuses another sweep (or a run) there unless forced, and the removal of stale chunks.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from pathlib import Path

from . import config as cfg
from .config import Config
from cpi.core.errors import ConfigError

MANIFEST = "sweep.json"
"""Written first into a sweep directory: what it computes (base config, grid, seeds, what is
recorded, engine), so that a rerun can tell a resumed sweep from another one."""


def sweep_identity(base: Config, grid, seeds: int = 1, record_every: int = 1, summaries_only: bool = False,
                   engine: str = "full") -> dict:
    """What makes two sweeps the same sweep: the resolved base config, the grid specs, the
    seeds, what is recorded and the engine."""
    return {
        "grid": [s.strip() for s in ([grid] if isinstance(grid, str) else grid)],
        "seeds": int(seeds),
        "record_every": int(record_every),
        "summaries_only": bool(summaries_only),
        "engine": engine,
        "base_config_sha256": hashlib.sha256(cfg.to_toml(base).encode()).hexdigest(),
    }


def _saved_identity(out: Path) -> dict | None:
    """The identity recorded in a sweep directory (its manifest, else the summary of a
    sweep written before manifests existed); None when it holds no sweep."""
    for name in (MANIFEST, "summary.json"):
        path = out / name
        if path.exists():
            try:
                document = json.loads(path.read_text())
            except (OSError, ValueError):
                return {"unreadable": name}
            return {k: document.get(k) for k in ("grid", "seeds", "record_every", "summaries_only", "engine",
                                                 "base_config_sha256")}
    return None


def check_sweep_dir(out: str | Path, identity: dict, force: bool = False) -> None:
    """ConfigError when `out` holds another sweep (a different base config, grid, seeds,
    recording or engine) or a run, unless `force`. The same sweep is resumed."""
    out = Path(out)
    if force or not out.is_dir():
        return
    if (out / "metrics.npz").exists() and not (out / MANIFEST).exists():
        raise ConfigError(f"--out {str(out)!r} holds a run, not a sweep; choose another directory "
                          "(or --force to write the sweep there anyway)")
    saved = _saved_identity(out)
    if saved is None or saved == identity:
        return
    names = {"grid": "--grid", "seeds": "--seeds", "record_every": "--record-every",
             "summaries_only": "--summaries-only", "engine": "--engine", "base_config_sha256": "the base config"}
    differ = [names[k] for k in names if saved.get(k) != identity.get(k)] or ["its files"]
    raise ConfigError(
        f"--out {str(out)!r} holds another sweep (it differs in {', '.join(differ)}); choose another "
        "directory, or --force to replace it (chunks the two sweeps share are kept, the others deleted)"
    )


def remove_stale_chunks(out: Path, keep: set[str]) -> int:
    """Delete the files under out/groups not named in `keep` (the chunks of the sweep about
    to run; the rest are other sweeps' chunks or temporary files of an interrupted write);
    returns how many."""
    stale = [p for p in (out / "groups").iterdir() if p.is_file() and p.name not in keep]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


FLOAT_COLUMNS = ("initial_reliance", "peak_reliance", "final_reliance", "achieved_delta_c", "achieved_delta_m")
"""Columns of summary.json's rows that are floats (a non-finite one is written as null)."""
ROW_COLUMNS = ("seed", *FLOAT_COLUMNS, "peak_step", "inversion", "nonfinite_step")


def finished_rows(out: str | Path, identity: dict, n_points: int, keys=()) -> list[dict] | None:
    """The summary rows of summary.json (null floats read as NaN) when `out` holds this sweep
    (`identity`) complete: sweep.json and summary.json name it, summary.json has a row for
    each of the `n_points` points with every swept key of `keys` and every summary column,
    and sweep.npz is a zip archive holding the summary. None otherwise. Reads neither the
    chunks under groups/ nor sweep.npz's arrays (only its list of members)."""
    out = Path(out)
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        document = json.loads((out / "summary.json").read_text())
        with zipfile.ZipFile(out / "sweep.npz") as archive:
            members = set(archive.namelist())
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    if not isinstance(manifest, dict) or not isinstance(document, dict):
        return None
    if any(manifest.get(k) != v or document.get(k) != v for k, v in identity.items()):
        return None
    rows = document.get("points")
    columns = {*keys, *ROW_COLUMNS}
    if not isinstance(rows, list) or len(rows) != n_points or not all(isinstance(r, dict) and columns <= r.keys()
                                                                          for r in rows):
        return None
    if not {"steps.npy", "summary_inversion.npy"} <= members:
        return None
    return [{k: (math.nan if v is None and k in FLOAT_COLUMNS else v) for k, v in row.items()} for row in rows]
