"""Writing files in the background while the computation goes on."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable


class BackgroundWriter:
    """Writes files in a background thread with `write(path, values)` (an atomic writer), one
    at a time and in order, while the caller goes on computing: a sweep's finished chunks are
    written while the next one computes, most of the time in system calls and checksums that
    leave the interpreter free. Leaving its `with` block waits until every file handed to it
    is written and re-raises the first failed write; `wait_all()` waits for every writer of
    the process (what an interrupted `cpi sweep` calls before it says what is saved)."""

    def __init__(self, write: Callable[[Path, Any], None]):
        self._write = write

    _open: set["BackgroundWriter"] = set()
    _lock = threading.Lock()

    def __enter__(self) -> "BackgroundWriter":
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cpi-writer")
        self._pending: list[Future] = []
        with BackgroundWriter._lock:
            BackgroundWriter._open.add(self)
        return self

    def write(self, path: Path, values) -> None:
        """Queue `values` for `path`, first re-raising the failure of a write already done
        (so a sweep whose chunks cannot be saved stops at the next chunk, not at the end)."""
        for future in self._pending:
            if future.done():
                future.result()
        self._pending.append(self._pool.submit(self._write, path, values))

    def __exit__(self, *exc) -> None:
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pool.shutdown(wait=True)
            with BackgroundWriter._lock:
                BackgroundWriter._open.discard(self)

    @classmethod
    def wait_all(cls) -> None:
        with cls._lock:
            writers = list(cls._open)
        for writer in writers:
            for future in list(writer._pending):
                future.exception()  # finished, or failed: either way no longer in flight
