"""Running a sweep: executors, chunks of points, crash-safe results, resume, and the ``sweep`` command.

**Executors.** One interface, ``concurrent.futures.Executor``, three back ends:

- *serial*: :class:`SerialExecutor` runs each task inline when it is submitted
  (no processes, nothing to pickle; what ``--workers 1`` uses);
- *local processes*: a :class:`~concurrent.futures.ProcessPoolExecutor` with an
  explicit multiprocessing context (``forkserver`` where the platform has it,
  else ``spawn``); the global start method is never touched (DESIGN.md section 6);
- *Dask distributed*: ``Client.get_executor()``, either on a ``LocalCluster``
  started here on loopback (``--dask-local N``) or on an existing scheduler
  (``--scheduler tcp://host:port``). Tasks are submitted with ``retries=2`` and
  ``pure=False``; a task on a worker that dies is rescheduled by the scheduler.
  Dask is an optional extra (``pip install displacement-sim[dask]``), imported
  only when asked for.

**Chunks.** Points are sent in chunks of consecutive points, one task each
(:func:`~.experiments.run_chunk`), sized so a task runs a few seconds; at most a
few chunks per worker are in flight, so memory stays bounded however large the
sweep. The coordinator writes each finished chunk atomically as
``chunks/chunk-00012.csv``; ``points.csv`` is the chunks streamed in point order.

**The command.** ``displacement-sim sweep`` (:func:`add_sweep_parser`, :func:`cmd_sweep`).

**Resume.** ``manifest.json`` is written before the first chunk, with a hash of
the experiment (after command-line overrides) and its resolved base scenario, and
a hash of the design. ``--resume`` refuses a changed experiment and runs only the
chunks without a file. Every point draws from streams keyed by (root seed, point
index) (DESIGN.md section 5), so the table is identical whatever the executor,
worker count, chunk size or interruptions.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .config import scenario_from_dict
from .errors import ConfigError
from .experiments import Sweep, load_experiment, rows_to_csv, run_chunk, salib_problem
from .results import _git_commit, default_out_dir, dump_json, write_atomic
from .runner import run_scenario

__all__ = [
    "ExecutorHandle",
    "SerialExecutor",
    "SweepResult",
    "add_sweep_parser",
    "available_cores",
    "check_new_out",
    "check_resume",
    "default_chunk_size",
    "open_executor",
    "run_sweep",
]

TARGET_TASK_SECONDS = 3.0  # default chunks run at least this long, to amortise the per-task overhead
CHUNKS_PER_WORKER = 4  # ... but small sweeps still get this many chunks per worker, for load balance
BATCH_ROWS = 512  # vectorized chunks fill up to this many rows (points x replications): one group (ROWS_PER_GROUP)
DASK_RETRIES = 2
# --workers and --dask-local at most this many per core: more CPU-bound processes than cores only slow a
# sweep down, and a mistyped count (100000) would start that many processes
MAX_WORKERS_PER_CORE = 4
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
    """An explicit start-method context; the global start method stays as it is.

    With ``forkserver`` the server imports the package once and every worker is
    forked from it, so workers do not each pay the import (several seconds).
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["displacement_sim.experiments"])
        return context
    return multiprocessing.get_context("spawn")


def _import_dask(option: str) -> tuple[Any, Any, Any]:
    """Dask's ``Client``, ``LocalCluster`` and ``config``, or the clear error of a missing optional extra."""
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            "Dask is not installed", field=option, allowed=f"install the optional extra: {DASK_HINT}"
        ) from None
    return Client, LocalCluster, dask.config


def _coordinator_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process with that id
        return True
    try:  # a dead but not yet reaped coordinator is a zombie
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _watch_coordinator(pid: int, interval: float = 2.0) -> None:
    """Worker initializer: exit when the coordinator is gone (e.g. killed with SIGKILL).

    A process-pool worker otherwise waits on its task queue for ever, and keeps
    the forkserver and the resource tracker alive with it.
    """

    def watch() -> None:
        while _coordinator_alive(pid):
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="watch-coordinator", daemon=True).start()


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
    pool = ProcessPoolExecutor(
        max_workers=n, mp_context=context, initializer=_watch_coordinator, initargs=(os.getpid(),)
    )
    ok = False
    try:
        yield ExecutorHandle(pool, n, "processes", f"{n} local processes ({context.get_start_method()})")
        ok = True
    finally:
        pool.shutdown(wait=ok, cancel_futures=not ok)


