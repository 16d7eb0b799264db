"""Ctrl-C as a user sends it: start `cpi` in a child process, wait until it has saved its first
piece of work, send SIGINT, and collect what it said and how long it took to stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def interrupt_after(argv: list[str], saved: Path, pattern: str, settle: float) -> tuple[int, str, str, float]:
    """(exit status, stdout, stderr, seconds from SIGINT to exit) of `python -m cpi *argv`,
    interrupted `settle` seconds after a file matching `pattern` appeared under `saved`."""
    # As from a terminal: a suite started in the background by a non-interactive shell runs with
    # SIGINT ignored, which the child would inherit (and Python then never raises KeyboardInterrupt).
    # A handled signal is reset to its default at exec, so handle it here while starting the child.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen([sys.executable, "-m", "cpi", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 120
        while not list(saved.glob(pattern)):
            assert process.poll() is None and time.monotonic() < deadline, "the first piece of work never came"
            time.sleep(0.1)
        time.sleep(settle)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        process.kill()
    return process.returncode, stdout, stderr, waited
