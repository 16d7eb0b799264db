"""The one reader of result directories: `read(path)` gives a `SavedRun` or a `SavedSweep`
for every kind of directory the project writes, or refuses it with a `ConfigError` that
names the directory and what is wrong (the CLI's exit status 2), never another exception.

The four kinds, told apart by their files:
- a sweep has `sweep.json` (its manifest, written first), or failing that `sweep.npz`, a
  `groups/` folder, a `runs/` folder beside no metrics.npz, or a summary.json with "points";
  it is a transformer sweep (`cpi bridge --grid`, `cpi.bridge.sweep.run_sweep`) when its manifest
  (or summary.json) says "kind": "bridge", else a toy sweep (`cpi sweep`, `cpi.sims.sweep.run_sweep`);
- any other directory with result files is a run: a transformer run (`cpi bridge`,
  `cpi.bridge.run.save`) when its config.toml has a [transformer] section, else a toy run
  (`cpi run`, `cpi.sims.results.save_run`).

summary.json is written last by every command, so a directory without it is incomplete.
The config is loaded with its kind's schema (`cpi.sims.config.SCHEMA` or `cpi.bridge.config.SCHEMA`,
imported only for a transformer result); a run's metrics.npz is read at once (one value per
recorded step); a sweep's sweep.npz only has its table of contents checked by `read`, its
arrays (possibly gigabytes) are read when asked (`SavedSweep.arrays`, `SavedSweep.metrics`).
Archives are read with `allow_pickle=False`: a file that is not a plain .npz archive of
numeric arrays is refused as damaged.

This module imports no JAX.
"""

from __future__ import annotations

import json
import tomllib
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cpi.core.errors import ConfigError

RUN, SWEEP, BRIDGE_RUN, BRIDGE_SWEEP = "run", "sweep", "bridge run", "bridge sweep"
"""The `kind` of a record: toy run, toy sweep, transformer run, transformer sweep."""

WRITERS = "cpi run, cpi sweep or cpi bridge"
RERUN = "rerun the command that wrote it"

NUMBER_FIELDS = ("initial_reliance", "peak_reliance", "final_reliance")
"""Summary values every run and every sweep point has (a number; None for a sweep point
whose numbers became non-finite)."""

_NPZ_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError, UnicodeDecodeError,
               NotImplementedError, RuntimeError)
"""What reading a damaged .npz archive raises (a bad zip directory or member, a bad CRC, a
truncated array, pickled data refused, an unsupported compression)."""


class Incomplete(ConfigError, FileNotFoundError):
    """A directory that lacks a file its kind writes (or is missing): a ConfigError for the
    CLI, and a FileNotFoundError for callers that compute what is not saved yet."""


def _where(path: Path) -> str:
    return repr(str(path))


# ---------------------------------------------------------------------------- the records


@dataclass(frozen=True)
class _Saved:
    """What every saved result has: its kind and its directory."""

    kind: str
    path: Path

    @property
    def bridge(self) -> bool:
        """Whether the result is the transformer's."""
        return self.kind in (BRIDGE_RUN, BRIDGE_SWEEP)

    @property
    def name(self) -> str:
        """The directory's name (of the resolved path when it is given as '.' or '..')."""
        return self.path.resolve().name if self.path.name in ("", ".", "..") else self.path.name


@dataclass(frozen=True)
class SavedRun(_Saved):
    """A saved run: `config` (of `schema`), `metrics` (arrays over the recorded steps
    `metrics["step"]`) and `summary` (summary.json)."""

    schema: Any  # sims.schema.Schema  (kind: RUN or BRIDGE_RUN)
    config: Any
    summary: dict
    metrics: dict[str, np.ndarray]

    def to_dataframe(self):
        """A pandas DataFrame, one row per recorded step (index `step`), one column per metric
        (`cpi.sims.analysis.run_frame`); needs the `analysis` extra."""
        from .analysis import run_frame

        return run_frame(self)

    def to_xarray(self):
        """An xarray Dataset of every metric over `step`, the config's TOML and the summary in its
        attributes (`cpi.sims.analysis.run_dataset`); needs the `analysis` extra."""
        from .analysis import run_dataset

        return run_dataset(self)