# The Dask configuration of our own LocalCluster's workers (the nannies pass it on to them):
# - Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536 (distributed.nanny.pre-spawn-environ), which
#   turns off glibc's adaptive mmap threshold: every array above 128 KiB is then mapped and unmapped afresh, and a
#   week of a 510-row batch spent a fifth of its time in the kernel zeroing pages (a sweep ran 1.5x slower than on
#   local processes). Our workers run with glibc's defaults, as local processes do.
# - Each worker samples its task threads' stacks every 10 ms for the dashboard, which this cluster does not start.
DASK_LOCAL_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
}


def _dask_local(n: int) -> Iterator[ExecutorHandle]:
    client_cls, cluster_cls, dask_config = _import_dask("--dask-local")
    with dask_config.set(DASK_LOCAL_CONFIG):
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
    client_cls, _, _ = _import_dask("--scheduler")
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
        yield ExecutorHandle(
            ex, max(threads, 1), "dask", f"Dask scheduler {address} ({threads} worker threads)", client
        )
        ex.shutdown(wait=False)
    finally:
        client.close()


# --- the sweep -------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """What :func:`run_sweep` produced."""

    out: Path
    table: Path
    n_points: int
    chunks_run: int
    wall_seconds: float
    sensitivity: dict[str, Any] | None = None
    figures: list[Path] = field(default_factory=list)

    def frame(self):
        """The points table as a pandas DataFrame (one row per point)."""
        import pandas as pd

        return pd.read_csv(self.table)


def _chunk_path(out: Path, c: int) -> Path:
    return out / "chunks" / f"chunk-{c:05d}.csv"


def _chunk_points(c: int, size: int, n: int) -> list[int]:
    return list(range(c * size, min((c + 1) * size, n)))


def estimate_point_seconds(sweep: Sweep, weeks: int = 20) -> float:
    """Seconds one point takes, from a short pilot run of the base (``weeks`` weeks, scaled to the horizon)."""
    exp = sweep.experiment
    cfg = scenario_from_dict(copy.deepcopy(sweep.base))
    pilot = min(weeks, cfg.weeks)
    start = time.perf_counter()
    run_scenario(cfg, exp.engine, exp.replications, seed=sweep.seed, weeks=pilot, point=0)
    return (time.perf_counter() - start) * cfg.weeks / pilot


