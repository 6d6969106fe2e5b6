"""Batched sweep points (issue 4, item 3): K points x R replications in one vectorized batch.

The claims: a point's results are exactly those of running it alone
(``run_batch(config, R, seed, point=k)``), whichever points share its batch and
in whatever order; points that differ in structure (an allocation rule, a delay)
still run correctly, in batches of their own; a point's replication equals the
Mesa model for that (point, replication).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from displacement_sim.config import load_scenario
from displacement_sim.model import DisplacementModel
from displacement_sim.params import build_plan
from displacement_sim.rows import NotBatchable, stack, structure_key
from displacement_sim.runner import run_batch, run_points

BASE = {
    "name": "batched",
    "weeks": 60,
    "warmup_weeks": 10,
    "networks": {"n_slots": 10, "hvt_share": 0.5},
    "enforcement": {
        "BE": {"budget": 100, "rule": "threat", "case_units": 3, "open_rate": 3.0, "dur_weeks": 5},
        "NL": {"budget": 80, "rule": "reactive", "case_units": 3, "open_rate": 3.0, "dur_weeks": 5},
    },
}
ROW_OVERRIDES: list[dict[str, Any]] = [
    {},
    {"behaviour.beta": 0.8, "behaviour.memory": 0.95, "behaviour.omega": 0.1},
    {"ports[kind=hub].q": 2.8, "networks.risk_aversion.median": 1.5, "behaviour.access_growth": 0.25},
    {"succession.psi": 0.6, "intel.gain_seizure": 0.35, "enforcement.info_exchange.share": 0.8},
    {"enforcement.BE.budget": 20, "enforcement.NL.sigma": 0.9, "behaviour.nest_lambda": 0.9},
]


def config(overrides: dict[str, Any]):
    return load_scenario(BASE, overrides=overrides)


def assert_same_result(a, b) -> None:
    for k in a.metrics:
        assert np.array_equal(a.metrics[k], b.metrics[k], equal_nan=True), k
    for k in a.port_values:
        assert np.array_equal(a.port_values[k], b.port_values[k], equal_nan=True), k


def test_row_parameters_share_one_batch() -> None:
    """Points that differ only in behaviour, detection, budgets, intel and succession numbers batch together."""
    plans = [build_plan(config(o)) for o in ROW_OVERRIDES]
    assert len({structure_key(p) for p in plans}) == 1
    stacked = stack(plans, [3] * len(plans))
    assert np.shape(stacked.params[0].beta) == (3 * len(plans),)  # one value per row
    assert np.shape(stacked.params[0].q) == (3 * len(plans), stacked.params[0].n_ports)
    assert np.ndim(stacked.params[0].kappa) == 0  # unchanged numbers stay shared


def test_structural_differences_do_not_batch() -> None:
    a = build_plan(config({}))
    b = build_plan(config({"enforcement.BE.rule": "static"}))
    assert structure_key(a) != structure_key(b)
    with pytest.raises(NotBatchable, match="rule"):
        stack([a, b], [1, 1])


def test_batched_points_equal_points_run_alone() -> None:
    configs = [config(o) for o in ROW_OVERRIDES]
    points = [3, 7, 11, 12, 20]
    batched = run_points(configs, 4, seed=5, points=points)
    for cfg, k, res in zip(configs, points, batched, strict=True):
        assert_same_result(res, run_batch(cfg, 4, seed=5, point=k, bands=False))


def test_a_point_does_not_depend_on_its_batch() -> None:
    """The same point, batched with different companions and in another order, gives the same numbers."""
    configs = [config(o) for o in ROW_OVERRIDES]
    alone = run_points([configs[2]], 3, seed=9, points=[2])[0]
    crowd = run_points(configs[::-1], 3, seed=9, points=[4, 3, 2, 1, 0])[2]
    assert_same_result(alone, crowd)
    other = run_points([configs[2]], 3, seed=9, points=[5])[0]  # its own streams: another point index differs
    assert not np.array_equal(alone.metrics["seized_kg"], other.metrics["seized_kg"])


def test_mixed_structures_run_in_separate_batches() -> None:
    changes = [{}, {"enforcement.BE.rule": "static"}, {"enforcement.info_exchange.delay_weeks": 1}]
    configs = [config(c) for c in changes]
    batched = run_points(configs, 2, seed=3, points=[0, 1, 2])
    for k, cfg in enumerate(configs):
        assert_same_result(batched[k], run_batch(cfg, 2, seed=3, point=k, bands=False))


def test_a_batched_row_replays_in_mesa() -> None:
    """Row (point 4, replication 1) of a batch of points is the Mesa model run for that point and replication."""
    configs = [config(o) for o in ROW_OVERRIDES]
    batched = run_points(configs, 2, seed=13, points=range(5), keep_series=True)
    model = DisplacementModel(config=configs[4], rng=13, replication=1, point=4).run()
    weekly = model.weekly()
    for key in ("shipped_kg", "seized_kg", "dismantled", "successors", "inspection_rate"):
        assert np.array_equal(batched[4].series[key][1], weekly[key]), key


@settings(max_examples=8, deadline=None)
@given(
    memory=st.floats(0.9, 0.995),
    beta=st.floats(0.1, 1.0),
    q=st.floats(1.5, 3.0),
    psi=st.floats(0.0, 1.0),
    median=st.floats(1.0, 6.0),
    budget=st.floats(0.0, 300.0),
)
def test_random_row_values_batch_exactly(
    memory: float, beta: float, q: float, psi: float, median: float, budget: float
) -> None:
    varied = config(
        {
            "behaviour.memory": memory,
            "behaviour.beta": beta,
            "ports[kind=hub].q": q,
            "succession.psi": psi,
            "networks.risk_aversion.median": median,
            "enforcement.NL.budget": budget,
            "weeks": 30,
        }
    )
    plain = config({"weeks": 30})
    both = run_points([plain, varied], 2, seed=1, points=[0, 1])
    assert_same_result(both[1], run_batch(varied, 2, seed=1, point=1, bands=False))
    assert_same_result(both[0], run_batch(plain, 2, seed=1, point=0, bands=False))


def test_a_sweep_chunk_runs_its_points_as_one_batch(tmp_path, monkeypatch) -> None:
    """``run_chunk`` (batched) gives the rows of ``run_point`` (one point at a time), in one batch per structure."""
    import yaml

    from displacement_sim import runner, vectorized
    from displacement_sim.executors import BATCH_ROWS, default_chunk_size
    from displacement_sim.experiments import load_experiment, run_chunk, run_point

    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(BASE, sort_keys=False), encoding="utf-8")
    data = {
        "name": "chunk",
        "base": str(base),
        "design": "lhs",
        "n": 6,
        "replications": 3,
        "overrides": {"weeks": 30},
        "parameters": [
            {"path": "behaviour.beta", "range": [0.1, 1.0]},
            {"path": "succession.psi", "range": [0.6, 0.95]},
        ],
        "outcomes": ["seized_kg", "hub_share", "networks_dismantled"],
    }
    path = tmp_path / "chunk.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    sweep = load_experiment(path)
    calls = []
    simulate = vectorized.simulate
    monkeypatch.setattr(runner.vectorized, "simulate", lambda *a, **k: calls.append(1) or simulate(*a, **k))
    rows = run_chunk(sweep, range(6))
    assert len(calls) == 1  # six points, one batch
    monkeypatch.undo()
    assert rows == [run_point(sweep, k) for k in range(6)]
    # the default chunk holds as many points as fit in BATCH_ROWS rows (one group) when the sweep is large enough
    big = load_experiment(path, n=2000)
    size, reps = default_chunk_size(big, workers=2), big.experiment.replications
    assert size * reps <= BATCH_ROWS <= vectorized.ROWS_PER_GROUP
    assert (size + 1) * reps > BATCH_ROWS


def test_a_batch_too_large_is_split_by_points(monkeypatch) -> None:
    from displacement_sim import runner

    configs = [config(o) for o in ROW_OVERRIDES[:3]]
    whole = run_points(configs, 2, seed=4, points=[0, 1, 2])
    cells = 10 * whole[0].ports.ids.__len__()
    monkeypatch.setattr(runner, "MAX_CELLS_PER_BATCH", cells * 2 * 2)  # room for two points of 2 replications
    calls = []
    simulate = runner.vectorized.simulate
    monkeypatch.setattr(runner.vectorized, "simulate", lambda *a, **k: calls.append(1) or simulate(*a, **k))
    split = run_points(configs, 2, seed=4, points=[0, 1, 2])
    assert len(calls) == 2
    for a, b in zip(whole, split, strict=True):
        assert_same_result(a, b)


JOINT_BASE = {  # BASE with 60 slots, a joint strategy, joint teams, a delay, succession and intel gains
    **BASE,
    "name": "all_rows",
    "networks": {"n_slots": 60, "hvt_share": 0.5},
    "enforcement": {
        **BASE["enforcement"],
        "joint_strategy": {"members": ["BE", "NL"], "budget": 60, "anticipation": 0.5},
        "hvt": {"coordination": "joint_team", "jit_setup_weeks": 2},
        "info_exchange": {"delay_weeks": 2},
    },
    "succession": {"lag_weeks": 3, "entry_rate": 0.3},
    "intel": {"gain_seizure": 0.5, "gain_case": 0.1},
}


def _every_row_field(rng: np.random.Generator) -> dict[str, float]:
    """A random value for (nearly) every parameter that is a row field (rows.ROW_FIELDS)."""
    ranges = {
        "behaviour.margin": (20, 40),
        "behaviour.beta": (0.2, 0.9),
        "behaviour.nest_lambda": (0.4, 1.0),
        "behaviour.phi": (1, 4),
        "behaviour.setup": (0.5, 4),
        "behaviour.kappa": (0, 0.8),
        "behaviour.prior_strength": (3, 30),
        "behaviour.memory": (0.9, 0.99),
        "behaviour.omega": (0, 1),
        "behaviour.access_growth": (0.02, 0.3),
        "behaviour.access_decay": (0.01, 0.1),
        "behaviour.access_burn": (0.2, 1),
        "behaviour.zeta": (0, 3),
        "behaviour.split_floor": (0.3, 0.7),
        "elsewhere.detection": (0.05, 0.25),
        "elsewhere.cost": (2, 8),
        "elsewhere.asc": (-3, 3),
        "elsewhere.at_risk_per_week": (2000, 9000),
        "hold.utility": (25, 40),
        "ports[kind=hub].q": (1.5, 3),
        "ports[kind=regional].c": (0.1, 0.9),
        "ports[kind=hub].a": (0.5, 3),
        "ports[kind=hub].inspection_rate": (0.03, 0.08),
        "ports[kind=regional].inspection_rate": (0.01, 0.04),
        "enforcement.BE.budget": (0, 200),
        "enforcement.NL.sigma": (0.2, 0.8),
        "enforcement.BE.open_rate": (1, 5),
        "enforcement.joint_strategy.budget": (10, 100),
        "enforcement.info_exchange.share": (0.1, 0.9),
        "enforcement.hvt.conflict_penalty": (0, 0.5),
        "enforcement.hvt.jit_uplift": (1, 1.5),
        "intel.gain_seizure": (0.2, 0.7),
        "intel.gain_case": (0.02, 0.1),
        "intel.gain_home": (0, 0.05),
        "intel.evidence_weight": (0, 1),
        "intel.decay": (0.01, 0.05),
        "intel.gamma": (0, 0.3),
        "intel.tip_gamma": (0, 0.3),
        "succession.psi": (0.5, 0.95),
        "succession.entry_rate": (0.1, 0.5),
        "networks.load_kg.median": (40, 80),
        "networks.load_kg.sigma": (1.5, 2.5),
        "networks.loads_per_week.median": (0.8, 1.5),
        "networks.loads_per_week.sigma": (0.4, 0.8),
        "networks.loads_per_week.high": (3, 4),
        "networks.risk_aversion.median": (1, 6),
        "networks.risk_aversion.low": (0.3, 0.9),
        "networks.hvt_share": (0.3, 0.8),
        "networks.home.NL": (0.2, 0.8),
        "networks.home.BE": (0.1, 0.5),
    }
    return {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in ranges.items()}


def test_every_row_field_batches_exactly_in_any_grouping() -> None:
    """Five points differing in every row field, with a joint strategy (anticipation) and joint teams: one batch;
    every weekly series bit for bit the same in groups of 1, 4 or all rows, run alone, and in Mesa.

    60 slots, in groups of 1, 4 or all rows of the batch.
    """
    from displacement_sim import vectorized
    from displacement_sim.metrics import Recorder

    rng = np.random.default_rng(1)
    configs = [load_scenario(JOINT_BASE, overrides=_every_row_field(rng)) for _ in range(5)]
    l_max = 60  # a common width: split_floor and loads_per_week.high change each point's own bound
    plans = [build_plan(c, l_max=l_max) for c in configs]
    assert len({structure_key(p) for p in plans}) == 1
    reps, n_points = 3, len(configs)
    plan = stack(plans, [reps] * n_points)
    row_reps, row_points = np.tile(np.arange(reps), n_points), np.repeat(np.arange(n_points), reps)

    def run(rows_per_group: int | None) -> dict[str, np.ndarray]:
        rec = Recorder(len(row_reps), plan.weeks, plan.warmup_weeks, plan.params[0].n_ports, True, bands=False)
        vectorized.simulate(plan, 3, row_reps, rec, point=row_points, rows_per_group=rows_per_group)
        return {k: np.stack(v, axis=1) for k, v in rec.series.items()}

    whole = run(None)
    assert whole["dismantled_joint"].sum() > 0 and whole["successors"].sum() > 0 and whole["entrants"].sum() > 0
    for size in (1, 4):
        grouped = run(size)
        assert all(np.array_equal(whole[k], grouped[k]) for k in whole), size
    for k, cfg in enumerate(configs):
        alone = run_batch(cfg, reps, seed=3, point=k, keep_series=True, bands=False, l_max=l_max).series
        for key in alone:
            assert np.array_equal(alone[key], whole[key][k * reps : (k + 1) * reps]), (k, key)
    for k in (0, 4):
        weekly = DisplacementModel(config=configs[k], rng=3, replication=2, point=k, l_max=l_max).run().weekly()
        for key in weekly:
            assert np.array_equal(weekly[key], whole[key][k * reps + 2]), (k, key)


def test_allocation_of_a_row_is_the_same_alone_or_in_a_block() -> None:
    """Water-filling a unit of 9 ports: each row of a block equals the row allocated alone (Mesa), bit for bit."""
    from displacement_sim import kernel as kx

    p = build_plan(load_scenario(JOINT_BASE)).params[0]
    pool = p.units[-1]
    assert len(pool.ports) >= 8  # numpy sums 8 or more terms pairwise: the order must not depend on the layout
    rng = np.random.default_rng(7)
    seizures = rng.integers(0, 30, (40, p.n_ports)).astype(float) * rng.random((40, p.n_ports))
    rates = p.base_rate * (1 + rng.random((40, p.n_ports)))
    block = kx.allocate(p, pool, seizures, rates)
    for r in range(len(block)):
        assert np.array_equal(block[r], kx.allocate(p, pool, seizures[r], rates[r])), r


def test_rows_on_common_random_numbers_share_one_draw_with_the_same_numbers(monkeypatch) -> None:
    """Rows with the same stream key (common random numbers) get the numbers of their own generator."""
    from displacement_sim import vectorized
    from displacement_sim.streams import Stream, generator

    keys = np.array([[0, 0], [0, 1], [0, 0], [3, 1], [0, 1], [0, 0]])
    weeks, shape = 30, (4, 5)
    monkeypatch.setattr(vectorized, "BLOCK_BYTES", 4 * 3 * 4 * 5 * 8)  # 4 weeks of 3 streams a draw
    blocks = vectorized._Blocks(11, keys, Stream.SHIPMENTS, shape, weeks)
    assert blocks.chunk == 4 and weeks % blocks.chunk != 0  # draw boundaries, and the last draw is shorter
    assert len(blocks.gens) == 3  # one draw per distinct key
    own = [generator(11, int(k), int(r), Stream.SHIPMENTS) for k, r in keys]
    for week in range(weeks):
        distinct, index = blocks.shared(week)
        assert distinct.shape == (3, *shape) and list(index) == [0, 1, 0, 2, 1, 0]
        got = blocks.week(week)
        for i, g in enumerate(own):
            expected = g.random(shape)
            np.testing.assert_array_equal(got[i], expected)
            np.testing.assert_array_equal(distinct[index[i]], expected)
    assert not np.array_equal(got[0], got[1]) and np.array_equal(got[0], got[5])


def test_rows_with_their_own_streams_get_views_of_one_draw() -> None:
    """Without shared keys, each row's block is its own generator's, handed out without a copy."""
    from displacement_sim import vectorized
    from displacement_sim.streams import Stream, generator

    keys = np.array([[2, 0], [2, 1], [5, 0]])
    blocks = vectorized._Blocks(4, keys, Stream.SHIPMENTS, (3, 7), 5)
    own = [generator(4, int(k), int(r), Stream.SHIPMENTS) for k, r in keys]
    for week in range(5):
        got = blocks.week(week)
        assert np.shares_memory(got, blocks.buffer)
        for i, g in enumerate(own):
            np.testing.assert_array_equal(got[i], g.random((3, 7)))


def test_a_common_random_numbers_batch_equals_its_points_alone() -> None:
    """Points sharing their streams (point index 0 for every row) in one batch equal each point run alone."""
    configs = [config(o) for o in ROW_OVERRIDES]
    batched = run_points(configs, 3, seed=5, points=[0] * len(configs))
    for cfg, res in zip(configs, batched, strict=True):
        assert_same_result(res, run_batch(cfg, 3, seed=5, point=0, bands=False))
    assert not np.array_equal(batched[0].metrics["seized_kg"], batched[1].metrics["seized_kg"])


def test_shipment_streams_read_or_drawn_give_the_same_batch(monkeypatch) -> None:
    """A stream's blocks read where used (pcg64) or drawn whole (many rows on one stream): the same numbers."""
    from displacement_sim import vectorized

    reads = []

    class Counted(vectorized._ReadBlocks):
        def __init__(self, *args):
            super().__init__(*args)
            reads.append(self)

    monkeypatch.setattr(vectorized, "_ReadBlocks", Counted)
    configs = [config(o) for o in ROW_OVERRIDES]
    results = {}
    for path, threshold in (("drawn", 1), ("read", 10**9)):
        monkeypatch.setattr(vectorized, "ROWS_PER_DRAWN_STREAM", threshold)
        reads.clear()
        results[path] = run_points(configs, 4, seed=9, points=[0] * len(configs))  # rows share streams
        assert bool(reads) == (path == "read")  # the path taken
    for drawn, read in zip(results["drawn"], results["read"], strict=True):
        assert_same_result(drawn, read)
    assert results["read"][0].metrics["seized_kg"].sum() > 0


