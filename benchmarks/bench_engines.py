"""Engine benchmarks on the ``scenarios/baseline.yaml`` five-year run (issue 4 item 5; DESIGN.md section 8).

Run (the default test run skips them: pyproject's ``addopts`` has ``--benchmark-skip``
and ``testpaths`` is ``tests``)::

    /work/venv/bin/python -m pytest benchmarks/bench_engines.py --benchmark-only -p no:cacheprovider

``--benchmark-only`` overrides ``--benchmark-skip``; ``--benchmark-enable`` does not
(pytest-benchmark 5.3: it only undoes ``--benchmark-disable``), so with it every case is skipped.

The session is pinned to one CPU with single-threaded thread pools (``conftest.py``),
because the targets are per core. Benchmarks measure; they assert only that the
runs are correct (R replications of 260 weeks with finite totals), never a timing.

Definitions (DESIGN.md section 8): a *cell-week* is one network slot x one
alternative (each port, elsewhere, hold) x one week x one replication, so a run
has ``n_slots x (n_ports + 2) x weeks x R`` cell-weeks.

Environment knobs: ``BENCH_ROUNDS`` (rounds per timing, default 3), ``BENCH_LARGE_R`` (the large
batch, default 1000; lower only for a smoke run), ``BENCH_CPU``
(the CPU to pin, default 0; ``none`` for no pinning).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from displacement_sim.config import load_scenario
from displacement_sim.params import build_plan
from displacement_sim.runner import run_batch, run_mesa

BASELINE = Path(__file__).resolve().parents[1] / "scenarios" / "baseline.yaml"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
LARGE_R = int(os.environ.get("BENCH_LARGE_R", "1000"))  # the large batch; lower it only for a smoke run
GIB = 1024**3

# Median wall seconds of each timed case, filled as the benchmarks run (file order: Mesa first).
TIMINGS: dict[str, float] = {}
# Median CPU seconds (this process, user + system) of each timed case: less sensitive to other load on the core.
CPU_TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def cfg():
    return load_scenario(BASELINE)


@pytest.fixture(scope="module")
def geometry(cfg) -> dict[str, int]:
    """Slots, ports and weeks of the baseline run: the factors of a cell-week count."""
    plan = build_plan(cfg)
    return {"n_slots": plan.n_slots, "n_ports": plan.params[0].n_ports, "weeks": plan.weeks, "l_max": plan.l_max}


def cell_weeks(geometry: dict[str, int], replications: int) -> int:
    """``n_slots x (n_ports + 2) x weeks x R`` (DESIGN.md section 8)."""
    return geometry["n_slots"] * (geometry["n_ports"] + 2) * geometry["weeks"] * replications


def _median(benchmark) -> float:
    return float(benchmark.stats.stats.median)


class CpuClock:
    """Wraps a target so each call's CPU time (``time.process_time``) is kept beside the benchmark's wall time."""

    def __init__(self, target: Callable):
        self.target = target
        self.seconds: list[float] = []

    def __call__(self, *args, **kwargs):
        start = time.process_time()
        try:
            return self.target(*args, **kwargs)
        finally:
            self.seconds.append(time.process_time() - start)

    def median(self, rounds: int) -> float:
        """Median over the last ``rounds`` calls (the warm-up calls come first and are left out)."""
        return float(np.median(self.seconds[-rounds:]))


def _check(result, engine: str, replications: int, weeks: int) -> None:
    """Correctness of a benchmarked run: the right engine, R replications, the full horizon, finite totals."""
    assert result.engine == engine
    assert result.n_replications == replications
    assert result.weeks == weeks
    shipped = result.metrics["shipped_kg"]
    assert shipped.shape == (replications,)
    assert np.all(np.isfinite(shipped))
    assert np.all(shipped > 0)


def _record_rates(benchmark, clock: CpuClock, geometry: dict[str, int], replications: int, key: str) -> float:
    """Store wall and CPU medians with the derived rates in ``extra_info``; return the wall median."""
    seconds = _median(benchmark)
    cpu = clock.median(ROUNDS)
    TIMINGS[key] = seconds
    CPU_TIMINGS[key] = cpu
    cells = cell_weeks(geometry, replications)
    benchmark.extra_info.update(
        {
            "replications": replications,
            "seconds": seconds,
            "seconds_per_replication": seconds / replications,
            "cell_weeks": cells,
            "cell_weeks_per_second": cells / seconds,
            "cpu_seconds": cpu,
            "cpu_seconds_per_replication": cpu / replications,
            "cell_weeks_per_cpu_second": cells / cpu,
            **geometry,
        }
    )
    return seconds


# --- peak memory, in fresh subprocesses so earlier allocations do not count ---------------------------

_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time, tracemalloc
    from displacement_sim.config import load_scenario
    from displacement_sim.runner import run_batch

    def vm_hwm_kib():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return None

    mode, replications, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    cfg = load_scenario(path)
    from displacement_sim import runner
    if len(sys.argv) > 4:  # split the batch into groups of this many replications (the memory limit)
        plan = runner.build_plan(cfg)
        runner.MAX_CELLS_PER_BATCH = int(sys.argv[4]) * plan.n_slots * len(plan.params[0].port_ids)
    groups, simulate = [], runner.vectorized.simulate
    def counted(*args, **kwargs):
        groups.append(1)
        return simulate(*args, **kwargs)
    runner.vectorized.simulate = counted
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm_before = vm_hwm_kib()
    if mode == "tracemalloc":
        tracemalloc.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    result = run_batch(cfg, replications, seed=cfg.seed)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    traced_peak = tracemalloc.get_traced_memory()[1] if mode == "tracemalloc" else None
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "mode": mode,
        "replications": result.n_replications,
        "groups": len(groups),
        "weeks": result.weeks,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "ru_maxrss_kib_before_run": rss_before,
        "ru_maxrss_kib": rss_after,
        "vm_hwm_kib_before_run": hwm_before,
        "vm_hwm_kib": vm_hwm_kib(),
        "tracemalloc_peak_bytes": traced_peak,
    }))
    """
)