def default_chunk_size(sweep: Sweep, workers: int) -> int:
    """Points per task: enough for ~TARGET_TASK_SECONDS each, but at least CHUNKS_PER_WORKER chunks per worker.

    On the vectorized engine a chunk also holds as many points as fit in ``BATCH_ROWS``
    rows (points x replications; at least one point), which ``run_chunk`` runs as one
    batch and the engine steps as one group of rows, when the sweep is large enough.
    """
    exp = sweep.experiment
    per_point = max(estimate_point_seconds(sweep), 1e-3)
    by_time = math.ceil(TARGET_TASK_SECONDS / per_point)
    if exp.engine == "vectorized":
        by_time = max(by_time, BATCH_ROWS // exp.replications)
    by_balance = math.ceil(sweep.n_points / (CHUNKS_PER_WORKER * max(workers, 1)))
    return max(1, min(by_time, by_balance))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    out = {"displacement_sim": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for pkg in ("scipy", "SALib", "pandas"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "not installed"
    return out


def _new_manifest(sweep: Sweep, chunk_size: int) -> dict[str, Any]:
    exp = sweep.experiment
    return {
        "experiment": exp.name,
        "experiment_file": sweep.file,
        "experiment_text": sweep.text,
        "experiment_resolved": exp.model_dump(mode="json"),
        "experiment_hash": sweep.experiment_hash,
        "design": exp.design,
        "design_hash": sweep.design.fingerprint(),
        "n": exp.n,
        "n_points": sweep.n_points,
        "parameters": list(sweep.design.names),
        "outcomes": list(exp.outcomes),
        "replications": exp.replications,
        "seed": sweep.seed,
        "random_numbers": exp.streams,
        "engine": exp.engine,
        "chunk_size": chunk_size,
        "n_chunks": math.ceil(sweep.n_points / chunk_size),
        "base_config": scenario_from_dict(copy.deepcopy(sweep.base)).model_dump(mode="json"),
        "versions": _versions(),
        "git_commit": _git_commit(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "running",
        "sessions": [],
        "wall_seconds": 0.0,
    }


def _read_manifest(out: Path) -> dict[str, Any]:
    path = out / "manifest.json"
    if not path.is_file():
        raise ConfigError(
            "nothing to resume: the folder has no manifest.json",
            field="--resume",
            given=str(out),
            allowed="the --out folder of an earlier sweep",
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"unreadable manifest.json ({err})", file=path) from None


def check_resume(sweep: Sweep, out: Path) -> dict[str, Any]:
    """The manifest of the sweep in ``out``, if it is this experiment; else a ConfigError (exit 2)."""
    manifest = _read_manifest(out)
    if manifest.get("experiment_hash") != sweep.experiment_hash:
        raise ConfigError(
            "the experiment file or its base scenario changed since this sweep started; "
            "refusing to mix results of different experiments",
            file=sweep.file,
            field="--resume",
            given=str(out),
            allowed="the unchanged experiment (same file, --n and --replications), or a new --out folder",
        )
    if manifest.get("design_hash") != sweep.design.fingerprint():
        raise ConfigError(
            "the design drawn now differs from the stored one (a different SALib or scipy version?)",
            file=sweep.file,
            field="--resume",
            given=manifest.get("versions"),
            allowed="resume with the library versions recorded in manifest.json",
        )
    return manifest


def check_new_out(out: Path) -> None:
    """Refuse an existing, non-empty output folder (with a hint to ``--resume`` a sweep), or where none can be made."""
    from .results import check_out_creatable

    check_out_creatable(out)
    if out.is_dir() and any(out.iterdir()):
        hint = "; add --resume to complete it" if (out / "manifest.json").is_file() else ""
        raise ConfigError(
            f"output folder exists and is not empty{hint}",
            field="--out",
            given=str(out),
            allowed="a new or empty folder",
        )


def run_sweep(
    sweep: Sweep | str | Path,
    out: str | Path | None = None,
    *,
    executor: ExecutorHandle | Executor | None = None,
    chunk_size: int | None = None,
    resume: bool = False,
    figures: bool = True,
    progress: bool | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> SweepResult:
    """Run a sweep into ``out``: chunk files as they finish, then the table, indices, figures and manifest.

    Args:
        sweep: a loaded experiment (:func:`load_experiment`) or its file.
        out: results folder (default ``results/<experiment>-<timestamp>-<id>``).
        executor: an :class:`~.executors.ExecutorHandle` or any ``concurrent.futures.Executor``
            (default: serial, in this process).
        chunk_size: points per task (default: sized by a pilot run, see :func:`default_chunk_size`).
        resume: complete the sweep already in ``out`` (same experiment; its chunk size is kept).
        figures: write PNG figures.
        progress: show a progress bar (default: when stderr is a terminal).
        on_chunk: called with each chunk number written (for tests and monitoring).

    """
    if not isinstance(sweep, Sweep):
        sweep = load_experiment(sweep)
    if isinstance(executor, ExecutorHandle):
        handle = executor
    elif executor is None:
        handle = ExecutorHandle(SerialExecutor(), 1, "serial", "serial (in this process)")
    else:
        handle = ExecutorHandle(executor, getattr(executor, "_max_workers", 2), "custom", type(executor).__name__)
    start = time.perf_counter()
    if resume:
        if out is None:
            raise ConfigError("--resume needs the folder to complete", field="--out", allowed="--out DIR")
        out = Path(out)
        manifest = check_resume(sweep, out)
    else:
        out = Path(out) if out is not None else default_out_dir(sweep.experiment.name)
        check_new_out(out)
        manifest = _new_manifest(sweep, chunk_size or default_chunk_size(sweep, handle.workers))
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "manifest.json", dump_json(manifest))
    size = int(manifest["chunk_size"])
    n_chunks = math.ceil(sweep.n_points / size)
    for stale in (out / "chunks").glob(".*.tmp"):  # a temporary file left by a killed run
        stale.unlink(missing_ok=True)
    todo = [c for c in range(n_chunks) if not _chunk_path(out, c).is_file()]
    done_points = sweep.n_points - sum(len(_chunk_points(c, size, sweep.n_points)) for c in todo)
    session = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "executor": handle.description,
        "resumed": resume,
        "chunks_run": 0,
    }
    _execute(sweep, out, handle, todo, size, done_points, progress, on_chunk, session)
    table = _assemble(sweep, out, size, n_chunks)
    sens = _analyse(sweep, table, out)
    figs = _figures(sweep, table, out, sens) if figures else []
    session["wall_seconds"] = round(time.perf_counter() - start, 3)
    manifest["sessions"].append(session)
    manifest["wall_seconds"] = round(sum(s["wall_seconds"] for s in manifest["sessions"]), 3)
    manifest["executor"] = handle.description
    manifest["status"] = "complete"
    write_atomic(out / "manifest.json", dump_json(manifest))
    return SweepResult(out, table, sweep.n_points, session["chunks_run"], session["wall_seconds"], sens, figs)


def _execute(
    sweep: Sweep,
    out: Path,
    handle: ExecutorHandle,
    todo: list[int],
    size: int,
    done_points: int,
    progress: bool | None,
    on_chunk: Callable[[int], None] | None,
    session: dict[str, Any],
) -> None:
    """Submit the missing chunks (a bounded number in flight) and write each one atomically as it finishes."""
    from tqdm import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    columns = sweep.columns
    pending = iter(todo)
    in_flight: dict[Any, int] = {}
    bar = tqdm(
        total=sweep.n_points, initial=done_points, unit="pt", desc=sweep.experiment.name, disable=not show, leave=False
    )
    try:
        while True:
            while len(in_flight) < handle.max_in_flight:
                c = next(pending, None)
                if c is None:
                    break
                idx = _chunk_points(c, size, sweep.n_points)
                in_flight[handle.executor.submit(run_chunk, sweep.for_points(idx), idx)] = c
            if not in_flight:
                break
            finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=in_flight.__getitem__):
                c = in_flight.pop(future)
                rows = future.result()
                write_atomic(_chunk_path(out, c), rows_to_csv(columns, rows))
                session["chunks_run"] += 1
                bar.update(len(rows))
                if on_chunk is not None:
                    on_chunk(c)
    finally:
        for future in in_flight:
            future.cancel()
        bar.close()


def _assemble(sweep: Sweep, out: Path, size: int, n_chunks: int) -> Path:
    """``points.csv``: the chunks in point order, streamed (memory does not grow with the sweep)."""
    table = out / "points.csv"
    tmp = out / ".points.csv.tmp"
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        fh.write(rows_to_csv(sweep.columns, []))
        for c in range(n_chunks):
            path = _chunk_path(out, c)
            with path.open(encoding="utf-8", newline="") as chunk:
                header = chunk.readline().rstrip("\n").split(",")
                expected = _chunk_points(c, size, sweep.n_points)
                body = chunk.read()
            points = [int(line.split(",", 1)[0]) for line in body.splitlines()]
            if header != sweep.columns or points != expected:
                raise ConfigError(
                    "chunk file does not belong to this sweep",
                    file=path,
                    given=f"points {points[:3]}...",
                    allowed=f"points {expected[0]}-{expected[-1]}",
                )
            fh.write(body)
    tmp.replace(table)
    return table


def _analyse(sweep: Sweep, table: Path, out: Path) -> dict[str, Any] | None:
    """``sensitivity.json`` for Sobol' and Morris designs (indices of each outcome's point means)."""
    exp = sweep.experiment
    if exp.design not in ("sobol", "morris"):
        return None
    import pandas as pd

    from . import sensitivity as sa

    df = pd.read_csv(table)
    x = df[list(sweep.design.names)].to_numpy(dtype=float)
    sens = sa.analyze_outcomes(
        exp.design,
        salib_problem(exp.parameters),
        x,
        {o: df[f"{o}_mean"].to_numpy(dtype=float) for o in exp.outcomes},
        second_order=exp.second_order,
        levels=exp.morris_levels,
        seed=sweep.seed,
    )
    sens["n"] = exp.n
    sens["n_points"] = sweep.n_points
    sens["replications"] = exp.replications
    write_atomic(out / "sensitivity.json", dump_json(sens))
    return sens


def _figures(sweep: Sweep, table: Path, out: Path, sens: dict[str, Any] | None) -> list[Path]:
    import pandas as pd

    from .sensitivity import sweep_figures

    df = pd.read_csv(table)
    exp = sweep.experiment
    return sweep_figures(df, exp.design, sweep.design.names, exp.outcomes, sens, out / "figures")


# --- command line --------------------------------------------------------------------------------------


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``displacement-sim sweep`` (DESIGN.md section 6)."""
    from .cli import _at_least, _positive, out_folder

    most = MAX_WORKERS_PER_CORE * available_cores()

    p = sub.add_parser(
        "sweep",
        help="run an experiment: a parameter sweep or a sensitivity analysis",
        description="Run an experiment file (experiments/*.yaml) and write a results folder.",
    )
    p.add_argument("experiment", type=Path)
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_at_least("--workers", 1, most),
        default=None,
        help=f"local worker processes (default: the cores available; 1 = serial in this process; at most {most})",
    )
    where.add_argument(
        "--dask-local",
        type=_at_least("--dask-local", 1, most),
        default=None,
        metavar="N",
        help=f"start a Dask LocalCluster of N workers (at most {most})",
    )
    where.add_argument("--scheduler", default=None, metavar="ADDRESS", help="join a Dask scheduler (tcp://host:port)")
    p.add_argument("--resume", action="store_true", help="complete the interrupted sweep in --out")
    p.add_argument(
        "--out", type=out_folder, default=None, help="results folder (default results/<experiment>-<timestamp>-<id>)"
    )
    p.add_argument("--chunk-size", type=_positive("--chunk-size"), default=None, help="points per task")
    p.add_argument("--n", type=_positive("--n"), default=None, help="override the sample size n")
    p.add_argument("--replications", type=_positive("--replications"), default=None)
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    """``displacement-sim sweep``: every input is checked before anything is written or started."""
    sweep = load_experiment(args.experiment, n=args.n, replications=args.replications)
    if args.resume:
        if args.out is None:
            raise ConfigError("--resume needs the folder to complete", field="--out", allowed="--out DIR")
        out = args.out
        check_resume(sweep, out)
    else:
        out = args.out or default_out_dir(sweep.experiment.name)
        check_new_out(out)
    exp = sweep.experiment
    try:
        with open_executor(args.workers, dask_local=args.dask_local, scheduler=args.scheduler) as handle:
            # after the executor starts: a scheduler that cannot be reached is one error line, nothing else
            print(
                f"{exp.name}: {exp.design} design, {sweep.n_points} points x {exp.replications} replications, "
                f"seed {sweep.seed}\nexecutor: {handle.description}",
                file=sys.stderr,
            )
            result = run_sweep(
                sweep,
                out,
                executor=handle,
                chunk_size=args.chunk_size,
                resume=args.resume,
                figures=not args.no_figures,
            )
    except KeyboardInterrupt:
        print(f"interrupted: finished chunks are kept; resume with --resume --out {out}", file=sys.stderr)
        raise
    except Exception as exc:
        if type(exc).__name__ not in ("BrokenProcessPool", "KilledWorker"):
            raise
        print(
            f"error: workers died ({type(exc).__name__}: {exc}); finished chunks are kept; "
            f"resume with --resume --out {out}",
            file=sys.stderr,
        )
        return 1
    print(_summary(result, sweep))
    return 0


def _summary(result: Any, sweep: Sweep) -> str:
    lines = [
        f"{sweep.experiment.name}: {result.n_points} points, {result.chunks_run} chunk(s) run now, "
        f"{result.wall_seconds:.1f} s",
        f"table: {result.table}",
    ]
    if result.sensitivity:
        key = "ST" if sweep.experiment.design == "sobol" else "mu_star"
        for outcome, res in result.sensitivity["outcomes"].items():
            if "indices" not in res:
                lines.append(f"  {outcome}: {res.get('error')}")
                continue
            ranked = sorted(res["indices"].items(), key=lambda kv: -(kv[1][key] or 0.0))[:3]
            lines.append(f"  {outcome}: largest {key}: " + ", ".join(f"{n} {v[key]:.3g}" for n, v in ranked))
        lines.append(f"sensitivity: {result.out / 'sensitivity.json'}")
    lines.append(f"results: {result.out}")
    return "\n".join(lines)