@dataclass(frozen=True)
class SavedSweep(_Saved):
    """A saved sweep: base `config` (of `schema`), swept `keys`, and per point i its summary
    row `rows[i]` (its swept values, `seed` and summary values, as in summary.json); the
    arrays of sweep.npz are read when asked."""

    schema: Any  # (kind: SWEEP or BRIDGE_SWEEP)
    config: Any
    document: dict  # summary.json
    keys: list[str]
    rows: list[dict]
    members: tuple[str, ...]  # the arrays in sweep.npz
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def record_every(self) -> int:
        """The stride of the recorded steps (a toy sweep's --record-every; 1 for the bridge)."""
        return self.document.get("record_every", 1)

    @property
    def recorded(self) -> bool:
        """Whether the sweep recorded metrics per step (not summaries only)."""
        return "step" in self.members

    def label(self, i: int) -> str:
        """DIR#i: point i of this sweep."""
        return f"{self.path}#{i}"

    def point_config(self, i: int):
        """The validated config of point i: the base config with its swept values and seed."""
        row = self.rows[i]
        values = {k: row[k] for k in self.keys}
        values["train.seed"] = row["seed"]
        try:
            return self.schema.with_values(self.config, values)
        except ConfigError as err:
            raise ConfigError(f"{_where(self.path)}: summary.json point {i}: {err}") from None

    def arrays(self, names=None) -> dict[str, np.ndarray]:
        """The arrays of sweep.npz (all, or those named), each with one row per point (but
        `step`); ConfigError naming the directory when the archive is damaged."""
        wanted = list(self.members if names is None else names)
        missing = [n for n in wanted if n not in self.members]
        if missing:
            raise ConfigError(f"{_where(self.path)}: sweep.npz lacks {', '.join(map(repr, missing))}; "
                              f"it is damaged, {RERUN}")
        todo = [n for n in wanted if n not in self._cache]
        if todo:
            loaded = _read_npz(self.path, "sweep.npz", todo)
            for name, value in loaded.items():
                if name != "step" and (value.ndim == 0 or value.shape[0] != len(self.rows)):
                    raise ConfigError(f"{_where(self.path)}: sweep.npz's {name!r} has shape {value.shape}, but "
                                      f"summary.json has {len(self.rows)} points; the files do not belong "
                                      f"together, {RERUN}")
            self._cache.update(loaded)
        return {n: self._cache[n] for n in wanted}

    def metric_names(self) -> list[str]:
        """The recorded metrics (points × recorded steps), in name order; [] when summaries only."""
        if not self.recorded:
            return []
        other = {*self.keys, "seed", "steps", "step"}
        return sorted(n for n in self.members if n not in other and not n.startswith("summary_"))

    def metrics(self) -> dict[str, np.ndarray]:
        """`step` (the longest point's recorded steps) and every recorded metric, points ×
        steps (NaN after a point's last recorded step, and where it lacks the metric); {} when
        the sweep recorded summaries only."""
        if not self.recorded:
            return {}
        out = self.arrays(["step", *self.metric_names()])
        step = out["step"]
        for name, value in out.items():
            if name != "step" and value.shape != (len(self.rows), len(step)):
                raise ConfigError(f"{_where(self.path)}: sweep.npz's {name!r} has shape {value.shape}, expected "
                                  f"{(len(self.rows), len(step))}; it is damaged, {RERUN}")
        return out

    def point_steps(self, i: int) -> np.ndarray:
        """The steps at which point i's metrics are recorded: row i of every metric holds
        them in its first len(...) columns."""
        if self.bridge:  # cpi.bridge.finetune.record_steps
            train = self.point_config(i).train
            steps = np.arange(0, train.steps + 1, train.eval_every)
            return steps if steps[-1] == train.steps else np.append(steps, train.steps)
        last = int(self.arrays(["steps"])["steps"][i])  # cpi.sims.engine.recorded_steps
        return np.append(np.arange(0, last, self.record_every), last)

    def to_xarray(self):
        """An xarray Dataset: the swept keys (and the seeds, where the sweep has several) as
        dimensions, every recorded metric over (..., step), every summary value without step,
        the base config's TOML and the swept keys in its attributes
        (`cpi.sims.analysis.sweep_dataset`); needs the `analysis` extra."""
        from .analysis import sweep_dataset

        return sweep_dataset(self)

    def to_dataframe(self):
        """A pandas DataFrame, one row per point (index `point`): its swept keys, seed and summary
        (with the achieved strengths where the point has them) (`cpi.sims.analysis.sweep_frame`);
        needs the `analysis` extra."""
        from .analysis import sweep_frame

        return sweep_frame(self)