def _run_memory_probe(mode: str, replications: int, group: int | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, mode, str(replications), str(BASELINE)]
        + ([str(group)] if group is not None else []),
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _parent_rss_kib() -> int | None:
    """This (pytest) process's current resident set, KiB, from ``/proc/self/status`` (``VmRSS``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


@pytest.mark.parametrize("mode", ["rss", "tracemalloc"])
def test_peak_memory_large_batch(benchmark, geometry, figures, mode):
    """Peak memory of a 1,000-replication five-year baseline run (target < 2 GiB), in a fresh process.

    ``rss``: the process's peak resident set, interpreter and imports included, as
    ``VmHWM`` (``/proc/self/status``) and as ``ru_maxrss`` (KiB on Linux). Linux carries
    ``ru_maxrss`` over ``fork``/``exec`` from the parent, so it is at least the pytest
    process's resident set when the subprocess starts; these cases run first in the file,
    while that is small, and the parent's resident set is recorded beside it. ``VmHWM``
    belongs to the new process's address space alone. The run time is also a
    fresh-process throughput figure. ``tracemalloc``: the peak of traced allocations
    during the run (numpy reports its array buffers to tracemalloc), without the
    interpreter; tracing slows the run, so its time is not a throughput figure.
    """
    parent_kib = _parent_rss_kib()
    probe = benchmark.pedantic(_run_memory_probe, args=(mode, LARGE_R), rounds=1, iterations=1)
    assert probe["replications"] == LARGE_R
    assert probe["weeks"] == geometry["weeks"]
    assert probe["groups"] == 1  # one batch, not split
    benchmark.extra_info.update(probe)
    benchmark.extra_info["parent_rss_kib_at_start"] = parent_kib
    if mode == "rss":
        cells = cell_weeks(geometry, LARGE_R)
        hwm = probe["vm_hwm_kib"]
        if hwm is not None:
            benchmark.extra_info["peak_rss_gib"] = hwm / 1024**2
            figures[f"R={LARGE_R} peak RSS (VmHWM)"] = (
                f"{hwm / 1024**2:.3f} GiB (before the run: {probe['vm_hwm_kib_before_run'] / 1024**2:.3f} GiB)"
            )
        benchmark.extra_info["ru_maxrss_gib"] = probe["ru_maxrss_kib"] / 1024**2
        benchmark.extra_info["cell_weeks_per_second_fresh_process"] = cells / probe["seconds"]
        benchmark.extra_info["cell_weeks_per_cpu_second_fresh_process"] = cells / probe["cpu_seconds"]
        parent = f"{parent_kib / 1024**2:.3f} GiB" if parent_kib is not None else "unknown"
        figures[f"R={LARGE_R} peak RSS (ru_maxrss)"] = (
            f"{probe['ru_maxrss_kib'] / 1024**2:.3f} GiB (before the run: "
            f"{probe['ru_maxrss_kib_before_run'] / 1024**2:.3f} GiB; parent process at start: {parent})"
        )
        figures[f"R={LARGE_R} fresh-process run (wall / cpu)"] = (
            f"{probe['seconds']:.2f} s / {probe['cpu_seconds']:.2f} s, "
            f"{cells / probe['seconds']:,.0f} / {cells / probe['cpu_seconds']:,.0f} cell-weeks/s"
        )
    else:
        benchmark.extra_info["tracemalloc_peak_gib"] = probe["tracemalloc_peak_bytes"] / GIB
        figures[f"R={LARGE_R} tracemalloc peak"] = f"{probe['tracemalloc_peak_bytes'] / GIB:.3f} GiB"


SPLIT_GROUP = 250  # replications per group in the split-batch memory cases


@pytest.mark.parametrize("replications", [1000, 2000])
def test_peak_memory_split_batch(benchmark, geometry, figures, replications):
    """Peak memory of a batch split into groups of 250 replications by the memory limit, in a fresh process.

    The groups run one after the other and write the bands' weekly series to a temporary
    file, so the peak should not grow with the replications (unless the temporary directory
    is a RAM-backed ``tmpfs``, where the files take memory outside the process): compare the two cases
    (``VmHWM``, as in :func:`test_peak_memory_large_batch`). A batch is split when its state
    would pass ``MAX_CELLS_PER_BATCH`` cells (about 1,660 replications of the baseline);
    the limit is lowered here so the cases stay short.
    """
    probe = benchmark.pedantic(_run_memory_probe, args=("rss", replications, SPLIT_GROUP), rounds=1, iterations=1)
    assert probe["replications"] == replications
    assert probe["groups"] == -(-replications // SPLIT_GROUP)  # the batch was split
    benchmark.extra_info.update(probe)
    hwm = probe["vm_hwm_kib"]
    if hwm is not None:
        benchmark.extra_info["peak_rss_gib"] = hwm / 1024**2
        figures[f"R={replications} in groups of {SPLIT_GROUP}: peak RSS (VmHWM)"] = (
            f"{hwm / 1024**2:.3f} GiB (before the run: {probe['vm_hwm_kib_before_run'] / 1024**2:.3f} GiB); "
            f"{probe['seconds']:.1f} s"
        )


# --- timings: Mesa first, so the vectorized cases can quote the speed-up ------------------------------


def test_mesa_one_replication(benchmark, cfg, geometry, figures):
    """The Mesa engine, one replication of the baseline (``run_mesa``: model, recorder and result, as run_batch)."""
    clock = CpuClock(run_mesa)
    result = benchmark.pedantic(clock, args=(cfg, 1), kwargs={"seed": cfg.seed}, rounds=ROUNDS, warmup_rounds=1)
    _check(result, "mesa", 1, geometry["weeks"])
    seconds = _record_rates(benchmark, clock, geometry, 1, "mesa_R1")
    figures["mesa R=1 seconds (wall / cpu)"] = f"{seconds:.3f} / {CPU_TIMINGS['mesa_R1']:.3f}"
    figures["mesa cell-weeks/s (wall)"] = f"{cell_weeks(geometry, 1) / seconds:,.0f}"


@pytest.mark.parametrize("replications", [1, 100, LARGE_R])
def test_vectorized(benchmark, cfg, geometry, figures, replications):
    """The vectorized engine, R replications of the baseline in one ``run_batch`` call."""
    warmup = 1 if replications < LARGE_R else 0
    clock = CpuClock(run_batch)
    result = benchmark.pedantic(
        clock,
        args=(cfg, replications),
        kwargs={"seed": cfg.seed},
        rounds=ROUNDS,
        warmup_rounds=warmup,
    )
    _check(result, "vectorized", replications, geometry["weeks"])
    key = f"vectorized_R{replications}"
    seconds = _record_rates(benchmark, clock, geometry, replications, key)
    cpu = CPU_TIMINGS[key]
    cells = cell_weeks(geometry, replications)
    figures[f"vectorized R={replications} seconds (wall / cpu)"] = f"{seconds:.3f} / {cpu:.3f}"
    figures[f"vectorized R={replications} s/replication (wall)"] = f"{seconds / replications:.5f}"
    figures[f"vectorized R={replications} cell-weeks/s (wall / cpu)"] = f"{cells / seconds:,.0f} / {cells / cpu:,.0f}"
    if "mesa_R1" in TIMINGS:
        speedup = TIMINGS["mesa_R1"] / (seconds / replications)
        speedup_cpu = CPU_TIMINGS["mesa_R1"] / (cpu / replications)
        benchmark.extra_info["speedup_per_replication_vs_mesa_R1"] = speedup
        benchmark.extra_info["speedup_per_replication_vs_mesa_R1_cpu"] = speedup_cpu
        figures[f"speed-up per replication, vectorized R={replications} vs Mesa R=1 (wall / cpu)"] = (
            f"{speedup:.1f}x / {speedup_cpu:.1f}x"
        )
