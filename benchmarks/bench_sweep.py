"""Sweep benchmark: time per sweep point serially, on 2 local processes and on a Dask LocalCluster (issue 5).

Run (not part of the default test run)::

    /work/venv/bin/python -m pytest benchmarks/bench_sweep.py --benchmark-only -p no:cacheprovider

(``--benchmark-only``, not ``--benchmark-enable``: see ``benchmarks/README.md``.)

The target (DESIGN.md section 8): ``experiments/sobol_key_parameters.yaml`` with
N = 256 (4,608 points for 8 parameters), 10 replications per point, 260 weeks,
in at most 10 minutes with ``--workers 2``. A full run takes a quarter of an hour
or more on this machine, so this benchmark times a sample of ``BENCH_SWEEP_POINTS``
points (default 102, spread over the design) of that very file (R = 10, 260 weeks),
in chunks of ``BENCH_SWEEP_CHUNK`` points (default 51: the 510-row batches that
``displacement-sim sweep`` sends by default, see ``executors.BATCH_ROWS``), and
projects the full sweep from the time per point with 2 workers.

Cases:

- ``test_sweep_points[serial]``: the chunks one after the other in this process;
- ``test_sweep_points[processes]``: 2 local worker processes (``--workers 2``);
- ``test_sweep_points[dask]``: a Dask LocalCluster of 2 single-threaded workers on loopback
  (``--dask-local 2``);
- ``test_task_overhead[processes|dask]``: 40 empty chunks: the executor's own cost per task.

Pools and clusters are started (and their workers have imported the package)
before the timing starts: the figures are the steady-state cost, start-up is
reported separately. The session conftest pins benchmarks to one CPU; this
module lifts the pin while it runs, since two workers need two cores.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import wait
from pathlib import Path

import numpy as np
import pytest

from displacement_sim.executors import ExecutorHandle, open_executor
from displacement_sim.experiments import Sweep, load_experiment, run_chunk

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "sobol_key_parameters.yaml"
N_POINTS = int(os.environ.get("BENCH_SWEEP_POINTS", "102"))
CHUNK = int(os.environ.get("BENCH_SWEEP_CHUNK", "51"))
ROUNDS = int(os.environ.get("BENCH_SWEEP_ROUNDS", "1"))
TARGET_MINUTES = 10.0


@pytest.fixture(scope="module", autouse=True)
def all_cores() -> Iterator[None]:
    """Lift the session's one-CPU pin for this module (2 workers need 2 cores); restore it after."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    yield
    os.sched_setaffinity(0, pinned)


@pytest.fixture(scope="module")
def sweep() -> Sweep:
    return load_experiment(EXPERIMENT)


@pytest.fixture(scope="module")
def sample(sweep: Sweep) -> list[int]:
    """``N_POINTS`` point indices spread evenly over the design."""
    return [int(k) for k in np.linspace(0, sweep.n_points - 1, N_POINTS).round()]


def _run(handle: ExecutorHandle, sweep: Sweep, points: list[int], chunk: int) -> int:
    futures = [
        handle.executor.submit(run_chunk, sweep.for_points(points[i : i + chunk]), points[i : i + chunk])
        for i in range(0, len(points), chunk)
    ]
    wait(futures)
    rows = [row for f in futures for row in f.result()]
    assert sorted(r["point"] for r in rows) == sorted(points)
    assert all(np.isfinite(r["seized_kg_mean"]) for r in rows)
    return len(rows)


def _warm(handle: ExecutorHandle, sweep: Sweep) -> None:
    """Make every worker import the package and run once (empty chunks), outside the timing."""
    wait([handle.executor.submit(run_chunk, sweep.for_points([]), []) for _ in range(4 * handle.workers)])


def _open(kind: str):
    if kind == "serial":
        return open_executor(1)
    if kind == "processes":
        return open_executor(2)
    pytest.importorskip("distributed")
    return open_executor(dask_local=2)


@pytest.mark.parametrize("kind", ["serial", "processes", "dask"])
def test_sweep_points(benchmark, sweep, sample, figures, kind):
    started = time.perf_counter()
    with _open(kind) as handle:
        _warm(handle, sweep)
        startup = time.perf_counter() - started
        if kind == "serial":  # the first point pays numpy's first-call costs; keep it out of the timing
            run_chunk(sweep.for_points([sample[0]]), [sample[0]])
        cpu0 = time.process_time()
        benchmark.pedantic(_run, args=(handle, sweep, sample, CHUNK), rounds=ROUNDS, iterations=1)
        cpu = (time.process_time() - cpu0) / ROUNDS
    per_point = benchmark.stats.stats.median / len(sample)
    full_minutes = per_point * sweep.n_points / 60
    benchmark.extra_info.update(
        {
            "executor": handle.description,
            "points_timed": len(sample),
            "points_per_chunk": CHUNK,
            "replications": sweep.experiment.replications,
            "weeks": sweep.base["weeks"],
            "seconds_per_point": per_point,
            "coordinator_cpu_seconds_per_point": cpu / len(sample),  # the whole work when serial
            "startup_seconds": startup,
            "design_points": sweep.n_points,
            "projected_full_sweep_minutes": full_minutes,
        }
    )
    figures[f"sweep {kind}: seconds per point (R=10, 260 weeks)"] = f"{per_point:.3f}"
    if kind == "serial":  # CPU time is less sensitive to other load on the machine than wall time
        cpu_point = cpu / len(sample)
        benchmark.extra_info["cpu_seconds_per_point"] = cpu_point
        figures["sweep serial: CPU seconds per point"] = f"{cpu_point:.3f}"
        figures[f"sweep: projected {sweep.n_points}-point sweep on 2 workers from serial CPU time, minutes"] = (
            f"{cpu_point * sweep.n_points / 2 / 60:.1f} (target {TARGET_MINUTES:g}; perfect 2x scaling assumed)"
        )
    figures[f"sweep {kind}: start-up (pool/cluster and imports), s"] = f"{startup:.1f}"
    figures[f"sweep {kind}: projected {sweep.n_points}-point sweep, minutes"] = (
        f"{full_minutes:.1f} (target {TARGET_MINUTES:g} with 2 workers)"
    )


@pytest.mark.parametrize("kind", ["processes", "dask"])
def test_task_overhead(benchmark, sweep, figures, kind):
    """Round trip of an empty chunk: pickling the task, scheduling, the result coming back."""
    n_tasks = 40
    with _open(kind) as handle:
        _warm(handle, sweep)

        def empty_chunks() -> None:
            wait([handle.executor.submit(run_chunk, sweep.for_points([]), []) for _ in range(n_tasks)])

        benchmark.pedantic(empty_chunks, rounds=3, iterations=1)
    per_task = benchmark.stats.stats.median / n_tasks
    benchmark.extra_info.update({"executor": handle.description, "seconds_per_task": per_task})
    figures[f"sweep {kind}: overhead per task (empty chunk), ms"] = f"{1000 * per_task:.1f}"
