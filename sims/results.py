"""Saving and reloading results: config.toml, metrics.npz, summary.json in one directory.

Every file is written to a temporary name and renamed into place, summary.json last, so a
directory with a summary.json holds a complete run. metrics.npz is written with fixed zip
timestamps, so the same numbers give the same bytes.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from . import config as cfg
from cpi.core.errors import ConfigError
from .schema import Schema

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_atomic(path: Path, data) -> None:
    """Write `data` (bytes, or a function that writes to a binary file) to `path` through a
    temporary file in the same directory and a rename, so that `path` is either absent, the
    old file or the whole new one. Not fsynced: an interrupted process leaves no partial file,
    and a file that a power failure truncates is caught when it is read back (a zip member's
    CRC, a JSON parse) and recomputed, as every reader of the sweep's chunks does."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Deferred(NamedTuple):
    """An array for `write_npz` that is computed when its member is written: `fill(out)` writes
    it into `out`, a buffer of `shape` and `dtype` that the writer reuses for every deferred
    array of that shape, so that an archive of many such arrays is written without holding
    them all."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fill: Callable[[np.ndarray], Any]


def write_npz(stream, arrays: dict[str, np.ndarray | Deferred]) -> None:
    """Write an .npz archive (readable by np.load) of `arrays` to a seekable binary stream,
    member by member: its bytes depend only on the arrays (names sorted, fixed zip
    timestamps). A `Deferred` array, and an array that is not contiguous, is written from a
    buffer reused for every member of its shape and dtype."""
    buffers: dict[tuple, np.ndarray] = {}

    def contiguous(value) -> np.ndarray:
        if isinstance(value, Deferred):
            shape, dtype = tuple(value.shape), np.dtype(value.dtype)
        else:
            value = np.asarray(value)
            if value.flags.c_contiguous:
                return value
            shape, dtype = value.shape, value.dtype
        buffer = buffers.get((shape, dtype))
        if buffer is None:
            buffer = buffers[(shape, dtype)] = np.empty(shape, dtype)
        if isinstance(value, Deferred):
            value.fill(buffer)
        else:
            buffer[...] = value
        return buffer

    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            array = contiguous(arrays[name])
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=array.nbytes > ZIP64_BYTES) as member:
                _write_npy(member, array)


def _write_npy(member, array: np.ndarray) -> None:
    """`np.lib.format.write_array` of a contiguous array, its data written from the array's own
    memory (write_array copies it into bytes first, block by block)."""
    try:
        np.lib.format.write_array_header_1_0(member, np.lib.format.header_data_from_array_1_0(array))
    except ValueError:  # a header too long for format 1.0
        np.lib.format.write_array(member, array, allow_pickle=False)
        return
    member.write(memoryview(array).cast("B"))


ZIP64_BYTES = 2**30
"""Members larger than this are written with zip64 sizes (a plain zip member holds < 2 GiB)."""


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of `write_npz`'s archive of `arrays`."""
    buffer = io.BytesIO()
    write_npz(buffer, arrays)
    return buffer.getvalue()


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """`write_npz` to `path`, atomically (`write_atomic`), without building the archive in memory."""
    write_atomic(path, lambda f: write_npz(f, arrays))


LONG_LIST = 100
"""Lists longer than this at the top level of a JSON file (a sweep's "points") are written
one item per line."""


def json_bytes(obj) -> bytes:
    """`obj` as sorted, indented JSON, except that a long top-level list is written one
    compact item per line: the C encoder then does the work instead of the slower indenting
    of every field, and the file still reads (and diffs) one point per line."""
    if not isinstance(obj, dict) or not any(isinstance(v, list) and len(v) > LONG_LIST for v in obj.values()):
        return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    entries = []
    for key in sorted(obj):
        value = obj[key]
        if isinstance(value, list) and len(value) > LONG_LIST:
            text = "[\n" + ",\n".join("    " + json.dumps(item, sort_keys=True) for item in value) + "\n  ]"
        else:
            text = json.dumps(value, indent=2, sort_keys=True).replace("\n", "\n  ")
        entries.append(f"  {json.dumps(key)}: {text}")
    return ("{\n" + ",\n".join(entries) + "\n}\n").encode()