EVENTFUL = {  # cases, action-day shocks, joint teams and successors within a short run
    **BASE,
    "enforcement": {**BASE["enforcement"], "hvt": {"coordination": "joint_team"}},
    "shocks": [
        {"week": 20, "agency": "BE", "share_networks": 0.7, "level": 0.9, "action_day": True},
        {"week": 35, "agency": "NL", "share_networks": 0.5, "level": 0.8},
    ],
    "succession": {"lag_weeks": 2, "psi": 0.7, "entry_rate": 0.2},
}


def _drawn_and_read(monkeypatch, cfg, replications: int = 6):
    """The batch with every row's event blocks drawn whole, and with only the cells read computed."""
    from displacement_sim import vectorized

    out = {}
    for path, threshold in (("drawn", 1), ("read", 10**9)):
        monkeypatch.setattr(vectorized, "ROWS_PER_DRAWN_STREAM", threshold)
        out[path] = run_batch(cfg, replications, seed=13, keep_series=True)
    return out["drawn"], out["read"]


def test_event_blocks_read_where_used_give_the_drawn_blocks_numbers(monkeypatch) -> None:
    """Investigation and succession blocks: computing only the slots steps 7-9 read changes no number.

    ``cooperation.investigation_reads`` and ``succession_reads`` name those slots; the
    run has every reader (cases opening and ending, action-day and plain shocks, joint
    teams, successors and entrants), so a read outside them (NaN) would show.
    """
    drawn, read = _drawn_and_read(monkeypatch, load_scenario(EVENTFUL))
    for k in drawn.series:
        assert np.array_equal(drawn.series[k], read.series[k], equal_nan=True), k
    m = read.metrics
    for event in ("cases_opened", "dismantled", "successors", "entrants"):
        key = next(k for k in m if k.startswith(event))
        assert np.nansum(m[key]) > 0, f"no {event} in the run: the test would not see a wrong read"


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")  # a NaN duration, the point of the test
@pytest.mark.parametrize("term", ["shock", "targets"])
def test_a_slot_missing_from_the_investigation_reads_is_seen(monkeypatch, term: str) -> None:
    """The check above fails when ``investigation_reads`` leaves out the slots of any one reader."""
    from displacement_sim import cooperation as co

    full = co.investigation_read_terms

    def fewer(*args):
        return {k: v & False if k == term else v for k, v in full(*args).items()}

    monkeypatch.setattr(co, "investigation_read_terms", fewer)
    drawn, read = _drawn_and_read(monkeypatch, load_scenario(EVENTFUL))
    assert not all(np.array_equal(drawn.series[k], read.series[k], equal_nan=True) for k in drawn.series)


