"""Saving and reloading results: config.toml, metrics.npz, summary.json in one directory.

Every file is written to a temporary name and renamed into place, summary.json last, so a
directory with a summary.json holds a complete run. metrics.npz is written with fixed zip
timestamps, so the same numbers give the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import config as cfg

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive (readable by np.load) whose bytes depend only on the arrays."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def save_run(out_dir: str | Path, config: cfg.Config, metrics: dict, summary: dict) -> Path:
    """Write DIR/config.toml, DIR/metrics.npz, DIR/summary.json (in that order, atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)  # the directory is incomplete until the end
    write_atomic(out / "config.toml", cfg.to_toml(config).encode())
    write_atomic(out / "metrics.npz", npz_bytes(metrics))
    write_atomic(out / "summary.json", json_bytes(summary))
    return out


def load_run(run_dir: str | Path) -> tuple[cfg.Config, dict[str, np.ndarray], dict]:
    """(config, metrics, summary) of a saved run; raises FileNotFoundError if incomplete."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    config = cfg.load(run_dir / "config.toml")
    with np.load(run_dir / "metrics.npz") as archive:
        metrics = {k: archive[k] for k in archive.files}
    return config, metrics, summary
