"""Where a sweep's chunks run: one interface, ``concurrent.futures.Executor``, three back ends.

- **serial**: :class:`SerialExecutor` runs each task inline when it is submitted
  (no processes, nothing to pickle; what ``--workers 1`` uses);
- **local processes**: a :class:`~concurrent.futures.ProcessPoolExecutor` with an
  explicit multiprocessing context (``forkserver`` where the platform has it,
  else ``spawn``); the global start method is never touched (DESIGN.md section 6);
- **Dask distributed**: ``Client.get_executor()``, either on a ``LocalCluster``
  started here on loopback (``--dask-local N``) or on an existing scheduler
  (``--scheduler tcp://host:port``). Tasks are submitted with ``retries=2`` and
  ``pure=False``; a task on a worker that dies is rescheduled by the scheduler.
  Dask is an optional extra (``pip install displacement-sim[dask]``), imported
  only when asked for.

Results never depend on the back end: every sweep point draws from streams keyed
by (root seed, point index) (DESIGN.md section 5).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["ExecutorHandle", "SerialExecutor", "available_cores", "open_executor"]

DASK_RETRIES = 2
DASK_HINT = "pip install 'displacement-sim[dask]' (dask[distributed])"


class SerialExecutor(Executor):
    """An executor that runs each task inline, in this process, when it is submitted."""

    def __init__(self) -> None:
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if self._shutdown:
            raise RuntimeError("cannot submit after shutdown")
        future: Future = Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # the caller sees it through future.result()
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True


@dataclass
class ExecutorHandle:
    """An open executor with what the sweep needs to know about it.

    Attributes:
        executor: the ``concurrent.futures.Executor`` tasks are submitted to.
        workers: how many tasks run at once (bounds the tasks kept in flight).
        kind: ``serial``, ``processes``, ``dask-local`` or ``dask``.
        description: one line for the manifest and the console.

    """

    executor: Executor
    workers: int
    kind: str
    description: str
    client: Any = None  # the dask Client, when there is one

    @property
    def max_in_flight(self) -> int:
        """Tasks submitted ahead: enough to keep every worker busy, few enough to bound memory."""
        return 1 if self.kind == "serial" else 2 * max(self.workers, 1) + 1


def available_cores() -> int:
    """Cores this process may use (``os.process_cpu_count`` on 3.13+, else the affinity mask)."""
    counter = getattr(os, "process_cpu_count", None)
    if counter is not None:
        return max(1, counter() or 1)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _mp_context() -> multiprocessing.context.BaseContext:
    """An explicit start-method context; the global start method stays as it is."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def _import_dask(option: str) -> tuple[Any, Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            "Dask is not installed", field=option, allowed=f"install the optional extra: {DASK_HINT}"
        ) from None
    return Client, LocalCluster


@contextmanager
def open_executor(
    workers: int | None = None,
    *,
    dask_local: int | None = None,
    scheduler: str | None = None,
    connect_timeout: float = 10.0,
) -> Iterator[ExecutorHandle]:
    """Open the executor asked for and close it (and any cluster started here) on exit.

    Args:
        workers: local worker processes; ``1`` runs serially in this process;
            ``None`` means the cores available.
        dask_local: start a Dask ``LocalCluster`` with this many single-threaded
            worker processes on 127.0.0.1 (no dashboard).
        scheduler: address of a running Dask scheduler, e.g. ``tcp://10.0.0.5:8786``.
        connect_timeout: seconds to wait for the scheduler before giving up.

    Raises:
        ConfigError: Dask asked for but not installed, or the scheduler cannot be reached.

    """
    if sum(x is not None for x in (workers, dask_local, scheduler)) > 1:
        raise ConfigError(
            "choose one executor", field="--workers/--dask-local/--scheduler", allowed="at most one of them"
        )
    if scheduler is not None:
        yield from _dask_remote(scheduler, connect_timeout)
        return
    if dask_local is not None:
        yield from _dask_local(dask_local)
        return
    n = available_cores() if workers is None else int(workers)
    if n <= 1:
        ex = SerialExecutor()
        yield ExecutorHandle(ex, 1, "serial", "serial (in this process)")
        ex.shutdown()
        return
    context = _mp_context()
    pool = ProcessPoolExecutor(max_workers=n, mp_context=context)
    ok = False
    try:
        yield ExecutorHandle(pool, n, "processes", f"{n} local processes ({context.get_start_method()})")
        ok = True
    finally:
        pool.shutdown(wait=ok, cancel_futures=not ok)


def _dask_local(n: int) -> Iterator[ExecutorHandle]:
    client_cls, cluster_cls = _import_dask("--dask-local")
    cluster = cluster_cls(
        n_workers=int(n),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = client_cls(cluster)
    try:
        ex = client.get_executor(retries=DASK_RETRIES, pure=False)
        yield ExecutorHandle(
            ex, int(n), "dask-local", f"Dask LocalCluster, {n} workers at {cluster.scheduler_address}", client
        )
        ex.shutdown(wait=False)
    finally:
        client.close()
        cluster.close()


def _dask_remote(address: str, timeout: float) -> Iterator[ExecutorHandle]:
    client_cls, _ = _import_dask("--scheduler")
    try:
        client = client_cls(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as err:
        raise ConfigError(
            f"cannot connect to the Dask scheduler ({type(err).__name__}: {err})",
            field="--scheduler",
            given=address,
            allowed="the address of a running scheduler, e.g. tcp://127.0.0.1:8786",
        ) from None
    try:
        threads = sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values())
        ex = client.get_executor(retries=DASK_RETRIES, pure=False)
        yield ExecutorHandle(ex, max(threads, 1), "dask", f"Dask scheduler {address} ({threads} worker threads)", client)
        ex.shutdown(wait=False)
    finally:
        client.close()
