"""Executors: serial, Dask on a real LocalCluster (loopback), a lost Dask worker, Dask missing or unreachable.

The claim: a sweep's table is byte-for-byte the same on every executor, and a
Dask worker killed with SIGKILL in the middle of a sweep costs time, not results.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
import yaml

from displacement_sim.errors import ConfigError
from displacement_sim.executors import SerialExecutor, open_executor, run_sweep
from displacement_sim.experiments import load_experiment

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "scenarios" / "baseline.yaml"

distributed = pytest.importorskip("distributed")


def small_experiment(folder: Path) -> Path:
    data = {
        "name": "dask_small",
        "base": str(BASELINE),
        "design": "grid",
        "replications": 2,
        "overrides": {"weeks": 30, "warmup_weeks": 10, "networks.n_slots": 10},
        "parameters": [
            {"path": "behaviour.beta", "levels": [0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0]},
            {"path": "enforcement.NL.rule", "name": "nl_rule", "categories": ["threat", "reactive", "static"]},
        ],
        "outcomes": ["seized_kg", "regional_share"],
    }
    path = folder / "dask_small.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sweep_and_reference(tmp_path_factory):
    """The small sweep (24 points) and its table run serially in this process."""
    folder = tmp_path_factory.mktemp("dask")
    sweep = load_experiment(small_experiment(folder))
    ref = run_sweep(sweep, folder / "serial", chunk_size=24, figures=False)
    return sweep, ref.table.read_bytes()


def test_serial_executor_runs_inline_and_keeps_exceptions():
    ex = SerialExecutor()
    ok = ex.submit(pow, 2, 10)
    assert isinstance(ok, Future) and ok.done() and ok.result() == 1024
    bad = ex.submit(int, "x")
    assert bad.done() and isinstance(bad.exception(), ValueError)
    ex.shutdown()
    with pytest.raises(RuntimeError):
        ex.submit(pow, 2, 2)


def test_dask_local_cluster_gives_the_serial_table(tmp_path, sweep_and_reference, monkeypatch):
    sweep, reference = sweep_and_reference
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)  # a nanny started by another test leaves it here
    with open_executor(dask_local=2) as handle:
        assert handle.kind == "dask-local" and handle.workers == 2
        assert "127.0.0.1" in handle.description
        # workers with glibc's default malloc (not the nanny's MALLOC_TRIM_THRESHOLD_) and without the dashboard's
        # profiler (executors.DASK_LOCAL_CONFIG)
        environ = [handle.executor.submit(os.environ.get, "MALLOC_TRIM_THRESHOLD_") for _ in range(4)]
        assert [f.result() for f in environ] == [None] * 4
        profiling = handle.client.run(lambda: __import__("dask").config.get("distributed.worker.profile.enabled"))
        assert list(profiling.values()) == [False, False]
        for size in (1, 7):
            res = run_sweep(sweep, tmp_path / f"dask-{size}", executor=handle, chunk_size=size, figures=False)
            assert res.table.read_bytes() == reference, f"chunk size {size}"


def test_a_dask_worker_killed_mid_sweep_does_not_change_the_table(tmp_path, sweep_and_reference):
    """SIGKILL one worker process after the first chunk; the nanny restarts it, the scheduler reruns its task."""
    from dask.distributed import Client, LocalCluster

    sweep, reference = sweep_and_reference
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    try:
        victim = sorted(client.run(os.getpid).values())[0]
        first_chunk = threading.Event()
        outcome: dict[str, object] = {}

        def sweep_on_the_cluster() -> None:
            try:
                with open_executor(scheduler=cluster.scheduler_address) as handle:
                    outcome["result"] = run_sweep(
                        sweep,
                        tmp_path / "dask",
                        executor=handle,
                        chunk_size=1,
                        figures=False,
                        on_chunk=lambda c: first_chunk.set(),
                    )
            except BaseException as exc:  # reported in the main thread
                outcome["error"] = exc

        runner = threading.Thread(target=sweep_on_the_cluster)
        runner.start()
        assert first_chunk.wait(timeout=180), "no chunk finished on the cluster"
        os.kill(victim, signal.SIGKILL)
        chunks_at_kill = len(list((tmp_path / "dask" / "chunks").glob("*.csv")))
        runner.join(timeout=300)
        assert not runner.is_alive(), "the sweep did not finish after a worker was killed"
        assert "error" not in outcome, outcome.get("error")
        assert chunks_at_kill < sweep.n_points, "the sweep had finished before the kill; nothing was tested"
        deadline = time.monotonic() + 60  # the nanny replaces the killed worker
        while len(client.scheduler_info()["workers"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert victim not in set(client.run(os.getpid).values())
    finally:
        client.close()
        cluster.close()
    assert outcome["result"].table.read_bytes() == reference


def test_an_unreachable_scheduler_is_a_clear_error():
    with (
        pytest.raises(ConfigError, match=r"--scheduler.*cannot connect to the Dask scheduler"),
        open_executor(scheduler="tcp://127.0.0.1:9", connect_timeout=1.0),
    ):
        pass


@pytest.mark.parametrize("module", ["dask", "dask.distributed"])
def test_dask_missing_is_a_clear_error(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    for option, kwargs in (("--dask-local", {"dask_local": 2}), ("--scheduler", {"scheduler": "tcp://127.0.0.1:9"})):
        with (
            pytest.raises(ConfigError, match=rf"{option}.*Dask is not installed.*displacement-sim\[dask\]"),
            open_executor(**kwargs),
        ):
            pass
