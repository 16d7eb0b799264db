"""One writer per output directory: `claim_dir` holds an advisory lock on DIR/.cpi-lock for as
long as a command computes and writes into DIR, so that a second process given the same
`--out` is refused at once (ConfigError: exit 2, before it computes or writes anything)
instead of both succeeding and one result silently replacing the other.

The lock is `flock` on a file inside the directory: the kernel releases it when its holder
exits, however it exits, so a crashed or killed process never leaves the directory locked
(the file it leaves behind is unlocked and reused). Result files are still written
atomically (`cpi.sims.results.write_atomic`), so a crash leaves the old result or none.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError

LOCK_NAME = ".cpi-lock"
"""The lock file inside a claimed directory; readers of result directories ignore it."""


def _missing_parents(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, outermost first."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    return missing[::-1]


def _holder(fd: int) -> str:
    """' (pid N)' as written into the lock file by its holder, or ''."""
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {text})" if text.isdigit() else ""


@contextmanager
def claim_dir(out: str | Path, flag: str = "--out"):
    """Create `out` if needed and hold it for this process until the block ends; ConfigError
    when another process holds it. On leaving, the lock file is removed, and so are the
    directories this call created if nothing was written into them."""
    import fcntl

    out = Path(out)
    created = _missing_parents(out)
    out.mkdir(parents=True, exist_ok=True)
    lock_path = out / LOCK_NAME
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ConfigError(f"{flag} {str(out)!r} is being written by another cpi process{holder}; wait for it "
                              "to finish, or choose another directory") from None
        try:  # the previous holder may have removed the file between our open and our lock
            current = os.stat(lock_path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    try:
        yield out
    finally:
        lock_path.unlink(missing_ok=True)
        os.close(fd)
        for directory in reversed(created):
            try:
                directory.rmdir()  # only when empty: a directory that received results stays
            except OSError:
                break
