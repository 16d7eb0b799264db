"""What `cpi sweep` and `cpi bridge --grid` share on the command line: the sweep runs in a worker
thread so that Ctrl-C ends the process at once, and the --shard flag's checks and report."""

from __future__ import annotations

import threading
from pathlib import Path

from cpi.core.errors import ConfigError
from cpi.core.shards import missing_note

from .arguments import EXIT_INTERRUPTED, end_process


def run_interruptibly(work, on_interrupt):
    """`work()` in a worker thread; its result, or its exception re-raised here. On Ctrl-C
    call `on_interrupt()` and end the process at once with status 130."""
    outcome = {}

    def target():
        try:
            outcome["value"] = work()
        except BaseException as err:  # handed to the main thread
            outcome["error"] = err

    worker = threading.Thread(target=target, name="cpi-sweep", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        on_interrupt()
        end_process(EXIT_INTERRUPTED)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def check_shard_flags(args, shard) -> None:
    """ConfigError when --shard comes with flags it cannot be combined with."""
    if shard is None:
        return
    if args.force:
        raise ConfigError(f"--shard {shard} cannot be combined with --force (a shard never deletes what other "
                          "shards write); run without --shard to replace the directory")
    if getattr(args, "coordinator", None) or getattr(args, "num_processes", None) is not None \
            or getattr(args, "process_id", None) is not None:
        raise ConfigError(f"--shard {shard} cannot be combined with --coordinator, --num-processes or --process-id; "
                          "shards are independent processes and need no coordinator")


def shard_lines(report, out: Path, units: str, folder: str, command: str) -> list[str]:
    """What a shard that did not assemble the sweep says: how many of its `units` ("chunks")
    it computed, how many of the sweep's are saved, and which shards owe the
    missing ones (or that every one is saved)."""
    shard, saved = report.shard, report.total - len(report.missing)
    lines = [f"{command}: shard {shard}: computed {report.computed} of its {report.mine} {units} "
             f"({report.mine - report.computed} were saved already) in {report.seconds:.1f} s; "
             f"{saved} of {report.total} {units} of this sweep are now saved under {out}/{folder}"]
    if report.missing:
        lines.append(f"missing: {missing_note(report.missing, shard, units)}; once every shard has finished, the "
                     "same command without --shard writes sweep.npz and the summaries (computing first any "
                     "still missing)")
    else:
        lines.append("every one is saved; another process holds the directory or has written the results (rerun the "
                     "same command without --shard to print the table)")
    return lines