def check_out_dir(path: str | Path, flag: str = "--out") -> None:
    """ConfigError unless `path` is a directory that exists or can be created, and that this
    process can write in; nothing is created (a probe file in the nearest existing directory
    is removed at once)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} is a file, not a directory; choose another path")
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            raise ConfigError(f"{flag} {str(path)!r} cannot be created: {str(existing)!r} is a broken link")
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"{flag} {str(path)!r} cannot be created: {str(existing)!r} is a file, not a directory"
        )
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".cpi-probe-"):
            pass
    except OSError as err:
        what = "is not writable" if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else "accepts no new files"
        where = "" if existing == path else " (where it would be created)"
        raise ConfigError(f"{flag} {str(path)!r} cannot be written: {str(existing)!r}{where} {what} "
                          f"(the system says: {err.strerror or err})") from None


def check_out_file(path: str | Path, flag: str = "--out") -> None:
    """ConfigError unless a file can be written at `path` (its directory exists or can be
    created and is writable, and `path` is not a directory)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} is a directory; expected a file name")
    check_out_dir(path.parent if str(path.parent) else Path("."), flag=f"{flag} {str(path)!r}: directory")


def check_run_dir(out_dir: str | Path, config, force: bool = False, schema: Schema = cfg.SCHEMA,
                  source: str | Path | None = None) -> None:
    """ConfigError when writing the run of `config` (a config of `schema`, the toy's unless
    given) into `out_dir` would replace something else, unless `force`: a run (a config.toml
    beside a summary.json) of another config, a sweep, or a config.toml that no run wrote
    (a hand-written file: its text is not the resolved config). A run is only ever replaced by
    the same run. `source`, the --config file, is never replaced, even with `force`, unless
    its text is already the resolved config that the run writes."""
    out = Path(out_dir)
    if not out.is_dir():
        return
    saved = out / "config.toml"
    text = _read_or_none(saved) if saved.is_file() else None
    if text is not None and text != schema.to_toml(config).encode() and source is not None \
            and Path(source).resolve() == saved.resolve():
        raise ConfigError(f"--config {str(source)!r} is the config.toml that the run would write into --out "
                          f"{str(out)!r}, replacing it (and its comments) with the resolved config; choose "
                          f"another --out, e.g. {str(out / 'run')!r}")
    if force:
        return
    if (out / "sweep.npz").exists() or (out / "groups").is_dir():
        raise ConfigError(f"--out {str(out)!r} holds a sweep, not a run; choose another directory "
                          "(or --force to write the run there anyway)")
    if not saved.exists():
        return
    try:
        saved_config = schema.load(saved)
    except ConfigError:
        saved_config = None
    resolved = saved_config is not None and text == schema.to_toml(saved_config).encode()
    if not resolved and not (out / "summary.json").exists():
        raise ConfigError(f"--out {str(out)!r} holds a config.toml that no run wrote (it is not the resolved "
                          "config of a run); choose another directory, or --force to replace it")
    if saved_config != config:
        compare = " (`cpi compare` shows how the configs differ)" if schema is cfg.SCHEMA else ""
        raise ConfigError(
            f"--out {str(out)!r} holds a run of another config ({saved}); choose another directory, "
            f"or --force to replace it{compare}"
        )


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def metrics_csv_bytes(metrics: dict[str, np.ndarray]) -> bytes:
    """The per-step metrics of one run as CSV: a `step` column, then one column per metric
    in name order, one row per recorded step; floats written exactly (repr)."""
    names = ["step", *sorted(k for k in metrics if k != "step")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    columns = [np.asarray(metrics[k]).tolist() for k in names]
    writer.writerows(zip(*columns))
    return buffer.getvalue().encode()


def save_run(out_dir: str | Path, config, metrics: dict, summary: dict, schema: Schema = cfg.SCHEMA) -> Path:
    """Write DIR/config.toml (a config of `schema`, the toy's unless given), DIR/metrics.npz,
    DIR/summary.json (in that order, atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)  # the directory is incomplete until the end
    write_atomic(out / "config.toml", schema.to_toml(config).encode())
    write_npz_atomic(out / "metrics.npz", metrics)
    write_atomic(out / "summary.json", json_bytes(summary))
    return out


def load_run(run_dir: str | Path) -> tuple[cfg.Config, dict[str, np.ndarray], dict]:
    """(config, metrics, summary) of a saved toy run (`cpi.sims.saved.read`); ConfigError naming
    the directory when it cannot be read, or holds another kind of result (an
    `cpi.sims.saved.Incomplete`, also a FileNotFoundError, when it is missing or incomplete)."""
    from .saved import RUN, read

    saved = read(run_dir)
    if saved.kind != RUN:
        raise ConfigError(f"{str(run_dir)!r} holds a {saved.kind}, not a run of the toy model")
    return saved.config, saved.metrics, saved.summary
