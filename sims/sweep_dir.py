"""The toy's sweep directory (`cpi.core.sweep_dir` with the toy's identity): the manifest
(`sweep.json`, written first) that names the sweep a directory computes, the check that
refuses another sweep (or a run) there unless forced, the removal of stale chunks, and
whether a directory holds this sweep finished (`finished_rows`).
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

from cpi.core import sweep_dir as core
from cpi.core.errors import ConfigError  # noqa: F401  (raised by the checks)
from cpi.core.sweep_dir import MANIFEST  # noqa: F401  (the toy's sweep-directory API)

from . import config as cfg
from .config import Config

FLAGS = {"record_every": "--record-every", "summaries_only": "--summaries-only", "engine": "--engine"}
"""The toy's identity keys beyond `cpi.core.sweep_dir.IDENTITY_FLAGS`, as the user changes them."""


def sweep_identity(base: Config, grid, seeds: int = 1, record_every: int = 1, summaries_only: bool = False,
                   engine: str = "fast") -> dict:
    """What makes two sweeps the same sweep: the resolved base config, the grid specs, the
    seeds, what is recorded and the engine."""
    return {
        "grid": core.grid_specs(grid),
        "seeds": int(seeds),
        "record_every": int(record_every),
        "summaries_only": bool(summaries_only),
        "engine": cfg.STORED_ENGINE.get(cfg.engine_name(engine), engine),
        "base_config_sha256": core.config_sha256(cfg.to_toml(base)),
    }


def check_sweep_dir(out: str | Path, identity: dict, force: bool = False) -> None:
    """ConfigError when `out` holds another sweep (a different base config, grid, seeds,
    recording or engine; a sweep written before manifests is told by its summary.json) or a
    run, unless `force`. The same sweep is resumed."""
    core.check_sweep_dir(out, identity, force, FLAGS, legacy=("summary.json",),
                         forced="chunks the two sweeps share are kept, the others deleted")


def remove_stale_chunks(out: Path, keep: set[str]) -> int:
    """Delete the files under out/groups not named in `keep` (the chunks of the sweep about
    to run; the rest are other sweeps' chunks or temporary files of an interrupted write);
    returns how many."""
    return core.remove_stale(out / "groups", keep)


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