# ---------------------------------------------------------------------------- reading


def read(path) -> SavedRun | SavedSweep:
    """The result directory at `path` (see the module's docstring for how its kind is told);
    ConfigError naming the directory and what is wrong when it cannot be read (an
    `Incomplete` when a file is missing)."""
    path = Path(path)
    where = _where(path)
    if not path.is_dir():
        if path.exists() or path.is_symlink():
            raise ConfigError(f"{where} is not a directory; expected one written by {WRITERS}")
        raise Incomplete(f"{where} is not a directory (it does not exist); expected one written by {WRITERS}")
    names = {"summary.json", "metrics.npz", "config.toml", "sweep.npz", "sweep.json", "groups", "runs"}
    try:
        present = {p.name for p in path.iterdir() if p.name in names}
    except OSError as err:
        raise ConfigError(f"{where} cannot be read: {err.strerror or err}") from None
    if not present & {"summary.json", "metrics.npz", "sweep.npz", "sweep.json"}:
        raise Incomplete(f"{where} holds no complete run or sweep (no summary.json, metrics.npz or sweep.npz); "
                         f"expected a directory written by {WRITERS}")
    manifest = _read_json(path, "sweep.json") if "sweep.json" in present else None
    if manifest is not None and not isinstance(manifest, dict):
        raise ConfigError(f"{where}: sweep.json holds a {type(manifest).__name__}, not an object; "
                          f"it is damaged, {RERUN}")
    if "summary.json" not in present:
        raise Incomplete(f"{where}: no summary.json: incomplete, {RERUN}")
    summary = _read_json(path, "summary.json")
    if not isinstance(summary, dict):
        raise ConfigError(f"{where}: summary.json holds a {type(summary).__name__}, not an object; "
                          f"it is damaged, {RERUN}")
    is_sweep = (manifest is not None or present & {"sweep.npz", "groups"} or "points" in summary
                or ("runs" in present and "metrics.npz" not in present))
    if is_sweep:
        return _read_sweep(path, summary, manifest or {})
    return _read_run(path, summary)


def _read_run(path: Path, summary: dict) -> SavedRun:
    where = _where(path)
    text, data = _read_toml(path)
    bridge = "transformer" in data
    schema = _schema(bridge)
    config = _load_config(path, schema, text)
    if not (path / "metrics.npz").exists():
        raise Incomplete(f"{where}: no metrics.npz: incomplete, {RERUN}")
    _check_summary(path, summary)
    metrics = _read_npz(path, "metrics.npz")
    step = metrics.get("step")
    if step is None or step.ndim != 1 or len(step) == 0 or "reliance" not in metrics:
        raise ConfigError(f"{where}: metrics.npz lacks 'step' or 'reliance'; it is damaged, {RERUN}")
    for name, value in metrics.items():
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
            raise _damaged(path, "metrics.npz")
        if value.shape != step.shape:
            raise ConfigError(f"{where}: metrics.npz's {name!r} has shape {value.shape}, but 'step' has "
                              f"{step.shape}; it is damaged, {RERUN}")
    return SavedRun(BRIDGE_RUN if bridge else RUN, path, schema, config, summary, metrics)


def _read_sweep(path: Path, summary: dict, manifest: dict) -> SavedSweep:
    where = _where(path)
    bridge = manifest.get("kind", summary.get("kind")) == "bridge"
    schema = _schema(bridge)
    text, _ = _read_toml(path)
    config = _load_config(path, schema, text)
    keys, rows = summary.get("keys"), summary.get("points")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or not isinstance(rows, list):
        raise ConfigError(f"{where}: summary.json lacks the sweep's 'keys' and 'points'; it is damaged, {RERUN}")
    unknown = [k for k in keys if k not in schema.keys]
    if unknown:
        raise ConfigError(f"{where}: summary.json sweeps {unknown[0]!r}, not a key of the {schema.label}; "
                          f"it is damaged, {RERUN}")
    if not rows:
        raise ConfigError(f"{where}: summary.json has no points; it is damaged, {RERUN}")
    for i, row in enumerate(rows):
        if (not isinstance(row, dict) or any(not isinstance(row.get(k), (bool, int, float, str)) for k in keys)
                or not _is_int(row.get("seed"))):
            raise ConfigError(f"{where}: summary.json point {i} lacks its swept values or seed; "
                              f"it is damaged, {RERUN}")
        _check_summary(path, row, f"summary.json point {i}", allow_none=True)
    every = summary.get("record_every", 1)
    if not _is_int(every) or every < 1:
        raise ConfigError(f"{where}: summary.json has record_every = {every!r}, not an integer >= 1; "
                          f"it is damaged, {RERUN}")
    if not (path / "sweep.npz").exists():
        raise Incomplete(f"{where}: no sweep.npz: incomplete, {RERUN}")
    members = _npz_members(path, "sweep.npz")
    needed = [n for n in (*keys, "seed") if n not in members]
    if needed:
        raise ConfigError(f"{where}: sweep.npz lacks {', '.join(map(repr, needed))}; it is damaged, {RERUN}")
    return SavedSweep(BRIDGE_SWEEP if bridge else SWEEP, path, schema, config, summary, list(keys), rows, members)