def test_a_slot_missing_from_the_succession_reads_is_seen(monkeypatch) -> None:
    from displacement_sim import cooperation as co

    monkeypatch.setattr(co, "succession_reads", lambda cp, st, week, alive: np.zeros(alive.shape, dtype=bool))
    drawn, read = _drawn_and_read(monkeypatch, load_scenario(EVENTFUL))
    assert not all(np.array_equal(drawn.series[k], read.series[k], equal_nan=True) for k in drawn.series)


@pytest.mark.parametrize("shape", [(3, 5), (300, 80, 15), (2, 53, 2, 80)])
def test_aligned_arrays_start_on_a_huge_page_when_large(shape) -> None:
    """rows.aligned_empty: C-ordered float64 of the shape; large ones start on a 2 MiB boundary."""
    from displacement_sim.rows import HUGE_PAGE, aligned_empty, aligned_zeros

    a, z = aligned_empty(shape), aligned_zeros(shape)
    for x in (a, z):
        assert x.shape == shape and x.dtype == np.float64 and x.flags.c_contiguous and x.flags.writeable
    assert np.all(z == 0.0)
    if a.nbytes >= 2 * HUGE_PAGE:
        assert a.ctypes.data % HUGE_PAGE == 0 and z.ctypes.data % HUGE_PAGE == 0
        assert not np.shares_memory(a, z)


def test_the_week_arrays_are_reused_from_week_to_week(monkeypatch) -> None:
    """kernel.trade with a group's buffers writes loads and caught into the same arrays every week."""
    from displacement_sim import vectorized

    seen = []
    original = vectorized.kx.trade

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append((out[2].ctypes.data, out[3].ctypes.data))
        return out

    monkeypatch.setattr(vectorized.kx, "trade", spy)
    run_batch(config({}), 3, seed=2)
    assert len(seen) == config({}).weeks and len(set(seen)) == 1
