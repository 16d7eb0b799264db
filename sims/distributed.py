"""One sweep over several processes with `jax.distributed`: joining, and moving results.

Each process computes its share of a sweep's chunks on its own devices (no collective
inside a computation); after each round the chunks' results are gathered to every process
(`process_allgather`; on CPU the collectives are gloo) and process 0 alone writes files.

Joining: explicit flags (`--coordinator HOST:PORT --num-processes N --process-id I`), or,
with none of them, JAX's own cluster detection when the environment is a cluster job of
several tasks (SLURM, Open MPI); otherwise one process.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from cpi.core.errors import ConfigError

JOIN_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of one sweep."""

    count: int = 1
    index: int = 0

    @property
    def writer(self) -> bool:
        """Whether this process writes the results (process 0)."""
        return self.index == 0


def _cluster_tasks() -> int:
    for name in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        try:
            return int(os.environ[name])
        except (KeyError, ValueError):
            continue
    return 1


def check_flags(coordinator: str | None, num_processes: int | None, process_id: int | None) -> None:
    """ConfigError (exit 2) for flags that cannot describe a group of processes."""
    given = [x is not None for x in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise ConfigError("--coordinator HOST:PORT, --num-processes N and --process-id I go together; "
                          "give all three (or none, to use the cluster's own detection)")
    if not any(given):
        return
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--coordinator {coordinator!r} is not HOST:PORT with a port in [1, 65535]")
    if num_processes < 1:
        raise ConfigError(f"--num-processes {num_processes} is out of range; expected an integer >= 1")
    if not 0 <= process_id < num_processes:
        raise ConfigError(f"--process-id {process_id} is out of range; expected an integer in [0, {num_processes - 1}] "
                          f"(--num-processes {num_processes})")


def _reachable(coordinator: str, process_id: int, timeout: float) -> str | None:
    """Why the coordinator cannot be used (None: it can). JAX aborts the whole process when
    it cannot reach the coordinator, so the other processes first wait for its port here;
    process 0, which serves it, checks that its host name resolves."""
    host, _, port = coordinator.rpartition(":")
    try:
        socket.getaddrinfo(host, int(port))
    except OSError as err:
        return f"host {host!r} does not resolve ({err})"
    if process_id == 0:
        return None
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return None
        except OSError as err:
            if time.monotonic() >= deadline:
                return f"nothing answers there within {timeout} s ({err})"
            time.sleep(0.2)


def join(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
         timeout: int = JOIN_TIMEOUT_SECONDS) -> Processes:
    """Join the group of processes (before any other JAX work) and return this one's place.

    Raises ConfigError when the flags are bad or the coordinator cannot be reached in time."""
    check_flags(coordinator, num_processes, process_id)
    if coordinator is None and _cluster_tasks() < 2:
        return Processes()
    if num_processes == 1:
        return Processes()
    import jax

    if coordinator is not None:
        problem = _reachable(coordinator, process_id, timeout)
        if problem:
            raise ConfigError(f"cannot join the sweep's processes through coordinator {coordinator}: {problem}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        if coordinator is None:
            jax.distributed.initialize(initialization_timeout=timeout)
        else:
            jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                       process_id=process_id, initialization_timeout=timeout)
    except Exception as err:  # noqa: BLE001 - JAX raises several kinds for one cause
        where = f"coordinator {coordinator}" if coordinator else "the cluster's coordinator"
        raise ConfigError(f"cannot join the sweep's processes through {where} within {timeout} s: "
                          f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    return Processes(jax.process_count(), jax.process_index())


def gather(tree):
    """The pytree of NumPy arrays of every process, stacked along a new leading axis (in
    64-bit mode, so that float64 and int64 results travel unchanged)."""
    import jax
    from jax.experimental import multihost_utils

    with jax.enable_x64(True):
        return multihost_utils.process_allgather(tree)


def broadcast(tree):
    """Process 0's pytree of arrays, on every process."""
    import jax
    from jax.experimental import multihost_utils

    with jax.enable_x64(True):
        return multihost_utils.broadcast_one_to_all(tree)
