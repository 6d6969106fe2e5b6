"""Benchmark session setup: one core, one BLAS thread, and a summary of the derived figures.

The figures of DESIGN.md section 8 are per core, so the whole benchmark session
is pinned to one CPU (``BENCH_CPU``, default 0; ``BENCH_CPU=none`` leaves the
affinity alone) and every thread pool is limited to one thread. Subprocesses
started by the benchmarks inherit both the affinity and the thread variables.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

import pytest

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
for _name in THREAD_VARIABLES:
    os.environ.setdefault(_name, "1")

REPO = Path(__file__).resolve().parents[1]
FIGURES_KEY = pytest.StashKey[dict]()
GIT_AT_START_KEY = pytest.StashKey[dict]()


def _pin() -> set[int] | None:
    """Pin this process to ``BENCH_CPU`` (default CPU 0); return the affinity in force."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    choice = os.environ.get("BENCH_CPU", "0")
    if choice.lower() != "none":
        os.sched_setaffinity(0, {int(choice)})
    return set(os.sched_getaffinity(0))


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_state() -> dict:
    """The commit and whether ``src/`` has uncommitted changes (with a digest of the diff, to spot edits)."""
    diff = _git("diff", "HEAD", "--", "src")
    return {
        "commit": _git("log", "-1", "--format=%h"),
        "src_uncommitted": bool(_git("status", "--short", "src")),
        "src_diff_sha1": hashlib.sha1(diff.encode()).hexdigest() if diff else None,
    }


def pytest_configure(config) -> None:
    """Record the git state when the session starts: the code that is imported and measured."""
    config.stash[GIT_AT_START_KEY] = _git_state()


@pytest.fixture(scope="session", autouse=True)
def one_core():
    """Run the session on one CPU with single-threaded BLAS/OpenMP pools."""
    affinity = _pin()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables above still apply to new processes
        yield affinity
        return
    with threadpool_limits(limits=1):
        yield affinity


@pytest.fixture(scope="session")
def figures(request) -> dict:
    """Derived figures shared between benchmarks (e.g. the Mesa time for the speed-up), printed at the end."""
    store: dict = {}
    request.config.stash[FIGURES_KEY] = store
    return store


def pytest_benchmark_update_machine_info(config, machine_info: dict) -> None:
    """Add what the figures depend on to the benchmark JSON: CPU, affinity, numpy/BLAS, git state."""
    import numpy as np

    machine_info["cpu_model"] = _cpu_model()
    machine_info["nproc"] = os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        machine_info["affinity"] = sorted(os.sched_getaffinity(0))
    machine_info["numpy"] = np.__version__
    machine_info["thread_variables"] = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    try:
        from threadpoolctl import threadpool_info

        machine_info["threadpools"] = [
            {k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for info in threadpool_info()
        ]
    except ImportError:
        pass
    start = config.stash.get(GIT_AT_START_KEY, None) or _git_state()
    end = _git_state()
    machine_info["git_commit"] = start["commit"]
    machine_info["src_uncommitted"] = start["src_uncommitted"]
    machine_info["git_at_start"] = start
    machine_info["git_at_end"] = end
    machine_info["source_changed_during_run"] = start != end


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Print the derived figures (throughput, speed-up, memory) after the benchmark tables."""
    store = config.stash.get(FIGURES_KEY, None)
    if not store:
        return
    terminalreporter.section("displacement-sim derived figures (medians)")
    start = config.stash.get(GIT_AT_START_KEY, None)
    if start:
        terminalreporter.write_line(f"git at start: {start}")
        end = _git_state()
        if end != start:
            terminalreporter.write_line(f"WARNING: the git state changed during the run; at the end: {end}")
    for name, value in store.items():
        terminalreporter.write_line(f"{name}: {value}")
