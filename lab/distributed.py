"""Several processes: :func:`initialize` starts JAX's distributed runtime (what ``--distributed`` does),
and the helpers through which a sweep spans the devices of every process: the one-axis mesh, global
arrays from host arrays and back, and :func:`gather`, by which the processes compare what they see.
How to launch and what happens when a process dies: ``docs/sweeps.md``, "Several processes".
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

__all__ = ["HEARTBEAT_SECONDS", "SHUTDOWN_SECONDS", "agree", "barrier", "gather", "host_array", "initialize",
           "mesh", "put"]

HEARTBEAT_SECONDS = 100  # JAX's default: a process silent this long is dead, and so are its peers
SHUTDOWN_SECONDS = 300  # JAX's default: how long an exiting process waits for the others


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, heartbeat_seconds: int | None = None,
               shutdown_seconds: int | None = None) -> None:
    """Join the processes of one job: :func:`jax.distributed.initialize`, before any computation.

    Under Slurm, Open MPI, Kubernetes or on a TPU pod every argument can be left out (JAX finds its
    peers). Elsewhere give them, or set the environment variables ``JAX_COORDINATOR_ADDRESS``
    (``host:port`` of process 0, read by JAX), ``LAB_NUM_PROCESSES`` and ``LAB_PROCESS_ID``.

    Args:
        coordinator_address: ``host:port`` where process 0 serves the coordinator.
        num_processes: how many processes take part.
        process_id: this process's number, ``0 .. num_processes - 1``.
        heartbeat_seconds: a process that sends no heartbeat for this long (killed, or its host
            lost) counts as dead, and JAX then ends every other process (exit status 134, after
            "Terminating process because the JAX distributed service detected fatal errors").
            Default ``LAB_HEARTBEAT_SECONDS`` or :data:`HEARTBEAT_SECONDS`.
        shutdown_seconds: a process that exits (done, or stopped by a Python error) waits this long
            for the others to exit too; if one of them is still busy or blocked waiting for it,
            JAX then ends them all the same way. Default ``LAB_SHUTDOWN_SECONDS`` or
            :data:`SHUTDOWN_SECONDS`.

    Raises:
        ValueError: an argument or environment variable that is not a valid number.
    """
    num_processes = _number("num_processes", num_processes, "LAB_NUM_PROCESSES", minimum=1)
    process_id = _number("process_id", process_id, "LAB_PROCESS_ID", minimum=0)
    heartbeat = _number("heartbeat_seconds", heartbeat_seconds, "LAB_HEARTBEAT_SECONDS", minimum=1)
    shutdown = _number("shutdown_seconds", shutdown_seconds, "LAB_SHUTDOWN_SECONDS", minimum=1)
    if num_processes is not None and process_id is not None and process_id >= num_processes:
        raise ValueError(f"process_id: {process_id} is not below num_processes={num_processes}")
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices of several processes
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               heartbeat_timeout_seconds=heartbeat or HEARTBEAT_SECONDS,
                               shutdown_timeout_seconds=shutdown or SHUTDOWN_SECONDS)


def _number(name: str, value, variable: str, minimum: int) -> int | None:
    """``value``, else the integer in the environment variable ``variable``, else None; checked."""
    source = name
    if value is None and os.environ.get(variable, "") != "":
        value, source = os.environ[variable], variable
        try:
            value = int(value)
        except ValueError:
            raise ValueError(f"{variable}: expected an integer, got {os.environ[variable]!r}") from None
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{source}: expected an integer >= {minimum}, got {value!r}")
    return value


# ----------------------------------------------------------------------------- arrays over processes


def mesh() -> Mesh:
    """A one-axis mesh, ``"runs"``, over every device of every process."""
    return Mesh(np.asarray(jax.devices()), ("runs",))


def put(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from a host array that every process holds in full."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def host_array(x: jax.Array) -> np.ndarray:
    """A (possibly sharded over several processes) array as a host numpy copy, on every process."""
    if x.is_fully_addressable:
        return np.array(x, copy=True)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def gather(values: Sequence[int]) -> np.ndarray:
    """(processes, k) int32 table of every process's ``values``; one collective (none in a single
    process), so every process must call it at the same point."""
    mine = np.asarray(values, np.int32).reshape(1, -1)
    if jax.process_count() == 1:
        return mine
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(mine, tiled=True))


def barrier(name: str) -> None:
    """Wait until every process gets here (nothing to wait for in a single process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def agree(values: Sequence[int], what: str) -> None:
    """Raise the same one-line ValueError on every process unless all of them hold ``values``
    (one collective); ``what`` says what differs and what to do."""
    table = gather(values)
    if (table != table[0]).any():
        raise ValueError(f"{what} differ between the processes (one row per process: {table.tolist()})")