# ---------------------------------------------------------------------------- files


def _schema(bridge: bool):
    if bridge:
        from cpi.bridge import config as bcfg

        return bcfg.SCHEMA
    from . import config as cfg

    return cfg.SCHEMA


def _read_json(path: Path, name: str):
    try:
        text = (path / name).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{_where(path)}: {name} cannot be read ({getattr(err, 'strerror', None) or err}); "
                          f"it is damaged, {RERUN}") from None
    if not text.strip():
        raise ConfigError(f"{_where(path)}: {name} is empty; it is damaged, {RERUN}")
    try:
        return json.loads(text)
    except ValueError:
        raise ConfigError(f"{_where(path)}: {name} is not valid JSON; it is damaged (truncated?), {RERUN}") from None


def _read_toml(path: Path) -> tuple[str, dict]:
    file = path / "config.toml"
    if not file.exists():
        raise Incomplete(f"{_where(path)}: no config.toml: incomplete, {RERUN}")
    try:
        text = file.read_text()
        return text, tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{_where(path)}: config.toml cannot be read ({getattr(err, 'strerror', None) or err})"
                          ) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{_where(path)}: config.toml is not valid TOML: {err}") from None


def _load_config(path: Path, schema, text: str):
    try:
        return schema.load_text(text, source="config.toml")
    except ConfigError as err:
        raise ConfigError(f"{_where(path)}: config.toml: {err}") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_summary(path: Path, summary: dict, what: str = "summary.json", allow_none: bool = False) -> None:
    """ConfigError unless the summary values every reader uses have their types."""

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    checks = [(f, number) for f in NUMBER_FIELDS]
    checks += [("peak_step", _is_int),
               ("inversion", lambda v: isinstance(v, bool))]
    for name, ok in checks:
        value = summary.get(name)
        if not (ok(value) or (allow_none and value is None)):
            raise ConfigError(f"{_where(path)}: {what} has {name} = {value!r}, not a "
                              f"{'boolean' if name == 'inversion' else 'number'}; it is damaged, {RERUN}")


def _damaged(path: Path, name: str) -> ConfigError:
    # No detail from NumPy: its message for a file that is not an archive suggests allow_pickle.
    return ConfigError(f"{_where(path)}: {name} is damaged (not a readable .npz archive); {RERUN}")


def _open_npz(path: Path, name: str):
    file = path / name
    if not file.is_file():
        raise ConfigError(f"{_where(path)}: {name} is not a file; {RERUN}")
    try:
        empty = file.stat().st_size == 0
    except OSError:
        empty = False
    if empty:
        raise ConfigError(f"{_where(path)}: {name} is empty (damaged); {RERUN}")
    try:
        archive = np.load(file, allow_pickle=False)
    except _NPZ_ERRORS:
        raise _damaged(path, name) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _damaged(path, name)
    return archive


def _npz_members(path: Path, name: str) -> tuple[str, ...]:
    """The array names in an .npz archive, from its table of contents only."""
    with _open_npz(path, name) as archive:
        return tuple(archive.files)


def _read_npz(path: Path, name: str, members=None) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive (all, or `members`), numeric, CRC-checked."""
    archive = _open_npz(path, name)
    try:
        with archive:
            out = {k: archive[k] for k in (archive.files if members is None else members)}
    except _NPZ_ERRORS:
        raise _damaged(path, name) from None
    for value in out.values():
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool or value.dtype.kind == "U"):
            raise _damaged(path, name)
    return out
