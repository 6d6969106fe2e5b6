"""Running a scenario on either engine: :func:`run_batch` and :func:`run_scenario`."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from . import vectorized
from .errors import ConfigError
from .metrics import PortInfo, Recorder
from .model import RECORD_KEYS, DisplacementModel
from .params import RunPlan, build_plan
from .results import BatchResult
from .rows import stack, structure_key
from .schema import Scenario

__all__ = ["run_batch", "run_mesa", "run_points", "run_scenario"]

# Rows (replications, or points x replications) run in lockstep while their state stays under this many
# cells (N x P x rows); a larger batch is split. The baseline's 1,000 replications (1.2 M cells) are one
# batch and peak at 0.47 GiB resident (docs/performance.md), so a full batch's state stays under about
# 1 GiB. A split batch with bands also keeps the bands' weekly series until they are computed over every
# replication: in anonymous temporary files (about 0.1 MB per replication of the baseline, 1 GB for 10,000),
# read back a week at a time, so memory does not grow with the replications.
MAX_CELLS_PER_BATCH = 2_000_000


def _port_info(plan: RunPlan) -> PortInfo:
    p = plan.params[0]
    enabled = np.logical_or.reduce([q.enabled for q in plan.params])  # enabled in any phase
    return PortInfo(ids=p.port_ids, kind=p.kind, country=p.country, enabled=enabled, agencies=plan.coop[0].codes)


def _eval_from(plan: RunPlan, eval_from: int | None) -> int:
    return plan.warmup_weeks if eval_from is None else int(eval_from)


def run_batch(
    config: Scenario,
    replications: int = 100,
    seed: int | None = None,
    *,
    weeks: int | None = None,
    eval_from: int | None = None,
    keep_series: bool = False,
    point: int = 0,
    first_replication: int = 0,
    progress: Callable[[int], None] | None = None,
    l_max: int | None = None,
    bands: bool = True,
) -> BatchResult:
    """Run ``replications`` of ``config`` on the vectorized engine.

    Replication ``r`` uses the streams keyed ``(seed, point, r)``, so it equals
    ``DisplacementModel(config=config, rng=seed, replication=r).run()``.
    ``bands=False`` skips the weekly quantile bands (totals and metrics are unchanged).
    Large batches (more than ``MAX_CELLS_PER_BATCH`` cells) are split into groups that
    run one after the other; the weekly bands are then computed once over every
    replication, from the series the groups write to anonymous temporary files (about
    0.1 MB per replication of ``baseline.yaml``, in ``tempfile.gettempdir()``, which
    ``TMPDIR`` sets; freed when the run ends, however it ends), so they are the numbers
    of one batch and memory does not grow with the replications (without
    ``keep_series``, which keeps every series in memory). A batch whose files would not
    fit in the free space there is refused before it runs (:class:`ConfigError`).
    """
    start = time.perf_counter()
    seed = int(config.seed if seed is None else seed)
    plan = build_plan(config, weeks, l_max)
    cells = plan.n_slots * len(plan.params[0].port_ids)
    group = max(1, MAX_CELLS_PER_BATCH // max(cells, 1))
    first = int(first_replication)
    reps = np.arange(first, first + int(replications))
    split = len(reps) > group  # the groups' bands are computed once, over every replication (exact)
    n_ports = len(plan.params[0].port_ids)
    spill = _spill_dir(len(reps), plan.weeks, n_ports) if Recorder.defers_bands(keep_series, bands, split) else None
    parts: list[Recorder] = []
    try:
        for lo in range(0, len(reps), group):
            chunk = reps[lo : lo + group]
            parts.append(
                Recorder(len(chunk), plan.weeks, _eval_from(plan, eval_from), n_ports, keep_series, bands, split, spill)
            )
            vectorized.simulate(plan, seed, chunk, parts[-1], point=point)
            if progress:
                progress(len(chunk))
        parts = [parts[0] if len(parts) == 1 else Recorder.concatenate(parts)]
        return BatchResult.from_recorder(  # computes a split batch's bands, reading the spill files
            config,
            parts[0],
            _port_info(plan),
            engine="vectorized",
            seed=seed,
            replications=reps,
            wall_seconds=time.perf_counter() - start,
        )
    finally:
        for rec in parts:  # a run that stopped early: its spill files go now, not when the process ends
            if not rec.consumed:
                rec.close()


def _spill_dir(replications: int, weeks: int, n_ports: int) -> str:
    """The directory of a split batch's spill files (``tempfile.gettempdir()``), checked for room first.

    Not enough free space is reported before anything runs, as a bad number of
    replications for this machine (:class:`ConfigError`, exit status 2 on the command line).
    """
    directory = tempfile.gettempdir()
    need = replications * Recorder.spill_bytes(weeks, n_ports)
    free = shutil.disk_usage(directory).free
    if need > free:
        raise ConfigError(
            f"the weekly bands of a batch this large need {need / 1e9:.2f} GB of temporary files and "
            f"{directory} has {free / 1e9:.2f} GB free",
            field="replications",
            given=replications,
            allowed=f"at most {free // Recorder.spill_bytes(weeks, n_ports):,} here, "
            "or set TMPDIR to a directory with more room",
        )
    return directory


def run_points(
    configs: Sequence[Scenario],
    replications: int,
    seed: int,
    points: Sequence[int],
    *,
    weeks: int | None = None,
    eval_from: int | None = None,
    keep_series: bool = False,
    l_max: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[BatchResult]:
    """Run several sweep points, ``replications`` each, batching points on the vectorized engine.

    Points whose engine parameters differ only in row fields (:mod:`displacement_sim.rows`)
    run as one batch of ``len(points) x replications`` rows; the others run in batches
    of their own (and a batch too large for ``MAX_CELLS_PER_BATCH`` is split by points).
    Point ``k`` uses the streams ``(seed, points[k], r)``, so
    ``run_points(...)[k]`` equals ``run_batch(configs[k], replications, seed, point=points[k])``
    (totals and metrics; the weekly quantile bands are not computed).
    """
    if len(points) != len(configs):
        raise ValueError(f"{len(configs)} configs but {len(points)} point indices")
    if int(replications) < 1:
        raise ValueError(f"replications must be at least 1, got {replications}")
    start = time.perf_counter()
    seed = int(seed)
    plans = [build_plan(c, weeks, l_max) for c in configs]
    batches: dict[object, list[int]] = {}
    for i, plan in enumerate(plans):
        batches.setdefault(structure_key(plan), []).append(i)
    reps = np.arange(int(replications))
    out: list[BatchResult | None] = [None] * len(configs)
    pieces = []
    for members in batches.values():  # a batch too large for memory is split into batches of whole points
        cells = plans[members[0]].n_slots * len(plans[members[0]].params[0].port_ids)
        per_batch = max(1, MAX_CELLS_PER_BATCH // max(cells * len(reps), 1))
        pieces += [members[i : i + per_batch] for i in range(0, len(members), per_batch)]
    for members in pieces:
        plan = stack([plans[i] for i in members], [len(reps)] * len(members))
        row_points = np.repeat([int(points[i]) for i in members], len(reps))
        row_reps = np.tile(reps, len(members))
        n_ports = len(plan.params[0].port_ids)
        rec = Recorder(len(row_reps), plan.weeks, _eval_from(plan, eval_from), n_ports, keep_series, bands=False)
        vectorized.simulate(plan, seed, row_reps, rec, point=row_points)
        for j, i in enumerate(members):
            part = rec.rows(j * len(reps), (j + 1) * len(reps))
            info = _port_info(plans[i])
            out[i] = BatchResult.from_recorder(
                configs[i], part, info, engine="vectorized", seed=seed, replications=reps, wall_seconds=0.0
            )
        if progress:
            progress(len(members))
    elapsed = time.perf_counter() - start
    return [replace(r, wall_seconds=elapsed / len(out)) for r in out]


def run_mesa(
    config: Scenario,
    replications: int = 1,
    seed: int | None = None,
    *,
    weeks: int | None = None,
    eval_from: int | None = None,
    keep_series: bool = False,
    point: int = 0,
    first_replication: int = 0,
    progress: Callable[[int], None] | None = None,
    l_max: int | None = None,
    bands: bool = True,
) -> BatchResult:
    """Run ``replications`` of ``config`` on the Mesa engine, one model after another.

    The arguments are those of :func:`run_batch`; ``l_max`` sets a common shipment-block
    width so different scenarios share their random numbers.
    """
    start = time.perf_counter()
    seed = int(config.seed if seed is None else seed)
    reps = np.arange(first_replication, first_replication + int(replications))
    weekly = []
    plan = None
    for r in reps:
        model = DisplacementModel(
            config=config, rng=seed, replication=int(r), point=point, weeks=weeks, l_max=l_max
        ).run()
        plan = model.plan
        weekly.append(model.weekly())
        if progress:
            progress(1)
    n_ports = len(plan.params[0].port_ids)
    recorder = Recorder(len(reps), plan.weeks, _eval_from(plan, eval_from), n_ports, keep_series, bands)
    for week in range(plan.weeks):
        recorder.add(week, {k: np.stack([w[k][week] for w in weekly]) for k in RECORD_KEYS})
    return BatchResult.from_recorder(
        config,
        recorder,
        _port_info(plan),
        engine="mesa",
        seed=seed,
        replications=reps,
        wall_seconds=time.perf_counter() - start,
    )


def run_scenario(config: Scenario, engine: str | None = None, replications: int = 1, **kwargs) -> BatchResult:
    """Run on ``engine`` (``mesa`` or ``vectorized``; default: vectorized when replications > 1)."""
    engine = engine or ("vectorized" if replications > 1 else "mesa")
    if engine == "mesa":
        return run_mesa(config, replications, **kwargs)
    if engine == "vectorized":
        return run_batch(config, replications, **kwargs)
    raise ValueError(f"unknown engine {engine!r}; allowed: mesa, vectorized")
